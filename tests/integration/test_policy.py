"""Every mail-policy rule through the real handler on moto: what was (or was not) sent, and the recorded reason."""

from __future__ import annotations

import email
import email.policy
import re
from typing import Any

import pytest
import requests

from emailflow.config import get_settings
from emailflow.local.lambda_context import LocalLambdaContext
from emailflow.loops import loop_marker
from emailflow.wiring import keyring
from tests.support.mail import load_eml
from tests.support.relay_stack import RelayHarness, SentMail

USER = "jane.doe@real-user.example"
OWNER = "owner@holiday-flats.example"
UNAUTHENTICATED = {"spf": "FAIL", "dkim": "FAIL"}


def _body(raw: bytes) -> bytes:
    return raw[raw.index(b"\r\n\r\n") + 4 :]


def _outcome(result: dict[str, Any]) -> tuple[str, str]:
    [outcome] = result["outcomes"]
    return outcome["action"], outcome["reason"]


def _first(address: str, **replacements: str) -> bytes:
    return load_eml("user_first_message.eml", {"service-placeholder@relay.example": address, **replacements})


def _conversation(relay: RelayHarness) -> tuple[str, str]:
    """A registered service and a started conversation: (service address, user-code address)."""
    _, address = relay.register([OWNER], "María García")
    relay.deliver(_first(address), [address], USER)
    user_address = relay.sent()[-1].parsed()["Reply-To"].addresses[0].addr_spec
    return address, user_address


def _notice_to(sent: SentMail, sender: str) -> str:
    """Check a notice's envelope and headers; return its decoded text."""
    parsed = sent.parsed()
    assert sent.destinations[0] == sender
    assert parsed["From"].addresses[0].addr_spec == "no-reply@relay.example"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["X-Emailflow-Loop"]
    text = parsed.get_body(("plain",))
    assert text is not None
    return str(text.get_content())


# -- 1. wrong or unknown codes ---------------------------------------------------------------------------------


def test_policy_unknown_code_tells_authenticated_sender(relay: RelayHarness) -> None:
    # Given a genuine code that no service has (a deleted service)
    from emailflow.codes import CodeKind
    from emailflow.wiring import relay_context

    address = f"service-{relay_context().codebook.new_code(CodeKind.SERVICE)}@relay.example"

    # When an authenticated user writes to it
    result = relay.deliver(_first(address), [address], USER)

    # Then nothing is relayed and the user gets one "not in use" notice threaded on their message
    assert _outcome(result) == ("rejected", "unknown_code")
    [notice] = relay.sent()
    assert "not in use" in _notice_to(notice, USER)
    assert notice.parsed()["In-Reply-To"] == "<CAF1x2y3@mail.real-user.example>"


def test_policy_unknown_code_from_unauthenticated_sender_gets_no_notice(relay: RelayHarness) -> None:
    # Given a genuine but unknown code, and a sender that fails SPF and DKIM (possibly forged)
    from emailflow.codes import CodeKind
    from emailflow.wiring import relay_context

    address = f"service-{relay_context().codebook.new_code(CodeKind.SERVICE)}@relay.example"

    # When mail arrives, Then it is rejected with no notice (it would be backscatter)
    assert _outcome(relay.deliver(_first(address), [address], USER, verdicts=UNAUTHENTICATED)) == (
        "rejected", "unknown_code")
    assert relay.sent() == []


def test_policy_notices_per_sender_are_rate_limited(relay: RelayHarness) -> None:
    # Given a sender who keeps writing to an unknown code
    from emailflow.codes import CodeKind
    from emailflow.wiring import relay_context

    address = f"service-{relay_context().codebook.new_code(CodeKind.SERVICE)}@relay.example"

    # When they write seven times within the hour
    results = [relay.deliver(_first(address), [address], USER) for _ in range(7)]

    # Then every message is rejected but only five notices go out
    assert {_outcome(result) for result in results} == {("rejected", "unknown_code")}
    assert len(relay.sent()) == 5


def test_policy_disabled_service_tells_user(relay: RelayHarness) -> None:
    # Given a disabled service
    from emailflow.model import ServiceStatus
    from emailflow.services import set_service_status
    from emailflow.wiring import relay_context

    service, address = relay.register([OWNER], "Closed Flat")
    set_service_status(relay_context().directory, service.code, ServiceStatus.DISABLED)

    # When a user writes to it, Then nothing reaches the service and the user is told
    assert _outcome(relay.deliver(_first(address), [address], USER)) == ("rejected", "service_disabled")
    [notice] = relay.sent()
    assert "no longer" in _notice_to(notice, USER)
    assert OWNER not in notice.raw.decode()


