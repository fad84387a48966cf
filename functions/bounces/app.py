"""Bounces Lambda: subscribed to the SNS topic of the configuration set's event destination.

Thin by design: parse the SNS event into SES feedback, run the use case, emit metrics. Faults propagate so that
Lambda retries the event (SNS -> Lambda is asynchronous) and then parks it on the on-failure destination.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from emailflow.bounces import feedback_events, handle_feedback_batch
from emailflow.feedback import feedback_from_sns_event
from emailflow.observability import logger, metrics, record_feedback
from emailflow.wiring import bounces_context, marketplace_publisher

if TYPE_CHECKING:  # the type only: importing Powertools' typing package at run time costs cold-start time
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcomes = handle_feedback_batch(feedback_from_sns_event(event), bounces_context())
    record_feedback(outcomes)
    if (publisher := marketplace_publisher()) is not None:
        publisher.publish(feedback_events(outcomes, int(time.time())))
    return {"outcomes": [{"type": outcome.type.value, "action": outcome.action.value, "reason": outcome.reason,
                          "notice_sent": outcome.notice_sent} for outcome in outcomes]}
