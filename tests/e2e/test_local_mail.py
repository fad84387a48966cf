"""Local mode over real SMTP on 127.0.0.1: what a mail client sends arrives, rewritten, in the other side's Maildir."""

from __future__ import annotations

import email.policy
import json
import mailbox as stdlib_mailbox
import os
import re
import smtplib
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import boto3
import pytest

from emailflow.local.delivery import maildir_name, ses_wire_bytes
from emailflow.local.lambda_context import LocalLambdaContext
from emailflow.local.lambda_runtime import invoke_async
from emailflow.local.moto_ses import sent_bytes, sent_messages
from emailflow.local.server import LocalRelay, dead_letter_destination
from emailflow.local.smtp import MAX_MESSAGE_BYTES
from tests.support.local import Register, SmtpResult, body, compose, mailbox, parsed, send, unique_address
from tests.support.mail import load_eml


def _send(relay: LocalRelay, sender: str, recipients: list[str], raw: bytes) -> SmtpResult:
    return send(relay.smtp_host, relay.smtp_port, sender, recipients, raw)


def _inbound_objects(relay: LocalRelay) -> set[str]:
    settings = relay.settings
    listing = boto3.client("s3").list_objects_v2(Bucket=settings.inbound_bucket, Prefix=settings.inbound_prefix)
    return {item["Key"] for item in listing.get("Contents", [])}


def _sent_record(relay: LocalRelay, delivered: bytes) -> bytes:
    """The exact bytes the relay handed SES for a delivered message (found by the SES id in its Message-ID)."""
    ses_id = parsed(delivered)["Message-ID"].strip("<>").partition("@")[0]
    [record] = [message for message in sent_messages(relay.stack.region) if message.id == ses_id]
    return sent_bytes(record.raw_data)


def _guessed(address: str) -> str:
    """The same relay address with the last character of its keyed tag changed: a guess that cannot pass."""
    local, _, domain = address.partition("@")
    return f"{local[:-1]}{'0' if local[-1] != '0' else '1'}@{domain}"


def test_local_conversation_phases_0_to_4_over_smtp_into_maildirs(local_relay: LocalRelay, register: Register,
                                                                   maildirs: Path) -> None:
    # Given a registered service and a user who has not written to it yet
    owner = unique_address("owner", "holiday-flats.example")
    user = unique_address("jane", "real-user.example")
    _, public = register(owner, "María García", {"listing": "flat-4711"})

    # When the user writes to the public address over SMTP (phase 0)
    first = compose(("Jane Doe", user), public, "Is the flat free in July?", "Hello,\n\nis it free in July?\n")
    result = _send(local_relay, user, [public], first)

    # Then the owner's Maildir holds it From a user code, addressed to the owner, body unchanged, no leak (phase 1)
    assert result.refused == {}
    assert result.data_reply is not None
    assert result.data_reply[0] == 250
    [to_owner] = mailbox(maildirs, owner)
    message = parsed(to_owner)
    user_code = message["Reply-To"].addresses[0].addr_spec
    assert re.fullmatch(r"user-[0-9a-z]{16}@relay\.example", user_code)
    assert message["From"].addresses[0].addr_spec == user_code
    assert message["From"].addresses[0].display_name == "Jane Doe via emailflow"
    assert message["To"].addresses[0].addr_spec == owner
    assert message["Subject"] == "Is the flat free in July?"
    assert body(to_owner) == body(first)
    assert user.encode() not in to_owner.lower()

    # When the owner replies to the user code, as a mail client would (phase 2)
    reply = compose(("María García", owner), user_code, "Re: Is the flat free in July?", "Yes, it is.\n",
                    in_reply_to=message["Message-ID"])
    _send(local_relay, owner, [user_code], reply)

    # Then the user receives it From the service's address, threaded under her own first message (phase 3)
    [to_user] = mailbox(maildirs, user)
    answer = parsed(to_user)
    assert answer["From"].addresses[0].addr_spec == public
    assert answer["From"].addresses[0].display_name == "María García via emailflow"
    assert answer["To"].addresses[0].addr_spec == user
    assert answer["In-Reply-To"] == parsed(first)["Message-ID"]
    assert body(to_user) == body(reply)
    assert owner.encode() not in to_user.lower()

    # When the user answers again to the public address (phase 4)
    again = compose(("Jane Doe", user), public, "Re: Is the flat free in July?", "We take it.\n",
                    in_reply_to=answer["Message-ID"])
    _send(local_relay, user, [public], again)

    # Then the owner receives it From the same user code, threaded under the owner's own reply
    first_copy, second_copy = mailbox(maildirs, owner)
    assert first_copy == to_owner
    follow_up = parsed(second_copy)
    assert follow_up["Reply-To"].addresses[0].addr_spec == user_code
    assert follow_up["In-Reply-To"] == parsed(reply)["Message-ID"]
    assert body(second_copy) == body(again)


