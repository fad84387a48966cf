"""A new sender for a service: a reply to a user code from an address the service has not registered.

The relay never relays it (the policy's ``stranger`` rule: anyone who learnt a user code could otherwise write to
that user). When the message is one the policy would answer (SPF or DKIM pass, not automatic), it is **held**: the
raw mail stays in S3 and a ``HeldMessage`` record names it. The service's registered address (the first; mail to
it is already trusted) receives an approval mail with a one-time link that expires. Following the link shows a
confirmation page; confirming it (a POST, so that mail scanners that open links approve nothing) registers the
new address on the service and relays the held message. Until then the sender has the usual error mail.

Tokens are ``<hold id>.<expiry>.<HMAC>`` with the relay's code secret (any of its keys, so a rotation does not kill
pending links); the hold id is keyed and unguessable, the record is the one-time part (its state moves from
``pending`` to ``approved`` under a condition), the HMAC and expiry make a guessed or edited link fail without a
read.
One approval mail per (service, new address) at a time: further messages from the same address while one is
pending are kept with it (at most ``MAX_LATER_MESSAGES``: which stored mail, to whom, SES's verdicts) and relayed
when it is allowed; no further approval mail is sent for them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, make_msgid
from enum import StrEnum
from urllib.parse import quote

from emailflow.codes import Keyring
from emailflow.links import read_signed_token, signed_token
from emailflow.rewrite import TRACE_HEADER, sanitise_display_name

_PURPOSE = "approve"
"""What approval tokens are signed for (``emailflow.links``): a download token is worthless here."""


class HoldState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"


@dataclass(frozen=True, slots=True)
class HeldMessage:
    """A reply from an unregistered address, kept for the service to approve (the raw mail stays in S3)."""

    hold_id: str
    service_code: str
    sender: str
    """The new address (normalised): what approving registers on the service."""
    inbound_message_id: str
    recipient: str
    """The user-code relay address it was written to."""
    envelope_sender: str
    spf: str
    dkim: str
    spam: str
    """SES's verdicts on the held message: the relay decides again with them when it is allowed."""
    created_at: int
    expires_at: int
    state: HoldState = HoldState.PENDING
    sender_key: str = ""
    """The keyed digest of ``sender`` that the pending-approval guard is keyed by, kept so that allowing the sender
    finds the guard (and the messages kept with it) after a key rotation."""


MAX_LATER_MESSAGES = 9
"""Further messages from a new sender kept while its approval is pending (ten with the first): enough for a
colleague's replies over three days, bounded so that a pending approval cannot be used to pile up mail."""


def held_mail(held: HeldMessage) -> dict[str, str]:
    """What a message kept with a pending approval adds to it: which stored mail, to whom, with SES's verdicts."""
    return {"inbound_message_id": held.inbound_message_id, "recipient": held.recipient,
            "envelope_sender": held.envelope_sender, "spf": held.spf, "dkim": held.dkim, "spam": held.spam}


def kept_with(held: HeldMessage, mail: Mapping[str, str]) -> HeldMessage:
    """A message kept with ``held``'s approval (``held_mail``'s fields): ``held`` for that stored mail (same service,
    same sender)."""
    return replace(held, inbound_message_id=mail["inbound_message_id"], recipient=mail["recipient"],
                   envelope_sender=mail["envelope_sender"], spf=mail["spf"], dkim=mail["dkim"], spam=mail["spam"])


def hold_id_for(keyring: Keyring, inbound_message_id: str, recipient: str) -> str:
    """The hold of one (inbound message, relay recipient): the same on a Lambda retry, so a retry after a failed
    approval mail finds its own hold and sends the mail again, and unguessable without the secret."""
    digest = hmac.new(keyring.current, f"hold:{inbound_message_id}:{recipient}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def approval_token(keyring: Keyring, hold_id: str, expires_at: int) -> str:
    return signed_token(keyring, _PURPOSE, hold_id, expires_at)


def read_approval_token(keyring: Keyring, token: str, now: int) -> str:
    """The hold id of a genuine, unexpired token; ``TokenError`` otherwise (no store read needed to refuse)."""
    return read_signed_token(keyring, _PURPOSE, token, now, "an approval link")


def approval_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}?token={quote(token, safe='')}"


def approval_mail(*, to_address: str, new_sender: str, service_name: str, link: str, hours: int, brand: str,
                  noreply_address: str, trace_value: str, now: int) -> bytes:
    """The mail to the service's registered address: who wrote from where, and the link. It shows the new
    address to the service (whose message it presumably is) and nothing about the user."""
    paragraphs = [
        f"A reply to one of your {brand} conversations was sent from {new_sender}, an address that is not "
        f"registered for {service_name}. It was not delivered.",
        f"If this address is yours (a second mailbox, a colleague's), allow it: {link}",
        f"The link works once and expires in {hours} hours. Allowing it delivers the held reply and lets this "
        "address answer your conversations from now on.",
        "If you do not recognise the address, ignore this mail: nothing is delivered.",
    ]
    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr((sanitise_display_name(brand), noreply_address))
    message["To"] = to_address
    message["Subject"] = f"Allow {new_sender} to answer for {sanitise_display_name(service_name)}?"
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = make_msgid(domain=noreply_address.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    message[TRACE_HEADER] = trace_value
    message.set_content("\n\n".join(paragraphs) + f"\n\n-- \n{brand}\n")
    body = "".join(f"<p>{html.escape(paragraph)}</p>" for paragraph in paragraphs[:1]) + \
        f'<p><a href="{html.escape(link)}">Allow {html.escape(new_sender)}</a></p>' + \
        "".join(f"<p>{html.escape(paragraph)}</p>" for paragraph in paragraphs[2:])
    message.add_alternative(f"<!doctype html><html><body>{body}<p>&mdash; {html.escape(brand)}</p></body></html>",
                            subtype="html")
    return message.as_bytes()
