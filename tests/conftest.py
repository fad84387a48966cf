"""Shared test set-up: an offline AWS environment and Powertools configured as the template configures it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Before any emailflow import: Powertools reads these when the Logger and Metrics are created (module import).
# The values are the ones template.yaml sets (tests/integration/test_template.py checks that they agree).
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "emailflow")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "emailflow")
# Never reach a real AWS account, and never a local-mode server that a developer left exported in the shell.
for _name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"


@pytest.fixture(autouse=True)
def _fresh_metrics() -> Iterator[None]:
    """All ``Metrics()`` share one store: clear it around every test."""
    from aws_lambda_powertools import Metrics

    Metrics().clear_metrics()
    yield
    Metrics().clear_metrics()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The reliability figures of this run (fault cases, faults injected, messages lost, duplicates)."""
    from tests.support.faults import LEDGER

    for line in LEDGER.lines():
        terminalreporter.write_line(line)
