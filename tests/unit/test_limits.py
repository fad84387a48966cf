"""Limits and abuse on fakes: the per-sender hourly budget, and the error-mail path that must not mail third parties."""

from __future__ import annotations

from dataclasses import replace

import pytest

from emailflow.codes import CodeKind
from emailflow.config import settings_from_environment
from emailflow.events import InboundMail, Verdicts
from emailflow.model import Service
from emailflow.outcomes import Action, Reason, RelayOutcome
from emailflow.relay import RelayContext, relay_inbound
from emailflow.services import register_service, service_address
from tests.support.fakes import DictMailStore, FakeClock, InMemoryDirectory, RecordingMailer, make_context
from tests.support.mail import load_eml, new_message_id

USER = "jane.doe@real-user.example"
OWNER = "owner@holiday-flats.example"
PASS = Verdicts(spf="PASS", dkim="PASS", spam="PASS", virus="PASS", dmarc="PASS")
FORGED = Verdicts(spf="FAIL", dkim="FAIL", spam="PASS", virus="PASS", dmarc="GRAY")


class Limits:
    """The relay on fakes with a small sender budget (3 an hour)."""

    def __init__(self, budget: int = 3) -> None:
        self.clock = FakeClock()
        self.directory = InMemoryDirectory(self.clock)
        self.mailer = RecordingMailer()
        self.store = DictMailStore()
        self.context: RelayContext = replace(
            make_context(directory=self.directory, mailer=self.mailer, mail_store=self.store, clock=self.clock),
            sender_messages_per_hour=budget)

    def service(self, owner: str = OWNER) -> tuple[Service, str]:
        service = register_service(self.directory, self.context.codebook, [owner], "Flat", clock=self.clock)
        return service, service_address(self.context.addressing, service)

    def write(self, recipient: str, sender: str = USER, verdicts: Verdicts = PASS,
              message_id: str | None = None) -> RelayOutcome:
        message_id = message_id or new_message_id()
        raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": recipient,
                                                  "jane.doe@real-user.example": sender})
        self.store.put(message_id, raw)
        mail = InboundMail(message_id=message_id, recipients=(recipient,), envelope_sender=sender,
                           timestamp="2026-11-25T10:00:00.000Z", verdicts=verdicts)
        [outcome] = relay_inbound(mail, self.context)
        return outcome


def test_relay_sender_over_hourly_budget_is_rate_limited_before_sending() -> None:
    # Given a budget of 3 messages an hour, and four services
    limits = Limits(budget=3)
    addresses = [limits.service(f"owner{index}@flats.example")[1] for index in range(4)]

    # When one user writes to all four within the hour
    outcomes = [limits.write(address) for address in addresses]

    # Then the fourth is rejected as sender_rate_limited, nothing is sent for it and no pair is created
    assert [outcome.reason for outcome in outcomes] == [Reason.RELAYED] * 3 + [Reason.SENDER_RATE_LIMITED]
    assert outcomes[3].action is Action.REJECTED
    assert limits.mailer.attempts == 3
    assert len(limits.directory.pairs) == 3


def test_relay_sender_budget_is_per_hour() -> None:
    # Given a user who spent the budget
    limits = Limits(budget=1)
    _, address = limits.service()
    limits.write(address)

    # When the next hour begins and they write again
    limits.clock.advance(3600)
    outcome = limits.write(address)

    # Then it is relayed
    assert outcome.reason is Reason.RELAYED


def test_relay_sender_budget_does_not_count_a_redelivered_message() -> None:
    # Given a budget of one message, used by a relayed message
    limits = Limits(budget=1)
    _, address = limits.service()
    message_id = new_message_id()
    limits.write(address, message_id=message_id)

    # When SES delivers the same message again
    outcome = limits.write(address, message_id=message_id)

    # Then it is a duplicate (not a rate-limit), and nothing more was counted
    assert outcome.action is Action.DUPLICATE
    assert sum(limits.directory.sender_messages.values()) == 1


def test_relay_forged_mail_cannot_spend_the_real_senders_budget() -> None:
    # Given forged mail in the user's name (SPF and DKIM fail) that spent its own budget
    limits = Limits(budget=2)
    _, address = limits.service()
    forged = [limits.write(address, verdicts=FORGED) for _ in range(3)]

    # When the real user writes (authenticated)
    outcome = limits.write(address)

    # Then the forgeries were limited, and the real user's mail is relayed
    assert forged[-1].reason is Reason.SENDER_RATE_LIMITED
    assert outcome.reason is Reason.RELAYED


