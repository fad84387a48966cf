"""The SMTP server in front of local mode: it plays SES's inbound endpoint (``inbound-smtp.<region>.amazonaws.com``).

It accepts recipients of the relay domain only, and among those only genuine relay addresses: a code that fails
its keyed tag is refused at RCPT with 550, like qmail's ``validrcptto``, so a guesser learns nothing and the relay
does no work. Accepted mail is handed, with every accepted recipient of the transaction, to a ``receive`` callable
(store in S3, invoke the relay function); the 250 reply comes once that has run, so a client that sees it can read
the result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from emailflow.addresses import RelayAddressing
from emailflow.codes import CodeBook
from emailflow.observability import logger

MAX_MESSAGE_BYTES = 40 * 1024 * 1024
"""SES receives messages up to 40 MB, headers included (https://docs.aws.amazon.com/ses/latest/dg/quotas.html).
Advertised with the SMTP SIZE extension (RFC 1870): a client learns the limit before it sends."""
OUTSIDE_DOMAIN = "550 5.7.1 Relaying denied: this server receives mail for its relay domain only"
NO_SUCH_MAILBOX = "550 5.1.1 Recipient address rejected: no such mailbox"

Receive = Callable[[bytes, Sequence[str], str], str]
"""(raw message, accepted recipients, envelope sender) -> the inbound message id it was stored under."""


class RecipientGate:
    """Decides at RCPT time, with arithmetic only (no I/O), whether a recipient may receive mail here."""

    def __init__(self, addressing: RelayAddressing, codebook: CodeBook) -> None:
        self._addressing = addressing
        self._codebook = codebook

    def refusal(self, address: str) -> str | None:
        """None when ``address`` is a genuine relay address; else the SMTP reply that refuses it."""
        if not self._addressing.is_relay_domain(address):
            return OUTSIDE_DOMAIN
        if self._addressing.parse(address, self._codebook) is None:
            return NO_SUCH_MAILBOX
        return None


class InboundHandler:
    """aiosmtpd handler: the RCPT gate, then the whole transaction handed to ``receive`` off the event loop."""

    def __init__(self, gate: RecipientGate, receive: Receive, executor: concurrent.futures.Executor) -> None:
        self._gate = gate
        self._receive = receive
        self._executor = executor

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        refusal = self._gate.refusal(address)
        if refusal is not None:
            logger.info("recipient refused", reply=refusal[:9])
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content
        if not isinstance(raw, bytes):  # decode_data=False gives bytes; anything else is a wiring fault
            return "451 4.3.0 Local mode misconfigured: message is not bytes"
        loop = asyncio.get_running_loop()
        try:
            message_id = await loop.run_in_executor(self._executor, self._receive, raw, list(envelope.rcpt_tos),
                                                    envelope.mail_from or "")
        except Exception:  # the mail was not stored: tell the client to try again, as SES would
            logger.exception("inbound message not stored")
            return "451 4.3.0 Temporary failure, try again later"
        return f"250 2.0.0 Ok: queued as {message_id}"


class LocalController(Controller):
    """aiosmtpd's threaded ``Controller``, made to work with port 0.

    Its start-up self-check connects to ``self.port``, which fails for port 0 (TOOLING.md); the server socket is
    bound by then, so the real port is read from it first. ``port`` then holds the port clients should use.
    """

    def _trigger_server(self) -> None:
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = int(self.server.sockets[0].getsockname()[1])
        super()._trigger_server()  # type: ignore[no-untyped-call]


def smtp_controller(handler: InboundHandler, host: str, port: int, hostname: str) -> LocalController:
    """A controller serving ``handler`` on ``host:port``: raw bytes (8-bit data arrives exact), SIZE advertised."""
    options: dict[str, Any] = {"data_size_limit": MAX_MESSAGE_BYTES, "decode_data": False,
                               "server_hostname": hostname, "ident": "emailflow local mode (SES inbound)"}
    return LocalController(handler, hostname=host, port=port, **options)
