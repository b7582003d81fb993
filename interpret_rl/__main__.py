from interpret_rl.console import main

main()
