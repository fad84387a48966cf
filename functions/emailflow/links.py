"""Signed links: ``<subject>.<expiry>.<HMAC>`` tokens for the public pages a mail links to.

A link in a mail is opened by a browser, which cannot sign requests, so the token in it is the credential. Its
HMAC (SHA-256, truncated to 128 bits) is keyed with the relay's code secret and covers a *purpose* (``approve``,
``download``), the subject and the expiry, so a token for one page is worthless on another, an edited or guessed
token is refused without a store read, and an expired one is refused by its own expiry. Any key of the keyring
verifies: a rotation does not kill links already mailed (docs/operations.md).

The pages themselves answer in one way too (``html_page``, ``PAGE_HEADERS``): nothing a page answers is cached,
and the token in its URL is not passed on to other sites as a referrer.

Pure: no I/O. ``emailflow.senders`` and ``emailflow.approval_pages`` (new-sender approvals) and
``emailflow.downloads`` (oversize mail) use it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
from collections.abc import Sequence
from typing import Any

from emailflow.codes import Keyring

_TOKEN = re.compile(r"^(?P<subject>[A-Za-z0-9_-]{1,200})\.(?P<expires>\d{1,12})\.(?P<sig>[A-Za-z0-9_-]{22})$")


class TokenError(ValueError):
    """The link is not one of ours, was edited, or has expired."""


def _signature(key: bytes, purpose: str, subject: str, expires_at: int) -> str:
    digest = hmac.new(key, f"{purpose}:{subject}:{expires_at}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def signed_token(keyring: Keyring, purpose: str, subject: str, expires_at: int) -> str:
    """A token for ``subject`` (letters, digits, ``_`` and ``-``), valid for ``purpose`` until ``expires_at``."""
    if _TOKEN.match(f"{subject}.{expires_at}.{'A' * 22}") is None:
        raise ValueError(f"cannot sign {subject!r}: subjects are 1-200 letters, digits, '_' or '-'")
    return f"{subject}.{expires_at}.{_signature(keyring.current, purpose, subject, expires_at)}"


def read_signed_token(keyring: Keyring, purpose: str, token: str, now: int, what: str) -> str:
    """The subject of a genuine, unexpired token for ``purpose``; ``TokenError`` otherwise, worded for ``what``
    (e.g. "an approval link")."""
    match = _TOKEN.match(token.strip())
    if match is None:
        raise TokenError(f"not {what} of this relay")
    subject, expires_at = match["subject"], int(match["expires"])
    if not any(hmac.compare_digest(_signature(key, purpose, subject, expires_at), match["sig"])
               for key in keyring.all_keys()):
        raise TokenError(f"not {what} of this relay")
    if now >= expires_at:
        raise TokenError(f"this {what.partition(' ')[2]} has expired")
    return subject


PAGE_HEADERS = {"cache-control": "no-store", "referrer-policy": "no-referrer", "x-content-type-options": "nosniff"}
"""On every answer of a page a mail links to, redirects included."""


def html_page(status: int, title: str, paragraphs: Sequence[str], *, content_security_policy: str,
              form: str = "") -> dict[str, Any]:
    """A small HTML page as an API Gateway proxy result: the title, the paragraphs (escaped here) and ``form``
    (markup the caller built and escaped)."""
    body = "".join(f"<p>{html.escape(text)}</p>" for text in paragraphs) + form
    document = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
                f'content="width=device-width"><title>{html.escape(title)}</title></head><body '
                f'style="font-family:sans-serif;max-width:40em;margin:2em auto"><h1>{html.escape(title)}'
                f"</h1>{body}</body></html>")
    headers = {"content-type": "text/html; charset=utf-8", **PAGE_HEADERS,
               "content-security-policy": content_security_policy}
    return {"statusCode": status, "headers": headers, "isBase64Encoded": False, "body": document}
