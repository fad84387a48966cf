"""The loop marker: a keyed value in ``X-Emailflow-Loop`` on every message the relay sends.

The value names this relay's domain, the time it was sent and an HMAC over both with the relay's secret, so the relay
can recognise its own mail coming back (a loop) and nobody without the secret can mint a marker that would make the
relay drop a message. Detection of loops is the policy's work; this module only issues and checks markers.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from emailflow.codes import Keyring

_MARKER = re.compile(r"^\s*(?P<domain>[a-z0-9.-]+); t=(?P<t>\d{1,12}); sig=(?P<sig>[0-9a-f]{20})\s*$")


def _signature(key: bytes, domain: str, issued_at: int) -> str:
    return hmac.new(key, f"loop:{domain}:{issued_at}".encode(), hashlib.sha256).hexdigest()[:20]


def loop_marker(keyring: Keyring, domain: str, issued_at: int) -> str:
    """The marker value for a message this relay sends at ``issued_at`` (Unix seconds)."""
    return f"{domain}; t={issued_at}; sig={_signature(keyring.current, domain, issued_at)}"


def is_own_marker(value: str, keyring: Keyring, domain: str) -> bool:
    """True when ``value`` is a marker this relay (with any of its keys) issued."""
    match = _MARKER.match(value.lower())
    if match is None or match["domain"] != domain:
        return False
    issued_at = int(match["t"])
    return any(hmac.compare_digest(_signature(key, domain, issued_at), match["sig"]) for key in keyring.all_keys())
