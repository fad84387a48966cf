"""Lambda's asynchronous invocation as local mode plays it: retries, then the on-failure destination."""

from __future__ import annotations

from typing import Any

from emailflow.local.lambda_context import LocalLambdaContext
from emailflow.local.lambda_runtime import invoke_async

EVENT = {"Records": [{"eventSource": "aws:ses"}]}


class FlakyHandler:
    """Fails ``failures`` times, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("S3 read timed out")
        return {"ok": True}


def test_invoke_async_returns_the_first_success_without_parking() -> None:
    # Given a handler that succeeds at once
    handler = FlakyHandler(0)
    parked: list[dict[str, Any]] = []

    # When invoked asynchronously with two retries
    result = invoke_async(handler, EVENT, LocalLambdaContext(), retries=2, on_failure=parked.append)

    # Then it ran once and nothing was parked
    assert (result, handler.calls, parked) == ({"ok": True}, 1, [])


def test_invoke_async_retries_a_failed_attempt() -> None:
    # Given a handler that fails twice, then succeeds
    handler = FlakyHandler(2)
    parked: list[dict[str, Any]] = []

    # When invoked with two retries, Then the third attempt's result counts and nothing is parked
    assert invoke_async(handler, EVENT, LocalLambdaContext(), retries=2, on_failure=parked.append) == {"ok": True}
    assert (handler.calls, parked) == (3, [])


def test_invoke_async_parks_the_event_when_retries_are_spent() -> None:
    # Given a handler that always fails
    handler = FlakyHandler(99)
    parked: list[dict[str, Any]] = []
    context = LocalLambdaContext()

    # When invoked with two retries
    result = invoke_async(handler, EVENT, context, retries=2, on_failure=parked.append)

    # Then it ran three times, and Lambda's failure record with the event went to the destination
    assert (result, handler.calls) == (None, 3)
    [record] = parked
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["requestId"] == context.aws_request_id
    assert record["requestPayload"] == EVENT
    assert record["responsePayload"] == {"errorMessage": "S3 read timed out", "errorType": "RuntimeError"}
