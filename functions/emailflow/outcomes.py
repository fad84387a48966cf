"""Outcomes: every (inbound message, relay recipient) ends as one of these, with a reason code.

Reasons are values that logs, metrics and tests share. ``docs/outcomes.md`` lists them with what triggers each.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from emailflow.model import Direction


class Action(StrEnum):
    FORWARDED = "forwarded"
    REJECTED = "rejected"
    """Deliberately not relayed; the reason says why."""
    DUPLICATE = "duplicate"
    """A retry or a second delivery of work already done: nothing sent again."""


class Reason(StrEnum):
    RELAYED = "relayed"
    DUPLICATE = "duplicate"
    NOT_RELAY_DOMAIN = "not_relay_domain"
    """SES handed us a recipient outside the relay domain (a rule matching more than ours)."""
    INVALID_CODE = "invalid_code"
    """Not of our address format or the keyed tag failed: a guess or a typo. No database read was made."""
    UNKNOWN_CODE = "unknown_code"
    """A genuine code that the store does not know (deleted, or issued by another deployment with the same key)."""
    SERVICE_DISABLED = "service_disabled"
    NO_FROM = "no_from"
    MULTIPLE_FROM = "multiple_from"
    INVALID_FROM = "invalid_from"
    STRANGER = "stranger"
    STRANGER_HELD = "stranger_held"
    """A stranger SPF or DKIM vouches for: held, and the service asked to allow the address (emailflow.senders)."""
    """Someone other than the service's registered addresses wrote to a user code."""
    SEND_REJECTED = "send_rejected"
    """SES refused the rewritten message for good."""
    VIRUS = "virus"
    SPAM = "spam"
    DMARC_REJECT = "dmarc_reject"
    """DMARC failed and the sender's domain asks receivers to reject such mail."""
    LOOP = "loop"
    """The mail carries our own loop marker, comes From the relay domain, or has looped through too many hops."""
    BACKSCATTER = "backscatter"
    """A delivery status notification or other report to a relay address: never relayed (it would leak what it
    quotes) and never answered."""
    MAILING_LIST = "mailing_list"
    BCC = "bcc"
    """The relay address was not in To or Cc: the conversation it belongs to is ambiguous."""
    SPOOFED = "spoofed"
    """From names a registered address of the service, but SPF and DKIM both fail."""
    RATE_LIMITED = "rate_limited"
    """More messages in one conversation per minute than people write: auto-responders answering each other."""
    SENDER_RATE_LIMITED = "sender_rate_limited"
    """One sender wrote to services more often in an hour than a person does
    (``EMAILFLOW_SENDER_MESSAGES_PER_HOUR``)."""
    RECIPIENT_UNDELIVERABLE = "recipient_undeliverable"
    """The real recipient's address bounced for good (or too often): not sent again until an operator clears it."""
    COMPLAINT_SUSPENDED = "complaint_suspended"
    """The recipient marked earlier mail of this conversation as spam: this direction of the pair is stopped."""
    BOUNCE_PERMANENT = "bounce_permanent"
    """(bounces handler) The mail we sent bounced for good."""
    BOUNCE_TRANSIENT = "bounce_transient"
    """(bounces handler) The mail we sent bounced for now (mailbox full, server unavailable)."""
    OVERSIZE = "oversize"
    """Too large for SES to send: the recipient got a download link instead, the sender a notice."""


@dataclass(frozen=True, slots=True)
class RelayOutcome:
    recipient: str
    action: Action
    reason: Reason
    direction: Direction | None = None
    ses_message_id: str | None = None
    new_conversation: bool = False
    response_seconds: int | None = None
    """For a service's answer to a waiting user message: how long the user waited."""
    first_reply: bool = False
    auto_reply: bool = False
    """An auto-reply relayed: never a reply, never a response time (docs/stats.md)."""
    notice_sent: bool = False
    """An error mail went to the sender (only for rejections the sender can act on)."""
    contact_details: bool = False
    """(off-platform signal, when on) the relayed text showed an e-mail address or phone number."""
    service_code: str | None = None
    conversation: str | None = None
    """The pair's user code: the conversation's id in events for the marketplace (never an address)."""
