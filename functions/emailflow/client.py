"""The Python client: what a marketplace backend, the CLI and the HTTP API do to a relay, in one implementation.

```python
from emailflow import Relay

relay = Relay.from_stack("emailflow")            # the deployed stack's outputs name the table, secret, domain
service = relay.create_service(["owner@flats.example"], "María García", context={"listing": "4711"},
                               idempotency_key=f"listing-4711-{form_id}")
service.address                                  # 'service-4k9x2m7q1c0hbd3e@relay.example': show it on the form
```

Every rule lives in the domain modules (``services``, ``stats``, ``conversations``); this module only resolves
references (a code or a relay address), wires the store, and returns plain values with ``as_dict()`` for JSON.
AWS is reached through the adapters, imported only when a ``Relay`` is built from a stack or from settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from emailflow.addresses import RelayAddressing
from emailflow.codes import CodeBook, CodeKind
from emailflow.conversations import Conversation, ConversationStore, clear_address, find_conversation
from emailflow.model import Service, ServiceStatus
from emailflow.ports import ApprovalStore
from emailflow.services import (
    ServiceRegistry,
    find_service,
    registration,
    service_address,
    set_service_status,
    update_service,
)
from emailflow.stats import ServiceStats, service_stats

if TYPE_CHECKING:
    from emailflow.approvals import Approval, PendingApproval
    from emailflow.config import Settings
    from emailflow.relay import RelayContext

_DAY = 86_400


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A service as a client sees it: its public relay address first."""

    address: str
    code: str
    name: str
    status: str
    addresses: tuple[str, ...]
    """The service's real addresses (the first receives mail). Operator data: never shown to users."""
    context: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0
    undeliverable: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["addresses"] = list(self.addresses)
        data["context"] = dict(self.context)
        data["undeliverable"] = dict(self.undeliverable)
        return data


@dataclass(frozen=True, slots=True)
class CreatedService:
    """The answer to a registration with an idempotency key."""

    service: ServiceInfo
    created: bool
    """False when the key answered with the service an earlier request created."""


class RelayStore(ServiceRegistry, ConversationStore, ApprovalStore, Protocol):
    """Everything the client needs of the store: the DynamoDB adapter, or the in-memory fake in tests."""


