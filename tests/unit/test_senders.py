"""A new sender for a service: the held reply, the approval mail and its one-time link, on in-memory fakes."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from emailflow.approval_pages import handle_approval
from emailflow.approvals import Approval, ApprovalError, PendingApproval, approve_sender, pending_approval
from emailflow.codes import Keyring
from emailflow.links import TokenError
from emailflow.model import DeliveryKey, DeliveryState, Direction, ServiceStatus
from emailflow.outcomes import Action, Reason, RelayOutcome
from emailflow.ports import SendFailed
from emailflow.relay import relay_inbound
from emailflow.senders import MAX_LATER_MESSAGES, approval_token, read_approval_token
from tests.support.fakes import DAY, KEYRING, START, SentMail, inbound_mail
from tests.support.mail import load_eml
from tests.unit.test_relay import OWNER, USER, Relay

APPROVAL_URL = "https://api.relay.example/senders/allow"
COLLEAGUE = "anna@holiday-flats.example"


@pytest.fixture
def relay() -> Relay:
    harness = Relay()
    harness.context = replace(harness.context, approval_url=APPROVAL_URL, approval_seconds=3 * DAY)
    return harness


def _colleague_replies(relay: Relay, to_service: SentMail, message_id: str | None = None) -> list[RelayOutcome]:
    return relay.service_replies(to_service.from_address, to_service.header_message_id,
                                 {"Owner@Holiday-Flats.example": COLLEAGUE}, source=COLLEAGUE,
                                 message_id=message_id)


def _token(mail: SentMail) -> str:
    text = mail.parsed().get_body(("plain",))
    assert text is not None
    [link] = re.findall(r"https://\S+", str(text.get_content()))
    assert link.startswith(APPROVAL_URL + "?token=")
    token: str = parse_qs(urlsplit(link).query)["token"][0]
    return token


def test_reply_from_new_address_is_held_and_service_asked_to_allow_it(relay: Relay) -> None:
    # Given a conversation with a service registered with one address
    _, to_service = relay.start_conversation(relay.register([OWNER]))

    # When a colleague answers from an address the service never registered (SPF/DKIM pass)
    [outcome] = _colleague_replies(relay, to_service)

    # Then nothing reaches the user; the service's registered address gets the approval mail; the colleague the
    # usual error mail
    assert (outcome.action, outcome.reason, outcome.direction) == (Action.REJECTED, Reason.STRANGER_HELD,
                                                                   Direction.TO_USER)
    approval, notice = relay.mailer.sent[1:]
    assert (approval.to_address, approval.from_address) == (OWNER, "no-reply@relay.example")
    assert approval.parsed()["Auto-Submitted"] == "auto-generated"
    assert COLLEAGUE in approval.parsed()["Subject"]
    assert USER not in approval.raw.decode()
    assert notice.to_address == COLLEAGUE
    assert USER not in notice.raw.decode()
    assert all(mail.to_address != USER for mail in relay.mailer.sent)
    assert len(relay.directory.held) == 1
    assert _token(approval)


def test_allowing_relays_the_held_reply_once_and_registers_the_address(relay: Relay) -> None:
    # Given a held reply and its approval mail
    service, to_service = relay.start_conversation(relay.register([OWNER]))
    _colleague_replies(relay, to_service)
    token = _token(relay.mailer.sent[1])
    sent_before = len(relay.mailer.sent)

    # When the service opens the link (the page) and confirms it
    page = pending_approval(relay.directory, relay.context, token)
    approval = approve_sender(relay.directory, relay.context, token)

    # Then the page named the address; the reply reaches the user From the service's relay address; the address is
    # registered; the link is spent
    assert (page.sender, page.service_name) == (COLLEAGUE, "María García")
    assert approval.outcome is not None
    assert (approval.outcome.action, approval.outcome.reason) == (Action.FORWARDED, Reason.RELAYED)
    [delivered] = relay.mailer.sent[sent_before:]
    assert delivered.to_address == USER
    assert delivered.from_address == relay.address(service)
    assert COLLEAGUE.encode() not in delivered.raw.lower()
    assert relay.directory.services[service.code].addresses == (OWNER, COLLEAGUE)
    with pytest.raises(ApprovalError, match="used already"):
        approve_sender(relay.directory, relay.context, token)
    assert len(relay.mailer.sent) == sent_before + 1

    # When the colleague answers again, Then it is relayed straight away
    [later] = _colleague_replies(relay, to_service)
    assert (later.action, later.reason) == (Action.FORWARDED, Reason.RELAYED)


def test_later_messages_from_the_new_address_wait_with_the_first_and_are_relayed_when_allowed(relay: Relay) -> None:
    # Given one reply held and the service asked
    _, to_service = relay.start_conversation(relay.register([OWNER]))
    _colleague_replies(relay, to_service)
    token = _token(relay.mailer.sent[1])

    # When the colleague writes twice more before the service answered
    again = [outcome for _ in range(2) for outcome in _colleague_replies(relay, to_service)]

    # Then both are held with the first: no second approval mail, the colleague is told as before, the user sees
    # nothing yet
    assert [outcome.reason for outcome in again] == [Reason.STRANGER_HELD] * 2
    assert [mail.to_address for mail in relay.mailer.sent].count(OWNER) == 2  # the first copy, one approval mail
    assert [mail.to_address for mail in relay.mailer.sent].count(COLLEAGUE) == 3
    assert all(mail.to_address != USER for mail in relay.mailer.sent)

    # When the service allows the address on the page
    page = _page(relay, {"routeKey": "POST /senders/allow", "body": urlencode({"token": token})})

    # Then all three replies reach the user, each once, and the page says so
    assert page["statusCode"] == 200
    assert "The 2 later replies from this address, kept until now, were delivered too." in page["body"]
    assert [mail.to_address for mail in relay.mailer.sent].count(USER) == 3


def test_a_pending_approval_keeps_a_bounded_number_of_later_messages(relay: Relay) -> None:
    # Given one reply held
    _, to_service = relay.start_conversation(relay.register([OWNER]))
    _colleague_replies(relay, to_service)

    # When the same address writes many more times while it is pending
    more = [outcome.reason for _ in range(MAX_LATER_MESSAGES + 2) for outcome in _colleague_replies(relay, to_service)]

    # Then the first MAX_LATER_MESSAGES are kept, the rest refused as strangers (no further approval mail either)
    assert more == [Reason.STRANGER_HELD] * MAX_LATER_MESSAGES + [Reason.STRANGER] * 2
    assert [mail.to_address for mail in relay.mailer.sent].count(OWNER) == 2


def test_a_message_kept_after_the_approval_was_read_is_refused_not_lost(relay: Relay) -> None:
    # Given a held reply that the service allowed
    service, to_service = relay.start_conversation(relay.register([OWNER]))
    _colleague_replies(relay, to_service)
    held = next(iter(relay.directory.held.values()))
    approve_sender(relay.directory, relay.context, _token(relay.mailer.sent[1]))

    # When the pending list is written to after it was closed (a message judged before the address was registered)
    kept = relay.directory.hold_later(replace(held, hold_id="late", inbound_message_id="late-message"),
                                      held.sender_key, MAX_LATER_MESSAGES)

    # Then it is not kept: its relay falls back to a stranger rejection with the error mail, never a silent wait
    assert kept is False
    assert relay.directory.services[service.code].addresses == (OWNER, COLLEAGUE)


def test_retry_of_the_held_event_sends_nothing_more(relay: Relay) -> None:
    _, to_service = relay.start_conversation(relay.register([OWNER]))
    _colleague_replies(relay, to_service, message_id="held-1")
    sent = len(relay.mailer.sent)
    [retry] = _colleague_replies(relay, to_service, message_id="held-1")
    assert retry.action is Action.DUPLICATE
    assert len(relay.mailer.sent) == sent


def test_approval_mail_that_failed_to_send_is_sent_by_the_retry(relay: Relay) -> None:
    # Given SES throttling the approval mail once
    _, to_service = relay.start_conversation(relay.register([OWNER]))
    relay.mailer.fail_next(SendFailed("throttled"))

    # When the reply arrives, and Lambda retries the event
    with pytest.raises(SendFailed):
        _colleague_replies(relay, to_service, message_id="held-2")
    [outcome] = _colleague_replies(relay, to_service, message_id="held-2")

    # Then the retry found its own hold and sent the approval mail
    assert outcome.reason is Reason.STRANGER_HELD
    assert [mail.to_address for mail in relay.mailer.sent[1:]] == [OWNER, COLLEAGUE]


def test_unauthenticated_stranger_is_never_held(relay: Relay) -> None:
    # Given a conversation, and mail from a new address that neither SPF nor DKIM vouches for
    _, to_service = relay.start_conversation(relay.register([OWNER]))
    raw = load_eml("service_reply.eml", {"Owner@Holiday-Flats.example": COLLEAGUE,
                                         "user-placeholder@relay.example": to_service.from_address,
                                         "<ses-in-reply-to-placeholder>": to_service.header_message_id})
    relay.mail_store.put("forged-1", raw)
    mail = inbound_mail("forged-1", [to_service.from_address], COLLEAGUE)
    mail = replace(mail, verdicts=replace(mail.verdicts, spf="FAIL", dkim="GRAY"))
    [outcome] = relay_inbound(mail, relay.context)

    # Then nothing is held and nobody is mailed (no backscatter to a forged address)
    assert (outcome.reason, outcome.notice_sent) == (Reason.STRANGER, False)
    assert relay.directory.held == {}
    assert len(relay.mailer.sent) == 1


def test_without_approval_url_strangers_are_only_told(relay: Relay) -> None:
    relay.context = replace(relay.context, approval_url="")
    _, to_service = relay.start_conversation(relay.register([OWNER]))
    [outcome] = _colleague_replies(relay, to_service)
    assert outcome.reason is Reason.STRANGER
    assert relay.directory.held == {}


def test_tokens_refuse_edits_other_keys_and_expiry() -> None:
    token = approval_token(KEYRING, "A" * 22, START + 100)
    assert read_approval_token(KEYRING, token, START) == "A" * 22
    rotated = Keyring(current=b"another-secret-0123456789abcdef!", previous=(KEYRING.current,))
    assert read_approval_token(rotated, token, START) == "A" * 22
    for bad in (token.replace("A", "B", 1), token.replace(str(START + 100), str(START + 10**6)), token + "x", ""):
        with pytest.raises(TokenError, match="not an approval link"):
            read_approval_token(KEYRING, bad, START)
    with pytest.raises(TokenError, match="expired"):
        read_approval_token(KEYRING, token, START + 100)
    with pytest.raises(TokenError):
        read_approval_token(Keyring(current=b"x" * 32), token, START)


def test_expired_link_is_refused_and_nothing_is_relayed(relay: Relay) -> None:
    _, to_service = relay.start_conversation(relay.register([OWNER]))
    _colleague_replies(relay, to_service)
    token = _token(relay.mailer.sent[1])
    relay.clock.advance(3 * DAY)
    with pytest.raises(ApprovalError, match="expired"):
        approve_sender(relay.directory, relay.context, token)
    [held] = relay.directory.held.values()
    assert relay.directory.delivery_state(DeliveryKey(held.inbound_message_id, held.recipient)) is \
        DeliveryState.REJECTED


def test_link_of_a_disabled_service_is_refused(relay: Relay) -> None:
    service, to_service = relay.start_conversation(relay.register([OWNER]))
    _colleague_replies(relay, to_service)
    token = _token(relay.mailer.sent[1])
    relay.directory.services[service.code] = replace(relay.directory.services[service.code],
                                                     status=ServiceStatus.DISABLED)
    with pytest.raises(ApprovalError, match="no longer receives"):
        pending_approval(relay.directory, relay.context, token)


# -- the approval page (emailflow.approval_pages) ----------------------------------------------------------------


class _Approvals:
    """The Python client's two approval calls on the harness's fakes."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def pending_approval(self, token: str) -> PendingApproval:
        return pending_approval(self.relay.directory, self.relay.context, token)

    def allow_sender(self, token: str) -> Approval:
        return approve_sender(self.relay.directory, self.relay.context, token)


