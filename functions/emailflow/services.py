"""Registering and managing services (the operator's side). Used by the CLI, the demo and tests."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from emailflow.addresses import InvalidAddress, RelayAddressing, normalise_address
from emailflow.codes import CodeBook, CodeKind
from emailflow.model import Service, ServiceStatus
from emailflow.ports import Directory
from emailflow.rewrite import sanitise_display_name

_MAX_CODE_DRAWS = 5
"""A collision among 2**55 codes is not expected once in the lifetime of a deployment; five draws is paranoia."""


REQUEST_KEY_SECONDS = 7 * 86_400
"""How long a client's idempotency key protects against a second registration (a week of web-form retries)."""
MAX_CONTEXT_ENTRIES = 20
MAX_CONTEXT_TEXT = 256


class ServiceError(ValueError):
    """The request to register or change a service is invalid."""


class ServiceNotFound(ServiceError):
    """No service has that code."""


class RequestKeyReused(ServiceError):
    """An idempotency key came back with a different request: the client has a bug, nothing was created."""


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    """A client's promise that retries of one "create a service" request carry the same key.

    Registration is the operator's and the API's business, never a relay's or a bounce's: these live here, not in
    ``ports``, so that the handlers' cold start does not create them (benchmarks/bench_coldstart.py)."""

    key_digest: str
    """SHA-256 of the client's key: the store never holds the key itself."""
    fingerprint: str
    """SHA-256 of what was asked (addresses, name, context): the same key with other content is a conflict."""
    expires_at: int


@dataclass(frozen=True, slots=True)
class PriorRegistration:
    """The service an earlier request with the same key created."""

    service_code: str
    fingerprint: str


class ServiceRegistry(Directory, Protocol):
    """What managing services needs of the store beyond the relay's ``Directory``."""

    def put_service_once(self, service: Service, request: RegistrationRequest) -> PriorRegistration | bool: ...

    def update_service(self, service: Service) -> None: ...


def _clean_addresses(addresses: Sequence[str], relay_domain: str | None) -> tuple[str, ...]:
    """Normalised, deduplicated (first kept first: it receives mail), never in the relay's own domain (an address
    there would make the relay mail itself: a loop)."""
    if not addresses:
        raise ServiceError("a service needs at least one real address")
    try:
        normalised = tuple(dict.fromkeys(normalise_address(address) for address in addresses))
    except InvalidAddress as exc:
        raise ServiceError(f"not a usable e-mail address: {exc}") from exc
    if relay_domain and any(address.rpartition("@")[2] == relay_domain for address in normalised):
        raise ServiceError("a service's real address cannot be in the relay domain")
    return normalised


def _clean_name(display_name: str) -> str:
    name = sanitise_display_name(display_name)
    if not name:
        raise ServiceError("a service needs a display name")
    return name


def _clean_context(context: Mapping[str, str] | None) -> dict[str, str]:
    cleaned = dict(context or {})
    if len(cleaned) > MAX_CONTEXT_ENTRIES:
        raise ServiceError(f"at most {MAX_CONTEXT_ENTRIES} context entries")
    for key, value in cleaned.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise ServiceError("context keys and values are non-empty keys with text values")
        if len(key) > MAX_CONTEXT_TEXT or len(value) > MAX_CONTEXT_TEXT:
            raise ServiceError(f"context keys and values are at most {MAX_CONTEXT_TEXT} characters")
    return cleaned


def _request(request_key: str, addresses: tuple[str, ...], name: str, context: Mapping[str, str],
             now: int) -> RegistrationRequest:
    asked = json.dumps({"addresses": addresses, "name": name, "context": dict(sorted(context.items()))},
                       sort_keys=True, ensure_ascii=True)
    return RegistrationRequest(key_digest=hashlib.sha256(request_key.encode()).hexdigest(),
                               fingerprint=hashlib.sha256(asked.encode()).hexdigest(),
                               expires_at=now + REQUEST_KEY_SECONDS)