class Relay:
    """Operations on one relay deployment."""

    def __init__(self, store: RelayStore, codebook: CodeBook, addressing: RelayAddressing,
                 clock: Callable[[], float] = time.time,
                 relay_context: Callable[[], RelayContext] | None = None) -> None:
        self.store = store
        self.codebook = codebook
        self.addressing = addressing
        self._clock = clock
        self._relay_context = relay_context
        """The deployment's relay (allowing a new sender relays the held message); built on first use."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Relay:
        """A client for the deployment ``settings`` describe (the API handler passes its own environment's)."""
        from emailflow.operations import operations

        ops = operations(settings)
        return cls(ops.directory, ops.codebook, ops.addressing, relay_context=ops.relay)

    @classmethod
    def from_stack(cls, stack_name: str, region: str | None = None) -> Relay:
        """A client for a deployed stack, named as in ``sam deploy``; credentials and region resolve as for any
        AWS SDK (profile, environment, instance role). With ``AWS_ENDPOINT_URL`` set: the local relay."""
        from emailflow.adapters.cloudformation import stack_outputs
        from emailflow.config import local_endpoint, local_region, settings_from_stack_outputs

        if region is None and local_endpoint():
            region = local_region()
        return cls.from_settings(settings_from_stack_outputs(stack_outputs(stack_name), region))

    # -- services ---------------------------------------------------------------------------------------------

    def info(self, service: Service) -> ServiceInfo:
        return ServiceInfo(address=service_address(self.addressing, service), code=service.code,
                           name=service.display_name, status=service.status.value, addresses=service.addresses,
                           context=dict(service.context), created_at=service.created_at,
                           undeliverable=dict(service.undeliverable))

    def create_service(self, addresses: Sequence[str] | str, name: str, context: Mapping[str, str] | None = None,
                       idempotency_key: str | None = None) -> ServiceInfo:
        """Register a service; its ``address`` is what the web form shows. With ``idempotency_key``, a retry of
        the same request returns the same service instead of creating a second one."""
        return self._register(addresses, name, context, idempotency_key).service

    def create_service_idempotent(self, addresses: Sequence[str] | str, name: str,
                                  context: Mapping[str, str] | None = None, *,
                                  idempotency_key: str) -> CreatedService:
        """``create_service`` with a required key, saying whether this call created the service or replayed an
        earlier one with the same key (the HTTP API answers 201 or 200)."""
        return self._register(addresses, name, context, idempotency_key)

    def _register(self, addresses: Sequence[str] | str, name: str, context: Mapping[str, str] | None,
                  idempotency_key: str | None) -> CreatedService:
        real = [addresses] if isinstance(addresses, str) else list(addresses)
        done = registration(self.store, self.codebook, real, name, context, clock=self._clock,
                            relay_domain=self.addressing.domain, request_key=idempotency_key, registry=self.store)
        return CreatedService(self.info(done.service), created=done.created)

    def get_service(self, service: str) -> ServiceInfo:
        """``service``: a service code or its relay address (any case)."""
        return self.info(self._service(service))

    def list_services(self) -> list[ServiceInfo]:
        return [self.info(item) for item in self.store.list_services()]

    def update_service(self, service: str, *, addresses: Sequence[str] | None = None, name: str | None = None,
                       context: Mapping[str, str] | None = None) -> ServiceInfo:
        found = self._service(service)
        return self.info(update_service(self.store, found, addresses=addresses, display_name=name,
                                        context=context, relay_domain=self.addressing.domain))

    def disable_service(self, service: str) -> ServiceInfo:
        return self.info(set_service_status(self.store, self._service(service).code, ServiceStatus.DISABLED))

    def enable_service(self, service: str) -> ServiceInfo:
        return self.info(set_service_status(self.store, self._service(service).code, ServiceStatus.ACTIVE))

    def service_stats(self, service: str, days: int | None = None) -> ServiceStats:
        """Reply rate and response times of one service (docs/stats.md), over conversations started in the last
        ``days`` days (all when None). One Query on the service's partition."""
        found = self._service(service)
        now = int(self._clock())
        return service_stats(found.code, self.store.list_pairs(found.code), now,
                             since=now - days * _DAY if days else None)

    # -- conversations and addresses ------------------------------------------------------------------------

    def conversation(self, address: str) -> Conversation:
        """A conversation's figures and state by its user-code relay address (what the service writes to)."""
        return find_conversation(self.store, self.addressing, self.codebook, address)

    def clear_address(self, address: str) -> list[str]:
        """Lift every suppression of a real address (bounces, complaints); returns what was lifted."""
        return clear_address(self.store, address)

    # -- new senders ----------------------------------------------------------------------------------------

    def pending_approval(self, token: str) -> PendingApproval:
        """Who asks to answer for which service (the approval link's page); changes nothing."""
        from emailflow.approvals import pending_approval  # the relay use case: loaded when needed

        return pending_approval(self.store, self._relay(), token)

    def allow_sender(self, token: str) -> Approval:
        """Confirm an approval link: register the new address on the service and relay the held message."""
        from emailflow.approvals import approve_sender

        return approve_sender(self.store, self._relay(), token)

    def _relay(self) -> RelayContext:
        if self._relay_context is None:
            raise TypeError("this Relay was built without the deployment's relay (use Relay.from_settings)")
        return self._relay_context()

    def _service(self, reference: str) -> Service:
        return find_service(self.store, self.addressing, self.codebook, reference)

    def user_address(self, user_code: str) -> str:
        return self.addressing.address(CodeKind.USER, user_code)


@cache
def function_relay() -> Relay:
    """The client on the Lambda function's own deployment (its environment): the HTTP API's and the approval
    page's. Built on the first request that needs it and kept for the container, so the code secret is read once; a
    failure is not cached: the next request tries again."""
    from emailflow.config import get_settings

    return Relay.from_settings(get_settings())
