"""`python -m` entry point: the project's command line."""

from .cli import entry

entry()
