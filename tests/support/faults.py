"""Fault injection on the real boto3 clients (botocore event hooks), Lambda's retry loop, and the fault ledger.

Three places a fault can strike, as botocore sees a call:

* ``before-call`` (``fail_call``): the call never leaves the process; the client raises the error the service
  would have answered with (a modelled ``ClientError`` subclass, or any exception). botocore's retries do not see
  it: it is what reaches the adapter after botocore gave up.
* ``before-send``, first (``fail_request``): the request is answered with an HTTP error by "the service" before
  it is processed: botocore's own retries see it, as they would a real throttle.
* ``before-send``, last (``lose_answer``): moto (registered on ``before-send``) has already processed the
  request - the item is written, the mail is sent - and then the answer is lost (a read time-out). botocore
  retries what it considers safe to retry; the adapters must cope with the repeat.

The ledger adds up what the fault tests tried and saw, for the summary line ``pytest`` prints at the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ReadTimeoutError
from moto.core.botocore_stubber import MockRawResponse

Matcher = Callable[[bytes], bool]


def _any(_: bytes) -> bool:
    return True


@dataclass
class Fault:
    """One injected fault: what it does, how often (``times``; -1 = every time) and on which requests."""

    action: Callable[[dict[str, Any]], Any]
    times: int = 1
    matches: Matcher = _any
    only_event: str | None = None
    """For a handler registered on a whole event family (``before-send``): the one full event name it acts on."""
    fired: int = 0

    def __call__(self, **kwargs: Any) -> Any:
        if self.only_event is not None and kwargs.get("event_name") != self.only_event:
            return None
        if (self.times != -1 and self.fired >= self.times) or not self.matches(_body_of(kwargs)):
            return None
        self.fired += 1
        return self.action(kwargs)


def _body_of(kwargs: dict[str, Any]) -> bytes:
    # before-send: the prepared request; before-call: the serialised request dict
    body = kwargs["request"].body if "request" in kwargs else kwargs["params"].get("body", b"")
    if isinstance(body, str):
        return body.encode()
    # bytes(): the SESv2 adapter sends a bytearray it built in place (emailflow.adapters.sesv2)
    return bytes(body) if isinstance(body, bytes | bytearray | memoryview) else b""


def error_answer(code: str, status: int, **extra: Any) -> tuple[AWSResponse, dict[str, Any]]:
    """What ``before-call`` returns for the client to raise ``code`` as the service would have."""
    parsed = {"Error": {"Code": code, "Message": "injected fault"}, "ResponseMetadata": {"HTTPStatusCode": status},
              **extra}
    return AWSResponse("https://fault.invalid/", status, HTTPHeaders(), MockRawResponse(b"")), parsed


def transaction_cancelled(reason: str, items: int) -> tuple[AWSResponse, dict[str, Any]]:
    """DynamoDB's answer to a transaction cancelled for ``reason`` (e.g. ``ThrottlingError``) on every item."""
    return error_answer("TransactionCanceledException", 400,
                        CancellationReasons=[{"Code": reason, "Message": "injected"} for _ in range(items)])


def dynamodb_http_error(code: str, status: int = 400) -> AWSResponse:
    """An HTTP answer in DynamoDB's JSON protocol, for ``before-send``: botocore parses and classifies it."""
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected fault"}).encode()
    headers = HTTPHeaders()
    headers["x-amzn-ErrorType"] = code
    return AWSResponse("https://fault.invalid/", status, headers, MockRawResponse(body))


def read_timeout(kwargs: dict[str, Any]) -> None:
    request = kwargs.get("request")
    raise ReadTimeoutError(endpoint_url=getattr(request, "url", "https://fault.invalid/"))