@dataclass(frozen=True, slots=True)
class Registration:
    """What a registration did: the service, and whether this request created it."""

    service: Service
    created: bool
    """False when the request key answered with the service an earlier request created (a replay)."""


def register_service(directory: Directory, codebook: CodeBook, addresses: Sequence[str], display_name: str,
                     context: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time,
                     relay_domain: str | None = None, *, request_key: str | None = None,
                     registry: ServiceRegistry | None = None) -> Service:
    """Create a service with a fresh code. ``addresses``: its real address(es), the first one receives mail.

    With ``request_key`` (and a ``registry`` that can keep it), the same key answers with the service the first
    request created: a web form submitted twice registers one service. The same key with a different request
    raises ``RequestKeyReused``.
    """
    return registration(directory, codebook, addresses, display_name, context, clock, relay_domain,
                        request_key=request_key, registry=registry).service


def registration(directory: Directory, codebook: CodeBook, addresses: Sequence[str], display_name: str,
                 context: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time,
                 relay_domain: str | None = None, *, request_key: str | None = None,
                 registry: ServiceRegistry | None = None) -> Registration:
    """``register_service``, telling a new service from a replayed request key (the HTTP API answers 201 or 200)."""
    normalised = _clean_addresses(addresses, relay_domain)
    name = _clean_name(display_name)
    cleaned_context = _clean_context(context)
    now = int(clock())
    request = None
    if request_key is not None:
        if registry is None:
            raise TypeError("a request key needs a registry")
        if not request_key.strip() or len(request_key) > 255:
            raise ServiceError("an idempotency key is 1 to 255 characters")
        request = _request(request_key, normalised, name, cleaned_context, now)
    for _ in range(_MAX_CODE_DRAWS):
        service = Service(code=codebook.new_code(CodeKind.SERVICE), addresses=normalised, display_name=name,
                          context=cleaned_context, created_at=now)
        stored = directory.put_service(service) if request is None or registry is None else \
            registry.put_service_once(service, request)
        if isinstance(stored, PriorRegistration):
            if request is not None and stored.fingerprint != request.fingerprint:
                raise RequestKeyReused("this idempotency key was used for a different request")
            prior = directory.get_service(stored.service_code)
            if prior is None:
                raise ServiceNotFound("the service this key created no longer exists")
            return Registration(prior, created=False)
        if stored:
            return Registration(service, created=True)
    raise RuntimeError("could not draw an unused service code")


def update_service(registry: ServiceRegistry, service: Service, *, addresses: Sequence[str] | None = None,
                   display_name: str | None = None, context: Mapping[str, str] | None = None,
                   relay_domain: str | None = None) -> Service:
    """Change a service (as just read, e.g. by ``find_service``): its real addresses, name or context (what is not
    given stays). Its code never changes, so its relay address and every conversation stay as they are. The write
    is conditional on the service existing."""
    updated = replace(service,
                      addresses=service.addresses if addresses is None else _clean_addresses(addresses, relay_domain),
                      display_name=service.display_name if display_name is None else _clean_name(display_name),
                      context=service.context if context is None else _clean_context(context))
    registry.update_service(updated)
    return updated


def find_service(directory: Directory, addressing: RelayAddressing, codebook: CodeBook,
                 code_or_address: str) -> Service:
    """The service named by its code or by its public relay address (any case, ``+tag`` allowed).

    The text goes through the same keyed check as mail does, so a mistyped code is reported without a read.
    """
    code = addressing.code_of(CodeKind.SERVICE, code_or_address, codebook)
    if code is None:
        raise ServiceError("not a service code or service address of this relay")
    service = directory.get_service(code)
    if service is None:
        raise ServiceNotFound("no such service")
    return service


def set_service_status(directory: Directory, code: str, status: ServiceStatus) -> Service:
    service = directory.get_service(code)
    if service is None:
        raise ServiceNotFound("no such service")
    updated = replace(service, status=status)
    directory.set_service_status(updated)
    return updated


def service_address(addressing: RelayAddressing, service: Service) -> str:
    """The public relay address of a service: what the web form shows."""
    return addressing.address(CodeKind.SERVICE, service.code)
