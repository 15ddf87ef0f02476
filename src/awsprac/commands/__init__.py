"""The commands: the click tree (cli.py), the env's lifecycle, and the walkers over every family."""
