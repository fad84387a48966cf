"""The HTTP API handler (functions/api/app.py) on moto: API Gateway HTTP API events (payload format 2.0) in, the
table and the code secret created from template.yaml, the API function's own environment from the template.

Every response is checked against docs/openapi.yaml by ``ApiCaller``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from emailflow import wiring
from emailflow.adapters.dynamodb import DynamoDirectory
from emailflow.client import function_relay
from emailflow.config import get_settings
from emailflow.local.lambda_context import LocalLambdaContext
from emailflow.local.stack import LocalStack
from emailflow.ports import RelayFault
from tests.support.api import ApiCaller, ApiResponse, api_event, service_body
from tests.support.mail import load_eml
from tests.support.relay_stack import RelayHarness

GET = "GET /services/{service}"
STATS = "GET /services/{service}/stats"
OWNER = "owner@holiday-flats.example"
USER = "jane.doe@real-user.example"


@pytest.fixture
def api(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiCaller]:
    """The API function's handler with the API function's environment (from the template), imported under moto."""
    for name, value in stack.function_environment("ApiFunction").items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    function_relay.cache_clear()
    from api.app import handler

    invoke: Callable[[dict[str, Any], Any], dict[str, Any]] = handler
    yield ApiCaller(lambda event: invoke(event, LocalLambdaContext()))
    function_relay.cache_clear()


def _items() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=get_settings().table_name)["Items"]


def test_api_function_environment_is_the_relays(stack: LocalStack) -> None:
    # Given the template, Then the API function is configured exactly as the relay (same table, secret, domain)
    assert stack.function_environment("ApiFunction") == stack.function_environment("RelayFunction")


def test_api_create_stores_one_service_and_answers_its_address(api: ApiCaller) -> None:
    # When the web form backend creates a service
    response = api.create(service_body(OWNER))

    # Then 201 with the relay address, and the table holds the service and the key's record
    assert response.status == 201
    assert response.body["address"] == f"service-{response.body['code']}@relay.example"
    kinds = sorted(item["sk"]["S"] for item in _items())
    assert kinds == ["REQ", "SVC"]

    # And the service is found by its code and by its address
    assert api.call(GET, service=response.body["code"]).body == response.body
    assert api.call(GET, service=response.body["address"]).body == response.body


def test_api_double_submitted_form_creates_one_service(api: ApiCaller) -> None:
    # When the same form is submitted twice with the same Idempotency-Key
    first = api.create(service_body(OWNER), key="3f0c2b1e-7d4a-4a9e-9a43-2f3b5d6c7e8f")
    second = api.create(service_body(OWNER), key="3f0c2b1e-7d4a-4a9e-9a43-2f3b5d6c7e8f")

    # Then 201 then 200, the same service, one service in the table
    assert (first.status, second.status) == (201, 200)
    assert second.body == first.body
    assert [item["sk"]["S"] for item in _items()].count("SVC") == 1


def test_api_conflicting_key_is_409_and_creates_nothing(api: ApiCaller) -> None:
    # Given a key used for one service
    api.create(service_body(OWNER), key="form-1")

    # When it comes back with another owner
    response = api.create(service_body("other@flats.example"), key="form-1")

    # Then 409, and still one service
    assert (response.status, response.error_code) == (409, "idempotency_key_reused")
    assert [item["sk"]["S"] for item in _items()].count("SVC") == 1


@pytest.mark.parametrize(("body", "code"), [
    ("{", "invalid_json"),
    ({"addresses": OWNER, "name": "Owner"}, "invalid_request"),
    ({"addresses": [OWNER], "name": "Owner", "colour": "blue"}, "invalid_request"),
    ({"addresses": ["owner at flats"], "name": "Owner"}, "invalid_address"),
    ({"addresses": ["x@relay.example"], "name": "Owner"}, "invalid_service"),
], ids=["malformed", "wrong-type", "unknown-field", "invalid-address", "relay-domain"])
def test_api_invalid_bodies_are_400_and_write_nothing(api: ApiCaller, body: Any, code: str) -> None:
    response = api.create(body)
    assert (response.status, response.error_code) == (400, code)
    assert _items() == []


def test_api_missing_key_is_400_and_writes_nothing(api: ApiCaller) -> None:
    response = api.call("POST /services", body=service_body(OWNER))
    assert (response.status, response.error_code) == (400, "missing_idempotency_key")
    assert _items() == []


def test_api_unknown_service_is_404(api: ApiCaller) -> None:
    # Given a service whose code is known, Then a code of the same shape that fails the keyed check is 404 too
    code = api.create(service_body(OWNER)).body["code"]
    forged = code[:11] + ("00000" if code[11:] != "00000" else "11111")
    for reference in (forged, f"service-{forged}@relay.example"):
        response = api.call(GET, service=reference)
        assert (response.status, response.error_code) == (404, "service_not_found")


def test_api_unsigned_event_is_refused_before_any_aws_call(api: ApiCaller) -> None:
    # Given a route that reached the function without IAM auth (no authorizer context)
    event = api_event("POST /services", body=service_body(OWNER), headers={"Idempotency-Key": "k"}, signed=False)

    # When it is handled, Then 403, the code secret was not read and nothing was written
    response = api.send(event)
    assert (response.status, response.error_code) == (403, "forbidden")
    assert function_relay.cache_info().currsize == 0
    assert _items() == []


def test_api_caller_of_another_account_is_refused(api: ApiCaller) -> None:
    response = api.create(service_body(OWNER), account="210987654321")
    assert (response.status, response.error_code) == (403, "forbidden")
    assert _items() == []


def test_api_disable_enable_and_patch(api: ApiCaller) -> None:
    # Given a service
    code = api.create(service_body(OWNER)).body["code"]

    # When it is disabled, renamed and enabled again
    disabled = api.call("POST /services/{service}/disable", service=code)
    renamed = api.call("PATCH /services/{service}", service=code, body={"name": "María G.", "context": {}})
    enabled = api.call("POST /services/{service}/enable", service=code)

    # Then each step is stored
    assert (disabled.body["status"], renamed.body["status"], enabled.body["status"]) == ("disabled", "disabled",
                                                                                        "active")
    stored = DynamoDirectory(get_settings().table_name).get_service(code)
    assert stored is not None
    assert (stored.display_name, dict(stored.context), stored.status.value) == ("María G.", {}, "active")


def test_api_stats_count_a_conversation_through_the_relay(api: ApiCaller, relay: RelayHarness) -> None:
    # Given a service created through the API, a user's first message and the owner's reply through the relay
    created = api.create(service_body(OWNER))
    address = created.body["address"]
    first = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address})
    relay.deliver(first, [address], USER)
    to_service = relay.sent()[-1]
    user_code = to_service.parsed()["Reply-To"].addresses[0].addr_spec
    reply = load_eml("service_reply.eml", {"user-placeholder@relay.example": user_code,
                                           "Owner@Holiday-Flats.example": OWNER,
                                           "<ses-in-reply-to-placeholder>": to_service.ses_header_message_id()})
    relay.deliver(reply, [user_code], OWNER)

    # When the stats of the last 30 days are asked for
    response = api.call(STATS, service=address, query={"days": "30"})

    # Then one conversation, replied
    assert response.status == 200
    body = response.body
    assert (body["service_code"], body["conversations"], body["replied"], body["reply_rate"], body["days"]) == (
        created.body["code"], 1, 1, 1.0, 30)
    assert body["first_response_median"] is not None


def test_api_storage_fault_is_503_retryable_and_logged_without_addresses(api: ApiCaller,
                                                                         log_lines: io.StringIO) -> None:
    # Given a service, then a table that cannot be reached (deleted under the function's feet)
    code = api.create(service_body(OWNER)).body["code"]
    boto3.client("dynamodb").delete_table(TableName=get_settings().table_name)

    # When it is read, and its stats are asked for
    responses: list[ApiResponse] = [api.call(GET, service=code), api.call(STATS, service=code)]

    # Then 503 with a retry hint each time, and a warning line that names the fault, not the service's address
    for response in responses:
        assert (response.status, response.error_code, response.body["error"]["retryable"]) == (503, "unavailable",
                                                                                              True)
        assert response.headers["retry-after"]
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert [line["fault"] for line in lines if line["message"] == "api fault"] == ["RelayFault", "RelayFault"]
    assert OWNER not in log_lines.getvalue()


def test_api_unreadable_secret_is_503_and_retried_on_the_next_request(api: ApiCaller,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a code secret that cannot be read
    secret = get_settings().code_secret_arn
    monkeypatch.setenv("EMAILFLOW_CODE_SECRET_ARN", secret + "-gone")
    wiring.reset()

    # When a request comes, Then 503
    assert api.create(service_body(OWNER)).error_code == "unavailable"

    # And once the secret can be read again, the next request is served (the failure was not cached)
    monkeypatch.setenv("EMAILFLOW_CODE_SECRET_ARN", secret)
    wiring.reset()
    assert api.create(service_body(OWNER)).status == 201


def test_directory_list_pairs_fault_is_a_relay_fault(stack: LocalStack) -> None:
    # Given a table that does not exist, When a service's pairs are listed, Then the adapter reports a fault
    with pytest.raises(RelayFault):
        DynamoDirectory("no-such-table").list_pairs("s" * 16)
    with pytest.raises(RelayFault):
        DynamoDirectory("no-such-table").list_services()