def test_relay_mail_to_users_is_not_counted_against_a_budget() -> None:
    # Given a conversation and a budget of one message
    limits = Limits(budget=1)
    _, address = limits.service()
    limits.write(address)
    user_address = limits.mailer.sent[0].from_address

    # When the service answers three times
    outcomes = []
    for _ in range(3):
        message_id = new_message_id()
        limits.store.put(message_id, load_eml("service_reply.eml", {
            "user-placeholder@relay.example": user_address, "<ses-in-reply-to-placeholder>": "<x@y.example>"}))
        mail = InboundMail(message_id, (user_address,), OWNER, "2026-11-25T10:00:00.000Z", PASS)
        outcomes.extend(relay_inbound(mail, limits.context))

    # Then every answer is relayed
    assert [outcome.reason for outcome in outcomes] == [Reason.RELAYED] * 3


def test_relay_sender_budget_of_zero_turns_the_limit_off() -> None:
    # Given the limit turned off
    limits = Limits(budget=0)
    _, address = limits.service()

    # When a user writes five times
    outcomes = [limits.write(address) for _ in range(5)]

    # Then all are relayed and no budget item was written
    assert {outcome.reason for outcome in outcomes} == {Reason.RELAYED}
    assert limits.directory.sender_messages == {}


def test_relay_forged_sender_gets_no_notice() -> None:
    # Given a genuine but unknown code
    limits = Limits()
    unknown = limits.context.addressing.address(CodeKind.SERVICE, limits.context.codebook.new_code(CodeKind.SERVICE))

    # When mail with a forged From (SPF and DKIM fail) arrives for it
    outcome = limits.write(unknown, sender="victim@innocent.example", verdicts=FORGED)

    # Then it is rejected without a notice: no mail to the address that was forged
    assert (outcome.reason, outcome.notice_sent) == (Reason.UNKNOWN_CODE, False)
    assert limits.mailer.attempts == 0


def test_relay_flood_of_forged_senders_costs_no_notice_and_no_budget() -> None:
    # Given a genuine but unknown code
    limits = Limits()
    unknown = limits.context.addressing.address(CodeKind.SERVICE, limits.context.codebook.new_code(CodeKind.SERVICE))

    # When 200 different forged senders write to it
    outcomes = [limits.write(unknown, sender=f"victim{index}@innocent.example", verdicts=FORGED)
                for index in range(200)]

    # Then nobody is mailed and not even a notice budget is touched
    assert {(outcome.reason, outcome.notice_sent) for outcome in outcomes} == {(Reason.UNKNOWN_CODE, False)}
    assert limits.mailer.attempts == 0
    assert limits.directory.notices == {}


def test_relay_authenticated_sender_gets_at_most_the_hourly_notices() -> None:
    # Given a genuine but unknown code
    limits = Limits()
    unknown = limits.context.addressing.address(CodeKind.SERVICE, limits.context.codebook.new_code(CodeKind.SERVICE))

    # When one authenticated sender writes to it 20 times in an hour
    outcomes = [limits.write(unknown) for _ in range(20)]

    # Then only the first five get a notice (EMAILFLOW_NOTICES_PER_SENDER_PER_HOUR)
    assert [outcome.notice_sent for outcome in outcomes] == [True] * 5 + [False] * 15
    assert limits.mailer.attempts == 5


@pytest.mark.parametrize(("value", "expected"), [(None, 60), ("0", 0), ("500", 500)])
def test_settings_sender_messages_per_hour(value: str | None, expected: int) -> None:
    # Given the required variables and EMAILFLOW_SENDER_MESSAGES_PER_HOUR set or not
    environ = {"EMAILFLOW_DOMAIN": "relay.example", "EMAILFLOW_TABLE": "t", "EMAILFLOW_INBOUND_BUCKET": "b",
               "EMAILFLOW_CONFIGURATION_SET": "c", "EMAILFLOW_CODE_SECRET_ARN": "arn"}
    if value is not None:
        environ["EMAILFLOW_SENDER_MESSAGES_PER_HOUR"] = value

    # When read, Then the default is 60 and 0 (off) is allowed
    assert settings_from_environment(environ).sender_messages_per_hour == expected
