"""``emailflow redrive`` and ``emailflow replay --dry-run``: the relay, run again on parked or stored mail.

Both run the relay's own code in this process, with the deployment's settings from the stack outputs (the policy
settings included), so they decide exactly as the function does; the operator's credentials need the relay
function's permissions. The business figures stay exact: they live in DynamoDB and are updated by the same
transaction as for any relayed mail. CloudWatch metrics of a redrive are not emitted (the dashboard misses those
few messages).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

import click

from emailflow.cli.context import CliContext, reported_errors
from emailflow.cli.output import echo_json, progress, table
from emailflow.events import InboundMail, inbound_mails
from emailflow.outcomes import RelayOutcome
from emailflow.ports import EventError, RelayFault

_RELATIVE = re.compile(r"(?P<count>\d+)(?P<unit>[mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class When(click.ParamType[datetime]):
    """An instant: ISO 8601 (``2026-11-25T10:00``, UTC unless it says otherwise) or an age (``30m``, ``6h``,
    ``2d``: that long ago)."""

    name = "TIME"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        relative = _RELATIVE.fullmatch(text)
        if relative:
            return datetime.now(UTC) - timedelta(**{_UNITS[relative["unit"]]: int(relative["count"])})
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is neither ISO 8601 (2026-11-25T10:00) nor an age (30m, 6h, 2d)", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _selection(message_ids: Sequence[str], since: datetime | None, until: datetime | None) -> None:
    if message_ids and (since or until):
        raise click.UsageError("give message ids or a time range, not both")


def _stored(obj: CliContext, message_ids: Sequence[str], since: datetime | None, until: datetime | None,
            recipients: Sequence[str]) -> list[InboundMail]:
    """The receipt facts of stored messages, by id or by the time SES stored them (emailflow.stored)."""
    from emailflow.stored import inbound_from_stored

    ops = obj.operations()
    store = ops.mail_store()
    with reported_errors():
        chosen = [(message_id, "") for message_id in message_ids] or \
            [(item.message_id, item.stored_at.isoformat()) for item in store.list_stored(since, until)]
        mails = []
        with progress("reading stored mail", len(chosen)) as advance:
            for message_id, stored_at in chosen:
                mails.append(inbound_from_stored(message_id, store.get_raw(message_id), ops.addressing, recipients,
                                                 stored_at))
                advance()
    return mails


_IDS = click.argument("message_ids", nargs=-1, metavar="[MESSAGE_ID]...")
_SINCE = click.option("--since", type=When(), default=None, help="Stored mail from this time on (ISO 8601 or 6h).")
_UNTIL = click.option("--until", type=When(), default=None, help="... and before this time.")
_TO = click.option("--to", "recipients", multiple=True, metavar="ADDRESS",
                   help="The relay recipient(s), when the stored message does not show them (a Bcc).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.command("redrive")
@_IDS
@_SINCE
@_UNTIL
@_TO
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many parked events (from the dead-letter queue).")
@_JSON
@click.pass_obj
def redrive(obj: CliContext, message_ids: tuple[str, ...], since: datetime | None, until: datetime | None,
            recipients: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Relay parked or stored mail again. Without MESSAGE_IDs or a time range: the events in the relay's
    dead-letter queue, each deleted from the queue once it ran through. Idempotent: a (message, recipient) already
    relayed answers `duplicate` and sends nothing (docs/operations.md)."""
    from emailflow.replay import redrive as run_again

    _selection(message_ids, since, until)
    ops = obj.operations()
    context = ops.relay()
    rows: list[dict[str, object]] = []
    if message_ids or since or until:
        for mail in _stored(obj, message_ids, since, until, recipients):
            rows.extend(_run(mail.message_id, partial(run_again, [mail], context)))
    else:
        from emailflow.adapters.sqs import DeadLetterQueue

        queue_url = obj.outputs().get("RelayDeadLetterQueueUrl")
        if not queue_url:
            raise click.ClickException("the stack has no RelayDeadLetterQueueUrl output")
        queue = DeadLetterQueue(queue_url)
        with reported_errors():
            parked = queue.receive(limit)
        with progress("redriving", len(parked)) as advance:
            for event in parked:
                try:
                    mails = inbound_mails(event.event)
                except EventError as exc:
                    rows.append({"message_id": "-", "recipient": "-", "action": "left parked",
                                 "reason": f"not an SES event: {exc}"})
                    with reported_errors():
                        queue.release(event)
                    continue
                ran = _run(mails[0].message_id, partial(run_again, mails, context))
                rows.extend(ran)
                with reported_errors():
                    if all(row["action"] != "left parked" for row in ran):
                        queue.delete(event)
                    else:
                        queue.release(event)
                advance()
        if not parked:
            click.echo("the dead-letter queue is empty", err=True)
    _report(rows, as_json)
    if any(row["action"] == "left parked" for row in rows):
        raise SystemExit(1)


def _run(message_id: str, work: Callable[[], list[tuple[str, RelayOutcome]]]) -> list[dict[str, object]]:
    """One message's rows; a fault leaves it where it was (parked, or in S3) with the error as its reason."""
    try:
        done = work()
    except RelayFault as exc:
        return [{"message_id": message_id, "recipient": "-", "action": "left parked",
                 "reason": f"{type(exc).__name__}: {exc}"}]
    return [{"message_id": mid, "recipient": outcome.recipient, "action": outcome.action.value,
             "reason": outcome.reason.value} for mid, outcome in done]


def _report(rows: list[dict[str, object]], as_json: bool) -> None:
    if as_json:
        echo_json(rows)
    elif rows:
        table(["message", "recipient", "action", "reason"],
              [[str(row["message_id"]), str(row["recipient"]), str(row["action"]), str(row["reason"])]
               for row in rows])


@click.command("replay")
@_IDS
@_SINCE
@_UNTIL
@_TO
@click.option("--dry-run", "dry_run", is_flag=True, help="Required: replay never writes or sends.")
@_JSON
@click.pass_obj
def replay(obj: CliContext, message_ids: tuple[str, ...], since: datetime | None, until: datetime | None,
           recipients: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Run stored mail through the relay as it is now, writing and sending nothing: each outcome, and the
    envelope and rewritten header block of what would be sent. Check a rule change against real traffic before
    deploying it."""
    from emailflow.replay import dry_run as replay_dry

    if not dry_run:
        raise click.UsageError("replay only runs dry: pass --dry-run (emailflow redrive relays for real)")
    _selection(message_ids, since, until)
    if not (message_ids or since or until):
        raise click.UsageError("name stored mail: MESSAGE_IDs, or --since/--until")
    ops = obj.operations()
    mails = _stored(obj, message_ids, since, until, recipients)
    with reported_errors():
        results = replay_dry(mails, ops.relay())
    if as_json:
        echo_json([result.as_dict() for result in results])
        return
    for result in results:
        data = result.as_dict()
        click.echo(f"== {data['message_id']} -> {data['recipient']}: {data['action']} ({data['reason']})"
                   + (", error mail to the sender" if data["notice"] else ""))
        for sent in data["would_send"]:
            click.echo(f"-- would send from {sent['from']} to {sent['to']} ({sent['size']} bytes):")
            click.echo(str(sent["headers"]).rstrip("\r\n").replace("\r\n", "\n"))
    if not results:
        click.echo("no stored mail in that selection", err=True)
