"""Error mails: what they say, how they are marked, and that they reveal nothing of the other side."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from emailflow.notices import NOTICE_TEXTS, NoticeAddressing, build_notice
from emailflow.outcomes import Reason

ADDRESSING = NoticeAddressing("Holiday Homes", "no-reply@relay.example", "relay.example; t=1; sig=00")


def _notice(reason: Reason, subject: str = "Is the flat free?") -> EmailMessage:
    raw = build_notice(reason, to_address="jane@real.example", relay_address="service-abc@relay.example",
                       original_subject=subject, original_message_id="<m1@real.example>", addressing=ADDRESSING,
                       now=1_795_600_800)
    assert raw.isascii()
    message: EmailMessage = email.message_from_bytes(raw, policy=email.policy.default)
    return message


@pytest.mark.parametrize("reason", sorted(NOTICE_TEXTS))
def test_build_notice_is_marked_automatic_and_threaded(reason: Reason) -> None:
    # Given any notice, When built
    notice = _notice(reason)

    # Then it comes from no-reply, goes to the sender, is auto-replied, looped-marked and threaded
    assert notice["From"].addresses[0].addr_spec == "no-reply@relay.example"
    assert notice["From"].addresses[0].display_name == "Holiday Homes"
    assert notice["To"] == "jane@real.example"
    assert notice["Auto-Submitted"] == "auto-replied"
    assert notice["X-Emailflow-Loop"] == ADDRESSING.trace_value
    assert notice["In-Reply-To"] == "<m1@real.example>"
    assert notice.get_body(("plain",)) is not None
    assert notice.get_body(("html",)) is not None


def test_build_notice_names_the_relay_address_and_brand() -> None:
    # Given a BCC notice, Then it tells the sender exactly which address to put in To
    text = str(_notice(Reason.BCC).get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "service-abc@relay.example in the To field" in " ".join(text.split())
    assert "Holiday Homes" in text


def test_build_notice_subject_cannot_inject_headers() -> None:
    # Given an original subject with a line break and an address, When the notice is built
    notice = _notice(Reason.UNKNOWN_CODE, "Hi\r\nBcc: victim@else.example")

    # Then no header was injected
    assert notice["Bcc"] is None
    assert "victim@else.example" not in str(notice["Subject"])


def test_build_notice_without_text_for_reason_raises() -> None:
    # Given a reason that never produces a notice, Then building one is a programming error
    with pytest.raises(KeyError):
        _notice(Reason.VIRUS)
