"""End-to-end fixtures: local mode started in this process on free ports, shared by the whole package.

Starting it costs a few seconds (the emulator's CloudFormation first of all), so one local relay serves every test
here; tests keep apart by registering their own services and writing from their own addresses. The relay sets
``AWS_ENDPOINT_URL`` and the function's environment while it runs and puts everything back when it stops, before
any other package's tests run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emailflow.local.server import LocalOptions, LocalRelay
from emailflow.model import Service
from emailflow.services import register_service, service_address
from tests.support.local import Register

DOMAIN = "relay.example"
BRAND = "emailflow"


@pytest.fixture(scope="package")
def local_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRelay]:
    options = LocalOptions(domain=DOMAIN, brand=BRAND, smtp_port=0, mailbox=tmp_path_factory.mktemp("mailbox"))
    with LocalRelay(options) as relay:
        yield relay


@pytest.fixture
def maildirs(local_relay: LocalRelay) -> Path:
    return local_relay.mailbox


@pytest.fixture
def register(local_relay: LocalRelay) -> Register:
    """Registers a service the way the CLI does (same wiring, same use case): ``register(owner, name)``."""
    ops = local_relay.operations()

    def register_one(owner: str, name: str, context: dict[str, str] | None = None) -> tuple[Service, str]:
        service = register_service(ops.directory, ops.codebook, [owner], name, context,
                                   relay_domain=ops.settings.domain)
        return service, service_address(ops.addressing, service)

    return register_one