# -- 2. BCC ---------------------------------------------------------------------------------------------------


def test_policy_bcc_relay_address_is_not_forwarded_and_sender_told(relay: RelayHarness) -> None:
    # Given a service, and a message that names someone else in To and the relay address only in the envelope
    _, address = relay.register([OWNER], "Flat A")
    raw = _first("friend@elsewhere.example")

    # When SES delivers it to the relay address
    result = relay.deliver(raw, [address], USER)

    # Then it is not forwarded and the sender learns to put the address in To
    assert _outcome(result) == ("rejected", "bcc")
    [notice] = relay.sent()
    assert f"with {address} in the To field" in " ".join(_notice_to(notice, USER).split())


# -- 3. auto-responses -----------------------------------------------------------------------------------------


def test_policy_out_of_office_to_user_code_is_relayed_with_auto_submitted(relay: RelayHarness) -> None:
    # Given a conversation
    _, user_address = _conversation(relay)

    # When the service's out-of-office answers to the user code
    raw = load_eml("out_of_office.eml", {"user-placeholder@relay.example": user_address})
    result = relay.deliver(raw, [user_address], OWNER)

    # Then it reaches the user, still marked automatic so the user's own responder stays quiet
    assert _outcome(result) == ("forwarded", "relayed")
    relayed = relay.sent()[-1]
    assert relayed.destinations[0] == USER
    assert relayed.parsed()["Auto-Submitted"] == "auto-replied"


def test_policy_auto_reply_bcc_is_dropped_without_notice(relay: RelayHarness) -> None:
    # Given a conversation, and an out-of-office that reached the user code without naming it in To
    _, user_address = _conversation(relay)
    raw = load_eml("out_of_office.eml", {"user-placeholder@relay.example": "someone@else.example"})

    # When it arrives, Then it is dropped as BCC and nobody is notified
    assert _outcome(relay.deliver(raw, [user_address], OWNER)) == ("rejected", "bcc")
    assert len(relay.sent()) == 1


def test_policy_auto_reply_to_unknown_code_gets_no_notice(relay: RelayHarness) -> None:
    # Given an out-of-office addressed to a genuine but unknown user code
    from emailflow.codes import CodeKind
    from emailflow.wiring import relay_context

    address = f"user-{relay_context().codebook.new_code(CodeKind.USER)}@relay.example"
    raw = load_eml("out_of_office.eml", {"user-placeholder@relay.example": address})

    # When it arrives, Then it is rejected and never answered
    assert _outcome(relay.deliver(raw, [address], OWNER)) == ("rejected", "unknown_code")
    assert relay.sent() == []


# -- 4. loops ---------------------------------------------------------------------------------------------------


def test_policy_mail_with_our_marker_is_a_loop(relay: RelayHarness) -> None:
    # Given a service, and a message that carries a marker this relay issued
    _, address = relay.register([OWNER], "Flat A")
    marker = loop_marker(keyring(), "relay.example", 1_795_600_000)
    raw = _first(address, **{"X-Mailer: ExampleMail 9.1": f"X-Emailflow-Loop: {marker}"})

    # When it comes in, Then it is not relayed again
    assert _outcome(relay.deliver(raw, [address], USER)) == ("rejected", "loop")
    assert relay.sent() == []


def test_policy_forged_marker_does_not_suppress_mail(relay: RelayHarness) -> None:
    # Given a message with a marker made with the wrong key
    from emailflow.codes import Keyring

    _, address = relay.register([OWNER], "Flat A")
    forged = loop_marker(Keyring(b"not-the-relay-secret-0000000000"), "relay.example", 1_795_600_000)
    raw = _first(address, **{"X-Mailer: ExampleMail 9.1": f"X-Emailflow-Loop: {forged}"})

    # When it comes in, Then it is relayed as usual
    assert _outcome(relay.deliver(raw, [address], USER)) == ("forwarded", "relayed")


def test_policy_mail_from_relay_domain_is_a_loop(relay: RelayHarness) -> None:
    # Given a message whose From is one of our own relay addresses
    _, address = relay.register([OWNER], "Flat A")
    raw = _first(address, **{"From: Jane Doe <jane.doe@real-user.example>": "From: <user-x@relay.example>"})

    # When it comes in, Then it is a loop
    assert _outcome(relay.deliver(raw, [address], "user-x@relay.example")) == ("rejected", "loop")