def test_local_maildirs_are_readable_by_the_stdlib_mailbox_module(local_relay: LocalRelay, register: Register,
                                                                  maildirs: Path) -> None:
    # Given a message delivered to an owner
    owner = unique_address("Owner.Case", "holiday-flats.example")
    user = unique_address("jane", "real-user.example")
    _, public = register(owner, "Holiday Flats")
    _send(local_relay, user, [public], compose(("Jane", user), public, "Hello", "Hi!\n"))

    # When the owner's Maildir is opened with Python's mailbox module, under the address in lower case
    box = stdlib_mailbox.Maildir(maildirs / owner.lower(), create=False)

    # Then it holds the one message
    [message] = list(box)
    assert message["Subject"] == "Hello"
    assert maildir_name(owner) == owner.lower()


def test_local_guessed_code_refused_at_rcpt_with_nothing_stored(local_relay: LocalRelay, register: Register,
                                                                maildirs: Path) -> None:
    # Given a genuine service address and a guess that differs from it in one character of the keyed tag
    owner = unique_address("owner", "holiday-flats.example")
    _, public = register(owner, "Holiday Flats")
    guess = _guessed(public)
    user = unique_address("guesser", "spam.example")
    before = _inbound_objects(local_relay)

    # When mail is sent to the guess (and to a relay-domain address that is no code at all)
    result = _send(local_relay, user, [guess, "postmaster@relay.example"], compose(("G", user), guess, "Hi", "x\n"))

    # Then both are refused at RCPT with 550 5.1.1, nothing is stored and nothing is delivered
    assert {address: reply[0] for address, reply in result.refused.items()} == {
        guess: 550, "postmaster@relay.example": 550}
    assert all(reply[1].startswith(b"5.1.1") for reply in result.refused.values())
    assert result.data_reply is None
    assert _inbound_objects(local_relay) == before
    assert mailbox(maildirs, owner) == []


def test_local_recipient_outside_relay_domain_refused(local_relay: LocalRelay) -> None:
    # Given an address of another domain (the SMTP server is no open relay)
    user = unique_address("jane", "real-user.example")
    elsewhere = "friend@elsewhere.example"
    before = _inbound_objects(local_relay)

    # When mail is sent to it
    result = _send(local_relay, user, [elsewhere], compose(("Jane", user), elsewhere, "Hi", "x\n"))

    # Then the recipient is refused with 550 5.7.1 and nothing is stored
    assert result.refused[elsewhere][0] == 550
    assert result.refused[elsewhere][1].startswith(b"5.7.1")
    assert _inbound_objects(local_relay) == before


def test_local_multi_recipient_transaction_is_one_message_for_every_accepted_recipient(
        local_relay: LocalRelay, register: Register, maildirs: Path) -> None:
    # Given two services, and one message addressed to both and to a guessed code
    owners = [unique_address("first", "flats.example"), unique_address("second", "rooms.example")]
    publics = [register(owner, f"Owner {number}")[1] for number, owner in enumerate(owners)]
    guess = _guessed(publics[0])
    user = unique_address("jane", "real-user.example")
    raw = compose(("Jane Doe", user), ", ".join(publics), "Two flats", "Are both free?\n")
    before = _inbound_objects(local_relay)

    # When it is sent in one SMTP transaction
    result = _send(local_relay, user, [*publics, guess], raw)

    # Then the guess alone is refused, the message is stored once, and each owner receives one copy
    assert list(result.refused) == [guess]
    assert result.data_reply is not None
    stored_id = result.data_reply[1].decode().rpartition(" ")[2]
    assert _inbound_objects(local_relay) - before == {f"{local_relay.settings.inbound_prefix}{stored_id}"}
    for owner in owners:
        [copy] = mailbox(maildirs, owner)
        assert parsed(copy)["To"].addresses[0].addr_spec == owner
        assert body(copy) == body(raw)
        assert user.encode() not in copy.lower()


