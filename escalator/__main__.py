"""`python -m escalator` is the `escalator` command."""

from escalator.cli import main

main()
