"""Receipt facts of a message read back from the inbound bucket, for `emailflow redrive` and `emailflow replay`
by message id or time range. Pure: bytes in, ``InboundMail`` out.

The exact facts (envelope recipients, SPF/DKIM/spam verdicts) are in SES's receipt event, which the DLQ keeps:
redrive from the DLQ uses that. An object in S3 has only what SES wrote into the stored copy
(https://docs.aws.amazon.com/ses/latest/dg/receiving-email-concepts.html): ``Return-Path`` (the envelope sender),
``Received: ... by inbound-smtp... for <recipient>;``, ``Authentication-Results: amazonses.com; spf=..; dkim=..;
dmarc=..`` and ``X-SES-Spam-Verdict`` / ``X-SES-Virus-Verdict``. Whatever is missing is read conservatively: a
verdict SES did not write is ``GRAY`` (unauthenticated: the relay then sends that sender no notice), and the
recipients are SES's ``for`` address, else the relay addresses in To and Cc (a Bcc'd relay recipient cannot be
recovered from the message; the operator names it with ``--to``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses

from emailflow.addresses import RelayAddressing
from emailflow.events import InboundMail, Verdicts
from emailflow.message import split_message

_AUTH_RESULT = re.compile(r"\b(spf|dkim|dmarc)=([a-z]+)", re.IGNORECASE)
_RECEIVED_FOR = re.compile(r"\bfor\s+<?([^\s<>;]+@[^\s<>;]+)>?\s*;", re.IGNORECASE)
_ANGLE = re.compile(r"<([^<>]*)>")
_VERDICTS = {"pass": "PASS", "fail": "FAIL", "softfail": "FAIL", "hardfail": "FAIL", "none": "GRAY",
             "neutral": "GRAY", "temperror": "PROCESSING_FAILED", "permerror": "FAIL"}


@dataclass(frozen=True, slots=True)
class StoredMail:
    """One raw message in the inbound bucket: its SES message id and when SES stored it (``S3MailStore.list_stored``;
    here, not in the adapter, so that the handlers, which never list the bucket, do not create it at cold start)."""

    message_id: str
    stored_at: datetime
    size: int


def _auth_results(values: Sequence[str]) -> dict[str, str]:
    """Verdicts from SES's own ``Authentication-Results`` (``amazonses.com;``), never from one the sender wrote."""
    found: dict[str, str] = {}
    for value in values:
        if not value.strip().lower().startswith("amazonses.com"):
            continue
        for method, result in _AUTH_RESULT.findall(value):
            found.setdefault(method.lower(), _VERDICTS.get(result.lower(), "GRAY"))
    return found


def inbound_from_stored(message_id: str, raw: bytes, addressing: RelayAddressing,
                        recipients: Sequence[str] = (), timestamp: str = "") -> InboundMail:
    """The receipt facts of stored message ``message_id`` (its object name), as ``InboundMail``.

    ``recipients``: the relay recipients, when the operator knows them; otherwise they are read from the message.
    Only the header block is read.
    """
    split = split_message(raw)
    texts = {key: [field.text() for field in split.all(key)] for key in
             ("return-path", "received", "authentication-results", "x-ses-spam-verdict", "x-ses-virus-verdict",
              "to", "cc")}
    results = _auth_results(texts["authentication-results"])
    spam = texts["x-ses-spam-verdict"][0].strip().upper() if texts["x-ses-spam-verdict"] else "GRAY"
    virus = texts["x-ses-virus-verdict"][0].strip().upper() if texts["x-ses-virus-verdict"] else "GRAY"
    sender_match = _ANGLE.search(texts["return-path"][0]) if texts["return-path"] else None
    chosen = [address.strip().lower() for address in recipients]
    if not chosen:
        received_for = [match.lower() for value in texts["received"][:1] for match in _RECEIVED_FOR.findall(value)]
        chosen = [address for address in received_for if addressing.is_relay_domain(address)]
    if not chosen:
        chosen = [address.lower() for _, address in getaddresses(texts["to"] + texts["cc"])
                  if address and addressing.is_relay_domain(address)]
    return InboundMail(
        message_id=message_id,
        recipients=tuple(dict.fromkeys(chosen)),
        envelope_sender=sender_match.group(1) if sender_match else "",
        timestamp=timestamp,
        verdicts=Verdicts(spf=results.get("spf", "GRAY"), dkim=results.get("dkim", "GRAY"), spam=spam, virus=virus,
                          dmarc=results.get("dmarc", "GRAY")),
    )
