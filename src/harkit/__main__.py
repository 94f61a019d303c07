"""`python -m harkit` (and `torchrun ... -m harkit train ...`) runs the command line."""

from harkit.cli import app

app()