def test_policy_too_many_received_hops_is_a_loop(relay: RelayHarness) -> None:
    # Given a message that has passed through 30 servers
    _, address = relay.register([OWNER], "Flat A")
    hops = "".join(f"Received: from hop{n}.example by hop{n + 1}.example; Wed, 25 Nov 2026 10:00:00 +0000\n"
                   for n in range(30))
    raw = _first(address).replace(b"X-Mailer:", hops.replace("\n", "\r\n").encode() + b"X-Mailer:")

    # When it comes in, Then it is a loop
    assert _outcome(relay.deliver(raw, [address], USER)) == ("rejected", "loop")


def test_policy_ping_pong_between_responders_is_rate_limited(relay: RelayHarness,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a relay whose clock stands still (the budget is per wall-clock minute: a slow machine must not cross one)
    import importlib
    from dataclasses import replace

    from emailflow import wiring
    from emailflow.adapters.dynamodb import DynamoDirectory
    from emailflow.config import get_settings

    frozen = 1_800_000_030.0
    context = replace(wiring.relay_context(), clock=lambda: frozen,
                      directory=DynamoDirectory(get_settings().table_name, clock=lambda: frozen))
    monkeypatch.setattr(importlib.import_module("relay.app"), "relay_context", lambda: context)

    # And a conversation in which two auto-responders answer each other
    _, user_address = _conversation(relay)
    ooo = load_eml("out_of_office.eml", {"user-placeholder@relay.example": user_address})

    # When the service's responder fires 12 times within a minute
    results = [relay.deliver(ooo, [user_address], OWNER) for _ in range(12)]

    # Then the pair's per-minute budget (10 including the first message) stops the relay
    outcomes = [_outcome(result) for result in results]
    assert outcomes.count(("forwarded", "relayed")) == 9
    assert outcomes[-1] == ("rejected", "rate_limited")


# -- 5. strangers and spoofing ------------------------------------------------------------------------------------


def test_policy_stranger_to_user_code_gets_polite_notice(relay: RelayHarness) -> None:
    # Given a conversation
    _, user_address = _conversation(relay)

    # When a colleague of the owner answers from an unregistered address
    raw = load_eml("service_reply.eml", {"user-placeholder@relay.example": user_address,
                                         "Owner@Holiday-Flats.example": "colleague@holiday-flats.example"})
    result = relay.deliver(raw, [user_address], "colleague@holiday-flats.example")

    # Then the user receives nothing; the colleague is told what to do, and learns nothing of the user
    assert _outcome(result) == ("rejected", "stranger")
    notice = relay.sent()[-1]
    text = _notice_to(notice, "colleague@holiday-flats.example")
    assert "registered" in text
    assert USER not in notice.raw.decode()


def test_policy_registered_address_failing_spf_and_dkim_is_spoofed(relay: RelayHarness) -> None:
    # Given a conversation
    _, user_address = _conversation(relay)

    # When mail From the owner's registered address arrives with SPF and DKIM both failing
    raw = load_eml("service_reply.eml", {"user-placeholder@relay.example": user_address})
    result = relay.deliver(raw, [user_address], OWNER, verdicts=UNAUTHENTICATED)

    # Then it is dropped as spoofed and nobody is told
    assert _outcome(result) == ("rejected", "spoofed")
    assert len(relay.sent()) == 1


# -- 6. spam and viruses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("verdicts", "dmarc_policy", "reason"), [
    ({"virus": "FAIL"}, None, "virus"),
    ({"spam": "FAIL"}, None, "spam"),
    ({"dmarc": "FAIL"}, "REJECT", "dmarc_reject"),
])
def test_policy_ses_verdicts_drop_mail(relay: RelayHarness, verdicts: dict[str, str], dmarc_policy: str | None,
                                       reason: str) -> None:
    # Given a service, and a message SES judged harmful
    _, address = relay.register([OWNER], "Flat A")

    # When it arrives, Then it is dropped with the verdict as the reason and nothing is sent
    result = relay.deliver(_first(address), [address], USER, verdicts=verdicts, dmarc_policy=dmarc_policy)
    assert _outcome(result) == ("rejected", reason)
    assert relay.sent() == []


def test_policy_dmarc_fail_with_quarantine_policy_is_relayed(relay: RelayHarness) -> None:
    # Given DMARC failed but the domain only asks for quarantine, When the mail arrives, Then it is relayed
    _, address = relay.register([OWNER], "Flat A")
    result = relay.deliver(_first(address), [address], USER, verdicts={"dmarc": "FAIL"}, dmarc_policy="QUARANTINE")
    assert _outcome(result) == ("forwarded", "relayed")


