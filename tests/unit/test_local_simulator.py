"""The mailbox simulator in local mode: the SES event records and the SNS events a bounces function receives."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from emailflow.local.moto_ses import OutboundMail
from emailflow.local.simulator import SimulatorHook, simulator_records, simulator_scenario, sns_event

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
TOPIC = "arn:aws:sns:us-east-1:123456789012:emailflow-local-ses-events"


def _mail(recipient: str) -> OutboundMail:
    raw = (b"From: Jane via emailflow <user-abc@relay.example>\r\nTo: " + recipient.encode()
           + b"\r\nSubject: Is it free?\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nHello\r\n")
    return OutboundMail(ses_message_id="0100019a-ses-id-000000", from_address="user-abc@relay.example",
                        recipients=(recipient,), raw=raw, configuration_set="emailflow-configset",
                        tags={"direction": "to_service", "service": "svc"})


def _records(recipient: str) -> list[dict[str, Any]]:
    return simulator_records(_mail(recipient), recipient, account_id="123456789012", region="us-east-1", now=NOW)


@pytest.mark.parametrize(("address", "scenario"), [
    ("bounce@simulator.amazonses.com", "bounce"), ("Complaint+Listing42@Simulator.AmazonSES.com", "complaint"),
    ("ooto@simulator.amazonses.com", "ooto"), ("suppressionlist@simulator.amazonses.com", "suppressionlist"),
    ("success@simulator.amazonses.com", "success"), ("nobody@simulator.amazonses.com", None),
    ("bounce@flats.example", None),
])
def test_simulator_scenario_of_address(address: str, scenario: str | None) -> None:
    assert simulator_scenario(address) == scenario


def test_simulator_bounce_is_one_permanent_bounce_record_of_the_sent_message() -> None:
    # Given mail sent to the bounce simulator, When SES's records are built
    [record] = _records("bounce@simulator.amazonses.com")

    # Then it is a permanent bounce of that recipient, naming the sent message, its headers and its tags
    assert record["eventType"] == "Bounce"
    assert (record["bounce"]["bounceType"], record["bounce"]["bounceSubType"]) == ("Permanent", "General")
    assert record["bounce"]["bouncedRecipients"][0]["emailAddress"] == "bounce@simulator.amazonses.com"
    mail = record["mail"]
    assert mail["messageId"] == "0100019a-ses-id-000000"
    assert mail["destination"] == ["bounce@simulator.amazonses.com"]
    assert mail["commonHeaders"]["subject"] == "Is it free?"
    assert mail["tags"]["direction"] == ["to_service"]
    assert mail["tags"]["ses:configuration-set"] == ["emailflow-configset"]
    assert mail["timestamp"] == "2026-11-25T10:00:00.000Z"


def test_simulator_suppression_list_is_a_suppressed_permanent_bounce() -> None:
    [record] = _records("suppressionlist@simulator.amazonses.com")
    assert (record["bounce"]["bounceType"], record["bounce"]["bounceSubType"]) == ("Permanent", "Suppressed")


def test_simulator_complaint_is_a_delivery_then_a_complaint() -> None:
    delivery, complaint = _records("complaint@simulator.amazonses.com")
    assert (delivery["eventType"], complaint["eventType"]) == ("Delivery", "Complaint")
    assert complaint["complaint"]["complainedRecipients"] == [{"emailAddress": "complaint@simulator.amazonses.com"}]
    assert complaint["complaint"]["complaintFeedbackType"] == "abuse"


@pytest.mark.parametrize("address", ["success@simulator.amazonses.com", "ooto@simulator.amazonses.com"])
def test_simulator_success_and_ooto_are_a_delivery(address: str) -> None:
    [record] = _records(address)
    assert record["eventType"] == "Delivery"
    assert record["delivery"]["recipients"] == [address]


def test_sns_event_carries_the_record_as_a_json_string() -> None:
    # Given a record, When wrapped as SNS delivers it to a Lambda function
    [record] = _records("bounce@simulator.amazonses.com")
    event = sns_event(record, TOPIC, NOW)

    # Then Message is the record serialised (not an object, unlike moto's own simulator)
    [wrapped] = event["Records"]
    assert wrapped["EventSource"] == "aws:sns"
    assert wrapped["Sns"]["TopicArn"] == TOPIC
    assert json.loads(wrapped["Sns"]["Message"]) == record


def test_simulator_hook_runs_the_bounces_handler_with_each_event() -> None:
    # Given a hook with a bounces handler
    received: list[dict[str, Any]] = []
    hook = SimulatorHook(lambda event, context: received.append(event), None, topic_arn=TOPIC,
                         account_id="123456789012", region="us-east-1")

    # When mail to the complaint simulator is handed to it
    hook(_mail("complaint@simulator.amazonses.com"), "complaint@simulator.amazonses.com")

    # Then the handler ran once per record, and the hook kept the events
    assert [json.loads(event["Records"][0]["Sns"]["Message"])["eventType"] for event in received] == \
        ["Delivery", "Complaint"]
    assert hook.published == received


def test_simulator_hook_without_handler_only_records() -> None:
    # Given a hook without a bounces function (issue 5 adds it)
    hook = SimulatorHook(None, None, topic_arn=TOPIC, account_id="123456789012", region="us-east-1")

    # When mail to the bounce simulator is handed to it, Then the event is recorded
    hook(_mail("bounce@simulator.amazonses.com"), "bounce@simulator.amazonses.com")
    assert len(hook.published) == 1
