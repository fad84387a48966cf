"""Domain values shared by the use cases and the adapters. Frozen dataclasses; no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Direction(StrEnum):
    """Which way a relayed message travels."""

    TO_SERVICE = "to_service"
    """A user wrote to ``service-<code>@``; the service receives it From ``user-<code>@``."""
    TO_USER = "to_user"
    """The service wrote to ``user-<code>@``; the user receives it From ``service-<code>@``."""


class ServiceStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class Service:
    """A registered service: one public code, its real address(es) and what the other side is shown."""

    code: str
    addresses: tuple[str, ...]
    """Normalised real addresses; the first receives mail, every one may answer."""
    display_name: str
    status: ServiceStatus = ServiceStatus.ACTIVE
    context: Mapping[str, str] = field(default_factory=dict)
    """Free marketplace context, e.g. ``{"listing": "4711"}``."""
    created_at: int = 0
    undeliverable: Mapping[str, str] = field(default_factory=dict)
    """Registered addresses that bounced for good (address -> reason), mirrored here by the bounces handler so the
    relay sees it in the read it makes anyway. Cleared by an operator."""

    @property
    def active(self) -> bool:
        return self.status is ServiceStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class Pair:
    """One user x one service: a conversation, with the user's code and the figures stats need."""

    service_code: str
    user_address: str
    user_code: str
    started_at: int
    user_messages: int = 0
    service_messages: int = 0
    awaiting_reply_since: int | None = None
    """When the oldest user message the service has not answered yet arrived; None when nothing is pending."""
    first_reply_at: int | None = None
    last_user_message_at: int | None = None
    last_service_message_at: int | None = None
    user_auto_replies: int = 0
    service_auto_replies: int = 0
    contact_details_messages: int = 0
    """Relayed messages whose text showed an e-mail address or phone number (the optional off-platform signal)."""
    """Auto-replies relayed in each direction: counted apart, never as replies (docs/stats.md)."""
    delivered_to_service: int = 0
    delivered_to_user: int = 0
    suspended: Mapping[str, str] = field(default_factory=dict)
    """Direction -> reason: a complaint ("marked as spam") by the recipient stops that direction of the pair."""


@dataclass(frozen=True, slots=True)
class DeliveryKey:
    """Identifies one unit of relay work: one inbound message for one of its relay recipients. Idempotency key."""

    inbound_message_id: str
    recipient: str


class DeliveryState(StrEnum):
    IN_PROGRESS = "in_progress"
    SENT = "sent"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class SentMessage:
    """What the relay remembers of a message it sent (for bounces and threading); keyed by SES's message id."""

    ses_message_id: str
    direction: Direction
    service_code: str
    user_code: str
    original_sender: str
    """The real address of whoever wrote the inbound message: the bounce notice goes there."""
    original_message_id: str | None
    inbound_message_id: str
    sent_at: int
    recipient_address: str = ""
    """The real address the relay sent to (the one a bounce names)."""
    sender_automatic: bool = False
    """The inbound message was auto-generated: a bounce of it is never answered."""
    user_address: str = ""
    """The pair's user address (the pair's key), whichever direction the message went."""
    recipient_name: str = ""
    """The display name the sender knows the recipient by (the service's registered name; empty for a user)."""
    contact_details: bool = False
    """The message's text showed contact details (off-platform signal; counted on the pair, never acted on)."""


class FeedbackState(StrEnum):
    """How far the bounces handler got with feedback on one sent message (idempotency of its effects)."""

    RECORDED = "recorded"
    """The state change is written; the sender's notice is still to be sent."""
    DONE = "done"


@dataclass(frozen=True, slots=True)
class ThreadRefs:
    """The message ids an inbound message refers to (In-Reply-To, newest References), split by who minted them."""

    recipient_key: str
    """``service:<code>`` or ``user:<code>``: the relay address the inbound message is written to."""
    ses_ids: Mapping[str, str] = field(default_factory=dict)
    """``<id>`` -> SES message id, for ids SES gave copies we sent: the store knows their originals."""
    foreign_ids: tuple[str, ...] = ()
    """Ids minted by the sender's side: the recipient knows those messages only by the SES id of our copy."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the store knows that one relay decision needs, read in as few calls as possible."""

    service: Service | None = None
    pair: Pair | None = None
    delivery: DeliveryState | None = None
    sent: Mapping[str, SentMessage] = field(default_factory=dict)
    """SES message id -> sent record, for the SES ids an inbound reply refers to."""
    recent_messages: int = 0
    """Messages relayed in this pair during the current minute (the ping-pong brake)."""
    user_undeliverable: str | None = None
    """Why the pair's user address no longer receives mail (mail to a user code only), or None."""
    copies: Mapping[str, SentMessage] = field(default_factory=dict)
    """Foreign ``<id>`` -> the record of our copy of that message to this recipient (its SES id is what the
    recipient's client knows)."""
