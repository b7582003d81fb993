"""Built-in interpret-rl plugins, installed as ``interpret_rl_plugins``; each is an ordinary entry point."""
