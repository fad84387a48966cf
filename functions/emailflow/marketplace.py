"""Events for the marketplace: one per conversation step, for "usually replies within 3 h" badges or chasing
unanswered inquiries. Pure: builds the event values; ``adapters/eventbridge.py`` publishes them.

Every event carries the service code and the conversation id (the pair's user code) and never an address. Schema
(``detail-type`` and ``detail``) in docs/events.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from emailflow.outcomes import Action, RelayOutcome

SOURCE = "emailflow"


@dataclass(frozen=True, slots=True)
class MarketplaceEvent:
    detail_type: str
    detail: dict[str, Any]


def relay_events(outcomes: Iterable[RelayOutcome], occurred_at: int) -> list[MarketplaceEvent]:
    """The conversation steps that relay outcomes represent."""
    events = []
    for outcome in outcomes:
        if outcome.action is not Action.FORWARDED or outcome.service_code is None:
            if outcome.action is Action.REJECTED and outcome.service_code is not None:
                events.append(_event("MessageRejected", outcome, occurred_at, reason=outcome.reason.value))
            continue
        if outcome.new_conversation:
            events.append(_event("ConversationStarted", outcome, occurred_at))
        if outcome.auto_reply:
            events.append(_event("AutoReplyRelayed", outcome, occurred_at))
        elif outcome.first_reply:
            events.append(_event("FirstReply", outcome, occurred_at, response_seconds=outcome.response_seconds))
        events.append(_event("MessageRelayed", outcome, occurred_at,
                             response_seconds=outcome.response_seconds if not outcome.auto_reply else None))
    return events


def feedback_event(kind: str, service_code: str, conversation: str, direction: str, occurred_at: int,
                   **extra: Any) -> MarketplaceEvent:
    """``Bounced`` or ``Complained`` (from the bounces function)."""
    return MarketplaceEvent(kind, {"service": service_code, "conversation": conversation, "direction": direction,
                                   "at": occurred_at, **extra})


def _event(kind: str, outcome: RelayOutcome, occurred_at: int, **extra: Any) -> MarketplaceEvent:
    detail = {"service": outcome.service_code, "conversation": outcome.conversation,
              "direction": outcome.direction.value if outcome.direction else None, "at": occurred_at}
    detail.update({key: value for key, value in extra.items() if value is not None})
    return MarketplaceEvent(kind, detail)
