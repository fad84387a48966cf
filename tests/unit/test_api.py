"""The HTTP API layer (emailflow.api) on in-memory fakes: authentication, parsing, validation, status codes.

Every response goes through ``ApiCaller``, which checks it against docs/openapi.yaml.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from emailflow.addresses import RelayAddressing
from emailflow.api import MAX_BODY_BYTES, ROUTES, handle
from emailflow.client import Relay
from emailflow.codes import CodeBook, CodeKind
from emailflow.config import ConfigurationError
from emailflow.ports import RelayFault
from emailflow.services import registration
from tests.support.api import ACCOUNT, ApiCaller, ApiResponse, api_event, code_pattern, service_body
from tests.support.fakes import DOMAIN, KEYRING, FakeClock, InMemoryDirectory

GET = "GET /services/{service}"
PATCH = "PATCH /services/{service}"
DISABLE = "POST /services/{service}/disable"
ENABLE = "POST /services/{service}/enable"
STATS = "GET /services/{service}/stats"


class Builds:
    """The ``relay`` factory ``handle`` gets: counts how often a client was asked for."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.count = 0

    def __call__(self) -> Relay:
        self.count += 1
        return self.relay


@pytest.fixture
def directory() -> InMemoryDirectory:
    return InMemoryDirectory(FakeClock())


@pytest.fixture
def builds(directory: InMemoryDirectory) -> Builds:
    return Builds(Relay(directory, CodeBook(KEYRING), RelayAddressing(DOMAIN), clock=FakeClock()))


@pytest.fixture
def api(builds: Builds) -> ApiCaller:
    return ApiCaller(lambda event: handle(event, ACCOUNT, builds).as_proxy_result())


@pytest.fixture
def created(api: ApiCaller) -> ApiResponse:
    response = api.create(service_body())
    assert response.status == 201
    return response


# -- create --------------------------------------------------------------------------------------------------------

def test_api_create_answers_201_with_the_relay_address(api: ApiCaller, directory: InMemoryDirectory) -> None:
    # When the web form backend creates a service
    response = api.create(service_body())

    # Then 201 with the public address, the code, where to find it, and the service is stored
    assert response.status == 201
    body = response.body
    assert code_pattern().fullmatch(body["code"])
    assert body["address"] == f"service-{body['code']}@{DOMAIN}"
    assert (body["name"], body["status"], body["addresses"], body["context"]) == (
        "María García", "active", ["owner@holiday-flats.example"], {"listing": "4711"})
    assert response.headers["location"] == f"/services/{body['code']}"
    assert set(directory.services) == {body["code"]}


def test_api_create_replayed_with_the_same_key_answers_200_with_the_same_service(
        api: ApiCaller, directory: InMemoryDirectory, created: ApiResponse) -> None:
    # When the same form is submitted again (addresses spelled differently: the same request once normalised)
    again = api.create(service_body(address="Owner@Holiday-Flats.EXAMPLE"))

    # Then 200, the same service, and still one service
    assert again.status == 200
    assert again.body == created.body
    assert len(directory.services) == 1


def test_api_create_same_key_with_another_request_is_409(api: ApiCaller, directory: InMemoryDirectory,
                                                         created: ApiResponse) -> None:
    # When the key comes back with a different name
    response = api.create(service_body(name="Someone Else"))

    # Then 409 and nothing new
    assert (response.status, response.error_code) == (409, "idempotency_key_reused")
    assert len(directory.services) == 1


def test_api_create_another_key_creates_another_service(api: ApiCaller, created: ApiResponse) -> None:
    # When a second form (another key) registers the same owner, Then it is a second service
    response = api.create(service_body(), key="form-4711-2")
    assert response.status == 201
    assert response.body["code"] != created.body["code"]


@pytest.mark.parametrize(("headers", "code"), [
    ({}, "missing_idempotency_key"),
    ({"Idempotency-Key": ""}, "invalid_idempotency_key"),
    ({"Idempotency-Key": "has space"}, "invalid_idempotency_key"),
    ({"Idempotency-Key": "k" * 256}, "invalid_idempotency_key"),
    ({"Idempotency-Key": "clé"}, "invalid_idempotency_key"),
], ids=["missing", "empty", "space", "too-long", "non-ascii"])
def test_api_create_needs_a_usable_idempotency_key(api: ApiCaller, directory: InMemoryDirectory,
                                                   headers: dict[str, str], code: str) -> None:
    # When the key is missing or unusable
    response = api.call("POST /services", body=service_body(), headers=headers)

    # Then 400 naming the header, and nothing is created
    assert (response.status, response.error_code, response.body["error"]["field"]) == (400, code, "Idempotency-Key")
    assert directory.services == {}


