"""The off-platform signal (optional, off by default): does a relayed message's text carry an e-mail address or a
phone number? Marketplaces watch for attempts to take the deal off the platform. The relay only *counts* such
messages (a metric and a per-conversation counter): it never blocks or alters them.

Bounded work: only text/plain and text/html parts are read, from at most ``MAX_SCANNED_BYTES`` of the message, and
at most ``MAX_TEXT_CHARS`` of decoded text; the relay's own addresses (masked quotes) do not count.
"""

from __future__ import annotations

import email
import email.policy
import re

from emailflow.ports import MailBytes, mail_prefix

MAX_SCANNED_BYTES = 256 * 1024
MAX_TEXT_CHARS = 64 * 1024
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w/=.-])\+?\d(?:[ ()./-]?\d){8,14}(?![\w/=-])")
"""9 to 15 digits (E.164 allows 15), optionally separated by one space, dot, dash, slash or parenthesis."""


def carries_contact_details(raw: MailBytes, relay_domain: str) -> bool:
    """True when a text part of ``raw`` shows an e-mail address (other than the relay's) or a phone number.

    ``raw`` may come in pieces (the rewritten header block and a view of the body): only the scanned prefix is
    copied out of them, never the whole message."""
    message = email.message_from_bytes(mail_prefix(raw, MAX_SCANNED_BYTES), policy=email.policy.compat32)
    budget = MAX_TEXT_CHARS
    for part in message.walk():
        if part.get_content_maintype() != "text" or part.get_content_subtype() not in ("plain", "html"):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        text = payload.decode(part.get_content_charset() or "utf-8", "replace")[:budget]
        budget -= len(text)
        if any(not match.group().lower().endswith("@" + relay_domain) and
               not match.group().lower().endswith("." + relay_domain) for match in _EMAIL.finditer(text)):
            return True
        if _PHONE.search(text):
            return True
        if budget <= 0:
            break
    return False
