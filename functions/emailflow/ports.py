"""The ports the use cases need. Adapters in ``emailflow.adapters`` implement them on AWS; tests use fakes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from emailflow.model import (
    DeliveryKey,
    FeedbackState,
    Pair,
    SentMessage,
    Service,
    Snapshot,
    ThreadRefs,
)

if TYPE_CHECKING:  # annotations only: senders (and email.policy) is not imported by every cold start
    from emailflow.feedback import AddressHealth, SentRecord
    from emailflow.senders import HeldMessage


class EventError(ValueError):
    """The event is not of the shape the handler expects (a wiring fault, not a mail outcome).

    Raised by both handlers' event parsers (``events`` for SES receipt events, ``feedback`` for SNS feedback): it is
    defined here, where both find it, so that the bounces function does not import the receipt event's types."""


class RelayFault(RuntimeError):
    """A fault a retry may cure (throttling, a network error, an S3 read that failed). Never an outcome."""


class SendFailed(RelayFault):
    """The mail service answered with an error (throttling, a service fault): nothing was sent; retry later."""


class SendOutcomeUnknown(RelayFault):
    """The request may have reached the mail service, but no answer came back (a read time-out, a dropped
    connection): the mail may or may not have gone out. Never a ``SendFailed``: the delivery's claim stays open, so
    no retry sends a second copy (docs/reliability.md)."""


class SendRejected(RuntimeError):
    """The mail service refused this message for good (e.g. SES ``MessageRejected``); retrying will not help."""


class ClaimResult(Enum):
    CLAIMED = "claimed"
    DUPLICATE = "duplicate"
    """This (inbound message, recipient) was claimed before: another attempt owns it or finished it."""
    PAIR_EXISTS = "pair_exists"
    """A concurrent first message created the pair first: read it again and claim without creating."""
    BUDGET_SPENT = "budget_spent"
    """The sender's hourly budget (``SenderBudget``) is spent: nothing was claimed, created or counted."""


@dataclass(frozen=True, slots=True)
class SenderBudget:
    """A per-sender hourly message budget, counted by the write that claims the delivery (docs/store.md, "Calls
    per message"): a message is counted once, only when it is claimed, and a spent budget claims nothing."""

    sender_key: str
    """The sender's keyed address digest (``-unverified`` appended for mail neither SPF nor DKIM vouches for)."""
    window: int
    """The unix hour counted in."""
    limit: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class UserCodeClaim:
    """What the first call for mail to a user code did: claim the delivery on the code's alias item and read the
    alias, in one write (docs/store.md, "Calls per message")."""

    result: ClaimResult | None
    """CLAIMED; DUPLICATE when an earlier attempt holds the claim and never closed it; None for an unknown code
    (nothing was claimed)."""
    service_code: str = ""
    user_address: str = ""


class MailStore(Protocol):
    """Where SES put the raw inbound mail."""

    def get_raw(self, key: str) -> bytes: ...

    def put_copy(self, name: str, raw: bytes) -> str:
        """Keep a (rewritten) copy for download; returns its key."""
        ...

    def download_url(self, key: str, seconds: int) -> str:
        """An expiring link to a kept copy (presigned: it lives at most as long as the signer's credentials)."""
        ...


MailBytes = bytes | tuple[bytes | memoryview, ...]
"""A raw message: whole, or in pieces that are its bytes back to back. The relay sends its rewritten header block
and a view of the untouched body (``rewrite.rewrite_message``), so that the body of a large message is copied once,
into the request that carries it, instead of once more into a joined message first (benchmarks/bench_memory.py)."""


def mail_bytes(raw: MailBytes) -> bytes:
    """The message as one bytes object (a copy when it came in pieces)."""
    return raw if isinstance(raw, bytes) else b"".join(raw)


def mail_size(raw: MailBytes) -> int:
    return len(raw) if isinstance(raw, bytes) else sum(len(piece) for piece in raw)


def mail_prefix(raw: MailBytes, limit: int) -> bytes:
    """The first ``limit`` bytes of the message: a copy of that much only, however many pieces it spans."""
    if isinstance(raw, bytes):
        return raw[:limit]
    head = bytearray()
    for piece in raw:
        if len(head) >= limit:
            break
        head += piece[: limit - len(head)]
    return bytes(head)


class Mailer(Protocol):
    """Sends raw mail; returns the mail service's message id."""

    def send_raw(self, raw: MailBytes, *, from_address: str, to_address: str, tags: Mapping[str, str]) -> str: ...