@dataclass
class Injector:
    """Registers faults on one client's event system and removes them when the case ends."""

    registered: list[tuple[Any, str, Fault]] = field(default_factory=list)
    """(client, event, fault): removed at the end of the case; ``fired`` counts over all of them."""
    watchers: list[tuple[Any, str, Callable[..., None]]] = field(default_factory=list)

    def fail_call(self, client: Any, operation: str, answer: Callable[[], Any] | BaseException, *, times: int = 1,
                  matches: Matcher = _any) -> Fault:
        """The call ends in ``answer`` (an ``error_answer`` factory, or an exception to raise) without being sent."""
        def act(_: Any) -> Any:
            if isinstance(answer, BaseException):
                raise answer
            return answer()

        return self._register(client, f"before-call.{_service(client)}.{operation}", act, times, matches)

    def fail_request(self, client: Any, operation: str, answer: Callable[[], AWSResponse], *, times: int = 1,
                     matches: Matcher = _any) -> Fault:
        """The request is answered with an HTTP error before the service processes it (botocore may retry)."""
        return self._register(client, f"before-send.{_service(client)}.{operation}", lambda _: answer(), times,
                              matches)

    def lose_answer(self, client: Any, operation: str, *, times: int = 1, matches: Matcher = _any) -> Fault:
        """The service processes the request (moto's own ``before-send`` handler runs first), then the answer is
        lost: a read time-out."""
        fault = Fault(read_timeout, times, matches, only_event=f"before-send.{_service(client)}.{operation}")
        client.meta.events.register_last("before-send", fault)
        self.registered.append((client, "before-send", fault))
        return fault

    def watch(self, client: Any, operation: str) -> list[bytes]:
        """The body of every request of ``operation`` sent on the wire (each botocore attempt), in order."""
        bodies: list[bytes] = []

        def record(**kwargs: Any) -> None:
            bodies.append(_body_of(kwargs))

        event = f"before-send.{_service(client)}.{operation}"
        client.meta.events.register_first(event, record)
        self.watchers.append((client, event, record))
        return bodies

    def _register(self, client: Any, event: str, action: Callable[[dict[str, Any]], Any], times: int,
                  matches: Matcher) -> Fault:
        fault = Fault(action, times, matches)
        client.meta.events.register_first(event, fault)
        self.registered.append((client, event, fault))
        return fault

    def remove_all(self) -> None:
        for client, event, handler in [*self.registered, *self.watchers]:
            client.meta.events.unregister(event, handler)

    @property
    def fired(self) -> int:
        """Faults that actually struck, over every fault of this case."""
        return sum(fault.fired for _, _, fault in self.registered)


def _service(client: Any) -> str:
    return str(client.meta.service_model.service_id.hyphenize())


@contextmanager
def injector() -> Iterator[Injector]:
    faults = Injector()
    try:
        yield faults
    finally:
        faults.remove_all()


@dataclass
class Invocation:
    """One Lambda attempt: the handler's answer, or the exception it raised."""

    result: dict[str, Any] | None = None
    error: BaseException | None = None


def lambda_async(handler: Callable[[dict[str, Any], Any], dict[str, Any]], event: dict[str, Any], context: Any,
                 attempts: int = 3) -> list[Invocation]:
    """Lambda's asynchronous invocation: the first try and up to two retries of the same event while the handler
    raises (``MaximumRetryAttempts: 2`` in template.yaml). Ends parked (on-failure destination) when all raised."""
    invocations: list[Invocation] = []
    for _ in range(attempts):
        try:
            invocations.append(Invocation(result=handler(event, context)))
        except Exception as exc:
            invocations.append(Invocation(error=exc))
            continue
        break
    return invocations


def parked(invocations: list[Invocation]) -> bool:
    """Every attempt raised: Lambda puts the event on the on-failure destination (the DLQ)."""
    return all(invocation.error is not None for invocation in invocations)


@dataclass
class FaultLedger:
    """What the fault tests tried and observed, summed over the session."""

    cases: int = 0
    faults: int = 0
    lost: int = 0
    duplicates: int = 0
    hostile_unit: int = 0
    hostile_moto: int = 0

    def record(self, *, faults: int, expected: int, delivered: list[int]) -> None:
        """One case: ``expected`` copies should have reached each recipient (1, or 0 when refused); ``delivered``
        says how many each one got."""
        self.cases += 1
        self.faults += faults
        self.lost += sum(max(0, expected - copies) for copies in delivered)
        self.duplicates += sum(max(0, copies - expected) for copies in delivered)

    def lines(self) -> list[str]:
        lines = []
        if self.cases:
            lines.append(f"fault injection: {self.cases} cases, {self.faults} faults injected, "
                         f"{self.lost} messages lost, {self.duplicates} duplicates")
        if self.hostile_unit or self.hostile_moto:
            lines.append(f"hostile mail: {self.hostile_unit} generated messages on fakes, {self.hostile_moto} "
                         f"through the handler on moto")
        return lines


LEDGER = FaultLedger()
