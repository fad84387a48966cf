"""SES's outbound half, locally: deliver what the relay sent into one Maildir per recipient, or to a smarthost.

The relay hands SES its exact bytes (``moto_ses`` takes them at the SESv2 call). SES then sends them on with one
change that matters to the recipient: it replaces the ``Message-ID`` with its own, ``<SES message id>@<region
domain>`` (https://docs.aws.amazon.com/ses/latest/dg/header-fields.html). The relay's threading depends on it (a
reply's ``In-Reply-To`` names that id), so local mode does the same, and nothing else: every other byte, the 8-bit
ones included, reaches the Maildir as the relay wrote it.

Deliveries wait in an ``Outbox`` until the relay invocation that sent them has returned, as SES delivers (and
publishes bounce events) after ``SendEmail`` has answered: a bounce handler must find the sent-message record the
relay writes after its send.
"""

from __future__ import annotations

import os
import queue
import re
import smtplib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emailflow.local.moto_ses import OutboundMail
from emailflow.message import split_message
from emailflow.observability import logger

SIMULATOR_DOMAIN = "simulator.amazonses.com"
"""SES's mailbox simulator (https://docs.aws.amazon.com/ses/latest/dg/send-an-email-from-console.html)."""
_MESSAGE_ID_FIELD = re.compile(rb"^message-id[ \t]*:[^\n]*\n(?:[ \t][^\n]*\n)*", re.IGNORECASE | re.MULTILINE)


def is_simulator_address(address: str) -> bool:
    return address.strip().rpartition("@")[2].lower().rstrip(".") == SIMULATOR_DOMAIN


def ses_wire_bytes(raw: bytes, ses_message_id: str, message_id_domain: str) -> bytes:
    """``raw`` as SES sends it on: its own ``Message-ID`` first, any Message-ID field of ``raw`` taken out, every
    other byte unchanged."""
    split = split_message(raw)
    header_block = raw[: split.body_start]
    own = _MESSAGE_ID_FIELD.search(header_block)
    if own is not None:
        raw = raw[: own.start()] + raw[own.end() :]
    return b"Message-ID: <%s@%s>%s%s" % (ses_message_id.encode("ascii"), message_id_domain.encode("ascii"),
                                         split.newline, raw)


def maildir_name(recipient: str) -> str:
    """The directory name of a recipient's Maildir: the address in lower case, made safe as one path segment.

    An address may legally contain ``/`` in its local part; such characters (and ``%`` itself, and a leading dot)
    are %-escaped so that no address can name a path outside the mailbox root.
    """
    name = recipient.strip().lower().replace("%", "%25").replace("/", "%2F").replace("\\", "%5C")
    name = name.replace("\x00", "%00")
    return "%2E" + name[1:] if name.startswith(".") else name or "%00"


class MaildirDelivery:
    """Writes messages into ``<root>/<recipient in lower case>/`` following the Maildir protocol (write in
    ``tmp/``, then rename into ``new/``: https://cr.yp.to/proto/maildir.html), so a reader never sees half a mail.

    Written by hand rather than with ``mailbox.Maildir.add``: that converts line endings to ``os.linesep``, which
    would change the bytes on a platform whose line ending is not ``\\n``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._counter = 0
        self._lock = threading.Lock()
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072") or "localhost"

    def path_of(self, recipient: str) -> Path:
        return self.root / maildir_name(recipient)

    def __call__(self, recipient: str, data: bytes, mail: OutboundMail) -> None:
        self.deliver(recipient, data)

    def deliver(self, recipient: str, data: bytes) -> Path:
        maildir = self.path_of(recipient)
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._lock:
            self._counter += 1
            counter = self._counter
        now = time.time()
        unique = f"{int(now)}.M{int(now * 1_000_000) % 1_000_000}P{os.getpid()}Q{counter}.{self._host}"
        staged = maildir / "tmp" / unique
        with staged.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        delivered = maildir / "new" / unique
        staged.rename(delivered)
        return delivered


def read_maildir(root: Path, recipient: str) -> list[bytes]:
    """Every message in a recipient's Maildir (``new/`` and ``cur/``), oldest delivery first."""
    maildir = root / maildir_name(recipient)
    files = [path for sub in ("new", "cur") if (maildir / sub).is_dir() for path in (maildir / sub).iterdir()]
    # Names start with the delivery time (seconds, then microseconds); the counter orders deliveries within one.
    return [path.read_bytes() for path in sorted(files, key=_delivery_order)]


def _delivery_order(path: Path) -> tuple[int, int, int]:
    match = re.match(r"(\d+)\.M(\d+)P\d+Q(\d+)\.", path.name)
    return (int(match[1]), int(match[2]), int(match[3])) if match else (0, 0, 0)


@dataclass(frozen=True)
class SmarthostDelivery:
    """Hands each message to a real mail server over SMTP, one transaction per recipient, as SES would.

    The envelope sender is SES's kind (``<SES message id>@amazonses.com``): bounces from the smarthost belong to SES,
    not to the relay's own addresses.
    """

    host: str
    port: int
    timeout: float = 30.0

    def __call__(self, recipient: str, data: bytes, mail: OutboundMail) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as client:
            client.sendmail(f"{mail.ses_message_id}@amazonses.com", [recipient], data)


Deliver = Callable[[str, bytes, OutboundMail], None]
"""Delivers one message to one recipient: (recipient, bytes on the wire, the mail as SES accepted it)."""
SimulatorCall = Callable[[OutboundMail, str], None]
"""What happens to mail for a mailbox-simulator address: (the mail, the simulator recipient)."""


class Outbox:
    """Mail SES accepted, waiting for delivery until the invocation that sent it has returned (``drain``)."""

    def __init__(self, deliver: Deliver, simulator: SimulatorCall, message_id_domain: str) -> None:
        self._deliver = deliver
        self._simulator = simulator
        self._message_id_domain = message_id_domain
        self._queue: queue.SimpleQueue[OutboundMail] = queue.SimpleQueue()

    def put(self, mail: OutboundMail) -> None:
        """The outbound listener: called by the emulated SES for every accepted raw send."""
        self._queue.put(mail)

    def drain(self) -> int:
        """Deliver everything waiting, including mail that deliveries themselves cause (a bounce handler's notice).
        Returns the number of messages delivered (simulator events included)."""
        delivered = 0
        while True:
            try:
                mail = self._queue.get_nowait()
            except queue.Empty:
                return delivered
            for recipient in mail.recipients:
                delivered += self._deliver_one(mail, recipient)

    def _deliver_one(self, mail: OutboundMail, recipient: str) -> int:
        try:
            if is_simulator_address(recipient):
                self._simulator(mail, recipient)
            else:
                self._deliver(recipient, ses_wire_bytes(mail.raw, mail.ses_message_id, self._message_id_domain),
                              mail)
        except Exception:  # one recipient's failure must not lose the others' mail; it is logged, as an MTA would
            logger.exception("local delivery failed", ses_message_id=mail.ses_message_id)
            return 0
        logger.info("local delivery", ses_message_id=mail.ses_message_id, simulator=is_simulator_address(recipient))
        return 1
