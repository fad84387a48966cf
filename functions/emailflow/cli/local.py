"""``emailflow local``: the real relay on this machine, behind a real SMTP port, with no AWS account."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click

from emailflow.cli.context import CliContext, reported_errors
from emailflow.config import set_process_environment

VERDICT_NAMES = ("spam", "virus", "spf", "dkim", "dmarc")
VERDICT_STATUSES = ("PASS", "FAIL", "GRAY", "PROCESSING_FAILED", "DISABLED")


class HostPort(click.ParamType[tuple[str, int]]):
    """``HOST:PORT`` (``[::1]:25`` for an IPv6 address)."""

    name = "HOST:PORT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        host, colon, port = str(value).rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            self.fail(f"{value!r} is not HOST:PORT", param, ctx)
        return host, int(port)


class Verdict(click.ParamType[tuple[str, str]]):
    """``NAME=STATUS``, e.g. ``spam=FAIL``: one of SES's receipt verdicts."""

    name = "NAME=STATUS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        name, equals, status = str(value).partition("=")
        name, status = name.strip().lower(), status.strip().upper()
        if not equals or name not in VERDICT_NAMES or status not in VERDICT_STATUSES:
            self.fail(f"{value!r}: expected NAME=STATUS with NAME one of {', '.join(VERDICT_NAMES)} and STATUS one "
                      f"of {', '.join(VERDICT_STATUSES)}", param, ctx)
        return name, status


@click.command()
@click.option("--domain", default="relay.example", show_default=True, help="The relay domain to receive mail for.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the SMTP server listens on.")
@click.option("--smtp-port", type=click.IntRange(0, 65535), default=2525, show_default=True,
              help="SMTP port; 0 picks a free one (the ready line names it).")
@click.option("--mailbox", type=click.Path(file_okay=False, path_type=Path), default=Path("mailbox"),
              show_default=True, help="Root of the Maildirs outbound mail is delivered to, one per recipient.")
@click.option("--brand", default=None, help="Brand in display names (\"Jane via BRAND\"); the template's default "
              "if not given.")
@click.option("--smarthost", type=HostPort(), default=None,
              help="Deliver outbound mail over SMTP to this server instead of into Maildirs.")
@click.option("--verdict", "verdicts", type=Verdict(), multiple=True,
              help="A receipt verdict every inbound message gets, e.g. spam=FAIL (repeatable; default all PASS).")
@click.pass_obj
def local(obj: CliContext, domain: str, host: str, smtp_port: int, mailbox: Path, brand: str | None,
          smarthost: tuple[str, int] | None, verdicts: tuple[tuple[str, str], ...]) -> None:
    """Run the relay on this machine: an AWS emulator with the template's resources, the real relay handler, and an
    SMTP server in front of it playing SES inbound.

    Prints `export AWS_ENDPOINT_URL=http://127.0.0.1:<port>` and then a line with `ready`; with that variable
    exported, every other emailflow command acts on this relay. Mail the relay sends is delivered into
    MAILBOX/<recipient>/ (Maildir). Stops cleanly on Ctrl-C or SIGTERM.
    """
    from emailflow.local.template import globals_environment, load_template  # PyYAML: the ``local`` extra

    # Before the package's logger exists (it reads these when created): the template's Powertools settings, unless
    # the developer set their own.
    powertools = globals_environment(load_template())
    restore = set_process_environment(powertools, keep_existing=powertools)
    try:
        # After the environment above, and only for this command: moto, aiosmtpd and the relay handler.
        from emailflow.local.server import LocalOptions, run, send_logs_to
        from emailflow.local.ses_inbound import PASS_VERDICTS

        send_logs_to(sys.stderr)  # stdout carries the two lines scripts read, nothing else
        options = LocalOptions(domain=domain, brand=brand, host=host, smtp_port=smtp_port, mailbox=mailbox,
                               smarthost=smarthost, verdicts={**PASS_VERDICTS, **dict(verdicts)},
                               stack_name=obj.stack_name, log_stream=sys.stderr)
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            with reported_errors():
                try:
                    run(options, announce=click.echo, stop=stop)
                except OSError as exc:  # the SMTP port is taken, the mailbox is not writable, ...
                    raise click.ClickException(f"local mode could not start: {exc}") from exc
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        click.echo("emailflow local stopped", err=True)
    finally:
        restore()
