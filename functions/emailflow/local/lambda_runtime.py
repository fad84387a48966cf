"""Lambda's asynchronous invocation, played in-process: the function runs, a failed attempt is retried, and an
event whose retries are spent goes to the on-failure destination as Lambda's invocation record.

SES invokes the relay function with ``InvocationType: Event``; the template gives it ``MaximumRetryAttempts`` and an
SQS on-failure destination (the DLQ). Local mode retries at once instead of after Lambda's back-off (about one and
two minutes): nothing about the outcome depends on the wait.
https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from emailflow.observability import logger

Handler = Callable[[dict[str, Any], Any], Any]
FailureDestination = Callable[[dict[str, Any]], None]


def failure_record(event: Mapping[str, Any], error: BaseException, *, request_id: str, function_arn: str,
                   attempts: int, now: datetime | None = None) -> dict[str, Any]:
    """The record Lambda sends to an on-failure destination once an event's retries are spent."""
    moment = now or datetime.now(UTC)
    return {
        "version": "1.0",
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "requestContext": {"requestId": request_id, "functionArn": f"{function_arn}:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
        "requestPayload": dict(event),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
    }


def invoke_async(handler: Handler, event: dict[str, Any], context: Any, *, retries: int,
                 on_failure: FailureDestination | None) -> Any | None:
    """Run ``handler`` as an asynchronous invocation: up to ``1 + retries`` attempts; the result of the first that
    succeeds, or None when all failed (the record then went to ``on_failure``, when there is one)."""
    error: Exception | None = None
    for attempt in range(1, retries + 2):
        try:
            return handler(event, context)
        except Exception as exc:
            error = exc
            logger.warning("invocation failed", attempt=attempt, error_type=type(exc).__name__,
                           function=getattr(context, "function_name", None))
    if error is not None and on_failure is not None:
        on_failure(failure_record(event, error, request_id=str(getattr(context, "aws_request_id", "")),
                                  function_arn=str(getattr(context, "invoked_function_arn", "")),
                                  attempts=retries + 1))
    logger.error("invocation retries spent", attempts=retries + 1, parked=on_failure is not None)
    return None
