"""The HTTP API in tests: API Gateway HTTP API events (payload format 2.0) and the OpenAPI contract.

``api_event`` builds the event API Gateway sends for one request, from the recorded example in
tests/events/http_api_request.json. ``Contract`` reads docs/openapi.yaml; ``ApiCaller`` sends events to a handler and
checks **every** response it receives against the document (status documented for the operation, body valid for
its schema, documented headers present), so each test that calls the API also checks the contract.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.support.mail import EVENTS

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "docs" / "openapi.yaml"
ACCOUNT = "123456789012"
"""moto's account, and the account of ``LocalLambdaContext``'s function ARN."""
_DOCUMENT_URI = "urn:emailflow:openapi"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

Event = dict[str, Any]


def api_event(route: str, *, service: str | None = None, body: Any = None, headers: Mapping[str, str] | None = None,
              query: Mapping[str, str] | None = None, signed: bool = True, account: str = ACCOUNT,
              base64_body: bool = False) -> Event:
    """The event of one request to ``route`` (``"GET /services/{service}"``). ``body``: a dict or list (sent as
    JSON), bytes or text (sent as is), or None. ``signed=False``: the event of a route without auth (no IAM
    authorizer context, no signature)."""
    event: Event = copy.deepcopy(_example())
    method, _, template = route.partition(" ")
    path = template.replace("{service}", quote(service or "", safe="@+")) if "{service}" in template else template
    event["routeKey"] = event["requestContext"]["routeKey"] = route
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    if "{service}" in template:
        event["pathParameters"] = {"service": service or ""}
    if query:
        event["queryStringParameters"] = dict(query)
        event["rawQueryString"] = urlencode(query)
    raw = _raw_body(body)
    if raw is None:
        event.pop("body", None)
        event["headers"].pop("content-type", None)
        event["headers"].pop("content-length", None)
    else:
        event["headers"]["content-length"] = str(len(raw))
        base64_body = base64_body or not _is_utf8(raw)  # API Gateway passes what is not text base64-encoded
        event["body"] = base64.b64encode(raw).decode("ascii") if base64_body else raw.decode("utf-8")
    event["isBase64Encoded"] = base64_body and raw is not None
    event["headers"].update({name.lower(): value for name, value in (headers or {}).items()})
    event["requestContext"]["authorizer"]["iam"]["accountId"] = account
    if not signed:
        del event["requestContext"]["authorizer"]
        for name in ("authorization", "x-amz-date", "x-amz-security-token"):
            event["headers"].pop(name, None)
    return event


def _raw_body(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@cache
def _example() -> Event:
    loaded: Event = json.loads((EVENTS / "http_api_request.json").read_text(encoding="utf-8"))
    return loaded


# -- the contract ------------------------------------------------------------------------------------------------

class Contract:
    """docs/openapi.yaml, and the checks of a response against it."""

    def __init__(self, path: Path = OPENAPI) -> None:
        self.document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(_DOCUMENT_URI, resource)

    def routes(self) -> set[str]:
        """Every operation as a route key (``"GET /services/{service}"``)."""
        return {f"{method.upper()} {path}" for path, item in self.document["paths"].items()
                for method in item if method in _METHODS}

    def operation(self, route: str) -> dict[str, Any]:
        method, _, path = route.partition(" ")
        operation: dict[str, Any] = self.document["paths"][path][method.lower()]
        return operation

    def resolve(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """``item`` with a local ``$ref`` followed (one level is all the document uses outside schemas)."""
        while "$ref" in item:
            pointer = str(item["$ref"]).removeprefix("#/").split("/")
            target: Any = self.document
            for part in pointer:
                target = target[part.replace("~1", "/").replace("~0", "~")]
            item = target
        return dict(item)

    def validator(self, schema_pointer: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"{_DOCUMENT_URI}#{schema_pointer}"}, registry=self._registry)

    def schema_pointer(self, route: str, status: int) -> str:
        """JSON pointer of the response schema of ``route`` for ``status`` (fails when not documented)."""
        method, _, path = route.partition(" ")
        responses = self.operation(route)["responses"]
        assert str(status) in responses, f"{route}: status {status} is not documented"
        response = responses[str(status)]
        base = f"/paths/{_escape(path)}/{method.lower()}/responses/{status}"
        if "$ref" in response:
            base = str(response["$ref"]).removeprefix("#")
        return f"{base}/content/application~1json/schema"

    def check(self, route: str, status: int, headers: Mapping[str, str], body: Any) -> None:
        """Assert that one response is what the document promises."""
        pointer = self.schema_pointer(route, status)
        errors = sorted(self.validator(pointer).iter_errors(body), key=lambda error: list(error.path))
        assert not errors, f"{route} {status}: {[error.message for error in errors]} in {body}"
        response = self.resolve(self.operation(route)["responses"][str(status)])
        lower = {name.lower() for name in headers}
        for name in response.get("headers", {}):
            assert name.lower() in lower, f"{route} {status}: documented header {name} missing"
        assert headers.get("content-type", "").startswith("application/json"), (route, status)

    def error_codes(self) -> set[str]:
        return set(self.document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"][
            "enum"])


def _escape(path: str) -> str:
    return path.replace("~", "~0").replace("/", "~1")


@cache
def contract() -> Contract:
    return Contract()


# -- calling a handler ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def error_code(self) -> str | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error["code"]) if isinstance(error, dict) else None


@dataclass
class ApiCaller:
    """Sends events to a handler (``event -> proxy result``) and checks every response against the contract."""

    invoke: Callable[[Event], dict[str, Any]]
    seen: list[tuple[str, int]] = field(default_factory=list)

    def send(self, event: Event) -> ApiResponse:
        result = self.invoke(event)
        assert set(result) == {"statusCode", "headers", "body", "isBase64Encoded"}, result
        assert result["isBase64Encoded"] is False
        response = ApiResponse(int(result["statusCode"]), dict(result["headers"]), json.loads(result["body"]))
        route = str(event.get("routeKey"))
        if route in contract().routes():
            contract().check(route, response.status, response.headers, response.body)
        self.seen.append((route, response.status))
        return response

    def call(self, route: str, **kwargs: Any) -> ApiResponse:
        return self.send(api_event(route, **kwargs))

    def create(self, body: Any, key: str = "form-4711-1", **kwargs: Any) -> ApiResponse:
        headers = {"Idempotency-Key": key, **kwargs.pop("headers", {})}
        return self.call("POST /services", body=body, headers=headers, **kwargs)


def service_body(address: str = "owner@holiday-flats.example", name: str = "María García",
                 **extra: Any) -> dict[str, Any]:
    """A typical create request of the web form backend."""
    return {"addresses": [address], "name": name, "context": {"listing": "4711"}, **extra}


def code_pattern() -> re.Pattern[str]:
    return re.compile(str(contract().document["components"]["schemas"]["Service"]["properties"]["code"]["pattern"]))
