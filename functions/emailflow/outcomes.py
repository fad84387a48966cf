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
    """Someone other than the service's registered addresses wrote to a user code."""
    SEND_REJECTED = "send_rejected"
    """SES refused the rewritten message for good."""


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
