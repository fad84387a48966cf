"""Limits and abuse through the real handler on moto: the per-sender budget and the error-mail path."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from emailflow import wiring
from emailflow.codes import CodeKind
from emailflow.config import get_settings
from tests.support.mail import load_eml
from tests.support.relay_stack import RelayHarness

USER = "jane.doe@real-user.example"
FORGED = {"spf": "FAIL", "dkim": "FAIL"}


def _items(prefix: str) -> list[dict[str, Any]]:
    table = get_settings().table_name
    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    return [item for item in items if str(item["pk"]["S"]).startswith(prefix)]


def _first(address: str, sender: str = USER) -> bytes:
    return load_eml("user_first_message.eml", {"service-placeholder@relay.example": address,
                                               "jane.doe@real-user.example": sender})


def test_abuse_sender_over_hourly_budget_is_rate_limited(relay: RelayHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given EMAILFLOW_SENDER_MESSAGES_PER_HOUR=2 and three services
    monkeypatch.setenv("EMAILFLOW_SENDER_MESSAGES_PER_HOUR", "2")
    wiring.reset()
    addresses = [relay.register([f"owner{index}@flats.example"], f"Flat {index}")[1] for index in range(3)]

    # When one user writes to each of them
    results = [relay.deliver(_first(address), [address], USER) for address in addresses]

    # Then the third is rejected before sending, and the budget is one counter item with a TTL
    assert [result["outcomes"][0]["reason"] for result in results] == ["relayed", "relayed", "sender_rate_limited"]
    assert len(relay.sent()) == 2
    [budget] = _items("SENDER#")
    assert budget["count"] == {"N": "2"}
    assert int(budget["expires_at"]["N"]) > int(budget["sk"]["S"]) * 3600


def test_abuse_flood_of_forged_senders_sends_nothing_and_writes_nothing(relay: RelayHarness) -> None:
    # Given a genuine but unknown service code
    code = wiring.relay_context().codebook.new_code(CodeKind.SERVICE)
    address = f"service-{code}@relay.example"

    # When 25 different forged senders (SPF and DKIM fail) write to it
    results = [relay.deliver(_first(address, f"victim{index}@innocent.example"), [address],
                             f"victim{index}@innocent.example", verdicts=FORGED) for index in range(25)]

    # Then nobody is mailed, and the notice path cost no write at all
    assert {result["outcomes"][0]["reason"] for result in results} == {"unknown_code"}
    assert relay.sent() == []
    assert _items("NOTICE#") == []
    assert _items("DLV#") == []