def _page(relay: Relay, event: dict[str, Any]) -> dict[str, Any]:
    return handle_approval(event, lambda: _Approvals(relay)).as_proxy_result()


def test_approval_page_get_changes_nothing_and_post_allows(relay: Relay) -> None:
    # Given a held reply and the link mailed to the service
    service, to_service = relay.start_conversation(relay.register([OWNER]))
    _colleague_replies(relay, to_service)
    token = _token(relay.mailer.sent[1])
    sent = len(relay.mailer.sent)

    # When the link is opened (twice: a mail scanner, then the owner)
    for _ in range(2):
        shown = _page(relay, {"routeKey": "GET /senders/allow", "queryStringParameters": {"token": token}})

    # Then the page names the address and carries the button; nothing happened yet
    assert shown["statusCode"] == 200
    assert f"Allow {COLLEAGUE}?" in shown["body"]
    assert f'name="token" value="{token}"' in shown["body"]
    assert shown["headers"]["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in shown["headers"]["content-security-policy"]
    assert USER not in shown["body"]
    assert len(relay.mailer.sent) == sent
    assert relay.directory.services[service.code].addresses == (OWNER,)

    # When the button is pressed (a form POST, base64 as API Gateway may send it)
    form = base64.b64encode(urlencode({"token": token}).encode()).decode()
    allowed = _page(relay, {"routeKey": "POST /senders/allow", "body": form, "isBase64Encoded": True})
    again = _page(relay, {"routeKey": "POST /senders/allow", "body": urlencode({"token": token})})

    # Then the reply went to the user, once; a second press says the link is spent
    assert (allowed["statusCode"], "The held reply was delivered." in allowed["body"]) == (200, True)
    assert [mail.to_address for mail in relay.mailer.sent[sent:]] == [USER]
    assert again["statusCode"] == 410
    assert "used already" in again["body"]


@pytest.mark.parametrize("event", [
    {"routeKey": "GET /senders/allow"},
    {"routeKey": "GET /senders/allow", "queryStringParameters": {"token": "<script>x</script>"}},
    {"routeKey": "POST /senders/allow", "body": "token=a&token=b"},
    {"routeKey": "POST /senders/allow", "body": "%%%", "isBase64Encoded": True},
    {"routeKey": "POST /senders/allow", "body": "x" * 10_000},
    {"routeKey": "GET /other"},
])
def test_approval_page_answers_bad_requests_with_a_page(relay: Relay, event: dict[str, Any]) -> None:
    page = _page(relay, event)
    assert page["statusCode"] in (404, 410)
    assert "<script>" not in page["body"]
    assert page["headers"]["content-type"] == "text/html; charset=utf-8"


def test_approval_page_fault_asks_to_try_again_and_link_keeps_working(relay: Relay) -> None:
    # Given a held reply, and SES throttling when the owner confirms
    _, to_service = relay.start_conversation(relay.register([OWNER]))
    _colleague_replies(relay, to_service)
    token = _token(relay.mailer.sent[1])
    relay.mailer.fail_next(SendFailed("throttled"))

    # When the owner confirms, then tries again
    failed = _page(relay, {"routeKey": "POST /senders/allow", "body": urlencode({"token": token})})
    retried = _page(relay, {"routeKey": "POST /senders/allow", "body": urlencode({"token": token})})

    # Then the first answer asks to try again, and the second delivers the reply once
    assert failed["statusCode"] == 503
    assert retried["statusCode"] == 200
    assert [mail.to_address for mail in relay.mailer.sent].count(USER) == 1


def test_approval_mails_to_one_service_are_limited_per_hour(relay: Relay) -> None:
    # Given a leaked user code, and someone writing to it from many authenticated addresses within the hour
    _, to_service = relay.start_conversation(relay.register([OWNER]))
    outcomes = [relay.service_replies(to_service.from_address, to_service.header_message_id,
                                      {"Owner@Holiday-Flats.example": f"sender{number}@elsewhere.example"},
                                      source=f"sender{number}@elsewhere.example")[0] for number in range(8)]

    # Then the service gets at most the hourly budget of approval mails (5); the rest are plain stranger rejections
    assert [outcome.reason for outcome in outcomes] == [Reason.STRANGER_HELD] * 5 + [Reason.STRANGER] * 3
    assert [mail.to_address for mail in relay.mailer.sent].count(OWNER) == 1 + 5
    assert len(relay.directory.held) == 5
