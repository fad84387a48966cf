"""``emailflow conversation show`` and ``emailflow address clear``: one pair's state, and lifting suppressions."""

from __future__ import annotations

import click

from emailflow.cli.context import CliContext, reported_errors
from emailflow.cli.output import echo_json, fields, when


@click.group()
def conversation() -> None:
    """Conversations: one user and one service, known by the user-code address the service writes to."""


@conversation.command("show")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def show(obj: CliContext, address: str, as_json: bool) -> None:
    """A conversation's timestamps, counts and state, by its user-<code> address (or the bare code). The relay
    keeps no message contents: there are none to show."""
    with reported_errors():
        found = obj.relay().conversation(address)
    if as_json:
        echo_json(found.as_dict())
        return
    suspended = ", ".join(f"{direction} ({why})" for direction, why in found.suspended.items())
    fields([("conversation", found.user_code_address),
            ("service", f"{found.service_address} ({found.service_name})"),
            ("started", when(found.started_at)),
            ("messages", f"{found.user_messages} from the user, {found.service_messages} from the service"),
            ("auto-replies", f"{found.user_auto_replies} from the user, {found.service_auto_replies} from the "
                             "service"),
            ("delivered", f"{found.delivered_to_service} to the service, {found.delivered_to_user} to the user"),
            ("first reply", when(found.first_reply_at)),
            ("awaiting reply since", when(found.awaiting_reply_since)),
            ("last from the user", when(found.last_user_message_at)),
            ("last from the service", when(found.last_service_message_at)),
            ("suspended", suspended or "-"),
            ("user address", f"undeliverable ({found.user_undeliverable})" if found.user_undeliverable
             else "deliverable")])


@click.group()
def address() -> None:
    """Real addresses the relay stopped mailing (bounces, complaints)."""


@address.command("clear")
@click.argument("email")
@click.pass_obj
def clear(obj: CliContext, email: str) -> None:
    """Lift every suppression of EMAIL: a permanent bounce (on the address and on services listing it), transient
    bounce counts, and complaint suspensions of the conversations that mail it. Safe to repeat."""
    with reported_errors():
        lifted = obj.relay().clear_address(email)
    if not lifted:
        click.echo(f"{email}: nothing to clear")
    for line in lifted:
        click.echo(f"cleared {line}")
