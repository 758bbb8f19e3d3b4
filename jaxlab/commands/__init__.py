"""The command line: one module per command, each declaring its flags and `run(args)`."""
