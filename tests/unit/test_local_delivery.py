"""SES's outbound half in local mode: what reaches a Maildir, byte for byte, and where simulator mail goes."""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest

from emailflow.local.delivery import (
    MaildirDelivery,
    Outbox,
    is_simulator_address,
    maildir_name,
    read_maildir,
    ses_wire_bytes,
)
from emailflow.local.moto_ses import OutboundMail

SES_ID = "0100019a00000001-00000000-0000-0000-0000-000000000001-000000"
RELAYED = (b"From: Jane via emailflow <user-abc@relay.example>\r\nTo: owner@flats.example\r\n"
           b"Subject: Disponibilit\xe9\r\n\r\nBonjour, ao\xfbt ?\r\n")


def _mail(raw: bytes = RELAYED, *recipients: str) -> OutboundMail:
    return OutboundMail(ses_message_id=SES_ID, from_address="user-abc@relay.example",
                        recipients=recipients or ("owner@flats.example",), raw=raw)


def test_ses_wire_bytes_prepends_ses_message_id_and_keeps_every_other_byte() -> None:
    # Given a relayed message without a Message-ID (the relay leaves it to SES)

    # When SES sends it on
    wire = ses_wire_bytes(RELAYED, SES_ID, "email.amazonses.com")

    # Then SES's Message-ID comes first and the relay's bytes follow unchanged, 8-bit body included
    assert wire == f"Message-ID: <{SES_ID}@email.amazonses.com>\r\n".encode() + RELAYED


def test_ses_wire_bytes_replaces_a_folded_message_id_of_the_sender() -> None:
    # Given a message (an error mail) with its own Message-ID, folded over two lines, and LF line endings
    raw = b"From: no-reply@relay.example\nMessage-ID:\n <own@relay.example>\nSubject: x\n\nMessage-ID: body\n"

    # When SES sends it on
    wire = ses_wire_bytes(raw, SES_ID, "eu-west-1.amazonses.com")

    # Then only SES's id is left in the header block, the body's look-alike line is untouched
    assert wire == (f"Message-ID: <{SES_ID}@eu-west-1.amazonses.com>\n".encode()
                    + b"From: no-reply@relay.example\nSubject: x\n\nMessage-ID: body\n")


@pytest.mark.parametrize(("address", "name"), [
    ("Owner@Flats.Example", "owner@flats.example"),
    ("a/b@x.example", "a%2Fb@x.example"),
    ("..@x.example", "%2E.@x.example"),
    ("50%@x.example", "50%25@x.example"),
])
def test_maildir_name_is_lower_case_address_safe_as_one_path_segment(address: str, name: str) -> None:
    # Given an address, When its Maildir is named, Then it is the lower-case address, escaped where unsafe
    assert maildir_name(address) == name


def test_maildir_delivery_writes_exact_bytes_readable_by_mailbox_module(tmp_path: Path) -> None:
    # Given a Maildir delivery and two messages with CRLF line endings and 8-bit bodies
    delivery = MaildirDelivery(tmp_path)
    second = RELAYED.replace(b"Bonjour", b"Re-bonjour")

    # When both are delivered to a recipient written in mixed case
    delivery.deliver("Owner@Flats.Example", RELAYED)
    delivery.deliver("owner@flats.example", second)

    # Then one Maildir holds both, in delivery order, byte for byte, and Python's mailbox module reads it
    assert read_maildir(tmp_path, "OWNER@flats.example") == [RELAYED, second]
    box = mailbox.Maildir(tmp_path / "owner@flats.example", create=False)
    assert sorted(message.as_bytes().count(b"ao\xfbt") for message in box) == [1, 1]
    assert not any((tmp_path / "owner@flats.example" / "tmp").iterdir())


def test_outbox_delivers_after_drain_with_ses_message_id(tmp_path: Path) -> None:
    # Given an outbox delivering into Maildirs, and a message SES accepted
    outbox = Outbox(MaildirDelivery(tmp_path), lambda mail, recipient: None, "email.amazonses.com")
    outbox.put(_mail())

    # When nothing drains it, Then nothing is delivered yet; When it is drained, Then it arrives as SES sends it
    assert read_maildir(tmp_path, "owner@flats.example") == []
    assert outbox.drain() == 1
    assert read_maildir(tmp_path, "owner@flats.example") == [ses_wire_bytes(RELAYED, SES_ID, "email.amazonses.com")]


def test_outbox_sends_simulator_recipients_to_the_simulator_only() -> None:
    # Given an outbox, and a message to a simulator address and a real one
    delivered: list[str] = []
    simulated: list[str] = []
    outbox = Outbox(lambda recipient, data, mail: delivered.append(recipient),
                    lambda mail, recipient: simulated.append(recipient), "email.amazonses.com")
    outbox.put(_mail(RELAYED, "bounce@simulator.amazonses.com", "owner@flats.example"))

    # When drained
    outbox.drain()

    # Then the simulator got its recipient, the Maildir delivery only the real one
    assert (simulated, delivered) == (["bounce@simulator.amazonses.com"], ["owner@flats.example"])


def test_outbox_keeps_delivering_after_one_recipient_fails_and_drains_mail_sent_meanwhile() -> None:
    # Given a delivery that fails for one recipient, and a simulator whose handler sends another mail (a notice)
    delivered: list[str] = []

    def deliver(recipient: str, data: bytes, mail: OutboundMail) -> None:
        if recipient == "broken@flats.example":
            raise OSError("disk full")
        delivered.append(recipient)

    outbox: Outbox

    def simulator(mail: OutboundMail, recipient: str) -> None:
        outbox.put(_mail(RELAYED, "jane@real-user.example"))

    outbox = Outbox(deliver, simulator, "email.amazonses.com")
    outbox.put(_mail(RELAYED, "broken@flats.example", "bounce@simulator.amazonses.com", "owner@flats.example"))

    # When drained
    count = outbox.drain()

    # Then the others were delivered, including the mail the simulator caused
    assert delivered == ["owner@flats.example", "jane@real-user.example"]
    assert count == 3


@pytest.mark.parametrize(("address", "simulated"), [
    ("bounce@simulator.amazonses.com", True), ("Complaint+x@Simulator.AmazonSES.com", True),
    ("owner@amazonses.com", False), ("simulator.amazonses.com@example.com", False),
])
def test_is_simulator_address(address: str, simulated: bool) -> None:
    assert is_simulator_address(address) is simulated
