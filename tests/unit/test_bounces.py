"""The bounces use case on fakes: notices owed survive a failed send, and are never sent twice."""

from __future__ import annotations

import pytest

from emailflow.bounces import BouncesContext, handle_feedback
from emailflow.feedback import parse_feedback
from emailflow.model import FeedbackState
from emailflow.ports import SendFailed
from emailflow.relay import relay_inbound
from emailflow.services import register_service, service_address
from tests.support.fakes import (
    KEYRING,
    DictMailStore,
    FakeClock,
    InMemoryDirectory,
    RecordingMailer,
    inbound_mail,
    make_context,
)
from tests.support.feedback import ses_feedback
from tests.support.mail import load_eml

USER = "jane.doe@real-user.example"
OWNER = "owner@holiday-flats.example"


@pytest.fixture
def world() -> tuple[InMemoryDirectory, RecordingMailer, BouncesContext, str]:
    """A relayed first message (its SES id returned) and a bounces context sharing the fakes."""
    clock = FakeClock()
    directory, mailer, store = InMemoryDirectory(clock), RecordingMailer(), DictMailStore()
    relay = make_context(directory=directory, mailer=mailer, mail_store=store, clock=clock)
    service = register_service(directory, relay.codebook, [OWNER], "María García", clock=clock)
    address = service_address(relay.addressing, service)
    store.put("m1", load_eml("user_first_message.eml", {"service-placeholder@relay.example": address}))
    [outcome] = relay_inbound(inbound_mail("m1", [address], USER), relay)
    assert outcome.ses_message_id is not None
    context = BouncesContext(store=directory, mailer=mailer, addressing=relay.addressing, brand="emailflow",
                             keyring=KEYRING, clock=clock)
    return directory, mailer, context, outcome.ses_message_id


def test_handle_feedback_failed_notice_is_owed_and_sent_once_on_retry(
        world: tuple[InMemoryDirectory, RecordingMailer, BouncesContext, str]) -> None:
    # Given a permanent bounce whose notice cannot be sent the first time (SES throttled)
    directory, mailer, context, ses_id = world
    feedback = parse_feedback(ses_feedback("Bounce", ses_id, OWNER))
    mailer.fail_next(SendFailed("throttled"))

    # When it is handled, Then the failure propagates (Lambda retries) and the notice is recorded as owed
    with pytest.raises(SendFailed):
        handle_feedback(feedback, context)
    assert directory.feedback[ses_id]["bounce"] is FeedbackState.RECORDED
    assert OWNER in directory.health

    # When the retry runs, and then SNS delivers the event once more
    retried = handle_feedback(feedback, context)
    again = handle_feedback(feedback, context)

    # Then exactly one notice went out, and the address was marked undeliverable only once
    assert (retried.notice_sent, again.action.value) == (True, "duplicate")
    assert [sent.to_address for sent in mailer.sent] == [OWNER, USER]
    assert directory.health[OWNER].transient_bounces == 1
