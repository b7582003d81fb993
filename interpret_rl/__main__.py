from interpret_rl.cli import main

main()
