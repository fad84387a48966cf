"""Local mode's SMTP pieces on real sockets, without the relay: the server on port 0 and the smarthost delivery."""

from __future__ import annotations

import concurrent.futures
import smtplib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from emailflow.addresses import RelayAddressing
from emailflow.codes import CodeBook, CodeKind
from emailflow.local.delivery import SmarthostDelivery
from emailflow.local.moto_ses import OutboundMail
from emailflow.local.smtp import InboundHandler, LocalController, RecipientGate, smtp_controller
from tests.support.fakes import KEYRING

CODEBOOK = CodeBook(KEYRING)
SERVICE = f"service-{CODEBOOK.new_code(CodeKind.SERVICE)}@relay.example"
LATIN1 = b"Subject: ao\xfbt\r\nContent-Transfer-Encoding: 8bit\r\n\r\nch\xe9ri\r\n.leading dot\r\n"


@dataclass
class Received:
    calls: list[tuple[bytes, list[str], str]] = field(default_factory=list)
    fail: bool = False

    def __call__(self, raw: bytes, recipients: Sequence[str], sender: str) -> str:
        if self.fail:
            raise RuntimeError("S3 is down")
        self.calls.append((raw, list(recipients), sender))
        return "0123456789abcdef"


@pytest.fixture
def received() -> Received:
    return Received()


@pytest.fixture
def server(received: Received) -> Iterator[LocalController]:
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    handler = InboundHandler(RecipientGate(RelayAddressing("relay.example"), CODEBOOK), received, executor)
    controller = smtp_controller(handler, "127.0.0.1", 0, hostname="inbound-smtp.relay.example")
    controller.start()
    yield controller
    controller.stop()
    executor.shutdown()


def test_smtp_server_on_port_0_hands_over_exact_bytes_and_accepted_recipients(server: LocalController,
                                                                              received: Received) -> None:
    # Given the server started on port 0 (it learnt its real port)
    assert server.port != 0

    # When a client sends 8-bit mail with a dot-stuffed line to a genuine address and a guessed one
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        refused = client.sendmail("jane@real-user.example", [SERVICE, "service-0000000000000000@relay.example"],
                                  LATIN1)

    # Then the guess is refused, and the receiver got the exact bytes, the accepted recipient and the sender
    assert list(refused) == ["service-0000000000000000@relay.example"]
    assert received.calls == [(LATIN1, [SERVICE], "jane@real-user.example")]


def test_smtp_server_answers_451_when_the_message_cannot_be_stored(server: LocalController,
                                                                   received: Received) -> None:
    # Given a receiver that fails (S3 unreachable)
    received.fail = True

    # When a client sends, Then DATA gets a temporary failure: the client keeps the mail and tries later
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client, \
            pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("jane@real-user.example", [SERVICE], LATIN1)
    assert refused.value.smtp_code == 451


class Sink:
    """An SMTP server that keeps what it is sent (stands for the smarthost)."""

    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def test_smarthost_delivery_sends_exact_bytes_with_an_ses_envelope_sender() -> None:
    # Given a smarthost listening on a free port
    sink = Sink()
    controller = LocalController(sink, hostname="127.0.0.1", port=0, decode_data=False)
    controller.start()
    try:
        mail = OutboundMail(ses_message_id="0100019a-id-000000", from_address="user-abc@relay.example",
                            recipients=("owner@flats.example",), raw=LATIN1)

        # When a message is delivered through it
        SmarthostDelivery("127.0.0.1", controller.port)("owner@flats.example", LATIN1, mail)
    finally:
        controller.stop()

    # Then it received the bytes unchanged, for that recipient, from SES's kind of bounce address
    assert sink.envelopes == [("0100019a-id-000000@amazonses.com", ["owner@flats.example"], LATIN1)]
