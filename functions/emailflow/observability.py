"""The one Logger and Metrics of the process, and every metric name the code emits.

Dimensions are low-cardinality only (direction, reason): never a code or an address. The dashboard and alarms read
these names; a test proves that every metric they read is one of the constants below.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from emailflow.outcomes import Action, RelayOutcome

if TYPE_CHECKING:
    from emailflow.bounces import FeedbackOutcome

logger = Logger()
metrics = Metrics()

MESSAGES_RELAYED = "MessagesRelayed"
MESSAGES_REJECTED = "MessagesRejected"
DUPLICATES_SKIPPED = "DuplicatesSkipped"
CONVERSATIONS_STARTED = "ConversationsStarted"
FIRST_REPLIES = "FirstReplies"
RESPONSE_TIME = "ResponseTime"
NOTICES_SENT = "NoticesSent"
AUTO_REPLIES = "AutoReplies"
CONTACT_DETAILS = "ContactDetailsShared"
BOUNCES = "Bounces"
COMPLAINTS = "Complaints"
DELIVERIES = "Deliveries"
ADDRESSES_SUPPRESSED = "AddressesSuppressed"
FEEDBACK_IGNORED = "FeedbackIgnored"

SERVICE_DIMENSION = "service"
"""Powertools adds ``service`` (POWERTOOLS_SERVICE_NAME) to every metric of this package."""

#: Every metric with the dimension sets it is emitted with (``service`` always included). The dashboard and the
#: alarms may read only these; tests check both the emitters and the readers against this table.
METRIC_DIMENSIONS: dict[str, tuple[frozenset[str], ...]] = {
    "MessagesRelayed": (frozenset({"Direction", SERVICE_DIMENSION}),),
    "MessagesRejected": (frozenset({"Reason", SERVICE_DIMENSION}),),
    "DuplicatesSkipped": (frozenset({SERVICE_DIMENSION}),),
    "ConversationsStarted": (frozenset({SERVICE_DIMENSION}),),
    "FirstReplies": (frozenset({SERVICE_DIMENSION}),),
    "ResponseTime": (frozenset({SERVICE_DIMENSION}),),
    "NoticesSent": (frozenset({"Reason", SERVICE_DIMENSION}),),
    "AutoReplies": (frozenset({"Direction", SERVICE_DIMENSION}),),
    "ContactDetailsShared": (frozenset({"Direction", SERVICE_DIMENSION}),),
    "Bounces": (frozenset({"Direction", "BounceKind", SERVICE_DIMENSION}),),
    "Complaints": (frozenset({"Direction", SERVICE_DIMENSION}),),
    "Deliveries": (frozenset({"Direction", SERVICE_DIMENSION}),),
    "AddressesSuppressed": (frozenset({SERVICE_DIMENSION}),),
    "FeedbackIgnored": (frozenset({"Reason", SERVICE_DIMENSION}),),
}

METRIC_NAMES = frozenset({MESSAGES_RELAYED, MESSAGES_REJECTED, DUPLICATES_SKIPPED, CONVERSATIONS_STARTED,
                          FIRST_REPLIES, RESPONSE_TIME, NOTICES_SENT, BOUNCES, COMPLAINTS, DELIVERIES,
                          ADDRESSES_SUPPRESSED, FEEDBACK_IGNORED, AUTO_REPLIES, CONTACT_DETAILS})


def record_outcomes(outcomes: Iterable[RelayOutcome]) -> None:
    """Emit the metrics of relay outcomes (flushed by ``@metrics.log_metrics`` at the end of the invocation).

    Per-reason counts go out as one EMF blob per outcome so that the ``Reason`` dimension does not leak onto the
    other metrics of the invocation.
    """
    for outcome in outcomes:
        if outcome.action is Action.FORWARDED:
            with_direction = {"Direction": str(outcome.direction)}
            _single(MESSAGES_RELAYED, 1, MetricUnit.Count, with_direction)
            if outcome.auto_reply:
                _single(AUTO_REPLIES, 1, MetricUnit.Count, with_direction)
            if outcome.contact_details:
                _single(CONTACT_DETAILS, 1, MetricUnit.Count, with_direction)
            if outcome.new_conversation:
                metrics.add_metric(name=CONVERSATIONS_STARTED, unit=MetricUnit.Count, value=1)
            if outcome.first_reply:
                metrics.add_metric(name=FIRST_REPLIES, unit=MetricUnit.Count, value=1)
            if outcome.response_seconds is not None:
                metrics.add_metric(name=RESPONSE_TIME, unit=MetricUnit.Seconds, value=outcome.response_seconds)
        elif outcome.action is Action.DUPLICATE:
            metrics.add_metric(name=DUPLICATES_SKIPPED, unit=MetricUnit.Count, value=1)
        else:
            _single(MESSAGES_REJECTED, 1, MetricUnit.Count, {"Reason": str(outcome.reason)})
        if outcome.notice_sent:
            _single(NOTICES_SENT, 1, MetricUnit.Count, {"Reason": str(outcome.reason)})


def _single(name: str, value: float, unit: MetricUnit, dimensions: dict[str, str]) -> None:
    with single_metric(name=name, unit=unit, value=value, default_dimensions=metrics.default_dimensions) as m:
        for key, dimension in dimensions.items():
            m.add_dimension(name=key, value=dimension)


def record_feedback(outcomes: Iterable[FeedbackOutcome]) -> None:
    """Emit the metrics of SES feedback the bounces handler applied (duplicates are not counted again)."""
    for outcome in outcomes:
        if outcome.action.value == "ignored":
            _single(FEEDBACK_IGNORED, 1, MetricUnit.Count, {"Reason": outcome.reason})
            continue
        if outcome.action.value != "recorded":
            continue
        direction = {"Direction": str(outcome.direction)} if outcome.direction else {}
        if outcome.type.value == "Bounce":
            _single(BOUNCES, 1, MetricUnit.Count, {**direction, "BounceKind": outcome.reason})
            if outcome.address_undeliverable:
                metrics.add_metric(name=ADDRESSES_SUPPRESSED, unit=MetricUnit.Count, value=1)
            if outcome.notice_sent:
                _single(NOTICES_SENT, 1, MetricUnit.Count, {"Reason": outcome.reason})
        elif outcome.type.value == "Complaint":
            _single(COMPLAINTS, 1, MetricUnit.Count, direction)
        elif outcome.type.value == "Delivery":
            _single(DELIVERIES, 1, MetricUnit.Count, direction)
