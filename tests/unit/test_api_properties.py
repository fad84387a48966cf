"""Properties of the HTTP API on fakes: whatever a signed request carries, the answer is one the OpenAPI document
promises, and bad input is never a 5xx."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from emailflow.addresses import RelayAddressing
from emailflow.api import ROUTES, handle
from emailflow.client import Relay
from emailflow.codes import CodeBook
from tests.support.api import ACCOUNT, ApiCaller, api_event
from tests.support.fakes import DOMAIN, KEYRING, FakeClock, InMemoryDirectory

PROPERTY_SETTINGS = settings(max_examples=250, deadline=None)

_RELAY = Relay(InMemoryDirectory(FakeClock()), CodeBook(KEYRING), RelayAddressing(DOMAIN), clock=FakeClock())
_API = ApiCaller(lambda event: handle(event, ACCOUNT, lambda: _RELAY).as_proxy_result())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
field_values = st.one_of(
    json_values,
    st.lists(st.emails() | st.text(max_size=30), max_size=12),
    st.dictionaries(st.text(max_size=20), st.text(max_size=30), max_size=22))
bodies = st.one_of(
    st.none(),
    st.binary(max_size=200),
    json_values,
    st.dictionaries(st.sampled_from(["addresses", "name", "context", "status", "code"]), field_values, max_size=4))
references = st.one_of(st.text(max_size=40), st.sampled_from(["0000000000000000", f"service-x@{DOMAIN}", "%", ""]))
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
headers = st.dictionaries(st.sampled_from(["Idempotency-Key", "Content-Type", "Accept", "X-Other"]), header_values,
                          max_size=3)
queries = st.dictionaries(st.sampled_from(["days", "since", "q"]), st.text(max_size=12), max_size=2)


@PROPERTY_SETTINGS
@given(route=st.sampled_from(sorted(ROUTES)), body=bodies, service=references, extra_headers=headers, query=queries,
       base64_body=st.booleans())
def test_api_any_signed_request_gets_a_documented_answer_and_never_a_5xx(
        route: str, body: Any, service: str, extra_headers: dict[str, str], query: dict[str, str],
        base64_body: bool) -> None:
    # Given any signed request to a route
    event = api_event(route, service=service, body=body, headers=extra_headers, query=query, base64_body=base64_body)

    # When it is handled, Then the answer is documented for the route (ApiCaller checks) and not a server error
    response = _API.send(event)
    assert response.status < 500, (route, response.body)
    assert response.status in (200, 201) or response.error_code is not None


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=300))
def test_api_create_with_arbitrary_bytes_is_a_400_or_a_service(raw: bytes) -> None:
    # Given arbitrary bytes as the body of a create, When handled, Then 400/415 or (valid JSON by chance) created
    response = _API.send(api_event("POST /services", body=raw, headers={"Idempotency-Key": "bytes"}))
    assert response.status in (200, 201, 400, 409, 415), response.body
    if response.status == 400:
        assert response.error_code in ("invalid_json", "invalid_request", "invalid_address", "invalid_service")
    json.dumps(response.body)
