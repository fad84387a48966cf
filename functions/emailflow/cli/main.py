"""``emailflow``: the command group. Subcommands live in ``local`` and ``service``."""

from __future__ import annotations

import click

from emailflow import __version__
from emailflow.cli.context import CliContext
from emailflow.cli.conversation import address, conversation
from emailflow.cli.doctor import doctor
from emailflow.cli.local import local
from emailflow.cli.redrive import redrive, replay
from emailflow.cli.service import service
from emailflow.cli.stats import stats
from emailflow.config import DEFAULT_STACK, STACK_VARIABLE

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option("--stack", "stack_name", envvar=STACK_VARIABLE, default=DEFAULT_STACK, show_default=True,
              show_envvar=True, metavar="NAME",
              help="CloudFormation stack whose outputs name the relay's table, secret and domain.")
@click.version_option(__version__, prog_name="emailflow")
@click.pass_context
def cli(ctx: click.Context, stack_name: str) -> None:
    """emailflow: a masked e-mail relay for marketplaces, on AWS serverless.

    Run `emailflow local` to start the whole relay on this machine; with the AWS_ENDPOINT_URL it prints exported,
    every other command acts on that local relay.
    """
    ctx.obj = CliContext(stack_name=stack_name)


cli.add_command(address)
cli.add_command(conversation)
cli.add_command(doctor)
cli.add_command(local)
cli.add_command(redrive)
cli.add_command(replay)
cli.add_command(service)
cli.add_command(stats)
