"""Receipt facts read back from stored mail, and the relay run dry (replay) or again (redrive) on fakes."""

from __future__ import annotations

from emailflow.addresses import RelayAddressing
from emailflow.codes import CodeBook, CodeKind
from emailflow.events import Verdicts
from emailflow.model import DeliveryState, ServiceStatus
from emailflow.outcomes import Action, Reason
from emailflow.replay import dry_run, redrive
from emailflow.services import register_service, service_address, set_service_status
from emailflow.stored import inbound_from_stored
from tests.support.fakes import DOMAIN, KEYRING, DictMailStore, InMemoryDirectory, RecordingMailer, make_context
from tests.support.mail import load_eml

USER = "jane.doe@real-user.example"
OWNER = "owner@holiday-flats.example"
ADDRESSING = RelayAddressing(DOMAIN)
SES_STAMP = (b"Return-Path: <bounces+123@real-user.example>\r\n"
             b"Received: from mail.real-user.example by inbound-smtp.us-east-1.amazonaws.com with SMTP id abc\r\n"
             b" for service-x@relay.example; Wed, 25 Nov 2026 10:00:00 +0000 (UTC)\r\n"
             b"X-SES-Spam-Verdict: PASS\r\n"
             b"X-SES-Virus-Verdict: FAIL\r\n"
             b"Authentication-Results: amazonses.com;\r\n spf=softfail (spfCheck: ...) smtp.mailfrom=real-user.example;"
             b"\r\n dkim=pass header.i=@real-user.example; dmarc=none header.from=real-user.example;\r\n")


def test_inbound_from_stored_reads_what_ses_wrote_above_the_message() -> None:
    # Given a message as SES stores it: its own fields above the sender's (one of them a forged verdict)
    raw = SES_STAMP + b"Authentication-Results: amazonses.com; spf=pass\r\n" \
        b"From: Jane <jane.doe@real-user.example>\r\nTo: service-y@relay.example\r\n\r\nbody\r\n"

    # When its receipt facts are read back
    mail = inbound_from_stored("m-1", raw, ADDRESSING)

    # Then they are SES's: envelope sender, the Received recipient, and the first amazonses.com verdicts
    assert mail.message_id == "m-1"
    assert mail.envelope_sender == "bounces+123@real-user.example"
    assert mail.recipients == ("service-x@relay.example",)
    assert mail.verdicts == Verdicts(spf="FAIL", dkim="PASS", spam="PASS", virus="FAIL", dmarc="GRAY")


def test_inbound_from_stored_without_ses_fields_is_unauthenticated_and_uses_to_and_cc() -> None:
    # Given a message with no SES fields, an outside Authentication-Results, and relay addresses in To and Cc
    raw = (b"Authentication-Results: mx.real-user.example; spf=pass; dkim=pass\r\n"
           b"From: Jane <jane.doe@real-user.example>\r\nTo: Flats <SERVICE-A@relay.example>, other@else.example\r\n"
           b"Cc: service-b@relay.example\r\n\r\nbody\r\n")

    # When read back
    mail = inbound_from_stored("m-2", raw, ADDRESSING)

    # Then nothing is taken on trust: verdicts are GRAY (no notice will go out), recipients the relay's own
    assert mail.verdicts == Verdicts()
    assert mail.envelope_sender == ""
    assert mail.recipients == ("service-a@relay.example", "service-b@relay.example")
    assert inbound_from_stored("m-2", raw, ADDRESSING, ["Service-C@relay.example"]).recipients == (
        "service-c@relay.example",)


def _stored_first_message(store: DictMailStore, address: str) -> bytes:
    raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address})
    store.put("m-1", raw)
    return raw


def test_dry_run_decides_like_the_relay_but_writes_and_sends_nothing() -> None:
    # Given a registered service and a first message to it stored in S3
    directory, mailer, store = InMemoryDirectory(), RecordingMailer(), DictMailStore()
    context = make_context(directory=directory, mailer=mailer, mail_store=store)
    service = register_service(directory, CodeBook(KEYRING), [OWNER], "María García")
    address = service_address(ADDRESSING, service)
    raw = _stored_first_message(store, address)

    # When it is replayed dry, from what SES wrote into the stored copy
    [result] = dry_run([inbound_from_stored("m-1", raw, ADDRESSING)], context)

    # Then the outcome and the rewritten header block are the relay's, and nothing was written or sent
    assert (result.outcome.action, result.outcome.reason, result.outcome.recipient) == (
        Action.FORWARDED, Reason.RELAYED, address)
    [would] = result.would_send
    assert would.to_address == OWNER
    assert CodeBook(KEYRING).verify(CodeKind.USER, would.from_address.split("@")[0].removeprefix("user-"))
    assert b"Subject: Is the flat free in July?" in would.header_block
    assert USER.encode() not in would.header_block.lower()
    assert would.size > len(would.header_block)
    assert mailer.sent == []
    assert directory.pairs == {}
    assert directory.deliveries == {}
    assert result.as_dict()["would_send"][0]["to"] == OWNER


def test_dry_run_of_mail_already_relayed_shows_the_decision_not_a_duplicate() -> None:
    # Given a message the relay already relayed
    directory, mailer, store = InMemoryDirectory(), RecordingMailer(), DictMailStore()
    context = make_context(directory=directory, mailer=mailer, mail_store=store)
    address = service_address(ADDRESSING, register_service(directory, CodeBook(KEYRING), [OWNER], "María García"))
    raw = _stored_first_message(store, address)
    mail = inbound_from_stored("m-1", raw, ADDRESSING)
    redrive([mail], context)
    sent = len(mailer.sent)

    # When it is replayed dry, and redriven for real once more
    [result] = dry_run([mail], context)
    [(message_id, again)] = redrive([mail], context)

    # Then the replay shows what the relay decides for it now; the redrive sends nothing a second time
    assert (result.outcome.action, result.outcome.reason) == (Action.FORWARDED, Reason.RELAYED)
    assert (message_id, again.action, again.reason) == ("m-1", Action.DUPLICATE, Reason.DUPLICATE)
    assert len(mailer.sent) == sent == 1
    [delivery] = directory.deliveries.values()
    assert delivery.state is DeliveryState.SENT


def test_dry_run_shows_the_error_mail_it_would_send() -> None:
    # Given a message to a disabled service, from a sender SES authenticated
    directory, store = InMemoryDirectory(), DictMailStore()
    context = make_context(directory=directory, mail_store=store)
    service = register_service(directory, CodeBook(KEYRING), [OWNER], "María García")
    set_service_status(directory, service.code, ServiceStatus.DISABLED)
    address = service_address(ADDRESSING, service)
    raw = SES_STAMP.replace(b"spf=softfail", b"spf=pass").replace(b"Virus-Verdict: FAIL", b"Virus-Verdict: PASS") \
        + _stored_first_message(store, address)
    store.put("m-1", raw)

    # When replayed
    [result] = dry_run([inbound_from_stored("m-1", raw, ADDRESSING, [address])], context)

    # Then the rejection comes with the notice that would go to the sender, and nothing went out
    assert (result.outcome.action, result.outcome.reason) == (Action.REJECTED, Reason.SERVICE_DISABLED)
    assert result.outcome.notice_sent
    [notice] = result.would_send
    assert notice.to_address == "jane.doe@real-user.example"
    assert b"Auto-Submitted: auto-replied" in notice.header_block
