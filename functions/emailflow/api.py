"""The HTTP API: API Gateway HTTP API events (payload format 2.0) in, ``emailflow.client.Relay`` calls, JSON out.

docs/api.md says what each route does and docs/openapi.yaml is the contract (tests/integration/test_api_contract.py
holds this module, the template's routes and the document to each other). What this module decides:

- **API Gateway authenticates; the handler checks that it did.** Every route has the ``AWS_IAM`` authorizer
  (template.yaml). An event without the IAM authorizer's context, or signed in another account than the function's
  own, is refused with 403 before anything is read: a route deployed without auth by mistake serves nobody.
- **Bad input is a 4xx, never a 500**, as ``{"error": {"code": ..., "message": ...}}`` with a stable ``code``
  (``ERROR_CODES``). An unknown service and a code that fails its keyed check are both 404: telling them apart would
  let a caller test guessed codes against the relay's key.
- **Faults a retry may cure** (DynamoDB, Secrets Manager) are 503 with ``"retryable": true`` and ``Retry-After``;
  anything else unexpected is a 500, logged with its traceback.
- **Logs** carry the route, the status, the error code and the caller's account: never a body, an address, or the
  caller's ARN (an assumed-role session name is often a person's e-mail address).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from emailflow.addresses import InvalidAddress, normalise_address
from emailflow.client import Relay, ServiceInfo
from emailflow.config import ConfigurationError
from emailflow.observability import logger
from emailflow.ports import RelayFault
from emailflow.services import RequestKeyReused, ServiceError, ServiceNotFound

MAX_BODY_BYTES = 64 * 1024
"""Larger bodies get 413. A full request (10 addresses, 20 context entries of 256 characters) is far below it."""
MAX_ADDRESSES = 10
MAX_DAYS = 3660
MAX_REFERENCE = 320
"""A service reference (code or relay address) longer than this is no service's: 404 without a read."""
IDEMPOTENCY_HEADER = "idempotency-key"
"""HTTP API lower-cases header names (payload format 2.0)."""
RETRY_AFTER_SECONDS = 1
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
"""1 to 255 visible ASCII characters: what a UUID, a form id or a hash looks like, and nothing a header can hide."""
_JSON_MEDIA_TYPE = re.compile(r"application/json\s*(;.*)?", re.IGNORECASE | re.DOTALL)

ERROR_CODES: Mapping[str, int] = {
    "invalid_json": 400,
    "invalid_request": 400,
    "invalid_address": 400,
    "invalid_service": 400,
    "missing_idempotency_key": 400,
    "invalid_idempotency_key": 400,
    "forbidden": 403,
    "service_not_found": 404,
    "route_not_found": 404,
    "idempotency_key_reused": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "internal_error": 500,
    "unavailable": 503,
}
"""Every error code the API answers with, and its status (docs/openapi.yaml lists the same)."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def error_code(self) -> str | None:
        error = self.body.get("error")
        return str(error["code"]) if isinstance(error, Mapping) else None

    def as_proxy_result(self) -> dict[str, Any]:
        """The Lambda proxy integration's response (payload format 2.0)."""
        headers = {"content-type": "application/json", "cache-control": "no-store", **self.headers}
        return {"statusCode": self.status, "headers": headers, "isBase64Encoded": False,
                "body": json.dumps(self.body, ensure_ascii=False, separators=(",", ":"))}


