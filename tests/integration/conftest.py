"""Integration fixtures: moto in-process, resources created from template.yaml, the real relay handler."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto import mock_aws

from emailflow import wiring
from emailflow.local.moto_ses import install_byte_exact_sesv2
from emailflow.local.stack import LocalStack, deploy_locally
from tests.support.relay_stack import RelayHarness

DOMAIN = "relay.example"
BRAND = "emailflow"


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """The template's resources on moto, and the relay function's environment (from the template) applied."""
    with mock_aws():
        install_byte_exact_sesv2()
        created = deploy_locally({"DomainName": DOMAIN, "BrandName": BRAND})
        for name, value in created.function_environment("RelayFunction").items():
            monkeypatch.setenv(name, value)
        wiring.reset()
        yield created
        wiring.reset()


@pytest.fixture
def relay(stack: LocalStack) -> RelayHarness:
    from relay.app import handler  # imported under moto, after the environment is set

    return RelayHarness(stack=stack, handler=handler)


@pytest.fixture
def bounces_handler(stack: LocalStack) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The bounces Lambda handler, imported under moto (same environment as the relay: same settings)."""
    from bounces.app import handler

    return handler


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the package's Powertools Logger writes from now on: its handler's stream swapped for a buffer (the
    handler keeps the stream it had when the Logger was made, often a capture file of an earlier test)."""
    from emailflow.observability import logger

    handler = logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    handler.setStream(previous)  # type: ignore[attr-defined]