def test_policy_spam_tag_policy_forwards_with_tagged_subject(relay: RelayHarness,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a relay configured to tag spam rather than drop it
    from emailflow import wiring

    monkeypatch.setenv("EMAILFLOW_SPAM_POLICY", "tag")
    wiring.reset()
    _, address = relay.register([OWNER], "Flat A")

    # When SES judges a message spam
    result = relay.deliver(_first(address), [address], USER, verdicts={"spam": "FAIL"})

    # Then it is forwarded with the subject tagged
    assert _outcome(result) == ("forwarded", "relayed")
    assert relay.sent()[0].parsed()["Subject"] == "[SPAM] Is the flat free in July?"


# -- 7. malformed input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("From: Jane Doe <jane.doe@real-user.example>\n", "", "no_from"),
    ("From: Jane Doe <jane.doe@real-user.example>", "From: Jane <jane.doe@real-user.example>, bob@x.example",
     "multiple_from"),
    ("From: Jane Doe <jane.doe@real-user.example>", "From: Jane Doe <not an address>", "invalid_from"),
])
def test_policy_unusable_from_is_rejected_with_reason(relay: RelayHarness, old: str, new: str, reason: str) -> None:
    # Given a message whose From cannot identify one sender
    _, address = relay.register([OWNER], "Flat A")
    raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address, old: new})

    # When it arrives, Then it is rejected with the reason and nothing is sent
    assert _outcome(relay.deliver(raw, [address], USER)) == ("rejected", reason)
    assert relay.sent() == []


def test_policy_garbage_header_block_gets_an_outcome(relay: RelayHarness) -> None:
    # Given a service, and bytes that are not a message at all (8-bit garbage, no header block)
    _, address = relay.register([OWNER], "Flat A")
    raw = bytes(range(256)) * 40

    # When SES hands them over, Then there is a recorded outcome and no crash
    assert _outcome(relay.deliver(raw, [address], USER)) == ("rejected", "no_from")


def test_policy_headers_only_message_is_relayed(relay: RelayHarness) -> None:
    # Given a message with a header block and no body at all
    _, address = relay.register([OWNER], "Flat A")
    raw = f"From: Jane <{USER}>\r\nTo: {address}\r\nSubject: (no text)\r\n".encode()

    # When relayed, Then the service receives it with an empty body
    assert _outcome(relay.deliver(raw, [address], USER)) == ("forwarded", "relayed")
    assert _body(relay.sent()[0].raw) == b""


def test_policy_overlong_subject_line_is_refolded(relay: RelayHarness) -> None:
    # Given a subject line of 1500 bytes on one physical line (over RFC 5322's 998)
    _, address = relay.register([OWNER], "Flat A")
    long_subject = "Question " + "x" * 1500
    raw = _first(address, **{"Subject: Is the flat free in July?": f"Subject: {long_subject}"})

    # When relayed, Then every header line is at most 998 bytes and the subject survives
    assert _outcome(relay.deliver(raw, [address], USER)) == ("forwarded", "relayed")
    sent = relay.sent()[0]
    assert max(len(line) for line in sent.header_block.split(b"\r\n")) <= 998
    assert sent.parsed()["Subject"] == long_subject


# -- 8. size ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_policy_oversize_mail_becomes_a_download_link(relay: RelayHarness) -> None:
    # Given a service, and a 41 MB message (over SES's 40 MB sending limit)
    import base64
    import random

    _, address = relay.register([OWNER], "Flat A")
    payload = base64.encodebytes(random.Random(3).randbytes(31 * 1024 * 1024)).replace(b"\n", b"\r\n")
    raw = (f"From: Jane Doe <{USER}>\r\nTo: {address}\r\nSubject: floor plans\r\nMessage-ID: <big@real-user.example>"
           "\r\nMIME-Version: 1.0\r\nContent-Type: application/zip; name=\"plans.zip\"\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\n").encode() + payload
    assert len(raw) > 40_000_000

    # When it arrives
    result = relay.deliver(raw, [address], USER)

    # Then the service gets a short mail with a link to the downloads page, From the user's relay address; the
    # user is told
    assert _outcome(result) == ("forwarded", "oversize")
    link_mail, notice = relay.sent()
    assert link_mail.destinations[0] == OWNER
    assert len(link_mail.raw) < 10_000
    link = re.search(re.escape(get_settings().download_page_url).encode() + rb"/(\S+)", link_mail.raw)
    assert link is not None
    assert USER.encode() not in link_mail.raw
    assert "larger than e-mail can carry" in " ".join(_notice_to(notice, USER).split())

    # And the downloads function, as the template deploys it, redirects the link to a short-lived presigned URL
    # of the rewritten copy: the whole message, with the user's relay address and not the real one
    download = relay.stack.function_handler("DownloadFunction")
    answer = download({"version": "2.0", "routeKey": "GET /mail/{token}",
                       "pathParameters": {"token": link[1].decode()}}, LocalLambdaContext())
    assert answer["statusCode"] == 302
    copy = requests.get(answer["headers"]["location"], timeout=60)
    assert (copy.status_code, copy.headers["content-disposition"]) == (200, 'attachment; filename="message.eml"')
    headers, _, body = copy.content.partition(b"\r\n\r\n")
    assert body == payload
    assert email.message_from_bytes(headers + b"\r\n\r\n")["From"] == link_mail.parsed()["From"]
    assert USER.encode() not in headers


