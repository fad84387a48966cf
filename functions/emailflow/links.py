"""Signed links: ``<subject>.<expiry>.<HMAC>`` tokens for the public pages a mail links to.

A link in a mail is opened by a browser, which cannot sign requests, so the token in it is the credential. Its
HMAC (SHA-256, truncated to 128 bits) is keyed with the relay's code secret and covers a *purpose* (``approve``,
``download``), the subject and the expiry, so a token for one page is worthless on another, an edited or guessed
token is refused without a store read, and an expired one is refused by its own expiry. Any key of the keyring
verifies: a rotation does not kill links already mailed (docs/operations.md).

Pure: no I/O. ``emailflow.senders`` (new-sender approvals) and ``emailflow.downloads`` (oversize mail) use it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

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
