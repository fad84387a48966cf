"""Error mails ("notices") to the sender of a message the relay did not deliver. Templated in one place.

A notice says what happened and what to do, in plain words, and reveals nothing about the other side: no real
address, no name beyond what the sender already wrote to. It is marked ``Auto-Submitted: auto-replied``
(RFC 3834) so that well-behaved autoresponders never answer it, carries the relay's loop marker, and threads under
the sender's own message (``In-Reply-To``). Whether a notice may be sent at all is the policy's decision.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.utils import formataddr, formatdate, make_msgid

from emailflow.outcomes import Reason
from emailflow.rewrite import TRACE_HEADER, sanitise_display_name

_MAX_SUBJECT = 120


@dataclass(frozen=True, slots=True)
class NoticeText:
    subject: str
    paragraphs: tuple[str, ...]


# {relay}: the relay address the sender wrote to; {brand}: the marketplace's name.
NOTICE_TEXTS: dict[Reason, NoticeText] = {
    Reason.UNKNOWN_CODE: NoticeText("Not delivered: address not in use", (
        "Your message to {relay} was not delivered: this address is not in use.",
        "If you found it on {brand}, open the listing on the website again and use the address shown there, or the "
        "contact form.",
    )),
    Reason.SERVICE_DISABLED: NoticeText("Not delivered: address no longer active", (
        "Your message to {relay} was not delivered: the listing or account behind this address is closed or "
        "paused and no longer receives messages through {brand}.",
        "Please look for a current listing on the website.",
    )),
    Reason.STRANGER: NoticeText("Not delivered: sent from an unregistered address", (
        "Your message to {relay} was not delivered because it was sent from an address that is not registered "
        "for this conversation.",
        "To answer, reply from the e-mail address registered with your {brand} account, or add this address to "
        "your account's e-mail settings and send the message again.",
    )),
    Reason.BCC: NoticeText("Not delivered: the relay address was in Bcc", (
        "Your message reached {relay} only as a blind copy (Bcc), so {brand} cannot tell which conversation it "
        "belongs to and did not deliver it.",
        "Please send it again with {relay} in the To field.",
    )),
    Reason.RECIPIENT_UNDELIVERABLE: NoticeText("Not delivered: the recipient's mailbox does not accept mail", (
        "Your message to {relay} was not delivered: earlier messages to this recipient bounced, their mailbox no "
        "longer accepts mail, so {brand} stopped sending to it.",
        "Please contact them another way, for example through the website.",
    )),
    Reason.BOUNCE_PERMANENT: NoticeText("Undeliverable", (
        "Your message to {name} could not be delivered: the recipient's mailbox does not accept mail (the "
        "address no longer exists or refuses messages). Sending it again will not help.",
        "Please contact them another way, for example through {brand}'s website.",
    )),
    Reason.BOUNCE_TRANSIENT: NoticeText("Delivery delayed or failed", (
        "Your message to {name} could not be delivered for now: the recipient's mailbox is full or their mail "
        "server is temporarily unavailable.",
        "You can send it again later.",
    )),
    Reason.OVERSIZE: NoticeText("Delivered as a download link: message too large", (
        "Your message to {relay} is larger than e-mail can carry onwards, so the recipient was sent a short "
        "message with a link to download it instead. The link expires after a while.",
        "To be sure it arrives, send large files as links (for example from a file-sharing service).",
    )),
}


@dataclass(frozen=True, slots=True)
class NoticeAddressing:
    brand: str
    noreply_address: str
    trace_value: str
    from_address: str | None = None
    """Send From this relay address instead of no-reply (bounce notices: the address the sender wrote to, so the
    notice threads with the conversation in their client)."""
    from_name: str | None = None


def build_notice(reason: Reason, *, to_address: str, relay_address: str, original_subject: str,
                 original_message_id: str | None, addressing: NoticeAddressing, now: float,
                 recipient_name: str = "") -> bytes:
    """The raw notice mail (CRLF) for ``reason``; ``KeyError`` if the reason has no notice.

    ``email.policy`` (with the header registry and parser it loads) is imported here, not at the top: both
    handlers import this module, few invocations write a notice, and that import is a sizeable part of a cold
    start (benchmarks/bench_coldstart.py).
    """
    from email.message import EmailMessage  # noqa: PLC0415 - deferred, see the docstring
    from email.policy import SMTP  # noqa: PLC0415 - deferred, see the docstring

    text = NOTICE_TEXTS[reason]
    name = sanitise_display_name(recipient_name) or "the recipient"
    values = {"relay": relay_address, "brand": addressing.brand, "name": name}
    paragraphs = [paragraph.format(**values) for paragraph in text.paragraphs]
    message = EmailMessage(policy=SMTP)
    sender_name = sanitise_display_name(addressing.from_name or addressing.brand)
    message["From"] = formataddr((sender_name, addressing.from_address or addressing.noreply_address))
    message["To"] = to_address
    quoted = sanitise_display_name(original_subject, _MAX_SUBJECT)
    message["Subject"] = f"{text.subject}: {quoted}" if quoted else text.subject
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = make_msgid(domain=addressing.noreply_address.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-replied"
    message[TRACE_HEADER] = addressing.trace_value
    if original_message_id:
        message["In-Reply-To"] = original_message_id
        message["References"] = original_message_id
    message.set_content("\n\n".join(paragraphs) + f"\n\n-- \n{addressing.brand}\n")
    body = "".join(f"<p>{html.escape(paragraph)}</p>" for paragraph in paragraphs)
    message.add_alternative(f"<!doctype html><html><body>{body}<p>&mdash; {html.escape(addressing.brand)}</p>"
                            "</body></html>", subtype="html")
    return message.as_bytes()
