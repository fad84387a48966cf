"""docs/openapi.yaml is the HTTP API's contract: a valid OpenAPI 3.1 document whose operations are exactly the
handler's routes, whose error codes and limits are the code's. (That every response the tests receive matches the
document is checked on each call, by ``tests.support.api.ApiCaller``; the template's routes: test_api_template.py.)
"""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from emailflow import api
from emailflow.local.template import load_template
from emailflow.services import MAX_CONTEXT_ENTRIES, MAX_CONTEXT_TEXT
from tests.support.api import ACCOUNT, ROOT, ApiCaller, Contract, api_event, contract


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return contract().document


def test_openapi_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    # Given the document, Then openapi-spec-validator finds nothing wrong with it
    validate(document)
    assert str(document["openapi"]).startswith("3.1")


def test_openapi_operations_are_the_handlers_routes() -> None:
    # Given the document's operations and the handler's route table, Then they are the same routes
    assert contract().routes() == set(api.ROUTES)


def test_openapi_every_operation_requires_sigv4(document: dict[str, Any]) -> None:
    # Given the document, Then the whole API requires the SigV4 scheme and no operation opts out
    assert document["security"] == [{"sigv4": []}]
    for route in contract().routes():
        assert contract().operation(route).get("security", document["security"]) == [{"sigv4": []}], route
        # and every operation documents the answers every request can get: refused, throttled, faults
        assert {"403", "429", "500", "503"} <= set(contract().operation(route)["responses"]), route


def test_openapi_error_codes_are_the_codes_the_handler_uses(document: dict[str, Any]) -> None:
    # Given the error codes of the document and of the handler, Then they are the same
    assert contract().error_codes() == set(api.ERROR_CODES)

    # And each code's status is documented for at least one operation, with the Error schema
    documented = {int(status) for route in contract().routes()
                  for status in contract().operation(route)["responses"]}
    assert set(api.ERROR_CODES.values()) <= documented


def test_openapi_limits_are_the_codes(document: dict[str, Any]) -> None:
    # Given the limits the document states, Then they are the ones the code enforces
    schemas = document["components"]["schemas"]
    for name in ("NewService", "ServiceChanges"):
        assert schemas[name]["properties"]["addresses"]["maxItems"] == api.MAX_ADDRESSES
    assert schemas["Context"]["maxProperties"] == MAX_CONTEXT_ENTRIES
    assert schemas["Context"]["propertyNames"]["maxLength"] == MAX_CONTEXT_TEXT
    assert schemas["Context"]["additionalProperties"]["maxLength"] == MAX_CONTEXT_TEXT
    (days,) = contract().operation("GET /services/{service}/stats")["parameters"]
    assert (days["name"], days["schema"]["maximum"]) == ("days", api.MAX_DAYS)
    parameters = document["components"]["parameters"]
    assert parameters["Service"]["schema"]["maxLength"] == api.MAX_REFERENCE
    assert parameters["IdempotencyKey"]["schema"]["pattern"] == f"^{api._IDEMPOTENCY_KEY.pattern}$"
    assert parameters["IdempotencyKey"]["name"].lower() == api.IDEMPOTENCY_HEADER
    assert api.MAX_BODY_BYTES == 64 * 1024
    assert "64 KiB" in document["components"]["responses"]["PayloadTooLarge"]["description"]


def test_openapi_contract_check_catches_an_undocumented_answer() -> None:
    # Given a handler that answers something the document does not promise (guards the checks themselves)
    bad = ApiCaller(lambda event: {"statusCode": 200, "headers": {"content-type": "application/json"},
                                   "isBase64Encoded": False, "body": '{"address": 1}'})

    # Then the caller's check fails, for a body that is not a Service and for a status that is not documented
    with pytest.raises(AssertionError):
        bad.send(api_event("GET /services/{service}", service="x"))
    teapot = ApiCaller(lambda event: {"statusCode": 418, "headers": {"content-type": "application/json"},
                                      "isBase64Encoded": False, "body": "{}"})
    with pytest.raises(AssertionError, match="not documented"):
        teapot.send(api_event("GET /services/{service}", service="x"))


def test_openapi_gateway_answers_match_the_document() -> None:
    # Given what API Gateway itself answers to an unsigned or throttled request, Then the document allows it
    check = Contract().check
    check("POST /services", 403, {"content-type": "application/json"}, {"message": "Forbidden"})
    check("GET /services/{service}", 429, {"content-type": "application/json"}, {"message": "Too Many Requests"})


def test_openapi_example_event_is_signed_in_the_test_account() -> None:
    # Given the recorded example event, Then it carries the IAM authorizer context the handler requires
    iam = api_event("POST /services")["requestContext"]["authorizer"]["iam"]
    assert (iam["accountId"], bool(iam["userArn"])) == (ACCOUNT, True)


def test_api_doc_names_every_error_code_route_and_the_throttle() -> None:
    # Given docs/api.md, the handler and the template's stage settings
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    throttle = load_template()["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]

    # Then the guide lists every error code and every route, and states the throttle the template sets
    for code in api.ERROR_CODES:
        assert f"`{code}`" in text, code
    for route in api.ROUTES:
        method, _, path = route.partition(" ")
        assert f"`{method} {path}" in text, route
    assert f"{throttle['ThrottlingRateLimit']} requests a second, bursts of {throttle['ThrottlingBurstLimit']}" in text
