"""AWS calls per message, counted around the real handlers on moto: the budgets of docs/store.md, call for call.

Counted calls are deterministic (same message, same store state, same calls), so the exact list is asserted: a new
read, a write that is no longer folded into a transaction or a retried claim shows up here before it shows up on
the bill. ``benchmarks/bench_calls.py`` prints the same lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from emailflow import wiring
from tests.support.call_count import CALL_BUDGETS, Scenario, run_scenarios
from tests.support.relay_stack import RelayHarness

EXPECTED_CALLS: dict[str, list[str]] = {
    # user -> service: the claim's write also counts the per-sender budget (EMAILFLOW_SENDER_MESSAGES_PER_HOUR)
    "phase 0: first message of a new pair": [
        "S3.GetObject", "DynamoDB.BatchGetItem", "DynamoDB.TransactWriteItems", "SESv2.SendEmail",
        "DynamoDB.TransactWriteItems"],
    "duplicate: the same receipt event again": ["S3.GetObject", "DynamoDB.BatchGetItem"],
    "phase 2: service replies to a user code": [
        "S3.GetObject", "DynamoDB.UpdateItem", "DynamoDB.BatchGetItem", "SESv2.SendEmail",
        "DynamoDB.TransactWriteItems"],
    "duplicate reply: the same receipt event again": [
        "S3.GetObject", "DynamoDB.UpdateItem", "DynamoDB.BatchGetItem", "DynamoDB.UpdateItem"],
    "phase 4: user writes again (known pair)": [
        "S3.GetObject", "DynamoDB.BatchGetItem", "DynamoDB.TransactWriteItems", "SESv2.SendEmail",
        "DynamoDB.TransactWriteItems"],
    "delivery: SES delivered the first copy": ["DynamoDB.BatchGetItem", "DynamoDB.TransactWriteItems"],
    "complaint: the user marks the reply as spam": ["DynamoDB.BatchGetItem", "DynamoDB.TransactWriteItems"],
    "bounce: permanent, notice to the sender": [
        "DynamoDB.BatchGetItem", "DynamoDB.TransactWriteItems", "SESv2.SendEmail"],
}


@pytest.fixture
def scenarios(relay: RelayHarness, bounces_handler: Callable[[dict[str, Any], Any], dict[str, Any]]) -> dict[
        str, Scenario]:
    return {scenario.name: scenario for scenario in run_scenarios(relay, bounces_handler)}


def test_call_budget_each_step_makes_exactly_the_expected_calls(scenarios: dict[str, Scenario]) -> None:
    # Given a conversation relayed through the real handlers on moto, each step's calls recorded
    # When the calls are compared with the expected lists
    calls = {name: scenario.calls for name, scenario in scenarios.items()}

    # Then every step made exactly the expected calls, and none exceeds its budget
    assert calls == EXPECTED_CALLS
    assert {name: len(calls[name]) for name in CALL_BUDGETS} == {
        name: min(len(calls[name]), budget) for name, budget in CALL_BUDGETS.items()}


def test_call_budget_scenarios_reach_the_outcomes_they_are_meant_to_measure(scenarios: dict[str, Scenario]) -> None:
    # Given the recorded scenarios
    # When their outcomes are read
    outcomes = {name: scenario.outcome.get("reason") for name, scenario in scenarios.items()}

    # Then every relay step relayed, the duplicate was recognised, and the feedback was applied
    assert outcomes == {
        "phase 0: first message of a new pair": "relayed",
        "duplicate: the same receipt event again": "duplicate",
        "phase 2: service replies to a user code": "relayed",
        "duplicate reply: the same receipt event again": "duplicate",
        "phase 4: user writes again (known pair)": "relayed",
        "delivery: SES delivered the first copy": "delivery",
        "complaint: the user marks the reply as spam": "complaint",
        "bounce: permanent, notice to the sender": "bounce_permanent",
    }


def test_call_budget_without_sender_budget_a_known_pair_claims_with_one_put(
        relay: RelayHarness, bounces_handler: Callable[[dict[str, Any], Any], dict[str, Any]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the per-sender budget turned off (EMAILFLOW_SENDER_MESSAGES_PER_HOUR=0)
    monkeypatch.setenv("EMAILFLOW_SENDER_MESSAGES_PER_HOUR", "0")
    wiring.reset()

    # When the same conversation is relayed
    calls = {scenario.name: scenario.calls for scenario in run_scenarios(relay, bounces_handler)}

    # Then the same number of calls is made: a known pair's claim is a single PutItem instead of a transaction
    phase_4 = "phase 4: user writes again (known pair)"
    without_budget = {**EXPECTED_CALLS, phase_4: [
        "DynamoDB.PutItem" if index == 2 else call for index, call in enumerate(EXPECTED_CALLS[phase_4])]}
    assert calls == without_budget