def test_api_create_accepts_a_255_character_key(api: ApiCaller) -> None:
    assert api.create(service_body(), key="k" * 255).status == 201


INVALID_BODIES: list[tuple[Any, str, str | None]] = [
    (b"{not json", "invalid_json", None),
    (b"", "invalid_json", None),
    (b"\xff\xfe{}", "invalid_json", None),
    ('{"addresses": ["a@b.example"], "name": "x", "name": "y"}', "invalid_json", None),
    ('{"addresses": ["a@b.example"], "name": NaN}', "invalid_json", None),
    ('{"addresses": ["a@b.example"], "name": "\\ud800"}', "invalid_json", None),
    ("[" * 20_000 + "]" * 20_000, "invalid_json", None),
    ([service_body()], "invalid_request", None),
    ("null", "invalid_request", None),
    ({"name": "x"}, "invalid_request", "addresses"),
    ({"addresses": ["a@b.example"]}, "invalid_request", "name"),
    ({**service_body(), "status": "active"}, "invalid_request", "status"),
    ({**service_body(), "addresses": "owner@holiday-flats.example"}, "invalid_request", "addresses"),
    ({**service_body(), "addresses": []}, "invalid_request", "addresses"),
    ({**service_body(), "addresses": [f"o{n}@flats.example" for n in range(11)]}, "invalid_request", "addresses"),
    ({**service_body(), "addresses": [42]}, "invalid_request", "addresses[0]"),
    ({**service_body(), "name": 7}, "invalid_request", "name"),
    ({**service_body(), "name": None}, "invalid_request", "name"),
    ({**service_body(), "context": ["listing"]}, "invalid_request", "context"),
    ({**service_body(), "context": {"listing": 4711}}, "invalid_request", "context"),
    ({**service_body(), "addresses": ["not an address"]}, "invalid_address", "addresses[0]"),
    ({**service_body(), "addresses": ["ok@flats.example", "@flats.example"]}, "invalid_address", "addresses[1]"),
    ({**service_body(), "addresses": ["owner@flats.example\r\nBcc: x@evil.example"]}, "invalid_address",
     "addresses[0]"),
    ({**service_body(), "addresses": [f"service-x@{DOMAIN}"]}, "invalid_service", None),
    ({**service_body(), "name": "   "}, "invalid_service", None),
    ({**service_body(), "context": {f"k{n}": "v" for n in range(21)}}, "invalid_service", None),
    ({**service_body(), "context": {"": "v"}}, "invalid_service", None),
    ({**service_body(), "context": {"listing": "x" * 257}}, "invalid_service", None),
]


@pytest.mark.parametrize(("body", "code", "field"), INVALID_BODIES,
                         ids=["malformed", "empty", "not-utf8", "duplicate-field", "nan", "lone-surrogate",
                              "deeply-nested",
                              "array", "null", "no-addresses", "no-name", "unknown-field", "addresses-string",
                              "addresses-empty", "too-many-addresses", "address-number", "name-number",
                              "name-null", "context-array", "context-number", "invalid-address",
                              "second-address-invalid", "header-injection", "relay-domain", "blank-name",
                              "context-too-many", "context-empty-key", "context-too-long"])
def test_api_create_refuses_a_bad_body_with_400(api: ApiCaller, directory: InMemoryDirectory, body: Any, code: str,
                                                field: str | None) -> None:
    # When the body is malformed or invalid
    response = api.create(body)

    # Then 400 with the error code (and the field, where there is one); nothing is created
    assert (response.status, response.error_code) == (400, code), response.body
    assert response.body["error"].get("field") == field
    assert response.body["error"]["message"]
    assert directory.services == {}


def test_api_create_refuses_a_body_over_the_limit_with_413(api: ApiCaller, directory: InMemoryDirectory) -> None:
    # Given a body one byte over the limit (a valid request padded with spaces)
    text = json.dumps(service_body())
    body = text + " " * (MAX_BODY_BYTES + 1 - len(text.encode()))

    # When it is sent, Then 413 and nothing is created; at the limit exactly it is accepted
    assert api.create(body).error_code == "payload_too_large"
    assert api.create(body[:-1]).status == 201
    assert len(directory.services) == 1


def test_api_create_refuses_a_huge_body_before_decoding_it(api: ApiCaller) -> None:
    # Given 1 MB of base64, When it is sent, Then 413
    response = api.create(b"x" * 1_000_000, base64_body=True)
    assert response.error_code == "payload_too_large"


