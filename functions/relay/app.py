"""Relay Lambda: invoked by the SES receipt rule (S3 action first, then this Lambda action, ``Event`` type).

Thin by design: parse the event, run the use case, emit metrics. Faults (``RelayFault``) propagate so that Lambda
retries the event and, when retries are spent, parks it on the on-failure destination (the DLQ).

Imports are what a message needs: anything else is paid for on every cold start (benchmarks/bench_coldstart.py).
The marketplace events are imported only when a bus is configured; the Lambda context's type only for mypy.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from emailflow.events import inbound_mails
from emailflow.observability import logger, metrics, record_outcomes
from emailflow.relay import relay_messages
from emailflow.wiring import marketplace_publisher, relay_context

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcomes = relay_messages(inbound_mails(event), relay_context())
    record_outcomes(outcomes)
    if (publisher := marketplace_publisher()) is not None:
        from emailflow.marketplace import relay_events  # noqa: PLC0415 - only with a bus (module docstring)

        publisher.publish(relay_events(outcomes, int(time.time())))
    return {
        "outcomes": [
            {"direction": outcome.direction.value if outcome.direction else None,
             "action": outcome.action.value, "reason": outcome.reason.value, "ses_message_id": outcome.ses_message_id}
            for outcome in outcomes
        ]
    }
