"""``python -m emailflow.cli``: the same as the ``emailflow`` console script."""

from emailflow.cli.main import cli

cli(prog_name="emailflow")
