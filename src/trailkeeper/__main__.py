"""`python -m trailkeeper` runs the CLI."""

from trailkeeper.cli import main

main()
