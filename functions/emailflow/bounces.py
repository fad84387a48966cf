"""The bounces use case: SES feedback about mail the relay sent, turned into state and, for bounces, a notice.

- **Bounce**: the original sender is told, From the relay address they wrote to (so it threads in their client),
  whether retrying makes sense; nothing about the other side but the name they already know. A permanent bounce
  (or ``transient_limit`` transient ones in a row, or SES's suppression list) marks the real address
  undeliverable: the relay stops mailing it and tells later senders at once.
- **Complaint**: the pair is suspended in the direction complained about. Nobody is told.
- **Delivery**: counted on the pair (stats) and on the address (it ends a run of transient bounces).

Every effect happens once per SES message: the sent record carries what was handled. A bounce of one of our own
notices, or of mail whose sender was itself automatic, is never answered (no loops, no backscatter).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from emailflow.addresses import RelayAddressing
from emailflow.codes import CodeKind, Keyring
from emailflow.feedback import Feedback, FeedbackType
from emailflow.model import Direction, FeedbackState, SentMessage
from emailflow.observability import logger
from emailflow.outcomes import Reason
from emailflow.ports import FeedbackStore, Mailer, SendFailed, SendRejected

if TYPE_CHECKING:
    from emailflow.marketplace import MarketplaceEvent

SUPPRESSION_SUBTYPES = frozenset({"Suppressed", "OnAccountSuppressionList"})
"""SES did not even try: the address is on its (global or account) suppression list. As good as permanent."""
NOTICE_TAG = "notice"
"""The ``direction`` message tag of mail the relay itself writes (error mails, bounce notices)."""


class FeedbackAction(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class FeedbackOutcome:
    type: FeedbackType
    action: FeedbackAction
    reason: str
    direction: Direction | None = None
    notice_sent: bool = False
    address_undeliverable: bool = False
    service_code: str | None = None
    conversation: str | None = None


@dataclass(frozen=True, slots=True)
class BouncesContext:
    store: FeedbackStore
    mailer: Mailer
    addressing: RelayAddressing
    brand: str
    keyring: Keyring
    noreply_local_part: str = "no-reply"
    transient_limit: int = 3
    clock: Callable[[], float] = time.time


def handle_feedback(feedback: Feedback, context: BouncesContext) -> FeedbackOutcome:
    """Apply one SES feedback event. Raises only ``RelayFault`` (a retry may help)."""
    if feedback.type in (FeedbackType.OTHER, FeedbackType.REJECT, FeedbackType.DELIVERY_DELAY):
        return FeedbackOutcome(feedback.type, FeedbackAction.IGNORED, feedback.type.value.lower())
    if feedback.tags.get("direction") == NOTICE_TAG:
        # Feedback on one of our own notices: never answered with another notice (a loop of notices).
        return FeedbackOutcome(feedback.type, FeedbackAction.IGNORED, "own_notice")
    address = feedback.recipients[0].address if feedback.recipients else None
    record, health = context.store.feedback_context(feedback.ses_message_id, address)
    if record is None:
        return FeedbackOutcome(feedback.type, FeedbackAction.IGNORED, "unknown_message")
    sent = record.message
    address = address or sent.recipient_address
    now = int(context.clock())
    if feedback.type is FeedbackType.COMPLAINT:
        if record.complaint is not None or not context.store.record_complaint(
                sent, f"complaint:{feedback.complaint_type or 'unspecified'}", now):
            return FeedbackOutcome(feedback.type, FeedbackAction.DUPLICATE, "complaint", sent.direction)
        logger.info("pair suspended after complaint", direction=str(sent.direction), pair=sent.user_code)
        return FeedbackOutcome(feedback.type, FeedbackAction.RECORDED, "complaint", sent.direction,
                               service_code=sent.service_code, conversation=sent.user_code)
    if feedback.type is FeedbackType.DELIVERY:
        if record.delivered or not context.store.record_delivery(sent, address, now):
            return FeedbackOutcome(feedback.type, FeedbackAction.DUPLICATE, "delivery", sent.direction)
        return FeedbackOutcome(feedback.type, FeedbackAction.RECORDED, "delivery", sent.direction)
    return _bounce(feedback, record.bounce, sent, address, health.transient_bounces, now, context)


def _bounce(feedback: Feedback, state: FeedbackState | None, sent: SentMessage, address: str,
            transient_bounces: int, now: int, context: BouncesContext) -> FeedbackOutcome:
    permanent = (feedback.permanent or feedback.bounce_subtype in SUPPRESSION_SUBTYPES
                 or transient_bounces + 1 >= context.transient_limit)
    reason = Reason.BOUNCE_PERMANENT if permanent else Reason.BOUNCE_TRANSIENT
    if state is FeedbackState.DONE:
        return FeedbackOutcome(feedback.type, FeedbackAction.DUPLICATE, reason.value, sent.direction)
    if state is None:
        why = None
        if permanent:
            why = (f"suppressed:{feedback.bounce_subtype}" if feedback.bounce_subtype in SUPPRESSION_SUBTYPES
                   else f"permanent:{feedback.bounce_subtype or 'General'}" if feedback.permanent
                   else f"transient_bounces:{transient_bounces + 1}")
        if not context.store.record_bounce(sent, address, why, now):
            return FeedbackOutcome(feedback.type, FeedbackAction.DUPLICATE, reason.value, sent.direction)
    notified = _notify_sender(sent, reason, now, context)
    if state is FeedbackState.RECORDED:  # the retry that paid a notice owed: close the bounce
        context.store.set_bounce_state(sent.ses_message_id, FeedbackState.DONE)
    return FeedbackOutcome(feedback.type, FeedbackAction.RECORDED, reason.value, sent.direction,
                           notice_sent=notified, address_undeliverable=permanent, service_code=sent.service_code,
                           conversation=sent.user_code)


def _notify_sender(sent: SentMessage, reason: Reason, now: int, context: BouncesContext) -> bool:
    """Tell the original sender, unless they were automatic or are one of our own addresses.

    Only a bounce writes a notice: deliveries (one per relayed message) and complaints, most of this function's
    events, never do. So ``notices`` and what it pulls in (``rewrite``, ``message``) and the loop marker are imported
    here, not by every cold start (benchmarks/bench_coldstart.py)."""
    from emailflow.loops import loop_marker  # noqa: PLC0415 - deferred, see the docstring
    from emailflow.notices import NoticeAddressing, build_notice  # noqa: PLC0415 - deferred, see the docstring
    from emailflow.rewrite import relay_display_name  # noqa: PLC0415 - deferred, see the docstring

    if sent.sender_automatic or not sent.original_sender or context.addressing.is_relay_domain(sent.original_sender):
        return False
    if sent.direction is Direction.TO_SERVICE:
        written_to = context.addressing.address(CodeKind.SERVICE, sent.service_code)
        from_name = relay_display_name(sent.recipient_name, context.brand)
    else:
        written_to = context.addressing.address(CodeKind.USER, sent.user_code)
        from_name = context.brand
    notice = build_notice(
        reason,
        to_address=sent.original_sender,
        relay_address=written_to,
        original_subject="",
        original_message_id=sent.original_message_id,
        addressing=NoticeAddressing(context.brand, f"{context.noreply_local_part}@{context.addressing.domain}",
                                    loop_marker(context.keyring, context.addressing.domain, now),
                                    from_address=written_to, from_name=from_name),
        now=now,
        recipient_name=sent.recipient_name,
    )
    try:
        context.mailer.send_raw(notice, from_address=written_to, to_address=sent.original_sender,
                                tags={"direction": NOTICE_TAG, "reason": reason.value})
    except SendRejected:
        return False
    except SendFailed:
        context.store.set_bounce_state(sent.ses_message_id, FeedbackState.RECORDED)  # the retry owes the notice
        raise
    return True


def handle_feedback_batch(items: Sequence[Feedback], context: BouncesContext) -> list[FeedbackOutcome]:
    return [handle_feedback(item, context) for item in items]


def feedback_events(outcomes: Sequence[FeedbackOutcome], occurred_at: int) -> list[MarketplaceEvent]:
    """``Bounced`` and ``Complained`` events for the marketplace (applied feedback only). Called only when a bus is
    configured, so the events module is imported here."""
    from emailflow.marketplace import feedback_event  # noqa: PLC0415 - only with a bus, see the docstring

    events = []
    for outcome in outcomes:
        if outcome.action is not FeedbackAction.RECORDED or outcome.service_code is None or outcome.conversation \
                is None or outcome.type not in (FeedbackType.BOUNCE, FeedbackType.COMPLAINT):
            continue
        kind = "Bounced" if outcome.type is FeedbackType.BOUNCE else "Complained"
        extra = {"permanent": outcome.address_undeliverable} if outcome.type is FeedbackType.BOUNCE else {}
        events.append(feedback_event(kind, outcome.service_code, outcome.conversation,
                                     str(outcome.direction.value if outcome.direction else ""), occurred_at, **extra))
    return events
