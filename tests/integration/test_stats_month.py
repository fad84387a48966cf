"""A scripted month of conversations through the real relay handler on moto, with a controlled clock: exact reply
rates, first-response percentiles and the EMF metrics emitted."""

from __future__ import annotations

import importlib
import json
from dataclasses import replace

import pytest

from emailflow import wiring
from emailflow.adapters.dynamodb import DynamoDirectory
from emailflow.config import get_settings
from emailflow.stats import service_stats
from tests.support.mail import load_eml, new_message_id
from tests.support.relay_stack import RelayHarness

DAY, HOUR, MINUTE = 86_400, 3600, 60
MONTH_START = 1_798_761_600  # 2027-01-01 00:00 UTC


class Clock:
    def __init__(self) -> None:
        self.now = float(MONTH_START)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(relay: RelayHarness, monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The relay handler runs on this clock (use case and store alike)."""
    relay_app = importlib.import_module("relay.app")
    fake = Clock()
    directory = DynamoDirectory(get_settings().table_name, clock=fake)
    context = replace(wiring.relay_context(), clock=fake, directory=directory)
    monkeypatch.setattr(relay_app, "relay_context", lambda: context)
    return fake


def test_stats_month_of_conversations_gives_exact_figures(relay: RelayHarness, clock: Clock,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # Given three services: one answers within an hour, one after days, one never (only its out-of-office)
    fast, fast_address = relay.register(["fast@owners.example"], "Fast Flats")
    slow, slow_address = relay.register(["slow@owners.example"], "Slow Flats")
    silent, silent_address = relay.register(["silent@owners.example"], "Silent Flats")
    delays: dict[str, list[int | None]] = {
        fast_address: [10 * MINUTE, 20 * MINUTE, 30 * MINUTE, 40 * MINUTE, 50 * MINUTE],
        slow_address: [2 * DAY, 3 * DAY, 4 * DAY, 5 * DAY, 6 * DAY],
        silent_address: [None] * 5,
    }
    owners = {fast_address: "fast@owners.example", slow_address: "slow@owners.example",
              silent_address: "silent@owners.example"}
    capsys.readouterr()

    # When, over a month, five users write to each service (one first message delivered twice by SES)
    events: list[tuple[int, str, str, int, int | None]] = []
    for day in range(5):
        for address, answers in delays.items():
            events.append((MONTH_START + day * DAY + sum(address.encode()) % HOUR, "user", address, day, answers[day]))
    for at, _, address, day, answer in sorted(events):
        clock.now = at
        user = f"user{day}@people.example"
        raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address,
                                                  "jane.doe@real-user.example": user})
        message_id = new_message_id()
        relay.deliver(raw, [address], user, message_id=message_id)
        if day == 0:
            relay.deliver(raw, [address], user, message_id=message_id, store=False)  # SES delivers twice
        to_service = relay.sent()[-1]
        user_code = to_service.parsed()["Reply-To"].addresses[0].addr_spec
        if address == silent_address:
            clock.now += MINUTE
            ooo = load_eml("out_of_office.eml", {"user-placeholder@relay.example": user_code,
                                                 "owner@holiday-flats.example": owners[address]})
            relay.deliver(ooo, [user_code], owners[address])
        if answer is not None:
            clock.now = at + answer
            reply = load_eml("service_reply.eml", {"user-placeholder@relay.example": user_code,
                                                   "Owner@Holiday-Flats.example": owners[address],
                                                   "<ses-in-reply-to-placeholder>": to_service.ses_header_message_id()})
            relay.deliver(reply, [user_code], owners[address])

    # Then the figures per service are exact (at the end of the month, nothing is pending any more)
    store = wiring.directory()
    end = MONTH_START + 31 * DAY
    figures = {code: service_stats(code, store.list_pairs(code), end) for code in (fast.code, slow.code, silent.code)}
    assert (figures[fast.code].reply_rate, figures[fast.code].first_response_median,
            figures[fast.code].first_response_p90) == (1.0, 30 * MINUTE, 50 * MINUTE)
    assert (figures[slow.code].reply_rate, figures[slow.code].first_response_median,
            figures[slow.code].first_response_p90) == (1.0, 4 * DAY, 6 * DAY)
    assert (figures[silent.code].reply_rate, figures[silent.code].unreplied, figures[silent.code].auto_replies) == (
        0.0, 5, 5)
    assert all(item.conversations == 5 for item in figures.values())

    # And the EMF metrics say the same: 15 conversations, 10 first replies with exact response times, 5 auto-replies
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    started = sum(len(line.get("ConversationsStarted", [])) for line in lines)
    first_replies = sum(len(line.get("FirstReplies", [])) for line in lines)
    response_times = sorted(value for line in lines for value in line.get("ResponseTime", []))
    auto_replies = sum(len(line.get("AutoReplies", [])) for line in lines)
    duplicates = sum(len(line.get("DuplicatesSkipped", [])) for line in lines)
    assert (started, first_replies, auto_replies, duplicates) == (15, 10, 5, 3)
    assert response_times == sorted(float(delay) for answers in delays.values() for delay in answers if delay)


def test_stats_off_platform_signal_counts_contact_details(relay: RelayHarness, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # Given the off-platform signal switched on, and a conversation
    monkeypatch.setenv("EMAILFLOW_OFF_PLATFORM_SIGNAL", "true")
    wiring.reset()
    service, address = relay.register(["owner@flats.example"], "Flats")
    clean = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address})
    relay.deliver(clean, [address], "jane.doe@real-user.example")
    capsys.readouterr()

    # When the user sends a phone number in the next message
    tempting = clean.replace(b"We are two adults and a dog.", b"Call me on +44 20 7946 0958 instead.")
    relay.deliver(tempting, [address], "jane.doe@real-user.example")

    # Then the message was relayed unchanged, counted once on the pair and in the metric
    assert b"+44 20 7946 0958" in relay.sent()[-1].raw
    [pair] = wiring.directory().list_pairs(service.code)
    assert (pair.user_messages, pair.contact_details_messages) == (2, 1)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert sum(len(line.get("ContactDetailsShared", [])) for line in lines) == 1
    assert service_stats(service.code, [pair], MONTH_START).contact_details == 1
