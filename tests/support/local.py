"""Talking to local mode as its users do: compose mail, send it over SMTP, read the Maildirs."""

from __future__ import annotations

import email
import email.policy
import secrets
import smtplib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path

from emailflow.local.delivery import read_maildir
from emailflow.model import Service

# No folding: the stdlib would RFC 2047-encode a long SES Message-ID in In-Reply-To (no mail client does).
_POLICY = email.policy.SMTP.clone(max_line_length=998)

Register = Callable[..., tuple[Service, str]]
"""``register(owner, name, context=None) -> (service, public relay address)``."""


def unique_address(name: str, domain: str) -> str:
    """A fresh address per test: the local relay is shared by a whole test package."""
    return f"{name}-{secrets.token_hex(3)}@{domain}"


def compose(sender: tuple[str, str], to: str, subject: str, body: str, *, in_reply_to: str | None = None) -> bytes:
    message = EmailMessage(policy=_POLICY)
    message["From"] = formataddr(sender)
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender[1].rpartition("@")[2])
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(body)
    return message.as_bytes()


@dataclass(frozen=True)
class SmtpResult:
    """What one SMTP transaction got back: the refused recipients (address -> (code, text)), the DATA reply."""

    refused: dict[str, tuple[int, bytes]]
    data_reply: tuple[int, bytes] | None


def send(host: str, port: int, sender: str, recipients: Sequence[str], raw: bytes) -> SmtpResult:
    """One SMTP transaction with every recipient; DATA only if one was accepted (as ``smtplib.sendmail`` does)."""
    refused: dict[str, tuple[int, bytes]] = {}
    with smtplib.SMTP(host, port, timeout=60) as client:
        client.ehlo("client.example")
        code, text = client.mail(sender)
        assert code == 250, text
        for recipient in recipients:
            code, text = client.rcpt(recipient)
            if code != 250:
                refused[recipient] = (code, text)
        if len(refused) == len(recipients):
            client.rset()
            return SmtpResult(refused, None)
        return SmtpResult(refused, client.data(raw))


def mailbox(root: Path, address: str) -> list[bytes]:
    return read_maildir(root, address)


def parsed(raw: bytes) -> EmailMessage:
    message: EmailMessage = email.message_from_bytes(raw, policy=email.policy.default)
    return message


def body(raw: bytes) -> bytes:
    return raw[raw.index(b"\r\n\r\n") + 4 :]
