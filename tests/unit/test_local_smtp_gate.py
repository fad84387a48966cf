"""Who local mode's SMTP server accepts at RCPT time: genuine relay addresses only, decided without any I/O."""

from __future__ import annotations

import pytest

from emailflow.addresses import RelayAddressing
from emailflow.codes import CodeBook, CodeKind
from emailflow.local.smtp import NO_SUCH_MAILBOX, OUTSIDE_DOMAIN, RecipientGate
from tests.support.fakes import KEYRING

CODEBOOK = CodeBook(KEYRING)
GATE = RecipientGate(RelayAddressing("relay.example"), CODEBOOK)
SERVICE = CODEBOOK.new_code(CodeKind.SERVICE)
USER = CODEBOOK.new_code(CodeKind.USER)


@pytest.mark.parametrize("address", [
    f"service-{SERVICE}@relay.example", f"user-{USER}@relay.example",
    f"Service-{SERVICE.upper()}+july@Relay.Example",
], ids=["service", "user", "case-and-tag"])
def test_gate_accepts_genuine_relay_addresses(address: str) -> None:
    assert GATE.refusal(address) is None


@pytest.mark.parametrize("address", [
    f"service-{SERVICE[:-1]}{'0' if SERVICE[-1] != '0' else '1'}@relay.example",  # one tag character off
    f"user-{SERVICE}@relay.example",  # a service code used as a user code: the tag is per kind
    "postmaster@relay.example",
    "service-@relay.example",
], ids=["guessed-code", "wrong-kind", "no-code", "empty-code"])
def test_gate_refuses_relay_domain_addresses_that_fail_the_keyed_check(address: str) -> None:
    assert GATE.refusal(address) == NO_SUCH_MAILBOX


@pytest.mark.parametrize("address", [f"service-{SERVICE}@elsewhere.example", "friend@gmail.example", "nobody"])
def test_gate_refuses_other_domains(address: str) -> None:
    assert GATE.refusal(address) == OUTSIDE_DOMAIN
