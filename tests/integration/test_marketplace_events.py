"""Marketplace events on EventBridge (optional): one per conversation step, never an address."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from emailflow import wiring
from tests.support.mail import load_eml
from tests.support.relay_stack import RelayHarness

USER = "jane.doe@real-user.example"
OWNER = "owner@holiday-flats.example"


@pytest.fixture
def event_queue(relay: RelayHarness, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bus with a rule that copies every emailflow event into an SQS queue we can read."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name="marketplace")
    queue_url = sqs.create_queue(QueueName="marketplace-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName="marketplace", EventPattern=json.dumps({"source": ["emailflow"]}))
    events.put_targets(Rule="all", EventBusName="marketplace", Targets=[{"Id": "q", "Arn": queue_arn}])
    monkeypatch.setenv("EMAILFLOW_EVENT_BUS", "marketplace")
    wiring.reset()
    return queue_url


def _events(queue_url: str) -> list[dict[str, Any]]:
    messages = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def test_marketplace_events_for_start_and_first_reply(relay: RelayHarness, event_queue: str) -> None:
    # Given a service, When a user writes and the service replies
    service, address = relay.register([OWNER], "María García")
    relay.deliver(load_eml("user_first_message.eml", {"service-placeholder@relay.example": address}), [address],
                  USER)
    to_service = relay.sent()[-1]
    user_address = to_service.parsed()["Reply-To"].addresses[0].addr_spec
    reply = load_eml("service_reply.eml", {"user-placeholder@relay.example": user_address,
                                           "<ses-in-reply-to-placeholder>": to_service.ses_header_message_id()})
    relay.deliver(reply, [user_address], OWNER)

    # Then the marketplace sees the conversation start, both messages and the first reply, by codes only
    events = _events(event_queue)
    kinds = sorted(event["detail-type"] for event in events)
    assert kinds == ["ConversationStarted", "FirstReply", "MessageRelayed", "MessageRelayed"]
    conversation = user_address.split("-", 1)[1].split("@")[0]
    for event in events:
        assert event["source"] == "emailflow"
        assert event["detail"]["service"] == service.code
        assert event["detail"]["conversation"] == conversation
        assert "@" not in json.dumps(event["detail"])
    first_reply = next(event for event in events if event["detail-type"] == "FirstReply")
    assert first_reply["detail"]["response_seconds"] >= 0


def test_marketplace_events_bounce_is_published_without_address(relay: RelayHarness, event_queue: str,
                                                               bounces_handler: Any) -> None:
    # Given a relayed first message whose delivery bounced for good
    from emailflow.local.lambda_context import LocalLambdaContext
    from tests.support.feedback import ses_feedback, sns_event

    service, address = relay.register([OWNER], "María García")
    relay.deliver(load_eml("user_first_message.eml", {"service-placeholder@relay.example": address}), [address],
                  USER)
    _events(event_queue)  # drain the relay's events

    # When the bounces function handles SES's bounce event
    bounces_handler(sns_event(ses_feedback("Bounce", relay.sent()[-1].ses_message_id, OWNER)), LocalLambdaContext())

    # Then the marketplace gets one Bounced event for the conversation, permanent, without any address
    [event] = _events(event_queue)
    assert (event["detail-type"], event["detail"]["service"], event["detail"]["permanent"]) == (
        "Bounced", service.code, True)
    assert "@" not in json.dumps(event["detail"])
