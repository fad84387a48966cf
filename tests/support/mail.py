"""Loading test messages and events: real .eml files and the SES receipt event of the AWS documentation."""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EVENTS = Path(__file__).resolve().parents[1] / "events"


def load_eml(name: str, replacements: Mapping[str, str] | None = None, *, crlf: bool = True) -> bytes:
    """A fixture message, placeholders replaced, with CRLF line endings as SES stores mail (or LF as written)."""
    raw = (FIXTURES / name).read_bytes()
    for placeholder, value in (replacements or {}).items():
        raw = raw.replace(placeholder.encode(), value.encode())
    if crlf:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return raw


@cache
def _receipt_event() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / "ses_receipt.json").read_text())
    return document


def new_message_id() -> str:
    """An SES-like inbound message id (also the S3 object name)."""
    return secrets.token_hex(20)


def ses_receipt_event(message_id: str, recipients: Sequence[str], source: str,
                      verdicts: Mapping[str, str] | None = None, dmarc_policy: str | None = None) -> dict[str, Any]:
    """The SES receipt-rule Lambda event for one stored message."""
    event = copy.deepcopy(_receipt_event())
    ses = event["Records"][0]["ses"]
    ses["mail"]["messageId"] = message_id
    ses["mail"]["source"] = source
    ses["mail"]["destination"] = list(recipients)
    ses["receipt"]["recipients"] = list(recipients)
    for name, status in (verdicts or {}).items():
        ses["receipt"][f"{name}Verdict"] = {"status": status}
    if dmarc_policy is not None:
        ses["receipt"]["dmarcPolicy"] = dmarc_policy
    return event