@pytest.mark.slow
def test_local_attachment_of_several_mb_arrives_byte_identical(local_relay: LocalRelay, register: Register,
                                                               maildirs: Path) -> None:
    # Given a message with a 6 MB attachment of random bytes
    owner = unique_address("owner", "holiday-flats.example")
    user = unique_address("jane", "real-user.example")
    _, public = register(owner, "Holiday Flats")
    payload = os.urandom(6_000_000)
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = f"Jane <{user}>"
    message["To"] = public
    message["Subject"] = "Floor plan"
    message["Message-ID"] = f"<plan.{os.getpid()}@real-user.example>"
    message.set_content("The floor plan is attached.\n")
    message.add_attachment(payload, maintype="application", subtype="octet-stream", filename="plan.bin")
    raw = message.as_bytes()

    # When it is sent over SMTP
    _send(local_relay, user, [public], raw)

    # Then the owner's copy has the body byte for byte, and the attachment decodes to the same bytes
    [copy] = mailbox(maildirs, owner)
    assert body(copy) == body(raw)
    [attachment] = list(parsed(copy).iter_attachments())
    assert attachment.get_content() == payload


def test_local_oversize_message_reaches_the_owner_as_a_link_that_downloads_it(local_relay: LocalRelay,
                                                                             register: Register,
                                                                             maildirs: Path) -> None:
    # Given a message SES accepts inbound (40 MiB) whose relayed copy would exceed what it sends (40,000,000 bytes)
    owner = unique_address("owner", "holiday-flats.example")
    user = unique_address("jane", "real-user.example")
    _, public = register(owner, "Holiday Flats")
    head = (f"From: Jane <{user}>\r\nTo: {public}\r\nSubject: All the photos\r\nMessage-ID: <photos.{os.getpid()}"
            "@real-user.example>\r\nMIME-Version: 1.0\r\nContent-Type: application/zip; name=photos.zip\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode()
    line = b"QUJD" * 19 + b"\r\n"
    payload = line * ((40_100_000 - len(head)) // len(line))
    raw = head + payload
    assert 40_000_000 < len(raw) <= MAX_MESSAGE_BYTES

    # When it is sent over SMTP
    _send(local_relay, user, [public], raw)

    # Then the owner gets a short mail with a link to the local downloads page, and not the message
    [link_mail] = mailbox(maildirs, owner)
    assert len(link_mail) < 10_000
    text = parsed(link_mail).get_body(("plain",))
    assert text is not None
    [link] = re.findall(re.escape(local_relay.download_url) + r"/\S+", str(text.get_content()))

    # When the owner opens it, Then it redirects to the kept copy, which is the whole message, relayed
    with urllib.request.urlopen(link, timeout=60) as download:  # noqa: S310 - loopback
        copy = download.read()
        disposition = download.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="message.eml"'
    assert body(copy) == payload
    assert parsed(copy)["From"].addresses[0].addr_spec == parsed(link_mail)["From"].addresses[0].addr_spec
    assert user.encode() not in copy[: copy.index(b"\r\n\r\n")]


def test_local_latin1_8bit_body_arrives_byte_exact(local_relay: LocalRelay, register: Register,
                                                   maildirs: Path) -> None:
    # Given a Latin-1 message with an 8-bit body (not UTF-8: moto on its own cannot send it)
    owner = unique_address("owner", "holiday-flats.example")
    _, public = register(owner, "Holiday Flats")
    raw = load_eml("latin1_8bit.eml", {"service-placeholder@relay.example": public})
    assert b"ao\xfbt" in body(raw)

    # When it is sent over SMTP
    _send(local_relay, "renee@boite-postale.example", [public], raw)

    # Then the Maildir copy is exactly what the relay sent, with SES's Message-ID, and its body is the original's
    [copy] = mailbox(maildirs, owner)
    sent = _sent_record(local_relay, copy)
    ses_id = parsed(copy)["Message-ID"].strip("<>").partition("@")[0]
    assert copy == ses_wire_bytes(sent, ses_id, local_relay.settings.ses_message_id_domain)
    assert body(copy) == body(raw)


def test_local_smtp_size_limit_is_advertised_and_enforced(local_relay: LocalRelay) -> None:
    # Given a client that asks the server for its extensions
    with smtplib.SMTP(local_relay.smtp_host, local_relay.smtp_port, timeout=30) as client:
        client.ehlo("client.example")

        # Then SIZE advertises SES's 40 MB limit, and a larger declared size is refused at MAIL
        assert int(client.esmtp_features["size"]) == MAX_MESSAGE_BYTES
        code, _ = client.mail("jane@real-user.example", [f"SIZE={MAX_MESSAGE_BYTES + 1}"])
        assert code == 552


def test_local_simulator_recipient_produces_ses_event_and_no_maildir(local_relay: LocalRelay, register: Register,
                                                                    maildirs: Path) -> None:
    # Given a service whose real address is SES's bounce simulator
    simulator = "bounce@simulator.amazonses.com"
    _, public = register(simulator, "Bouncing Owner")
    user = unique_address("jane", "real-user.example")
    already = len(local_relay.simulator_events)

    # When a user writes to it
    _send(local_relay, user, [public], compose(("Jane", user), public, "Hello?", "Anyone there?\n"))

    # Then nothing is delivered to a Maildir, and the SNS event of a permanent bounce was produced for that send
    assert not (maildirs / simulator).exists()
    [event] = local_relay.simulator_events[already:]
    record = json.loads(event["Records"][0]["Sns"]["Message"])
    assert record["eventType"] == "Bounce"
    assert record["bounce"]["bounceType"] == "Permanent"
    assert record["mail"]["destination"] == [simulator]
    assert record["mail"]["tags"]["direction"] == ["to_service"]


def test_local_failed_invocation_is_parked_in_the_template_dead_letter_queue(local_relay: LocalRelay) -> None:
    # Given the relay function's on-failure destination as local mode reads it from the template
    park = dead_letter_destination(local_relay.stack)
    assert park is not None
    event = {"Records": [{"eventSource": "aws:ses", "ses": {"mail": {"messageId": "stored-id"}}}]}

    def failing(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("DynamoDB unreachable")

    # When an invocation keeps failing
    invoke_async(failing, event, LocalLambdaContext(), retries=2, on_failure=park)

    # Then Lambda's failure record, with the event, is in the queue the stack names as the relay's DLQ
    queue_url = local_relay.outputs["RelayDeadLetterQueueUrl"]
    [message] = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    record = json.loads(message["Body"])
    assert record["requestPayload"] == event
    assert record["requestContext"]["approximateInvokeCount"] == 3


def test_local_bounce_via_simulator_reaches_the_original_sender(local_relay: LocalRelay, register: Register,
                                                               maildirs: Path) -> None:
    # Given a service whose real address is SES's bounce simulator
    _, public = register("bounce@simulator.amazonses.com", "Bouncing Owner")
    user = unique_address("jane", "real-user.example")

    # When a user writes to it over SMTP
    _send(local_relay, user, [public], compose(("Jane", user), public, "Hello?", "Anyone there?\n"))

    # Then the bounces function ran on SES's bounce event and the user's Maildir holds the notice, From the
    # service's relay address, saying that retrying will not help, with no real address of the other side
    [notice] = mailbox(maildirs, user)
    message = parsed(notice)
    assert message["From"].addresses[0].addr_spec == public
    assert message["Auto-Submitted"] == "auto-replied"
    text = message.get_body(("plain",))
    assert text is not None
    assert "will not help" in " ".join(str(text.get_content()).split())
    assert b"simulator.amazonses.com" not in notice

    # And the next message is refused at once, with a notice, and nothing goes to the dead address
    _send(local_relay, user, [public], compose(("Jane", user), public, "Again?", "Hello again\n"))
    assert len(mailbox(maildirs, user)) == 2
