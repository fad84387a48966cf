"""The bounce path on moto: relay a message, feed the SES feedback SES would publish for it through the bounces
handler, and check the notice, the state change, and what happens to the next message."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from emailflow.codes import CodeKind
from emailflow.local.lambda_context import LocalLambdaContext
from emailflow.wiring import directory
from tests.support.feedback import ses_feedback, sns_event
from tests.support.mail import load_eml
from tests.support.relay_stack import RelayHarness, SentMail

USER = "jane.doe@real-user.example"
OWNER = "owner@holiday-flats.example"
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _start(relay: RelayHarness) -> tuple[str, str, SentMail]:
    """A service and a first message relayed to it: (service address, user-code address, the mail SES sent)."""
    _, address = relay.register([OWNER], "María García")
    relay.deliver(load_eml("user_first_message.eml", {"service-placeholder@relay.example": address}), [address],
                  USER)
    sent = relay.sent()[-1]
    return address, sent.parsed()["Reply-To"].addresses[0].addr_spec, sent


def _feed(handler: Handler, *documents: dict[str, Any]) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = handler(sns_event(*documents), LocalLambdaContext())["outcomes"]
    return outcomes


def _text(mail: SentMail) -> str:
    body = mail.parsed().get_body(("plain",))
    assert body is not None
    return " ".join(str(body.get_content()).split())


def _decoded_parts(mail: SentMail) -> list[str]:
    """The decoded content of every text part of ``mail``: what a reader actually sees."""
    return [str(part.get_content()) for part in mail.parsed().walk() if part.get_content_maintype() == "text"]


def test_bounce_permanent_notifies_user_from_service_address(relay: RelayHarness, bounces_handler: Handler) -> None:
    # Given a first message relayed to the service
    address, _, to_service = _start(relay)

    # When SES reports a permanent bounce at the owner's mailbox
    outcomes = _feed(bounces_handler, ses_feedback("Bounce", to_service.ses_message_id, OWNER))

    # Then the user gets one notice, From the service address they wrote to, threaded, and revealing nothing
    assert outcomes == [{"type": "Bounce", "action": "recorded", "reason": "bounce_permanent", "notice_sent": True}]
    notice = relay.sent()[-1]
    parsed = notice.parsed()
    assert notice.destinations[0] == USER
    assert parsed["From"].addresses[0].addr_spec == address
    assert parsed["From"].addresses[0].display_name == "María García via emailflow"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["In-Reply-To"] == "<CAF1x2y3@mail.real-user.example>"
    assert "will not help" in _text(notice)
    assert OWNER not in notice.raw.decode().lower()
    # The SMTP diagnostic ("550 5.1.1 <owner@...>: User unknown") stays ours: checked on the decoded parts, since
    # the raw bytes carry a random MIME boundary that may contain any digits.
    assert not any("5.1.1" in text or "User unknown" in text for text in _decoded_parts(notice))


def test_bounce_permanent_stops_mail_to_that_address_and_tells_next_sender(relay: RelayHarness,
                                                                         bounces_handler: Handler) -> None:
    # Given the owner's address bounced for good
    address, _, to_service = _start(relay)
    _feed(bounces_handler, ses_feedback("Bounce", to_service.ses_message_id, OWNER))
    sent_before = len(relay.sent())

    # When the user writes again
    follow_up = load_eml("user_follow_up.eml", {"service-placeholder@relay.example": address,
                                                "<ses-in-reply-to-placeholder>": "<none@x.example>"})
    result = relay.deliver(follow_up, [address], USER)

    # Then nothing goes to the dead address and the user is told at once
    assert result["outcomes"][0]["reason"] == "recipient_undeliverable"
    new = relay.sent()[sent_before:]
    assert [mail.destinations[0] for mail in new] == [USER]
    assert "no longer accepts mail" in _text(new[0])


def test_bounce_permanent_falls_back_to_next_registered_address(relay: RelayHarness,
                                                               bounces_handler: Handler) -> None:
    # Given a service with two addresses whose first one bounced for good
    _, address = relay.register([OWNER, "desk@holiday-flats.example"], "María García")
    raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address})
    relay.deliver(raw, [address], USER)
    _feed(bounces_handler, ses_feedback("Bounce", relay.sent()[-1].ses_message_id, OWNER))

    # When the user writes again, Then the mail goes to the second address
    relay.deliver(raw, [address], USER)
    assert relay.sent()[-1].destinations[0] == "desk@holiday-flats.example"


def test_bounce_transient_notifies_retry_later_and_third_in_a_row_suppresses(relay: RelayHarness,
                                                                            bounces_handler: Handler) -> None:
    # Given three messages relayed to the service
    address, _, first = _start(relay)
    raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address})
    relay.deliver(raw, [address], USER)
    second = relay.sent()[-1]
    relay.deliver(raw, [address], USER)
    third = relay.sent()[-1]

    # When each bounces transiently (mailbox full)
    outcomes = [_feed(bounces_handler, ses_feedback("Bounce", mail.ses_message_id, OWNER, bounce_type="Transient",
                                                    bounce_subtype="MailboxFull"))[0]
                for mail in (first, second, third)]

    # Then the first two are transient ("try later"), the third makes the address undeliverable
    assert [outcome["reason"] for outcome in outcomes] == ["bounce_transient", "bounce_transient",
                                                           "bounce_permanent"]
    assert "send it again later" in _text(relay.sent()[-3])
    service = directory().list_services()[0]
    assert service.undeliverable[OWNER] == "transient_bounces:3"


def test_bounce_delivery_in_between_resets_the_transient_run(relay: RelayHarness, bounces_handler: Handler) -> None:
    # Given two transient bounces with a successful delivery between them
    address, _, first = _start(relay)
    raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address})
    sent = [first]
    for _ in range(3):
        relay.deliver(raw, [address], USER)
        sent.append(relay.sent()[-1])
    def transient(mail: SentMail) -> dict[str, Any]:
        return ses_feedback("Bounce", mail.ses_message_id, OWNER, bounce_type="Transient", bounce_subtype="MailboxFull")

    _feed(bounces_handler, transient(sent[0]))
    _feed(bounces_handler, transient(sent[1]))
    _feed(bounces_handler, ses_feedback("Delivery", sent[2].ses_message_id, OWNER))

    # When another transient bounce comes, Then it is still transient (the run restarted)
    outcome = _feed(bounces_handler, transient(sent[3]))[0]
    assert outcome["reason"] == "bounce_transient"


def test_bounce_suppression_list_counts_as_permanent(relay: RelayHarness, bounces_handler: Handler) -> None:
    # Given a message SES did not send because the address is on the account's suppression list
    _, _, to_service = _start(relay)

    # When SES reports it, Then the address is undeliverable at once
    outcome = _feed(bounces_handler, ses_feedback("Bounce", to_service.ses_message_id, OWNER,
                                                  bounce_type="Transient",
                                                  bounce_subtype="OnAccountSuppressionList"))[0]
    assert outcome["reason"] == "bounce_permanent"
    assert OWNER in directory().list_services()[0].undeliverable


def test_bounce_at_user_mailbox_notifies_service_from_user_code(relay: RelayHarness,
                                                               bounces_handler: Handler) -> None:
    # Given a conversation in which the service's reply was relayed to the user
    _, user_address, to_service = _start(relay)
    reply = load_eml("service_reply.eml", {"user-placeholder@relay.example": user_address,
                                           "<ses-in-reply-to-placeholder>": to_service.ses_header_message_id()})
    relay.deliver(reply, [user_address], OWNER)
    to_user = relay.sent()[-1]

    # When the user's mailbox bounces it for good
    _feed(bounces_handler, ses_feedback("Bounce", to_user.ses_message_id, USER, direction="to_user"))

    # Then the owner is told, From the user code, without the user's address
    notice = relay.sent()[-1]
    assert notice.destinations[0] == OWNER
    assert notice.parsed()["From"].addresses[0].addr_spec == user_address
    assert USER not in notice.raw.decode().lower()
    assert "the recipient" in _text(notice)

    # And the next reply is not sent to the dead address; the owner is told at once
    result = relay.deliver(reply, [user_address], OWNER)
    assert result["outcomes"][0]["reason"] == "recipient_undeliverable"
    assert relay.sent()[-1].destinations[0] == OWNER


def test_bounce_same_event_twice_sends_one_notice(relay: RelayHarness, bounces_handler: Handler) -> None:
    # Given a bounce event that SNS delivers twice
    _, _, to_service = _start(relay)
    event = ses_feedback("Bounce", to_service.ses_message_id, OWNER)

    # When both deliveries are handled
    first, second = _feed(bounces_handler, event), _feed(bounces_handler, event)

    # Then one notice was sent and the second is a duplicate
    assert (first[0]["action"], second[0]["action"]) == ("recorded", "duplicate")
    assert len(relay.sent()) == 2


def test_bounce_of_our_own_notice_is_never_answered(relay: RelayHarness, bounces_handler: Handler) -> None:
    # Given a notice the relay sent, When it bounces
    outcome = _feed(bounces_handler, ses_feedback("Bounce", "notice-ses-id", USER, direction="notice"))[0]

    # Then it is ignored: no notice about a notice
    assert (outcome["action"], outcome["reason"]) == ("ignored", "own_notice")
    assert relay.sent() == []


def test_bounce_unknown_message_is_ignored(relay: RelayHarness, bounces_handler: Handler) -> None:
    # Given feedback for a message id the relay never recorded, Then it is ignored without a notice
    outcome = _feed(bounces_handler, ses_feedback("Bounce", "0100unknown-0000", OWNER))[0]
    assert (outcome["action"], outcome["reason"]) == ("ignored", "unknown_message")
    assert relay.sent() == []


def test_bounce_of_automatic_mail_is_not_answered(relay: RelayHarness, bounces_handler: Handler) -> None:
    # Given the service's out-of-office relayed to the user
    _, user_address, _ = _start(relay)
    ooo = load_eml("out_of_office.eml", {"user-placeholder@relay.example": user_address})
    relay.deliver(ooo, [user_address], OWNER)
    relayed = relay.sent()[-1]

    # When it bounces, Then the state is recorded but nobody is notified
    outcome = _feed(bounces_handler, ses_feedback("Bounce", relayed.ses_message_id, USER, direction="to_user"))[0]
    assert (outcome["action"], outcome["notice_sent"]) == ("recorded", False)
    assert relay.sent()[-1].ses_message_id == relayed.ses_message_id


def test_complaint_suspends_that_direction_only(relay: RelayHarness, bounces_handler: Handler) -> None:
    # Given a conversation, and the owner marks the user's message as spam
    address, user_address, to_service = _start(relay)
    outcome = _feed(bounces_handler, ses_feedback("Complaint", to_service.ses_message_id, OWNER))[0]
    assert (outcome["action"], outcome["notice_sent"]) == ("recorded", False)

    # When the user writes again, Then nothing reaches the owner and nobody is told
    raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address})
    assert relay.deliver(raw, [address], USER)["outcomes"][0]["reason"] == "complaint_suspended"
    assert len(relay.sent()) == 1

    # And the owner can still write to the user
    reply = load_eml("service_reply.eml", {"user-placeholder@relay.example": user_address,
                                           "<ses-in-reply-to-placeholder>": to_service.ses_header_message_id()})
    assert relay.deliver(reply, [user_address], OWNER)["outcomes"][0]["action"] == "forwarded"


def test_delivery_is_counted_on_the_pair(relay: RelayHarness, bounces_handler: Handler) -> None:
    # Given a relayed first message, When SES reports its delivery twice
    address, _, to_service = _start(relay)
    event = ses_feedback("Delivery", to_service.ses_message_id, OWNER)
    _feed(bounces_handler, event)
    _feed(bounces_handler, event)

    # Then the pair counts one delivery to the service
    code = re.search(r"service-([0-9a-z]+)@", address)
    assert code is not None
    [pair] = directory().list_pairs(code[1])
    assert (pair.delivered_to_service, pair.delivered_to_user) == (1, 0)
    assert CodeKind.SERVICE.value == "service"


def test_bounce_legacy_notification_format_is_understood(relay: RelayHarness, bounces_handler: Handler) -> None:
    # Given the older identity-notification format (notificationType, no tags)
    _, _, to_service = _start(relay)

    # When it is handled, Then it works like an event-publishing bounce
    outcome = _feed(bounces_handler, ses_feedback("Bounce", to_service.ses_message_id, OWNER, legacy=True))[0]
    assert (outcome["reason"], outcome["notice_sent"]) == ("bounce_permanent", True)


def test_reject_event_is_counted_not_acted_on(relay: RelayHarness, bounces_handler: Handler) -> None:
    # Given SES rejected a message (virus in an attachment), When the event arrives, Then it is only counted
    _, _, to_service = _start(relay)
    outcome = _feed(bounces_handler, ses_feedback("Reject", to_service.ses_message_id, OWNER))[0]
    assert outcome["action"] == "ignored"
    assert len(relay.sent()) == 1
