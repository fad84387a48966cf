"""The relay handler on moto, beyond the happy conversation: bytes, recipients, retries, guesses, faults."""

from __future__ import annotations

import base64
import json
import os
import random

import boto3
import pytest

from emailflow.config import get_settings
from emailflow.ports import RelayFault
from tests.support.mail import load_eml, new_message_id
from tests.support.relay_stack import RelayHarness

USER = "jane.doe@real-user.example"
OWNER = "owner@holiday-flats.example"


def _body(raw: bytes) -> bytes:
    return raw[raw.index(b"\r\n\r\n") + 4 :]


def _first_message(service_address: str) -> bytes:
    return load_eml("user_first_message.eml", {"service-placeholder@relay.example": service_address})


def test_relay_latin1_8bit_body_arrives_byte_exact(relay: RelayHarness) -> None:
    # Given a service and a Latin-1 message with an 8-bit body (not valid UTF-8)
    _, address = relay.register([OWNER], "Gîte du Lac")
    raw = load_eml("latin1_8bit.eml", {"service-placeholder@relay.example": address})

    # When it is relayed
    relay.deliver(raw, [address], "renee@boite-postale.example")

    # Then SES got the body's exact bytes, and the header block is ASCII
    [sent] = relay.sent()
    assert _body(sent.raw) == _body(raw)
    assert b"\xfb" in _body(sent.raw)
    assert sent.header_block.isascii()
    assert b"boite-postale.example" not in sent.header_block.lower()


