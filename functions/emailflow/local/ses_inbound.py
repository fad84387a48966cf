"""Play SES inbound locally: store the raw mail in the inbound bucket and build the receipt event SES would send
to the relay function (https://docs.aws.amazon.com/ses/latest/dg/receiving-email-action-lambda-event.html)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emailflow.message import InboundHeaders, split_message
from emailflow.observability import logger

PASS_VERDICTS: Mapping[str, str] = {"spam": "PASS", "virus": "PASS", "spf": "PASS", "dkim": "PASS", "dmarc": "PASS"}


def new_message_id() -> str:
    """An id shaped like SES's inbound message ids (40 lower-case alphanumerics)."""
    return secrets.token_hex(20)


def receipt_event(raw: bytes, message_id: str, recipients: Sequence[str], envelope_sender: str,
                  verdicts: Mapping[str, str] = PASS_VERDICTS) -> dict[str, Any]:
    """The Lambda event of a receipt rule whose S3 action stored ``raw`` under ``message_id``."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    split = split_message(raw)
    headers = InboundHeaders.read(split)
    header_list = [{"name": field.name.decode("ascii"), "value": field.text()} for field in split.fields]
    common: dict[str, Any] = {
        "returnPath": envelope_sender,
        "from": [field.text() for field in split.all("from")],
        "to": [field.text() for field in split.all("to")],
        "messageId": headers.message_id or "",
        "subject": headers.subject,
    }
    date = split.first("date")
    if date is not None:
        common["date"] = date.text()
    return {"Records": [{
        "eventSource": "aws:ses",
        "eventVersion": "1.0",
        "ses": {
            "mail": {
                "timestamp": now,
                "source": envelope_sender,
                "messageId": message_id,
                "destination": list(recipients),
                "headersTruncated": False,
                "headers": header_list,
                "commonHeaders": common,
            },
            "receipt": {
                "timestamp": now,
                "processingTimeMillis": 1,
                "recipients": list(recipients),
                **{f"{name}Verdict": {"status": status} for name, status in verdicts.items()},
                "action": {"type": "Lambda", "invocationType": "Event",
                           "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:emailflow-local-relay"},
            },
        },
    }]}


def ses_trace_headers(message_id: str, recipients: Sequence[str], envelope_sender: str,
                      verdicts: Mapping[str, str], newline: bytes = b"\r\n") -> bytes:
    """The fields SES writes above a message it stores: the envelope sender, its own Received hop (naming the
    recipient when there is one), and its verdicts. `emailflow redrive`/`replay` by message id read them back
    (``emailflow.stored``) as they would from a real bucket."""
    date = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    recipient = f" for {recipients[0]}" if len(recipients) == 1 else ""
    results = "; ".join(f"{name}={verdicts.get(name, 'GRAY').lower()}" for name in ("spf", "dkim", "dmarc"))
    lines = [f"Return-Path: <{envelope_sender}>",
             f"Received: from client.local by inbound-smtp.local.amazonaws.com with SMTP id {message_id}{recipient};",
             f" {date}",
             f"X-SES-Spam-Verdict: {verdicts.get('spam', 'GRAY')}",
             f"X-SES-Virus-Verdict: {verdicts.get('virus', 'GRAY')}",
             f"Authentication-Results: amazonses.com; {results}"]
    return newline.join(line.encode("utf-8", "replace") for line in lines) + newline


@dataclass(frozen=True)
class LocalInbound:
    """SES's inbound half: the receipt rule's S3 action (store the raw mail under its new message id), then its
    Lambda action (``lambda_action``, e.g. an in-process asynchronous invocation of the relay handler)."""

    bucket: str
    prefix: str
    lambda_action: Callable[[dict[str, Any]], Any]
    s3: Any
    """An S3 client of the emulator."""
    verdicts: Mapping[str, str] = field(default_factory=lambda: dict(PASS_VERDICTS))

    def receive(self, raw: bytes, recipients: Sequence[str], envelope_sender: str) -> str:
        """Store ``raw`` and run the Lambda action with one receipt event for all ``recipients``; returns the
        message id (the S3 object name)."""
        message_id = new_message_id()
        raw = ses_trace_headers(message_id, recipients, envelope_sender, self.verdicts,
                                split_message(raw).newline) + raw
        self.s3.put_object(Bucket=self.bucket, Key=f"{self.prefix}{message_id}", Body=raw)
        logger.info("inbound message stored", inbound_message_id=message_id, recipients=len(recipients))
        self.lambda_action(receipt_event(raw, message_id, recipients, envelope_sender, self.verdicts))
        return message_id