def test_api_create_reads_a_base64_body(api: ApiCaller) -> None:
    # Given API Gateway passed the JSON body base64-encoded (it does for content types it takes for binary)
    response = api.create(json.dumps(service_body()).encode(), base64_body=True)

    # Then it is read as the same JSON
    assert response.status == 201


def test_api_create_refuses_broken_base64_with_400(api: ApiCaller) -> None:
    event = api_event("POST /services", body="{}", headers={"Idempotency-Key": "k"})
    event["isBase64Encoded"] = True
    event["body"] = "not*base64"
    assert api.send(event).error_code == "invalid_json"


@pytest.mark.parametrize("media_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_api_create_accepts_json_media_types(api: ApiCaller, media_type: str) -> None:
    assert api.create(service_body(), headers={"Content-Type": media_type}).status == 201


@pytest.mark.parametrize("media_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"])
def test_api_create_refuses_other_media_types_with_415(api: ApiCaller, media_type: str) -> None:
    response = api.create(service_body(), headers={"Content-Type": media_type})
    assert (response.status, response.error_code) == (415, "unsupported_media_type")


def test_api_create_refuses_query_parameters(api: ApiCaller) -> None:
    response = api.create(service_body(), query={"dry_run": "1"})
    assert (response.status, response.error_code, response.body["error"]["field"]) == (400, "invalid_request",
                                                                                       "dry_run")


def test_registration_tells_a_replay_from_a_new_service(directory: InMemoryDirectory) -> None:
    # Given a first registration with a key
    codebook = CodeBook(KEYRING)
    first = registration(directory, codebook, ["owner@flats.example"], "Owner", request_key="k", registry=directory)

    # When the same request comes again, Then it is the same service, not created this time
    again = registration(directory, codebook, ["owner@flats.example"], "Owner", request_key="k", registry=directory)
    assert (first.created, again.created) == (True, False)
    assert again.service == first.service


# -- reading and changing a service -------------------------------------------------------------------------------

def test_api_get_finds_a_service_by_code_or_address(api: ApiCaller, created: ApiResponse) -> None:
    code, address = created.body["code"], created.body["address"]
    references = [code, code.upper(), address, address.upper(), address.replace("@", "+july@"),
                  address.replace("@", "%40")]

    # When the service is asked for by each spelling, Then each finds it
    for reference in references:
        response = api.call(GET, service=reference)
        assert (response.status, response.body) == (200, created.body), reference


def test_api_unknown_and_forged_codes_are_the_same_404(api: ApiCaller, created: ApiResponse) -> None:
    # Given a genuine code nobody registered, one with a wrong tag, and things that are no code at all
    unknown = CodeBook(KEYRING).new_code(CodeKind.SERVICE)
    forged = created.body["code"][:-1] + ("a" if created.body["code"][-1] != "a" else "b")
    user_code = CodeBook(KEYRING).new_code(CodeKind.USER)
    references = [unknown, forged, f"user-{user_code}@{DOMAIN}", "owner@holiday-flats.example", "x", "s" * 400]

    for reference in references:
        # When it is asked for, Then 404 with one and the same error (a caller cannot test codes against the key)
        response = api.call(GET, service=reference)
        assert (response.status, response.body["error"]) == (404, {
            "code": "service_not_found", "message": "no service has this code or relay address"}), reference


def test_api_patch_changes_what_the_body_names(api: ApiCaller, created: ApiResponse) -> None:
    # When the name and the addresses change
    response = api.call(PATCH, service=created.body["code"],
                        body={"name": "María G.", "addresses": ["maria@flats.example", "office@flats.example"]})

    # Then they are changed; the code, address and context stay
    assert response.status == 200
    assert (response.body["name"], response.body["addresses"]) == (
        "María G.", ["maria@flats.example", "office@flats.example"])
    assert {key: response.body[key] for key in ("code", "address", "context", "status")} == {
        key: created.body[key] for key in ("code", "address", "context", "status")}
    assert api.call(GET, service=created.body["code"]).body == response.body


@pytest.mark.parametrize(("body", "code"), [
    ({}, "invalid_request"),
    ({"status": "disabled"}, "invalid_request"),
    ({"addresses": ["nope"]}, "invalid_address"),
    ({"addresses": [f"x@{DOMAIN}"]}, "invalid_service"),
    ({"name": ""}, "invalid_service"),
    ("{", "invalid_json"),
], ids=["empty", "unknown-field", "bad-address", "relay-domain", "empty-name", "malformed"])
def test_api_patch_refuses_a_bad_body_with_400(api: ApiCaller, created: ApiResponse, body: Any, code: str) -> None:
    response = api.call(PATCH, service=created.body["code"], body=body)
    assert (response.status, response.error_code) == (400, code)
    assert api.call(GET, service=created.body["code"]).body == created.body


