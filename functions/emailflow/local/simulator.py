"""SES's mailbox simulator, locally: mail to ``bounce@``, ``complaint@``, ``ooto@``, ``suppressionlist@`` or
``success@simulator.amazonses.com`` is delivered nowhere; it produces the event records SES would publish through
the configuration set's SNS destination, wrapped in the SNS event a subscribed Lambda function receives.

Records follow https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html (event
publishing: ``eventType``, ``mail``, and one object named after the event), the SNS envelope
https://docs.aws.amazon.com/lambda/latest/dg/with-sns.html. moto's own simulator is not used: its canned
notification does not look like AWS's (TOOLING.md).

``SimulatorHook`` runs the bounces function (``bounces.app.handler``) with each event, so the whole bounce path
works locally (tests/e2e/test_local_mail.py). Not simulated: the out-of-office reply SES's ``ooto@`` address
sends back to the sender (only its Delivery event is produced).
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from emailflow.local.moto_ses import OutboundMail
from emailflow.message import split_message
from emailflow.observability import logger

SCENARIOS = ("success", "bounce", "ooto", "complaint", "suppressionlist")
_REPORTING_MTA = "dsn; simulator.amazonses.com"


def simulator_scenario(address: str) -> str | None:
    """``bounce`` for ``bounce+anything@simulator.amazonses.com`` and so on; None for any other address."""
    local, _, domain = address.strip().lower().rpartition("@")
    if domain.rstrip(".") != "simulator.amazonses.com":
        return None
    scenario = local.split("+", 1)[0]
    return scenario if scenario in SCENARIOS else None


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _feedback_id() -> str:
    return f"0100019a{secrets.token_hex(4)}-{uuid.uuid4()}-000000"


def mail_object(mail: OutboundMail, *, account_id: str, region: str, sent_at: datetime) -> dict[str, Any]:
    """The ``mail`` object of an event record: the sent message's id, envelope, headers and tags."""
    split = split_message(mail.raw)
    headers = [{"name": field.name.decode("ascii"), "value": field.text()} for field in split.fields]
    common: dict[str, Any] = {"from": [field.text() for field in split.all("from")],
                              "to": [field.text() for field in split.all("to")],
                              "messageId": mail.ses_message_id}
    subject = split.first("subject")
    if subject is not None:
        common["subject"] = subject.text()
    date = split.first("date")
    if date is not None:
        common["date"] = date.text()
    domain = mail.from_address.rpartition("@")[2]
    tags: dict[str, list[str]] = {name: [value] for name, value in mail.tags.items()}
    if mail.configuration_set:
        tags["ses:configuration-set"] = [mail.configuration_set]
    tags["ses:from-domain"] = [domain]
    return {
        "timestamp": _timestamp(sent_at),
        "source": mail.from_address,
        "sourceArn": f"arn:aws:ses:{region}:{account_id}:identity/{domain}",
        "sendingAccountId": account_id,
        "messageId": mail.ses_message_id,
        "destination": list(mail.recipients),
        "headersTruncated": False,
        "headers": headers,
        "commonHeaders": common,
        "tags": tags,
    }


def simulator_records(mail: OutboundMail, recipient: str, *, account_id: str, region: str,
                      now: datetime | None = None) -> list[dict[str, Any]]:
    """The event records SES publishes for one simulator recipient, in the order it publishes them."""
    scenario = simulator_scenario(recipient)
    if scenario is None:
        return []
    moment = now or datetime.now(UTC)
    base = mail_object(mail, account_id=account_id, region=region, sent_at=moment)
    delivery = {"eventType": "Delivery", "mail": base, "delivery": {
        "timestamp": _timestamp(moment), "processingTimeMillis": 1, "recipients": [recipient],
        "smtpResponse": "250 2.6.0 Message received", "reportingMTA": "simulator.amazonses.com"}}
    if scenario in ("bounce", "suppressionlist"):
        on_list = scenario == "suppressionlist"
        bounced = {"emailAddress": recipient, "action": "failed", "status": "5.1.1"}
        if not on_list:
            bounced["diagnosticCode"] = "smtp; 550 5.1.1 user unknown"
        return [{"eventType": "Bounce", "mail": base, "bounce": {
            "bounceType": "Permanent",
            # SES reports an address it refused to send to because of a suppression list as "Suppressed".
            "bounceSubType": "Suppressed" if on_list else "General",
            "bouncedRecipients": [bounced],
            "timestamp": _timestamp(moment),
            "feedbackId": _feedback_id(),
            **({} if on_list else {"reportingMTA": _REPORTING_MTA}),
        }}]
    if scenario == "complaint":
        return [delivery, {"eventType": "Complaint", "mail": base, "complaint": {
            "complainedRecipients": [{"emailAddress": recipient}],
            "timestamp": _timestamp(moment),
            "feedbackId": _feedback_id(),
            "userAgent": "Amazon SES Mailbox Simulator",
            "complaintFeedbackType": "abuse",
            "arrivalDate": _timestamp(moment),
        }}]
    return [delivery]  # success, ooto (the out-of-office answer itself is not simulated)


def sns_event(record: Mapping[str, Any], topic_arn: str, now: datetime | None = None) -> dict[str, Any]:
    """The Lambda event of an SNS subscription carrying one SES record (``Message`` is the record as a string)."""
    moment = now or datetime.now(UTC)
    return {"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": f"{topic_arn}:{uuid.uuid4()}",
        "Sns": {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Subject": None,
            "Message": json.dumps(record),
            "Timestamp": _timestamp(moment),
            "SignatureVersion": "1",
            "Signature": "local",
            "SigningCertUrl": "https://sns.invalid/local.pem",
            "UnsubscribeUrl": "https://sns.invalid/unsubscribe",
            "MessageAttributes": {},
        },
    }]}


Handler = Callable[[dict[str, Any], Any], Any]


class SimulatorHook:
    """What local mode does with mail for a simulator address: build SES's records and, when a bounces handler is
    given, run it with each SNS event (in-process, as local mode runs every function). Keeps every event it built
    (``published``), so tests and the demo can see them."""

    def __init__(self, handler: Handler | None, lambda_context: Any, *, topic_arn: str, account_id: str,
                 region: str) -> None:
        self._handler = handler
        self._context = lambda_context
        self._topic_arn = topic_arn
        self._account_id = account_id
        self._region = region
        self._lock = threading.Lock()
        self.published: list[dict[str, Any]] = []

    def __call__(self, mail: OutboundMail, recipient: str) -> None:
        for record in simulator_records(mail, recipient, account_id=self._account_id, region=self._region):
            event = sns_event(record, self._topic_arn)
            with self._lock:
                self.published.append(event)
            if self._handler is None:
                # No bounces function importable (a trimmed package): the event is kept in ``published`` only.
                logger.info("simulator event not handled: no bounces function", event_type=record["eventType"],
                            ses_message_id=mail.ses_message_id)
                continue
            self._handler(event, self._context)
