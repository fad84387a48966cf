"""Counting the AWS calls a handler makes, with botocore's own event hook, and the scenarios the budgets are for.

``record_aws_calls`` registers a ``before-call.*.*`` handler on the clients the handlers use (the lazily created,
cached clients of ``emailflow.adapters.clients``): botocore emits that event once per API call, after parameter
validation and before signing and retries, so a call that botocore retries still counts once, the way it is billed
by a request count. The scenarios are shared by the regression test (tests/integration/test_call_budget.py) and
``benchmarks/bench_calls.py``: both run the real handlers on moto and read the same call lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from emailflow.adapters import clients
from emailflow.local.lambda_context import LocalLambdaContext
from tests.support.feedback import ses_feedback, sns_event
from tests.support.mail import load_eml
from tests.support.relay_stack import RelayHarness

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

USER = "jane.doe@real-user.example"
OWNER = "owner@holiday-flats.example"

CALL_BUDGETS: dict[str, int] = {
    "phase 0: first message of a new pair": 5,
    "phase 4: user writes again (known pair)": 5,
    "phase 2: service replies to a user code": 5,
    "bounce: permanent, notice to the sender": 3,
}
"""What each step may cost in AWS calls (S3 read, SES send, every DynamoDB read and write): the regression budget.
docs/store.md ("Calls per message") has the table and the reasons. Mail to a service counts the per-sender budget
in the claim's own write (on by default; ``EMAILFLOW_SENDER_MESSAGES_PER_HOUR=0`` turns it off at the same count)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    calls: list[str]
    outcome: dict[str, Any]


def _hook_targets() -> list[Any]:
    """Every client a handler may use per message (created now if need be: under moto, that is harmless)."""
    return [clients.s3_client(), clients.dynamodb_client(), clients.sesv2_client(), clients.events_client()]


@contextmanager
def record_aws_calls() -> Iterator[list[str]]:
    """Yield a list that fills with ``Service.Operation`` for every API call the handlers' clients make."""
    calls: list[str] = []

    def before_call(model: Any, **_: Any) -> None:
        calls.append(f"{model.service_model.service_id}.{model.name}")

    targets = _hook_targets()
    for client in targets:
        client.meta.events.register("before-call.*.*", before_call, unique_id="emailflow-call-count")
    try:
        yield calls
    finally:
        for client in targets:
            client.meta.events.unregister("before-call.*.*", unique_id="emailflow-call-count")


def run_scenarios(relay: RelayHarness, bounces_handler: Handler) -> list[Scenario]:
    """A conversation through the real handlers, each step counted on its own: phases 0, 2 and 4, a duplicate
    delivery of each direction, and the delivery, complaint and bounce feedback the bounces handler gets."""
    _, address = relay.register([OWNER], "María García")
    scenarios: list[Scenario] = []

    def step(name: str, action: Callable[[], dict[str, Any]]) -> None:
        with record_aws_calls() as calls:
            result = action()
        scenarios.append(Scenario(name, list(calls), result["outcomes"][0]))

    first = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address})
    step("phase 0: first message of a new pair", lambda: relay.deliver(first, [address], USER, message_id="m0"))
    to_service = relay.sent()[-1]
    user_code_address = to_service.parsed()["Reply-To"].addresses[0].addr_spec
    step("duplicate: the same receipt event again", lambda: relay.deliver(first, [address], USER, message_id="m0",
                                                                          store=False))
    reply = load_eml("service_reply.eml", {"user-placeholder@relay.example": user_code_address,
                                           "<ses-in-reply-to-placeholder>": to_service.ses_header_message_id()})
    step("phase 2: service replies to a user code", lambda: relay.deliver(reply, [user_code_address], OWNER,
                                                                          message_id="m2"))
    to_user = relay.sent()[-1]
    step("duplicate reply: the same receipt event again", lambda: relay.deliver(
        reply, [user_code_address], OWNER, message_id="m2", store=False))
    follow_up = load_eml("user_follow_up.eml", {"service-placeholder@relay.example": address,
                                                "<ses-in-reply-to-placeholder>": to_user.ses_header_message_id()})
    step("phase 4: user writes again (known pair)", lambda: relay.deliver(follow_up, [address], USER))
    to_service_again = relay.sent()[-1]

    def feed(document: dict[str, Any]) -> dict[str, Any]:
        return bounces_handler(sns_event(document), LocalLambdaContext())

    step("delivery: SES delivered the first copy",
         lambda: feed(ses_feedback("Delivery", to_service.ses_message_id, OWNER)))
    step("complaint: the user marks the reply as spam",
         lambda: feed(ses_feedback("Complaint", to_user.ses_message_id, USER, direction="to_user")))
    step("bounce: permanent, notice to the sender",
         lambda: feed(ses_feedback("Bounce", to_service_again.ses_message_id, OWNER)))
    return scenarios