class ApiError(Exception):
    """A request the API answers with an error response."""

    def __init__(self, code: str, message: str, *, field_name: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field_name = field_name
        self.headers = dict(headers or {})

    def response(self) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field_name is not None:
            error["field"] = self.field_name
        if self.code == "unavailable":
            error["retryable"] = True
        return Response(ERROR_CODES[self.code], {"error": error}, self.headers)


@dataclass(frozen=True, slots=True)
class Request:
    """A request API Gateway authenticated and routed to us."""

    route: str
    """The route key, e.g. ``GET /services/{service}``."""
    caller_account: str
    service: str = ""
    """The ``{service}`` path parameter (a code or a relay address), when the route has one."""
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    """Lower-case names."""
    body: bytes = b""


Operation = Callable[[Request, Relay], Response]


# -- the operations ----------------------------------------------------------------------------------------------

def create_service(request: Request, relay: Relay) -> Response:
    """``POST /services``: 201 with the new service, 200 with the one an earlier request with the same
    ``Idempotency-Key`` created, 409 when that key came with a different request."""
    key = _idempotency_key(request.headers)
    _no_query(request)
    body = _json_object(request, required=("addresses", "name"), optional=("context",))
    addresses = _addresses(body["addresses"])
    name = _string(body["name"], "name")
    context = _context(body["context"]) if "context" in body else None
    try:
        done = relay.create_service_idempotent(addresses, name, context, idempotency_key=key)
    except RequestKeyReused as exc:
        raise ApiError("idempotency_key_reused", str(exc)) from exc
    except ServiceNotFound as exc:  # the service this key created is gone: the key cannot be answered any more
        raise ApiError("idempotency_key_reused", str(exc)) from exc
    except ServiceError as exc:
        raise ApiError("invalid_service", str(exc)) from exc
    service = done.service
    return Response(201 if done.created else 200, service.as_dict(), {"location": f"/services/{service.code}"})


def get_service(request: Request, relay: Relay) -> Response:
    """``GET /services/{service}``."""
    _no_query(request)
    return Response(200, _find(relay, _reference(request.service)).as_dict())


def update_service(request: Request, relay: Relay) -> Response:
    """``PATCH /services/{service}``: what the body names changes, the rest stays (the relay address never does)."""
    _no_query(request)
    body = _json_object(request, required=(), optional=("addresses", "name", "context"))
    if not body:
        raise ApiError("invalid_request", "name at least one of addresses, name, context")
    addresses = _addresses(body["addresses"]) if "addresses" in body else None
    name = _string(body["name"], "name") if "name" in body else None
    context = _context(body["context"]) if "context" in body else None
    reference = _reference(request.service)
    try:
        updated = relay.update_service(reference, addresses=addresses, name=name, context=context)
    except ServiceNotFound as exc:
        raise _not_found() from exc
    except ServiceError as exc:
        _find(relay, reference)  # a reference that names no service is a 404, not a bad body (one read, errors only)
        raise ApiError("invalid_service", str(exc)) from exc
    return Response(200, updated.as_dict())


def disable_service(request: Request, relay: Relay) -> Response:
    """``POST /services/{service}/disable``: mail to the service's address is refused until it is enabled."""
    return _set_status(request, relay, relay.disable_service)


def enable_service(request: Request, relay: Relay) -> Response:
    """``POST /services/{service}/enable``."""
    return _set_status(request, relay, relay.enable_service)


def service_stats(request: Request, relay: Relay) -> Response:
    """``GET /services/{service}/stats?days=N``: reply rate and response times (docs/stats.md)."""
    _no_query(request, allowed=("days",))
    days = _days(request.query["days"]) if "days" in request.query else None
    reference = _reference(request.service)
    try:
        stats = relay.service_stats(reference, days)
    except ServiceError as exc:
        raise _not_found() from exc
    return Response(200, {**stats.as_dict(), "days": days})


ROUTES: Mapping[str, Operation] = {
    "POST /services": create_service,
    "GET /services/{service}": get_service,
    "PATCH /services/{service}": update_service,
    "POST /services/{service}/disable": disable_service,
    "POST /services/{service}/enable": enable_service,
    "GET /services/{service}/stats": service_stats,
}
"""Route key (as API Gateway names it in the event and the template declares it) -> operation."""


# -- the request's way in ----------------------------------------------------------------------------------------

def handle(event: Mapping[str, Any], own_account: str | None, relay: Callable[[], Relay]) -> Response:
    """Answer one API Gateway event. ``own_account``: the function's account (from its ARN); ``relay``: builds the
    client, called only for a request that passed authentication and parsing."""
    route = str(event.get("routeKey", "")) if isinstance(event, Mapping) else ""
    caller = ""
    try:
        request = parse_request(event, own_account)
        caller = request.caller_account
        response = ROUTES[request.route](request, relay())
    except ApiError as error:
        response = error.response()
    except (RelayFault, ConfigurationError) as fault:
        logger.warning("api fault", route=route, fault=type(fault).__name__)
        response = ApiError("unavailable", "the relay could not answer now; retry the same request",
                            headers={"retry-after": str(RETRY_AFTER_SECONDS)}).response()
    except Exception:
        logger.exception("api error", route=route)
        response = ApiError("internal_error", "the relay failed on this request").response()
    logger.info("api request", route=route, status=response.status, error=response.error_code, caller_account=caller)
    return response


def parse_request(event: Mapping[str, Any], own_account: str | None) -> Request:
    """The ``Request`` in an HTTP API event, once it is known that API Gateway authenticated it."""
    caller = _authenticated_account(event, own_account)
    route = event.get("routeKey")
    if not isinstance(route, str) or route not in ROUTES:
        raise ApiError("route_not_found", "no such route")
    parameters = event.get("pathParameters") or {}
    query = event.get("queryStringParameters") or {}
    headers = event.get("headers") or {}
    if not all(isinstance(part, Mapping) for part in (parameters, query, headers)):
        raise ApiError("invalid_request", "malformed request")
    return Request(route=route, caller_account=caller, service=str(parameters.get("service", "")),
                   query={str(name): str(value) for name, value in query.items()},
                   headers={str(name).lower(): str(value) for name, value in headers.items()},
                   body=b"" if route.startswith("GET ") else _body(event))  # a GET's body means nothing


def _authenticated_account(event: Mapping[str, Any], own_account: str | None) -> str:
    """The caller's account, as API Gateway's IAM authorizer put it in the event; 403 when it is not there.

    API Gateway only invokes us after the SigV4 signature checked out and the caller's IAM policy allowed
    ``execute-api:Invoke``, and it then fills ``requestContext.authorizer.iam``. Its absence means the route was
    not authenticated (deployed without auth, or invoked some other way): such a request is not served. HTTP APIs
    have no resource policies, so a caller of another account cannot be authorised anyway; the account check makes
    that explicit.
    """
    context = event.get("requestContext") if isinstance(event, Mapping) else None
    authorizer = context.get("authorizer") if isinstance(context, Mapping) else None
    iam = authorizer.get("iam") if isinstance(authorizer, Mapping) else None
    account = iam.get("accountId") if isinstance(iam, Mapping) else None
    principal = (iam.get("userArn") or iam.get("callerId")) if isinstance(iam, Mapping) else None
    if not isinstance(account, str) or not account or not isinstance(principal, str) or not principal:
        raise ApiError("forbidden", "requests must be signed with AWS Signature Version 4 (IAM)")
    if own_account is not None and account != own_account:
        raise ApiError("forbidden", "requests must be signed in the relay's own AWS account")
    return account


def _body(event: Mapping[str, Any]) -> bytes:
    raw = event.get("body")
    if raw is None or raw == "":
        return b""
    if not isinstance(raw, str):
        raise ApiError("invalid_request", "malformed request body")
    if len(raw) > 2 * MAX_BODY_BYTES:  # checked before decoding anything: base64 is 4/3 of the bytes
        raise _too_large()
    try:
        body = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode("utf-8")
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ApiError("invalid_json", "the request body is not UTF-8 JSON") from exc
    if len(body) > MAX_BODY_BYTES:
        raise _too_large()
    return body


def _too_large() -> ApiError:
    return ApiError("payload_too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes")


# -- validation ------------------------------------------------------------------------------------------------

class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKey("duplicate key")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_object(request: Request, *, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Any]:
    """The body as a JSON object with exactly the known fields (RFC 8259; duplicate names and NaN refused)."""
    if not request.body.strip():
        if required:
            raise ApiError("invalid_json", "the request body must be a JSON object")
        return {}
    media_type = request.headers.get("content-type")
    if media_type is not None and not _JSON_MEDIA_TYPE.fullmatch(media_type.strip()):
        raise ApiError("unsupported_media_type", "send the body as application/json")
    try:
        value = json.loads(request.body.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _DuplicateKey as exc:
        raise ApiError("invalid_json", "the request body names a field twice") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError("invalid_json", "the request body is not valid JSON") from exc
    try:  # JSON can escape a lone surrogate ("\ud800"): no text, and nothing DynamoDB or a reply could carry
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError("invalid_json", "the request body has a string that is not Unicode text") from exc
    if not isinstance(value, dict):
        raise ApiError("invalid_request", "the request body must be a JSON object")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise ApiError("invalid_request", f"unknown field {unknown[0]!r}", field_name=unknown[0])
    missing = [name for name in required if name not in value]
    if missing:
        raise ApiError("invalid_request", f"missing field {missing[0]!r}", field_name=missing[0])
    return value


def _no_body(request: Request) -> None:
    """Routes that take no body accept none, or an empty JSON object."""
    _json_object(request, required=(), optional=())


def _no_query(request: Request, allowed: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise ApiError("invalid_request", f"unknown query parameter {unknown[0]!r}", field_name=unknown[0])


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ApiError("invalid_request", f"{name} must be a string", field_name=name)
    return value


def _addresses(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ApiError("invalid_request", "addresses must be a non-empty array of e-mail addresses",
                       field_name="addresses")
    if len(value) > MAX_ADDRESSES:
        raise ApiError("invalid_request", f"at most {MAX_ADDRESSES} addresses", field_name="addresses")
    for index, address in enumerate(value):
        name = f"addresses[{index}]"
        try:
            normalise_address(_string(address, name))
        except InvalidAddress as exc:
            raise ApiError("invalid_address", f"{name} is not a usable e-mail address", field_name=name) from exc
    return list(value)


def _context(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise ApiError("invalid_request", "context must be an object of text values", field_name="context")
    return dict(value)


def _days(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise ApiError("invalid_request", f"days must be a whole number from 1 to {MAX_DAYS}", field_name="days")
    return int(text)


def _idempotency_key(headers: Mapping[str, str]) -> str:
    key = headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        raise ApiError("missing_idempotency_key", "POST /services needs an Idempotency-Key header",
                       field_name="Idempotency-Key")
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError("invalid_idempotency_key", "an Idempotency-Key is 1 to 255 visible ASCII characters",
                       field_name="Idempotency-Key")
    return key


# -- services by reference -------------------------------------------------------------------------------------

def _reference(text: str) -> str:
    """The path parameter as the client wrote it. HTTP API passes path parameters decoded; a code or a relay
    address never contains ``%``, so decoding once more is harmless and covers a gateway that does not."""
    reference = unquote(text) if "%" in text else text
    if not reference or len(reference) > MAX_REFERENCE:
        raise _not_found()
    return reference


def _find(relay: Relay, reference: str) -> ServiceInfo:
    try:
        return relay.get_service(reference)
    except ServiceError as exc:  # unknown, or not a code of this relay: the same answer (see the module's notes)
        raise _not_found() from exc


def _not_found() -> ApiError:
    return ApiError("service_not_found", "no service has this code or relay address")


def _set_status(request: Request, relay: Relay, change: Callable[[str], ServiceInfo]) -> Response:
    _no_query(request)
    _no_body(request)
    reference = _reference(request.service)
    try:
        return Response(200, change(reference).as_dict())
    except ServiceError as exc:
        raise _not_found() from exc


# -- the client of this deployment ---------------------------------------------------------------------------

def account_of(function_arn: str) -> str | None:
    """The account in a Lambda function ARN (``arn:aws:lambda:<region>:<account>:function:<name>``)."""
    parts = function_arn.split(":")
    return parts[4] if len(parts) > 4 and parts[4].isdigit() else None
