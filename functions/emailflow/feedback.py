"""SES sending feedback (bounce, complaint, delivery, reject, delivery delay) as typed values.

Input: the SNS event that the configuration set's event destination publishes
(https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html, field ``eventType``), or
the older identity notifications (https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html, field
``notificationType``). Both carry the same ``mail``/``bounce``/``complaint``/``delivery`` objects.

Also what the store keeps of feedback (``SentRecord``, ``AddressHealth``): values the bounces function reads for
every event and the relay never does, so they are created with this module, not with ``model`` by every cold start
of the relay (benchmarks/bench_coldstart.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from emailflow.model import FeedbackState, SentMessage
from emailflow.ports import EventError


class FeedbackType(StrEnum):
    BOUNCE = "Bounce"
    COMPLAINT = "Complaint"
    DELIVERY = "Delivery"
    REJECT = "Reject"
    DELIVERY_DELAY = "DeliveryDelay"
    OTHER = "Other"
    """Send, Open, Click, Rendering Failure, Subscription: published if the destination asks; ignored here."""


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    diagnostic: str = ""
    status: str = ""


@dataclass(frozen=True, slots=True)
class Feedback:
    """One SES feedback event about one message the relay sent."""

    type: FeedbackType
    ses_message_id: str
    tags: Mapping[str, str]
    recipients: tuple[Recipient, ...]
    """The bounced, complaining or delivered recipients."""
    bounce_type: str = ""
    """``Permanent``, ``Transient`` or ``Undetermined``."""
    bounce_subtype: str = ""
    """E.g. ``General``, ``NoEmail``, ``Suppressed``, ``OnAccountSuppressionList``, ``MailboxFull``."""
    complaint_type: str = ""
    timestamp: str = ""

    @property
    def permanent(self) -> bool:
        return self.bounce_type == "Permanent"


@dataclass(frozen=True, slots=True)
class SentRecord:
    """A sent message as the bounces handler reads it: the record and what feedback was already handled."""

    message: SentMessage
    bounce: FeedbackState | None = None
    complaint: FeedbackState | None = None
    delivered: bool = False


@dataclass(frozen=True, slots=True)
class AddressHealth:
    """What the relay knows about delivering to one real address."""

    address: str
    undeliverable_reason: str | None = None
    transient_bounces: int = 0


def _recipients(items: Any, address_key: str = "emailAddress") -> tuple[Recipient, ...]:
    found = []
    for item in items or ():
        if isinstance(item, Mapping) and item.get(address_key):
            found.append(Recipient(str(item[address_key]).lower(), str(item.get("diagnosticCode", "")),
                                   str(item.get("status", ""))))
        elif isinstance(item, str):
            found.append(Recipient(item.lower()))
    return tuple(found)


def parse_feedback(document: Mapping[str, Any]) -> Feedback:
    """One SES feedback document (the JSON inside the SNS message)."""
    kind = str(document.get("eventType") or document.get("notificationType") or "")
    mail = document.get("mail") or {}
    ses_message_id = mail.get("messageId")
    if not isinstance(ses_message_id, str) or not ses_message_id:
        raise EventError("SES feedback without mail.messageId")
    tags = {str(name): str(values[0]) for name, values in (mail.get("tags") or {}).items()
            if isinstance(values, list) and values}
    try:
        feedback_type = FeedbackType(kind)
    except ValueError:
        feedback_type = FeedbackType.OTHER
    if feedback_type is FeedbackType.BOUNCE:
        bounce = document.get("bounce") or {}
        return Feedback(feedback_type, ses_message_id, tags, _recipients(bounce.get("bouncedRecipients")),
                        bounce_type=str(bounce.get("bounceType", "")),
                        bounce_subtype=str(bounce.get("bounceSubType", "")),
                        timestamp=str(bounce.get("timestamp", "")))
    if feedback_type is FeedbackType.COMPLAINT:
        complaint = document.get("complaint") or {}
        return Feedback(feedback_type, ses_message_id, tags, _recipients(complaint.get("complainedRecipients")),
                        complaint_type=str(complaint.get("complaintFeedbackType", "")),
                        timestamp=str(complaint.get("timestamp", "")))
    if feedback_type is FeedbackType.DELIVERY:
        delivery = document.get("delivery") or {}
        return Feedback(feedback_type, ses_message_id, tags, _recipients(delivery.get("recipients")),
                        timestamp=str(delivery.get("timestamp", "")))
    return Feedback(feedback_type, ses_message_id, tags, _recipients(mail.get("destination")))


def feedback_from_sns_event(event: Mapping[str, Any]) -> list[Feedback]:
    """Every SES feedback document of an SNS-to-Lambda event."""
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        raise EventError("not an SNS event: no Records")
    found = []
    for record in records:
        sns = record.get("Sns") if isinstance(record, Mapping) else None
        if not isinstance(sns, Mapping) or not isinstance(sns.get("Message"), str):
            raise EventError("SNS record without a Message")
        try:
            document = json.loads(sns["Message"])
        except json.JSONDecodeError as exc:
            raise EventError("SNS message is not JSON") from exc
        if not isinstance(document, Mapping):
            raise EventError("SNS message is not a JSON object")
        found.append(parse_feedback(document))
    return found