# -- 9. quoted addresses -----------------------------------------------------------------------------------------


def test_policy_quoted_own_address_is_masked_in_text_parts(relay: RelayHarness) -> None:
    # Given a conversation, and a reply in which the user's client quoted the user's own address
    address, user_address = _conversation(relay)
    raw = load_eml("quoted_reply_to_service.eml", {"service-placeholder@relay.example": address})

    # When relayed to the service
    assert _outcome(relay.deliver(raw, [address], USER)) == ("forwarded", "relayed")

    # Then no text part shows the user's real address; each shows the user's relay address instead
    sent = relay.sent()[-1]
    parsed = email.message_from_bytes(sent.raw, policy=email.policy.default)
    texts = [str(part.get_content()) for part in parsed.walk() if part.get_content_maintype() == "text"]
    assert len(texts) == 2
    for text in texts:
        assert USER not in text.lower()
        assert user_address in text


# -- 10. reports and lists --------------------------------------------------------------------------------------


def test_policy_delivery_report_to_relay_address_is_backscatter(relay: RelayHarness) -> None:
    # Given a conversation, and a bounce report some server sent to the user code (quoting the owner's address)
    _, user_address = _conversation(relay)
    raw = load_eml("dsn_report.eml", {"user-placeholder@relay.example": user_address})

    # When it arrives with a null envelope sender, Then it is dropped and never relayed or answered
    assert _outcome(relay.deliver(raw, [user_address], "")) == ("rejected", "backscatter")
    assert len(relay.sent()) == 1


def test_policy_mailing_list_to_service_code_is_dropped(relay: RelayHarness) -> None:
    # Given a newsletter subscribed with a service's relay address
    _, address = relay.register([OWNER], "Flat A")
    raw = load_eml("mailing_list.eml", {"service-placeholder@relay.example": address})

    # When it arrives, Then it is dropped as list mail and nobody is notified
    assert _outcome(relay.deliver(raw, [address], "bounces@newsletters.example")) == ("rejected", "mailing_list")
    assert relay.sent() == []


def test_policy_notice_is_never_sent_twice_for_one_message(relay: RelayHarness) -> None:
    # Given a message to an unknown code that SES delivers twice
    from emailflow.codes import CodeKind
    from emailflow.wiring import relay_context

    address = f"service-{relay_context().codebook.new_code(CodeKind.SERVICE)}@relay.example"
    raw = _first(address)

    # When the handler runs twice for the same message id
    relay.deliver(raw, [address], USER, message_id="same-message-id-0000000000000000000000001")
    second = relay.deliver(raw, [address], USER, message_id="same-message-id-0000000000000000000000001",
                           store=False)

    # Then one notice went out and the second run is a duplicate
    assert _outcome(second) == ("duplicate", "duplicate")
    assert len(relay.sent()) == 1


def test_policy_auto_reply_is_not_a_reply_and_does_not_stop_the_clock(relay: RelayHarness) -> None:
    # Given a conversation waiting for the service's answer
    from emailflow.wiring import directory

    address, user_address = _conversation(relay)

    # When the service's out-of-office answers first
    ooo = load_eml("out_of_office.eml", {"user-placeholder@relay.example": user_address})
    relay.deliver(ooo, [user_address], OWNER)

    # Then it is counted as an auto-reply: no first reply, and the user is still waiting
    [pair] = directory().list_pairs(address.split("-", 1)[1].split("@")[0])
    assert (pair.service_messages, pair.service_auto_replies) == (0, 1)
    assert pair.first_reply_at is None
    assert pair.awaiting_reply_since is not None