class Directory(Protocol):
    """Services, pairs, delivery records and sent-message records."""

    def put_service(self, service: Service) -> bool:
        """Store a new service; False if its code is taken (the caller draws another)."""
        ...

    def get_service(self, code: str) -> Service | None: ...

    def set_service_status(self, service: Service) -> None: ...

    def load_for_user_mail(self, service_code: str, user_address: str, delivery: DeliveryKey,
                           refs: ThreadRefs) -> Snapshot:
        """Service, pair (if any), delivery state and referenced sent records for mail to a service code."""
        ...

    def claim_for_user_code(self, user_code: str, delivery: DeliveryKey, expires_at: int) -> UserCodeClaim:
        """Mail to a user code: mark the delivery in progress on the code's alias item and read the alias (the
        service code and user address the rest of the reads need), in one call."""
        ...

    def load_for_service_mail(self, user_code: str, service_code: str, user_address: str, delivery: DeliveryKey,
                              refs: ThreadRefs) -> Snapshot:
        """Pair, its service, delivery state, pair rate, the user address's health and referenced sent records for
        mail to a user code whose alias ``claim_for_user_code`` read."""
        ...

    def get_alias(self, user_code: str) -> tuple[str, str] | None:
        """(service code, user address) of a user code, read without claiming anything: for a replay, which must
        not write (the relay itself reads the alias through ``claim_for_user_code``)."""
        ...

    def claim_delivery(self, delivery: DeliveryKey, new_pair: Pair | None, expires_at: int,
                       budget: SenderBudget | None = None) -> ClaimResult:
        """Atomically mark the delivery in progress and, for a first message, create the pair; with ``budget``,
        count the message against it in the same write (all or nothing; ``BUDGET_SPENT`` when it is spent)."""
        ...

    def release_delivery(self, delivery: DeliveryKey, alias: str | None = None) -> None:
        """Undo a claim whose send did not happen, so that a retry may claim it again. ``alias``: the user code
        whose alias item holds the claim (``claim_for_user_code``); None for a claim by ``claim_delivery``."""
        ...

    def reject_delivery(self, delivery: DeliveryKey, reason: str, alias: str | None = None,
                        expires_at: int | None = None) -> None:
        """Close a claimed delivery as not sent (refused for good, or a notice owed instead). ``alias`` as in
        ``release_delivery``; ``expires_at`` for a delivery record that does not exist yet (an alias claim)."""
        ...

    def allow_notice(self, sender_key: str, window: int, limit: int, expires_at: int) -> bool:
        """Count one error mail to ``sender_key`` in time window ``window``; False once ``limit`` is reached."""
        ...

    def record_sent(self, delivery: DeliveryKey, sent: SentMessage, pair: Pair, recipient_key: str,
                    sent_expires_at: int, delivery_expires_at: int | None = None) -> None:
        """After a send: close the delivery (and, for mail to the user, the claim on the pair's alias item), store
        the sent record (by SES id, and by original id for ``recipient_key``) and update the pair's figures,
        atomically. ``delivery_expires_at``: the delivery record's expiry when the claim did not create it."""
        ...

    def hold_message(self, held: HeldMessage, sender_key: str) -> bool:
        """Keep ``held`` for approval unless one is already pending for (its service, ``sender_key``); True: kept
        (the caller sends the approval mail)."""
        ...

    def hold_later(self, held: HeldMessage, sender_key: str, limit: int) -> bool:
        """Keep ``held`` with the approval already pending for (its service, ``sender_key``), if there is one (not
        ``held``'s own), still open and keeping fewer than ``limit`` later messages; True: kept (no mail to send)."""
        ...


class ApprovalStore(Protocol):
    """What approving a new sender needs of the store."""

    def get_held(self, hold_id: str) -> HeldMessage | None: ...

    def approve_held(self, hold_id: str, now: int) -> bool:
        """Move a pending, unexpired hold to approved, once; False if it was not pending (used, expired)."""
        ...

    def close_hold(self, held: HeldMessage) -> list[HeldMessage]:
        """Keep no more messages with ``held``'s approval, and return those kept (again, on a repeat): each as
        ``held`` for its stored mail (``senders.kept_with``)."""
        ...

    def reopen_delivery(self, delivery: DeliveryKey, reason: str) -> bool:
        """Let the relay run a delivery again: True once no claim is left (it was rejected for ``reason`` and is
        now deleted, or there was none); False when it is claimed otherwise (in progress, sent)."""
        ...


class FeedbackStore(Protocol):
    """What the bounces handler needs of the store."""

    def feedback_context(self, ses_message_id: str, address: str | None) -> tuple[SentRecord | None, AddressHealth]:
        """The sent record (with what feedback was handled) and the health of ``address``, in one read."""
        ...

    def record_bounce(self, sent: SentMessage, address: str, undeliverable_reason: str | None, now: int) -> bool:
        """Apply a bounce once, marking it done (False: recorded before)."""
        ...

    def set_bounce_state(self, ses_message_id: str, state: FeedbackState) -> None:
        """Reopen (``RECORDED``: notice still owed) or close a bounce."""
        ...

    def record_complaint(self, sent: SentMessage, reason: str, now: int) -> bool: ...

    def record_delivery(self, sent: SentMessage, address: str, now: int) -> bool: ...

    def get_service(self, code: str) -> Service | None: ...
