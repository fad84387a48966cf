"""Registering and managing services (the operator's side). Used by the CLI, the demo and tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from emailflow.addresses import InvalidAddress, RelayAddressing, normalise_address
from emailflow.codes import CodeBook, CodeKind
from emailflow.model import Service, ServiceStatus
from emailflow.ports import Directory
from emailflow.rewrite import sanitise_display_name

_MAX_CODE_DRAWS = 5
"""A collision among 2**55 codes is not expected once in the lifetime of a deployment; five draws is paranoia."""


class ServiceError(ValueError):
    """The request to register or change a service is invalid."""


def register_service(directory: Directory, codebook: CodeBook, addresses: Sequence[str], display_name: str,
                     context: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time,
                     relay_domain: str | None = None) -> Service:
    """Create a service with a fresh code. ``addresses``: its real address(es), the first one receives mail.

    An address in ``relay_domain`` is refused: a service whose "real" address is a relay address would make the
    relay mail itself (a loop).
    """
    if not addresses:
        raise ServiceError("a service needs at least one real address")
    try:
        normalised = tuple(dict.fromkeys(normalise_address(address) for address in addresses))
    except InvalidAddress as exc:
        raise ServiceError(f"not a usable e-mail address: {exc}") from exc
    if relay_domain and any(address.rpartition("@")[2] == relay_domain for address in normalised):
        raise ServiceError("a service's real address cannot be in the relay domain")
    name = sanitise_display_name(display_name)
    if not name:
        raise ServiceError("a service needs a display name")
    for _ in range(_MAX_CODE_DRAWS):
        service = Service(code=codebook.new_code(CodeKind.SERVICE), addresses=normalised, display_name=name,
                          context=dict(context or {}), created_at=int(clock()))
        if directory.put_service(service):
            return service
    raise RuntimeError("could not draw an unused service code")


def find_service(directory: Directory, addressing: RelayAddressing, codebook: CodeBook,
                 code_or_address: str) -> Service:
    """The service named by its code or by its public relay address (any case, ``+tag`` allowed).

    The text goes through the same keyed check as mail does, so a mistyped code is reported without a read.
    """
    text = code_or_address.strip()
    if "@" in text:
        parsed = addressing.parse(text, codebook)
        code = parsed.code if parsed is not None and parsed.kind is CodeKind.SERVICE else None
    else:
        code = codebook.verify(CodeKind.SERVICE, text.removeprefix(f"{addressing.service_prefix}-"))
    if code is None:
        raise ServiceError("not a service code or service address of this relay")
    service = directory.get_service(code)
    if service is None:
        raise ServiceError("no such service")
    return service


def set_service_status(directory: Directory, code: str, status: ServiceStatus) -> Service:
    service = directory.get_service(code)
    if service is None:
        raise ServiceError("no such service")
    updated = replace(service, status=status)
    directory.set_service_status(updated)
    return updated


def service_address(addressing: RelayAddressing, service: Service) -> str:
    """The public relay address of a service: what the web form shows."""
    return addressing.address(CodeKind.SERVICE, service.code)
