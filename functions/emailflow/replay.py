"""Running the relay again on stored mail: for real (`emailflow redrive`) or without effects (`emailflow replay
--dry-run`). Pure: the store, mailer and mail store come in as ports.

**Redrive** is the relay itself, on the same ``RelayContext`` the function builds: each (message, recipient) is
sent at most once whatever is redriven (the delivery claims, docs/reliability.md), so redriving a message that was
already relayed answers ``duplicate`` and sends nothing.

**Replay** wraps the context so that nothing is written and nothing is sent: reads go to the real store (services,
pairs, thread records, address health), while claims, counters and sends are only recorded. It ignores whether a
message was relayed before (an operator replays yesterday's traffic against today's rules) and has no rate limit
in its way. What it prints is what the relay would do now: the outcome, and for mail it would send, the envelope
and the rewritten header block (the body is untouched by construction; it is never printed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from emailflow.events import InboundMail
from emailflow.message import split_message
from emailflow.model import DeliveryKey, Pair, SentMessage, Service, Snapshot, ThreadRefs
from emailflow.outcomes import RelayOutcome
from emailflow.ports import ClaimResult, Directory, MailBytes, MailStore, SenderBudget, UserCodeClaim, mail_bytes
from emailflow.relay import RelayContext, relay_inbound
from emailflow.senders import HeldMessage


@dataclass(frozen=True, slots=True)
class WouldSend:
    """One mail the relay would have handed to SES."""

    from_address: str
    to_address: str
    header_block: bytes
    size: int


@dataclass(slots=True)
class DryRunMailer:
    """Keeps what would be sent; sends nothing."""

    sent: dict[str, WouldSend] = field(default_factory=dict)

    def send_raw(self, raw: MailBytes, *, from_address: str, to_address: str, tags: Mapping[str, str]) -> str:
        ses_message_id = f"dry-run-{len(self.sent) + 1}"
        whole = mail_bytes(raw)  # an operator's replay: one copy of the message is fine here
        header_block = bytes(whole[: split_message(whole).body_start])
        self.sent[ses_message_id] = WouldSend(from_address, to_address, header_block, len(whole))
        return ses_message_id


@dataclass(frozen=True, slots=True)
class DryRunMailStore:
    """Reads the real stored mail; keeps no copy (an oversize message's link is a placeholder)."""

    inner: MailStore

    def get_raw(self, key: str) -> bytes:
        return self.inner.get_raw(key)

    def put_copy(self, name: str, raw: bytes) -> str:
        return f"dry-run/{name}"

    def download_url(self, key: str, seconds: int) -> str:
        return f"https://dry-run.invalid/{key}"


@dataclass(slots=True)
class DryRunDirectory:
    """The real store's reads; writes recorded in ``writes``, never made."""

    inner: Directory
    writes: list[str] = field(default_factory=list)

    def put_service(self, service: Service) -> bool:
        raise TypeError("a replay never registers services")

    def get_service(self, code: str) -> Service | None:
        return self.inner.get_service(code)

    def set_service_status(self, service: Service) -> None:
        raise TypeError("a replay never changes services")

    def load_for_user_mail(self, service_code: str, user_address: str, delivery: DeliveryKey,
                           refs: ThreadRefs) -> Snapshot:
        return replace(self.inner.load_for_user_mail(service_code, user_address, delivery, refs), delivery=None,
                       recent_messages=0)

    def claim_for_user_code(self, user_code: str, delivery: DeliveryKey, expires_at: int) -> UserCodeClaim:
        # The relay claims on the alias item and reads it back in one write: here only the read is made.
        alias = self.inner.get_alias(user_code)
        if alias is None:
            return UserCodeClaim(None)
        self.writes.append("claim")
        return UserCodeClaim(ClaimResult.CLAIMED, *alias)

    def load_for_service_mail(self, user_code: str, service_code: str, user_address: str, delivery: DeliveryKey,
                              refs: ThreadRefs) -> Snapshot:
        return replace(self.inner.load_for_service_mail(user_code, service_code, user_address, delivery, refs),
                       delivery=None, recent_messages=0)

    def get_alias(self, user_code: str) -> tuple[str, str] | None:
        return self.inner.get_alias(user_code)

    def claim_delivery(self, delivery: DeliveryKey, new_pair: Pair | None, expires_at: int,
                       budget: SenderBudget | None = None) -> ClaimResult:
        self.writes.append(("claim" if new_pair is None else "claim + new conversation") +
                           (" + sender budget" if budget is not None else ""))
        return ClaimResult.CLAIMED

    def release_delivery(self, delivery: DeliveryKey, alias: str | None = None) -> None:
        self.writes.append("release")

    def reject_delivery(self, delivery: DeliveryKey, reason: str, alias: str | None = None,
                        expires_at: int | None = None) -> None:
        self.writes.append(f"reject {reason}")

    def allow_notice(self, sender_key: str, window: int, limit: int, expires_at: int) -> bool:
        return True

    def record_sent(self, delivery: DeliveryKey, sent: SentMessage, pair: Pair, recipient_key: str,
                    sent_expires_at: int, delivery_expires_at: int | None = None) -> None:
        self.writes.append("record sent")

    def hold_later(self, held: HeldMessage, sender_key: str, limit: int) -> bool:
        # Whether an approval is pending for this sender is only known by writing: the dry run shows the message
        # held on its own, with the approval mail that would go out if none were.
        return False

    def hold_message(self, held: HeldMessage, sender_key: str) -> bool:
        self.writes.append("hold for approval")
        return True


@dataclass(frozen=True, slots=True)
class ReplayedOutcome:
    """What the relay would do with one recipient of one stored message."""

    message_id: str
    outcome: RelayOutcome
    would_send: tuple[WouldSend, ...] = ()
    """The relayed mail, and any error mail to the sender (both addresses are real ones: operator output)."""

    def as_dict(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "recipient": self.outcome.recipient,
                "action": self.outcome.action.value, "reason": self.outcome.reason.value,
                "direction": self.outcome.direction.value if self.outcome.direction else None,
                "notice": self.outcome.notice_sent,
                "would_send": [{"from": item.from_address, "to": item.to_address, "size": item.size,
                                "headers": item.header_block.decode("utf-8", "replace")}
                               for item in self.would_send]}


def dry_run(mails: Sequence[InboundMail], context: RelayContext) -> list[ReplayedOutcome]:
    """Each message's outcomes as the relay would decide them now, without any write or send."""
    results: list[ReplayedOutcome] = []
    for mail in mails:
        mailer = DryRunMailer()
        dry = replace(context, directory=DryRunDirectory(context.directory), mailer=mailer,
                      mail_store=DryRunMailStore(context.mail_store))
        outcomes = relay_inbound(mail, dry)
        notices = [item for ses_id, item in mailer.sent.items()
                   if ses_id not in {outcome.ses_message_id for outcome in outcomes}]
        mine = len(results)
        for outcome in outcomes:
            sent = [mailer.sent[outcome.ses_message_id]] if outcome.ses_message_id in mailer.sent else []
            if outcome.notice_sent and notices:  # error mails carry no outcome's SES id: matched in order
                sent.append(notices.pop(0))
            results.append(ReplayedOutcome(mail.message_id, outcome, tuple(sent)))
        if notices and len(results) > mine:
            results[-1] = replace(results[-1], would_send=results[-1].would_send + tuple(notices))
    return results


def redrive(mails: Sequence[InboundMail], context: RelayContext) -> list[tuple[str, RelayOutcome]]:
    """The relay, for real, on each message: (message id, outcome) per recipient. Raises ``RelayFault`` as the
    function does (the caller leaves that message parked)."""
    return [(mail.message_id, outcome) for mail in mails for outcome in relay_inbound(mail, context)]