def test_api_patch_of_an_unknown_service_is_404_even_with_a_bad_body(api: ApiCaller) -> None:
    # Given a body only the service's own checks refuse (an address in the relay domain), and no such service
    unknown = CodeBook(KEYRING).new_code(CodeKind.SERVICE)

    # Then the answer is about the service: 404
    for reference in (unknown, "forged0000000000"):
        response = api.call(PATCH, service=reference, body={"addresses": [f"x@{DOMAIN}"]})
        assert (response.status, response.error_code) == (404, "service_not_found")


def test_api_disable_and_enable_switch_the_status(api: ApiCaller, created: ApiResponse) -> None:
    code = created.body["code"]

    # When disabled (twice: idempotent), Then disabled; when enabled, active again
    assert api.call(DISABLE, service=code).body["status"] == "disabled"
    assert api.call(DISABLE, service=created.body["address"], body={}).body["status"] == "disabled"
    assert api.call(GET, service=code).body["status"] == "disabled"
    assert api.call(ENABLE, service=code).body["status"] == "active"


def test_api_disable_refuses_a_body_with_fields(api: ApiCaller, created: ApiResponse) -> None:
    response = api.call(DISABLE, service=created.body["code"], body={"reason": "spam"})
    assert (response.status, response.error_code) == (400, "invalid_request")
    assert api.call(GET, service=created.body["code"]).body["status"] == "active"


def test_api_disable_of_an_unknown_service_is_404(api: ApiCaller) -> None:
    response = api.call(DISABLE, service=CodeBook(KEYRING).new_code(CodeKind.SERVICE))
    assert (response.status, response.error_code) == (404, "service_not_found")


def test_api_get_ignores_a_body(api: ApiCaller, created: ApiResponse) -> None:
    # Given a GET that carries a body (meaningless in HTTP), Then it is answered as without one
    response = api.call(GET, service=created.body["code"], body=b"x" * (MAX_BODY_BYTES + 10))
    assert response.status == 200


# -- stats ---------------------------------------------------------------------------------------------------------

def test_api_stats_of_a_new_service_are_empty(api: ApiCaller, created: ApiResponse) -> None:
    response = api.call(STATS, service=created.body["code"], query={"days": "30"})
    assert response.status == 200
    assert (response.body["service_code"], response.body["conversations"], response.body["reply_rate"],
            response.body["days"]) == (created.body["code"], 0, None, 30)


def test_api_stats_without_days_cover_all_time(api: ApiCaller, created: ApiResponse) -> None:
    assert api.call(STATS, service=created.body["code"]).body["days"] is None


@pytest.mark.parametrize("days", ["0", "-1", "1.5", "x", "", "3661", "٣", "99999999999999999999"])
def test_api_stats_refuse_bad_days_with_400(api: ApiCaller, created: ApiResponse, days: str) -> None:
    response = api.call(STATS, service=created.body["code"], query={"days": days})
    assert (response.status, response.error_code, response.body["error"]["field"]) == (400, "invalid_request", "days")


def test_api_stats_refuse_unknown_query_parameters(api: ApiCaller, created: ApiResponse) -> None:
    response = api.call(STATS, service=created.body["code"], query={"since": "2026-01-01"})
    assert (response.status, response.error_code) == (400, "invalid_request")


def test_api_stats_of_an_unknown_service_are_404(api: ApiCaller) -> None:
    response = api.call(STATS, service=CodeBook(KEYRING).new_code(CodeKind.SERVICE))
    assert (response.status, response.error_code) == (404, "service_not_found")


# -- authentication ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("route", sorted(ROUTES))
def test_api_refuses_an_event_api_gateway_did_not_authenticate(api: ApiCaller, builds: Builds, route: str) -> None:
    # Given the event of a route without IAM auth (no authorizer context, no signature)
    event = api_event(route, service="x", body=service_body(), headers={"Idempotency-Key": "k"}, signed=False)

    # When it reaches the handler, Then 403, and no client was even built (nothing read, nothing written)
    response = api.send(event)
    assert (response.status, response.error_code) == (403, "forbidden")
    assert builds.count == 0


@pytest.mark.parametrize("damage", ["no-iam", "iam-null", "no-account", "no-principal", "no-context", "authorizer-text",
                                    "jwt-instead"])
