"""The pure mail policy: facts read from real header blocks, and the decision each rule takes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from emailflow.addresses import RelayAddressing
from emailflow.codes import CodeBook, CodeKind
from emailflow.events import InboundMail, Verdicts
from emailflow.message import InboundHeaders, split_message
from emailflow.model import Pair, Service, ServiceStatus
from emailflow.outcomes import Reason
from emailflow.policy import (
    MAX_RECEIVED_HOPS,
    Decision,
    Disposition,
    MailFacts,
    SpamPolicy,
    decide_service_mail,
    decide_user_mail,
    is_auto_generated,
    may_notify,
    read_facts,
    screen,
    tagged_subject,
)
from tests.support.fakes import KEYRING
from tests.support.mail import load_eml

ADDRESSING = RelayAddressing("relay.example")
CODEBOOK = CodeBook(KEYRING)
SERVICE_CODE = CODEBOOK.new_code(CodeKind.SERVICE)
SERVICE_ADDRESS = ADDRESSING.address(CodeKind.SERVICE, SERVICE_CODE)
PASS = Verdicts(spf="PASS", dkim="PASS", spam="PASS", virus="PASS", dmarc="PASS")


def _facts(raw: bytes, envelope: str = "jane.doe@real-user.example", verdicts: Verdicts = PASS,
           dmarc_policy: str = "") -> MailFacts:
    split = split_message(raw)
    mail = InboundMail("m1", (SERVICE_ADDRESS,), envelope, "", verdicts, dmarc_policy)
    return read_facts(mail, split, InboundHeaders.read(split), ADDRESSING, CODEBOOK, KEYRING)


def _first_message() -> bytes:
    return load_eml("user_first_message.eml", {"service-placeholder@relay.example": SERVICE_ADDRESS})


def test_read_facts_clean_first_message() -> None:
    # Given a clean, authenticated first message to a service code, When its facts are read
    facts = _facts(_first_message())

    # Then the sender is the normalised From, it is authenticated, open-addressed and not automatic
    assert facts.sender == "jane.doe@real-user.example"
    assert facts.authenticated
    assert facts.open_recipients == frozenset({SERVICE_ADDRESS})
    assert [facts.auto_generated, facts.delivery_report, facts.mailing_list, facts.own_marker] == [False] * 4
    assert screen(facts, SERVICE_ADDRESS, CodeKind.SERVICE, SpamPolicy.DROP) == Decision(Disposition.FORWARD,
                                                                                       Reason.RELAYED)


@pytest.mark.parametrize("header", [
    "Auto-Submitted: auto-replied", "Auto-Submitted: auto-generated; owner-email=x@y.example",
    "Precedence: bulk", "Precedence: junk", "Precedence: auto_reply", "X-Autoreply: yes", "X-Autorespond: 1",
    "X-Auto-Response-Suppress: All",
])
def test_is_auto_generated_recognises_each_signal(header: str) -> None:
    # Given a message carrying one automation signal, Then it is automatic
    raw = f"From: a@b.example\r\n{header}\r\n\r\nbody".encode()
    assert is_auto_generated(split_message(raw), "a@b.example")


def test_is_auto_generated_auto_submitted_no_is_a_person() -> None:
    # Given Auto-Submitted: no (RFC 3834: written by a person), Then it is not automatic
    raw = b"From: a@b.example\r\nAuto-Submitted: no\r\n\r\nbody"
    assert not is_auto_generated(split_message(raw), "a@b.example")


@pytest.mark.parametrize("envelope", ["", "<>", "MAILER-DAEMON@mx.example", "postmaster@mx.example"])
def test_is_auto_generated_null_and_daemon_senders(envelope: str) -> None:
    # Given a null or daemon envelope sender, Then the message is automatic
    assert is_auto_generated(split_message(b"From: a@b.example\r\n\r\nbody"), envelope)


def test_screen_bcc_notifies_a_person_and_drops_a_robot() -> None:
    # Given a message whose To names someone else
    raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": "friend@else.example"})
    person = _facts(raw)
    robot = replace(person, auto_generated=True)

    # Then a person is told, a robot is dropped, both as bcc
    assert screen(person, SERVICE_ADDRESS, CodeKind.SERVICE, SpamPolicy.DROP).disposition is Disposition.NOTIFY
    assert screen(robot, SERVICE_ADDRESS, CodeKind.SERVICE, SpamPolicy.DROP) == Decision(Disposition.DROP,
                                                                                        Reason.BCC)


def test_screen_order_virus_before_everything() -> None:
    # Given a message that is infected, looping and malformed at once
    facts = replace(_facts(_first_message()), virus=True, own_marker=True, from_problem=Reason.NO_FROM)

    # Then the virus verdict decides
    assert screen(facts, SERVICE_ADDRESS, CodeKind.SERVICE, SpamPolicy.DROP).reason is Reason.VIRUS


def test_screen_received_hops_over_limit_is_loop() -> None:
    # Given exactly the limit and one more
    facts = _facts(_first_message())

    # Then only more than the limit is a loop
    at_limit = replace(facts, received_hops=MAX_RECEIVED_HOPS)
    over = replace(facts, received_hops=MAX_RECEIVED_HOPS + 1)
    assert screen(at_limit, SERVICE_ADDRESS, CodeKind.SERVICE, SpamPolicy.DROP).reason is Reason.RELAYED
    assert screen(over, SERVICE_ADDRESS, CodeKind.SERVICE, SpamPolicy.DROP).reason is Reason.LOOP


def test_screen_spam_tag_policy_forwards_with_tag() -> None:
    # Given a spam verdict and the tag policy, Then the mail is forwarded with a subject tag
    facts = _facts(_first_message(), verdicts=replace(PASS, spam="FAIL"))
    decision = screen(facts, SERVICE_ADDRESS, CodeKind.SERVICE, SpamPolicy.TAG)
    assert (decision.disposition, decision.subject_tag) == (Disposition.FORWARD, "[SPAM]")
    assert screen(facts, SERVICE_ADDRESS, CodeKind.SERVICE, SpamPolicy.DROP).reason is Reason.SPAM


def test_screen_mailing_list_only_matters_for_service_codes() -> None:
    # Given list mail, Then it is dropped for a service code and not for a user code
    facts = replace(_facts(_first_message()), mailing_list=True)
    assert screen(facts, SERVICE_ADDRESS, CodeKind.SERVICE, SpamPolicy.DROP).reason is Reason.MAILING_LIST
    assert screen(facts, SERVICE_ADDRESS, CodeKind.USER, SpamPolicy.DROP).reason is Reason.RELAYED


def test_read_facts_dmarc_reject_needs_reject_policy() -> None:
    # Given DMARC failures with two policies, Then only p=reject counts
    failed = replace(PASS, dmarc="FAIL")
    assert _facts(_first_message(), verdicts=failed, dmarc_policy="REJECT").dmarc_reject
    assert not _facts(_first_message(), verdicts=failed, dmarc_policy="QUARANTINE").dmarc_reject


@pytest.mark.parametrize(("change", "allowed"), [
    ({}, True),
    ({"authenticated": False}, False),
    ({"auto_generated": True}, False),
    ({"delivery_report": True}, False),
    ({"from_relay_domain": True}, False),
    ({"sender": None}, False),
])
def test_may_notify_only_authenticated_people_outside_our_domain(change: dict[str, object], allowed: bool) -> None:
    # Given facts with one property changed, Then a notice is allowed only for an authenticated person
    facts = replace(_facts(_first_message()), **change)  # type: ignore[arg-type]
    assert may_notify(facts) is allowed


def test_decide_service_mail_stranger_and_spoofed() -> None:
    # Given a service with two registered addresses and a pair
    service = Service(SERVICE_CODE, ("owner@flats.example", "desk@flats.example"), "Flats")
    pair = Pair(SERVICE_CODE, "jane@real.example", "u" * 16, 0)
    facts = _facts(_first_message())

    # Then a registered address (any +tag, any case) passes, another is a stranger, a failing registered one spoofed
    assert decide_service_mail(replace(facts, sender="desk+july@flats.example"), pair, service) is None
    stranger = decide_service_mail(replace(facts, sender="colleague@flats.example"), pair, service)
    assert stranger == Decision(Disposition.NOTIFY, Reason.STRANGER)
    spoofed = decide_service_mail(replace(facts, sender="owner@flats.example", spf_and_dkim_failed=True), pair,
                                  service)
    assert spoofed == Decision(Disposition.DROP, Reason.SPOOFED)


def test_decide_user_mail_unknown_and_disabled() -> None:
    # Given no service, and a disabled one, Then the sender is to be told (or, if automatic, not)
    facts = _facts(_first_message())
    disabled = Service(SERVICE_CODE, ("owner@flats.example",), "Flats", ServiceStatus.DISABLED)
    assert decide_user_mail(facts, None) == Decision(Disposition.NOTIFY, Reason.UNKNOWN_CODE)
    assert decide_user_mail(facts, disabled) == Decision(Disposition.NOTIFY, Reason.SERVICE_DISABLED)
    assert decide_user_mail(replace(facts, auto_generated=True), None) == Decision(Disposition.DROP,
                                                                                   Reason.UNKNOWN_CODE)


def test_tagged_subject_adds_tag_once() -> None:
    # Given subjects with and without the tag, Then the tag is added once
    assert tagged_subject("Hello", "[SPAM]") == "[SPAM] Hello"
    assert tagged_subject("[spam] Hello", "[SPAM]") is None
    assert tagged_subject("Hello", None) is None
