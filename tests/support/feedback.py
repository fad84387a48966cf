"""SES feedback events as SES publishes them (event-publishing JSON inside an SNS notification)."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from tests.support.mail import EVENTS


@cache
def _document(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def ses_feedback(kind: str, ses_message_id: str, recipient: str, *, direction: str = "to_service",
                 bounce_type: str = "Permanent", bounce_subtype: str = "General",
                 legacy: bool = False) -> dict[str, Any]:
    """One SES feedback document of ``kind`` (Bounce, Complaint, Delivery, Reject) about a message we sent."""
    document = copy.deepcopy(_document("ses_event_bounce.json"))
    mail = document["mail"]
    mail["messageId"] = ses_message_id
    mail["destination"] = [recipient]
    mail["tags"]["direction"] = [direction]
    bounce = document.pop("bounce")
    if kind == "Bounce":
        bounce["bounceType"], bounce["bounceSubType"] = bounce_type, bounce_subtype
        bounce["bouncedRecipients"][0]["emailAddress"] = recipient
        bounce["bouncedRecipients"][0]["diagnosticCode"] = f"smtp; 550 5.1.1 <{recipient}>: User unknown"
        document["bounce"] = bounce
    elif kind == "Complaint":
        document["complaint"] = {"complainedRecipients": [{"emailAddress": recipient}],
                                 "timestamp": "2026-11-25T10:05:00.000Z", "feedbackId": "complaint-1",
                                 "complaintFeedbackType": "abuse"}
    elif kind == "Delivery":
        document["delivery"] = {"timestamp": "2026-11-25T10:00:02.000Z", "processingTimeMillis": 812,
                                "recipients": [recipient], "smtpResponse": "250 2.0.0 OK",
                                "reportingMTA": "a8-70.smtp-out.amazonses.com"}
    elif kind == "Reject":
        document["reject"] = {"reason": "Bad content"}
    document.pop("eventType")
    if legacy:
        document["notificationType"] = kind
        mail.pop("tags")
    else:
        document["eventType"] = kind
    return document


def sns_event(*documents: dict[str, Any]) -> dict[str, Any]:
    """The SNS-to-Lambda event carrying ``documents`` (each a JSON string in ``Sns.Message``)."""
    envelope = _document("sns_envelope.json")
    records = []
    for document in documents:
        record = copy.deepcopy(envelope["Records"][0])
        record["Sns"]["Message"] = json.dumps(document)
        records.append(record)
    return {"Records": records}