def test_relay_large_attachment_passes_through_unchanged(relay: RelayHarness) -> None:
    # Given a message with a 6 MB base64 attachment
    _, address = relay.register([OWNER], "Big Files Ltd")
    payload = base64.encodebytes(random.Random(7).randbytes(6 * 1024 * 1024)).replace(b"\n", b"\r\n")
    raw = (f"From: Jane <{USER}>\r\nTo: {address}\r\nSubject: plans\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee plan\r\n"
           "--b1\r\nContent-Type: application/pdf; name=\"plan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           ).encode() + payload + b"--b1--\r\n"

    # When it is relayed
    relay.deliver(raw, [address], USER)

    # Then the body is byte-identical
    [sent] = relay.sent()
    assert _body(sent.raw) == _body(raw)


def test_relay_one_message_to_two_services_is_relayed_to_each(relay: RelayHarness) -> None:
    # Given two services and one message addressed to both
    _, first = relay.register([OWNER], "Flat A")
    _, second = relay.register(["other@lakeside.example"], "Flat B")
    raw = _first_message(first).replace(b"To: " + first.encode(), f"To: {first}, {second}".encode())

    # When SES delivers it with both relay recipients
    result = relay.deliver(raw, [first, second], USER)

    # Then each service gets its own copy, From a different user code
    assert [outcome["action"] for outcome in result["outcomes"]] == ["forwarded", "forwarded"]
    sent = relay.sent()
    assert sorted(mail.destinations[0] for mail in sent) == sorted([OWNER, "other@lakeside.example"])
    from_lines = {mail.parsed()["From"].addresses[0].addr_spec for mail in sent}
    assert len(from_lines) == 2


def test_relay_same_event_twice_sends_once(relay: RelayHarness) -> None:
    # Given a message that SES (or a Lambda retry) delivers twice with the same message id
    _, address = relay.register([OWNER], "Flat A")
    message_id = new_message_id()
    raw = _first_message(address)

    # When the handler runs twice for it
    first = relay.deliver(raw, [address], USER, message_id=message_id)
    second = relay.deliver(raw, [address], USER, message_id=message_id, store=False)

    # Then exactly one mail was sent and the second run reports a duplicate
    assert first["outcomes"][0]["action"] == "forwarded"
    assert second["outcomes"][0]["action"] == "duplicate"
    assert len(relay.sent()) == 1


def test_relay_guessed_code_costs_no_read_and_sends_nothing(relay: RelayHarness) -> None:
    # Given a guessed address (right format, wrong keyed tag) and NO stored object for the message
    relay.register([OWNER], "Flat A")
    guess = "service-abcdefghjkmnpqrs@relay.example"

    # When SES invokes the handler for it
    result = relay.deliver(b"never stored", [guess], "spammer@bulk.example", store=False)

    # Then it is rejected as an invalid code without touching S3 (the missing object would have raised)
    assert result["outcomes"] == [{"direction": None, "action": "rejected", "reason": "invalid_code",
                                   "ses_message_id": None}]
    assert relay.sent() == []


def test_relay_stranger_writing_to_user_code_is_rejected(relay: RelayHarness) -> None:
    # Given a conversation that gave the user a code
    _, address = relay.register([OWNER], "Flat A")
    relay.deliver(_first_message(address), [address], USER)
    user_address = relay.sent()[0].parsed()["Reply-To"].addresses[0].addr_spec

    # When someone who is not the service writes to the user's code
    raw = load_eml("service_reply.eml", {"user-placeholder@relay.example": user_address,
                                         "Owner@Holiday-Flats.example": "intruder@elsewhere.example"})
    result = relay.deliver(raw, [user_address], "intruder@elsewhere.example")

    # Then nothing reaches the user and the reason is recorded (the stranger gets a notice: see test_policy)
    assert result["outcomes"][0]["reason"] == "stranger"
    assert [mail.destinations[0] for mail in relay.sent()] == [OWNER, "intruder@elsewhere.example"]


def test_relay_missing_raw_mail_raises_for_retry(relay: RelayHarness) -> None:
    # Given a valid recipient but no object in S3 (the S3 action failed or the key is wrong)
    _, address = relay.register([OWNER], "Flat A")

    # When the handler runs, Then it raises a fault (Lambda retries, then parks the event in the DLQ)
    with pytest.raises(RelayFault):
        relay.deliver(b"", [address], USER, store=False)
    assert relay.sent() == []


def test_relay_send_uses_configuration_set_tags_and_explicit_envelope(relay: RelayHarness,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a service, and a recorder on the real SESv2 client's parameters (botocore event hook)
    _, address = relay.register([OWNER], "Flat A")
    calls: list[dict[str, object]] = []
    from emailflow.adapters.clients import sesv2_client

    sesv2_client().meta.events.register("provide-client-params.sesv2.SendEmail",
                                        lambda params, **_: calls.append(params))

    # When a first message is relayed
    relay.deliver(_first_message(address), [address], USER)

    # Then SES was asked to send under our configuration set, to the service only, with traceable tags
    [params] = calls
    assert params["ConfigurationSetName"] == get_settings().configuration_set
    assert params["Destination"] == {"ToAddresses": [OWNER]}
    tags = {tag["Name"]: tag["Value"] for tag in params["EmailTags"]}  # type: ignore[attr-defined]
    assert tags["direction"] == "to_service"
    assert tags["service"] == address.split("-", 1)[1].split("@")[0]
    assert len(tags["pair"]) == 16


def test_relay_emits_relayed_metric_with_direction(relay: RelayHarness, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a service
    _, address = relay.register([OWNER], "Flat A")
    capsys.readouterr()

    # When a first message is relayed
    relay.deliver(_first_message(address), [address], USER)

    # Then EMF lines carry MessagesRelayed with the Direction dimension and a new conversation
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    relayed = [line for line in lines if "MessagesRelayed" in line]
    assert relayed
    assert relayed[0]["Direction"] == "to_service"
    assert relayed[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == os.environ["POWERTOOLS_METRICS_NAMESPACE"]
    assert any("ConversationsStarted" in line for line in lines)


def test_relay_reads_the_object_the_s3_action_wrote(relay: RelayHarness) -> None:
    # Given a message stored under the configured prefix, as the receipt rule's S3 action does
    _, address = relay.register([OWNER], "Flat A")
    settings = get_settings()
    message_id = new_message_id()
    raw = _first_message(address)
    boto3.client("s3").put_object(Bucket=settings.inbound_bucket, Key=f"{settings.inbound_prefix}{message_id}",
                                  Body=raw)

    # When the event names that message id
    relay.deliver(raw, [address], USER, message_id=message_id, store=False)

    # Then that object was relayed
    assert _body(relay.sent()[0].raw) == _body(raw)
