"""Parsing SES feedback: both the event-publishing and the older notification format, and malformed input."""

from __future__ import annotations

import json

import pytest

from emailflow.feedback import FeedbackType, feedback_from_sns_event, parse_feedback
from emailflow.ports import EventError
from tests.support.feedback import ses_feedback, sns_event


def test_parse_feedback_bounce_reads_type_subtype_recipient_and_tags() -> None:
    # Given a permanent bounce as SES publishes it, When parsed
    feedback = parse_feedback(ses_feedback("Bounce", "ses-1", "Owner@Flats.example"))

    # Then the type, bounce kind, lower-cased recipient and our tags are there
    assert (feedback.type, feedback.ses_message_id, feedback.permanent) == (FeedbackType.BOUNCE, "ses-1", True)
    assert feedback.bounce_subtype == "General"
    assert feedback.recipients[0].address == "owner@flats.example"
    assert feedback.tags["direction"] == "to_service"


@pytest.mark.parametrize("kind", ["Bounce", "Complaint", "Delivery", "Reject"])
def test_parse_feedback_legacy_notification_type(kind: str) -> None:
    # Given the older notification format, Then it parses to the same type
    assert parse_feedback(ses_feedback(kind, "ses-1", "a@b.example", legacy=True)).type.value == kind


def test_parse_feedback_unknown_event_type_is_other() -> None:
    # Given an event type the relay does not act on (Open), Then it is OTHER
    document = ses_feedback("Delivery", "ses-1", "a@b.example")
    document["eventType"] = "Open"
    assert parse_feedback(document).type is FeedbackType.OTHER


def test_feedback_from_sns_event_reads_every_record() -> None:
    # Given an SNS event with two records, Then both are parsed in order
    event = sns_event(ses_feedback("Bounce", "ses-1", "a@b.example"), ses_feedback("Delivery", "ses-2", "c@d.example"))
    assert [item.ses_message_id for item in feedback_from_sns_event(event)] == ["ses-1", "ses-2"]


@pytest.mark.parametrize("event", [
    {},
    {"Records": []},
    {"Records": [{"Sns": {"Message": "not json"}}]},
    {"Records": [{"Sns": {"Message": json.dumps([1, 2])}}]},
    {"Records": [{"Sns": {"Message": json.dumps({"eventType": "Bounce", "mail": {}})}}]},
])
def test_feedback_from_sns_event_rejects_malformed_events(event: dict[str, object]) -> None:
    # Given a malformed event, Then parsing raises EventError (a wiring fault, retried then parked)
    with pytest.raises(EventError):
        feedback_from_sns_event(event)
