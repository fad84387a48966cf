"""Typed access to the Lambda events the handlers receive.

Small frozen dataclasses instead of Powertools' data classes: those import ~100 ms of modules on every cold start
(measured here), more than this whole package, for three fields we read. The shapes follow
https://docs.aws.amazon.com/ses/latest/dg/receiving-email-action-lambda-event.html.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emailflow.ports import EventError


@dataclass(frozen=True, slots=True)
class Verdicts:
    """SES's receipt verdicts: ``PASS``, ``FAIL``, ``GRAY`` or ``PROCESSING_FAILED``; ``DISABLED`` when off."""

    spf: str = "GRAY"
    dkim: str = "GRAY"
    spam: str = "GRAY"
    virus: str = "GRAY"
    dmarc: str = "GRAY"


@dataclass(frozen=True, slots=True)
class InboundMail:
    """One message SES received for the relay domain: its id (the S3 object name) and the receipt facts."""

    message_id: str
    recipients: tuple[str, ...]
    """The recipients this receipt rule matched: the relay addresses, each handled on its own."""
    envelope_sender: str
    timestamp: str
    verdicts: Verdicts
    dmarc_policy: str = ""
    """The sender domain's DMARC policy (``NONE``/``QUARANTINE``/``REJECT``), present when DMARC failed."""


def _verdict(receipt: Mapping[str, Any], name: str) -> str:
    value = receipt.get(name) or {}
    return str(value.get("status", "GRAY")).upper() if isinstance(value, Mapping) else "GRAY"


def inbound_mails(event: Mapping[str, Any]) -> list[InboundMail]:
    """Every SES record of a receipt-rule Lambda event."""
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        raise EventError("not an SES receipt event: no Records")
    mails = []
    for record in records:
        if not isinstance(record, Mapping) or record.get("eventSource") != "aws:ses":
            raise EventError("not an SES receipt record")
        ses = record.get("ses") or {}
        mail, receipt = ses.get("mail") or {}, ses.get("receipt") or {}
        message_id = mail.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            raise EventError("SES record without mail.messageId")
        mails.append(
            InboundMail(
                message_id=message_id,
                recipients=tuple(str(address) for address in receipt.get("recipients") or ()),
                envelope_sender=str(mail.get("source") or ""),
                timestamp=str(mail.get("timestamp") or ""),
                verdicts=Verdicts(
                    spf=_verdict(receipt, "spfVerdict"),
                    dkim=_verdict(receipt, "dkimVerdict"),
                    spam=_verdict(receipt, "spamVerdict"),
                    virus=_verdict(receipt, "virusVerdict"),
                    dmarc=_verdict(receipt, "dmarcVerdict"),
                ),
                dmarc_policy=str(receipt.get("dmarcPolicy") or "").upper(),
            )
        )
    return mails
