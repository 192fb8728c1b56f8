"""The operator's commands (`python -m <package> ...`), one module per group; cli.py parses."""
