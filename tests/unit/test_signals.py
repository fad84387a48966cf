"""The off-platform signal: contact details in text parts are noticed, the relay's own addresses are not."""

from __future__ import annotations

import pytest

from emailflow.signals import MAX_SCANNED_BYTES, carries_contact_details
from tests.support.mail import load_eml


def _text(body: str) -> bytes:
    return f"From: a@b.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n".encode()


@pytest.mark.parametrize("body", [
    "write to me at jane.doe@gmail.com instead",
    "call me: +44 20 7946 0958",
    "my number is 0612-345-678",
    "WhatsApp 06 12 34 56 78 please",
])
def test_carries_contact_details_finds_addresses_and_phone_numbers(body: str) -> None:
    # Given a text with contact details, Then the signal fires
    assert carries_contact_details(_text(body), "relay.example")


@pytest.mark.parametrize("body", [
    "reply to user-abc@relay.example as usual",
    "we arrive on 2027-07-03 at 14:30, booking 4711",
    "the price is 1,250.00 EUR for 14 nights",
])
def test_carries_contact_details_ignores_relay_addresses_dates_and_prices(body: str) -> None:
    # Given ordinary text, the relay's own address, dates and amounts, Then the signal stays quiet
    assert not carries_contact_details(_text(body), "relay.example")


def test_carries_contact_details_reads_only_text_parts() -> None:
    # Given a multipart message whose text is clean but whose attachment contains an address and a number
    raw = (b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nSee the attached plan.\r\n"
           b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           b"owner: jane@gmail.com +44 20 7946 0958\r\n--b--\r\n")

    # Then the signal stays quiet: attachments are not read
    assert not carries_contact_details(raw, "relay.example")


def test_carries_contact_details_in_a_real_html_reply() -> None:
    # Given a real Gmail-style reply whose HTML part quotes an address, Then it is noticed
    raw = load_eml("quoted_gmail_reply.eml")
    assert carries_contact_details(raw, "relay.example")


def test_carries_contact_details_work_is_bounded() -> None:
    # Given contact details placed beyond the scanned prefix, Then they are not looked for (bounded work)
    raw = _text("x " * (MAX_SCANNED_BYTES // 2) + " jane@gmail.com")
    assert not carries_contact_details(raw, "relay.example")