def test_api_refuses_events_with_damaged_authorizer_context(api: ApiCaller, builds: Builds, damage: str) -> None:
    event = api_event("POST /services", body=service_body(), headers={"Idempotency-Key": "k"})
    authorizer = event["requestContext"]["authorizer"]
    if damage == "no-iam":
        del authorizer["iam"]
    elif damage == "iam-null":
        authorizer["iam"] = None
    elif damage == "no-account":
        authorizer["iam"]["accountId"] = ""
    elif damage == "no-principal":
        authorizer["iam"]["userArn"] = authorizer["iam"]["callerId"] = None
    elif damage == "no-context":
        del event["requestContext"]
    elif damage == "authorizer-text":
        event["requestContext"]["authorizer"] = "iam"
    else:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": {"sub": "someone"}, "scopes": []}}

    response = api.send(event)
    assert (response.status, response.error_code) == (403, "forbidden")
    assert builds.count == 0


def test_api_refuses_a_caller_of_another_account(api: ApiCaller, builds: Builds) -> None:
    response = api.create(service_body(), account="999999999999")
    assert (response.status, response.error_code) == (403, "forbidden")
    assert builds.count == 0


@pytest.mark.parametrize("event", [{}, {"routeKey": "POST /services"}, {"requestContext": []}],
                         ids=["empty", "route-only", "context-list"])
def test_api_refuses_malformed_events_with_403(builds: Builds, event: dict[str, Any]) -> None:
    assert handle(event, ACCOUNT, builds).status == 403


@pytest.mark.parametrize(("part", "value"), [("routeKey", ["POST /services"]), ("headers", ["x"]),
                                              ("queryStringParameters", "days=1"), ("body", {"addresses": []})])
def test_api_answers_a_damaged_signed_event_with_4xx(api: ApiCaller, part: str, value: Any) -> None:
    # Given a signed event with a part of the wrong type (only a direct invoke could send one), Then a 4xx, no 500
    event = api_event("POST /services", body=service_body(), headers={"Idempotency-Key": "k"})
    event[part] = value
    assert 400 <= api.send(event).status < 500


def test_api_unknown_route_is_404(api: ApiCaller, builds: Builds) -> None:
    # Given a signed request for a route the API does not have (API Gateway would answer it itself)
    for route in ("DELETE /services/{service}", "GET /services", "$default"):
        response = api.send(api_event(route, service="x"))
        assert (response.status, response.error_code) == (404, "route_not_found")
    assert builds.count == 0


# -- faults --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", [RelayFault("DynamoDB throttled"),
                                   ConfigurationError("could not read the code secret from Secrets Manager")])
def test_api_fault_is_503_retryable(builds: Builds, monkeypatch: pytest.MonkeyPatch, fault: Exception) -> None:
    # Given a store that fails the way the adapters report a fault
    def failing(*_: Any, **__: Any) -> Any:
        raise fault

    monkeypatch.setattr(builds.relay, "create_service_idempotent", failing)
    api = ApiCaller(lambda event: handle(event, ACCOUNT, builds).as_proxy_result())

    # When a request comes, Then 503 with a retry hint
    response = api.create(service_body())
    assert (response.status, response.error_code, response.body["error"]["retryable"]) == (503, "unavailable", True)
    assert response.headers["retry-after"] == "1"


def test_api_unexpected_error_is_500(builds: Builds, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr(builds.relay, "get_service", broken)
    api = ApiCaller(lambda event: handle(event, ACCOUNT, builds).as_proxy_result())

    response = api.call(GET, service="anything")
    assert (response.status, response.error_code) == (500, "internal_error")
    assert "retryable" not in response.body["error"]


# -- logs ------------------------------------------------------------------------------------------------------------

@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    from emailflow.observability import logger

    handler = logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    handler.setStream(previous)  # type: ignore[attr-defined]


def test_api_logs_route_and_status_without_addresses_or_caller_arn(api: ApiCaller, log_lines: io.StringIO) -> None:
    # When a service is created and asked for
    created = api.create(service_body(address="maria.garcia@holiday-flats.example"))
    api.call(GET, service=created.body["address"])
    api.create(service_body(addresses=["maria.garcia at holiday-flats.example"]), key="form-2")

    # Then each request left one line with route, status and error code; no address, no body, no caller ARN
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    requests = [line for line in lines if line["message"] == "api request"]
    assert [(line["route"], line["status"], line.get("error")) for line in requests] == [
        ("POST /services", 201, None), (GET, 200, None), ("POST /services", 400, "invalid_address")]
    assert all(line["level"] == "INFO" and line["caller_account"] == ACCOUNT for line in requests)
    text = log_lines.getvalue()
    for secret in ("maria.garcia", created.body["address"], "assumed-role", "María"):
        assert secret not in text
