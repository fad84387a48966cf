"""Header-only rewrite on real-world messages: what survives, what is rebuilt, and what must never leak."""

from __future__ import annotations

import base64
import email
import email.policy
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.headerregistry import Address

import pytest

from emailflow.message import InboundHeaders, split_message
from emailflow.rewrite import (
    MAX_DISPLAY_NAME,
    TRACE_HEADER,
    HeaderRule,
    RewritePlan,
    relay_display_name,
    rewrite_header_block,
    rewrite_headers,
    rule_for,
    sanitise_display_name,
)
from tests.support.mail import load_eml
from tests.unit.rewrite_checks import body_after_first_empty_line, leaks, overlong_lines

BRAND = "emailflow"
USER_RELAY = "user-4k2vq8s0bqh1n7pt@relay.example"
SERVICE_RELAY = "service-7c1m0e4k9p2s5v8y@relay.example"
OWNER = "maria.garcia@holiday-flats.example"
JANE = "jane.doe@real-user.example"
TRACE = "v1.1795600000.q3ri8etpjndcx7fb"
NOW = "Wed, 25 Nov 2026 10:05:00 GMT"
SES_ID = "<0100019b2f1c7d4e-5a8f2c1b-3d7e-4f9a-b6c2-8e1d0a9f7b3c-000000@email.amazonses.com>"
ALLOWED = {"from", "to", "reply-to", "subject", "date", "mime-version", "in-reply-to", "references", "auto-submitted",
           TRACE_HEADER.lower()}


@dataclass(frozen=True)
class Case:
    """A fixture and the direction it travels: whose real address is hidden, who receives it."""

    fixture: str
    hidden: str
    relay_address: str
    recipient: str


CASES = {
    "gmail": Case("gmail_alternative.eml", JANE, USER_RELAY, OWNER),
    "outlook": Case("outlook_pdf_attachment.eml", "maria.garcia@holiday-flats.example", SERVICE_RELAY, JANE),
    "latin1": Case("latin1_utf8_subject.eml", "joerg.mueller@buecherstube.example", USER_RELAY, OWNER),
    "duplicates": Case("duplicated_headers.eml", "bookings@holiday-flats.example", SERVICE_RELAY, JANE),
    "webform": Case("webform_no_date.eml", "owner@holiday-flats.example", SERVICE_RELAY, JANE),
    "tricks": Case("display_name_tricks.eml", "jane@real.example", USER_RELAY, OWNER),
}
ALL_CASES = pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
BOTH_ENDINGS = pytest.mark.parametrize("crlf", [True, False], ids=["crlf", "lf"])


def _plan(raw: bytes, case: Case, thread_ids: Mapping[str, str | None] | None = None) -> RewritePlan:
    """The plan the relay makes for ``raw``: display name from its From field, the sender's address hidden."""
    headers = InboundHeaders.read(split_message(raw))
    name = headers.from_addresses[0][0] if headers.from_addresses else ""
    return RewritePlan(from_display_name=relay_display_name(name, BRAND), from_address=case.relay_address,
                       to_address=case.recipient, hidden_addresses=(case.hidden,), trace_value=TRACE, date=NOW,
                       thread_ids=dict(thread_ids or {}))


def _rewrite(case: Case, *, crlf: bool = True) -> tuple[bytes, bytes]:
    """(input, output) of rewriting ``case``'s fixture."""
    raw = load_eml(case.fixture, crlf=crlf)
    return raw, rewrite_headers(raw, _plan(raw, case))


def _header_block(message: bytes) -> bytes:
    return message[: len(message) - len(body_after_first_empty_line(message))]


def _parsed(message: bytes) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def _raw_parsed(message: bytes) -> email.message.Message:
    """``message`` parsed with header values exactly as written."""
    return email.message_from_bytes(message, policy=email.policy.compat32)


def _names(message: bytes) -> list[str]:
    return [name.lower() for name, _ in _parsed(message).items()]


def _one_field_message(field: bytes, *, hidden: str = JANE) -> tuple[bytes, RewritePlan]:
    """A minimal user message carrying ``field``, and the plan that hides ``hidden``."""
    raw = (b"From: Jane Doe <" + hidden.encode() + b">\r\nTo: " + SERVICE_RELAY.encode() + b"\r\n" + field
           + b"\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nHello\r\n")
    return raw, _plan(raw, Case("inline", hidden, USER_RELAY, OWNER))


@ALL_CASES
@BOTH_ENDINGS
def test_rewrite_headers_keeps_the_body_byte_for_byte(case: Case, crlf: bool) -> None:
    # Given a real-world message

    # When its headers are rewritten
    raw, out = _rewrite(case, crlf=crlf)

    # Then everything after the header block is the input's body, byte for byte
    assert body_after_first_empty_line(out) == body_after_first_empty_line(raw)
    assert out.endswith(body_after_first_empty_line(raw))


@ALL_CASES
def test_rewrite_headers_keeps_only_allow_listed_fields(case: Case) -> None:
    # Given a real-world message with trace, authentication and client fields

    # When its headers are rewritten
    _, out = _rewrite(case)

    # Then only the allow-listed fields and Content-* fields are left
    assert {name for name in _names(out) if not name.startswith("content-")} <= ALLOWED


def test_rewrite_headers_drops_trace_signature_and_client_fields() -> None:
    # Given a Gmail message with Received, DKIM, ARC, Authentication-Results and X-Gm fields
    _, out = _rewrite(CASES["gmail"])

    # When its headers are rewritten, Then none of them is left, and neither is the Message-ID
    dropped = {"return-path", "received", "received-spf", "authentication-results", "dkim-signature",
               "x-google-dkim-signature", "x-gm-message-state", "x-google-smtp-source", "x-received", "arc-seal",
               "arc-message-signature", "arc-authentication-results", "x-ses-receipt", "message-id"}
    assert dropped.isdisjoint(_names(out))


def test_rewrite_headers_drops_outlook_thread_and_exchange_fields() -> None:
    # Given an Outlook message with Thread-Index, Thread-Topic and X-MS-* fields (some in lower case)
    _, out = _rewrite(CASES["outlook"])

    # When its headers are rewritten
    names = _names(out)

    # Then those fields are gone, and the Content-* fields stay
    assert not [name for name in names if name.startswith(("thread-", "x-ms-", "x-microsoft", "accept-language"))]
    assert {"content-type", "content-language"} <= set(names)


def test_rewrite_header_block_writes_the_expected_gmail_header_block() -> None:
    # Given a Gmail reply whose References and In-Reply-To name a copy we sent and the sender's own first message
    raw = load_eml("gmail_alternative.eml")
    mapping = {SES_ID: "<reply-1@holiday-flats.example>",
               "<CAF1x2y3@mail.real-user.example>": "<0100019a00000000-first@email.amazonses.com>"}
    plan = _plan(raw, CASES["gmail"], mapping)

    # When its header block is rewritten
    block = rewrite_header_block(split_message(raw), plan)

    # Then the rebuilt fields come first, kept fields follow in their order, the trace header ends the block
    assert block == (
        b"From: Jane Doe via emailflow <user-4k2vq8s0bqh1n7pt@relay.example>\r\n"
        b"To: maria.garcia@holiday-flats.example\r\n"
        b"Reply-To: user-4k2vq8s0bqh1n7pt@relay.example\r\n"
        b"MIME-Version: 1.0\r\n"
        b"References: <0100019a00000000-first@email.amazonses.com>\r\n <reply-1@holiday-flats.example>\r\n"
        b"In-Reply-To: <reply-1@holiday-flats.example>\r\n"
        b"Date: Wed, 25 Nov 2026 11:04:00 +0100\r\n"
        b"Subject: Re: Is the flat free in July?\r\n"
        b'Content-Type: multipart/alternative; boundary="000000000000e4b3a20625c1d7f8"\r\n'
        b"X-Emailflow-Loop: v1.1795600000.q3ri8etpjndcx7fb\r\n"
        b"\r\n"
    )


def test_rewrite_headers_keeps_the_first_copy_of_duplicated_fields() -> None:
    # Given a message with two Subject, Date, MIME-Version, Content-Type and Content-Transfer-Encoding fields
    _, out = _rewrite(CASES["duplicates"])

    # When its headers are rewritten
    parsed = _raw_parsed(out)

    # Then each field appears once, with the value of its first copy
    assert parsed.get_all("Subject") == ["Your booking 2026-0703"]
    assert parsed.get_all("Date") == ["Sat, 28 Nov 2026 13:00:01 +0100"]
    assert parsed.get_all("MIME-Version") == ["1.0"]
    assert parsed.get_all("Content-Type") == ["text/plain; charset=UTF-8"]
    assert parsed.get_all("Content-Transfer-Encoding") == ["8bit"]
    assert _parsed(out).get_content_type() == "text/plain"


@ALL_CASES
def test_rewrite_headers_rebuilds_from_to_and_reply_to_from_the_plan(case: Case) -> None:
    # Given a real-world message and the relay's plan for it
    raw = load_eml(case.fixture)
    plan = _plan(raw, case)

    # When its headers are rewritten
    parsed = _parsed(rewrite_headers(raw, plan))

    # Then From shows the plan's name at the relay address, To is the recipient, Reply-To the relay address
    [sender] = parsed["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (plan.from_display_name, plan.from_address)
    assert [address.addr_spec for address in parsed["To"].addresses] == [case.recipient]
    assert [address.addr_spec for address in parsed["Reply-To"].addresses] == [case.relay_address]
    assert [len(parsed.get_all(name) or []) for name in ("From", "To", "Reply-To")] == [1, 1, 1]


def test_rewrite_headers_writes_a_non_ascii_display_name_encoded() -> None:
    # Given a message from "Jörg Müller" (raw UTF-8 in the From field)
    _, out = _rewrite(CASES["latin1"])

    # When the From field of the output is read
    [sender] = _parsed(out)["From"].addresses

    # Then the name arrives intact through RFC 2047
    assert sender.display_name == "Jörg Müller via emailflow"
    assert b"=?utf-8?" in _header_block(out)


def test_rewrite_headers_adds_date_when_missing() -> None:
    # Given a web-form message without a Date field
    _, out = _rewrite(CASES["webform"])

    # When its headers are rewritten
    dates = _raw_parsed(out).get_all("Date")

    # Then the plan's date is added, once
    assert dates == [NOW]


def test_rewrite_headers_keeps_date_when_present() -> None:
    # Given a message with a Date field
    _, out = _rewrite(CASES["outlook"])

    # When its headers are rewritten
    dates = _raw_parsed(out).get_all("Date")

    # Then that date is kept and none is added
    assert dates == ["Thu, 26 Nov 2026 08:15:36 +0000"]


def test_rewrite_headers_encodes_a_raw_8bit_subject() -> None:
    # Given a message with a raw 8-bit UTF-8 Subject and a Latin-1 8-bit body
    _, out = _rewrite(CASES["latin1"])

    # When its headers are rewritten
    block = _header_block(out)

    # Then the header block is pure ASCII and the Subject reads the same after RFC 2047 decoding
    assert block.isascii()
    assert re.search(rb"^Subject: =\?utf-8\?", block, re.MULTILINE)
    assert _parsed(out)["Subject"] == "Anfrage: Ferienwohnung für 2 Personen \u2013 Grüße aus München"


@ALL_CASES
def test_rewrite_headers_writes_an_ascii_header_block(case: Case) -> None:
    # Given a real-world message

    # When its headers are rewritten
    _, out = _rewrite(case)

    # Then the header block is ASCII and no line is longer than RFC 5322 allows
    assert _header_block(out).isascii()
    assert overlong_lines(_header_block(out)) == []


@ALL_CASES
def test_rewrite_headers_uses_crlf_for_a_crlf_message(case: Case) -> None:
    # Given a message with CRLF line endings

    # When its headers are rewritten
    _, out = _rewrite(case, crlf=True)

    # Then every line of the new header block ends in CRLF
    block = _header_block(out)
    assert block.endswith(b"\r\n\r\n")
    assert block.count(b"\n") == block.count(b"\r\n")
    assert block.count(b"\r") == block.count(b"\r\n")


@ALL_CASES
def test_rewrite_headers_uses_lf_for_an_lf_message(case: Case) -> None:
    # Given a message with LF line endings

    # When its headers are rewritten
    _, out = _rewrite(case, crlf=False)

    # Then the new header block has no CR at all
    block = _header_block(out)
    assert block.endswith(b"\n\n")
    assert b"\r" not in block


@ALL_CASES
@BOTH_ENDINGS
def test_rewrite_headers_never_shows_the_hidden_address(case: Case, crlf: bool) -> None:
    # Given a real-world message whose sender's address must stay hidden

    # When its headers are rewritten
    _, out = _rewrite(case, crlf=crlf)

    # Then the address is nowhere in the header block: raw, unfolded, or RFC 2047-decoded, in any case
    assert leaks(_header_block(out), case.hidden) == []


@ALL_CASES
def test_rewrite_headers_never_shows_the_hidden_address_to_a_parser(case: Case) -> None:
    # Given a real-world message whose sender's address must stay hidden

    # When its headers are rewritten and the result is parsed as a mail client would
    _, out = _rewrite(case)
    values = [str(value).lower() for value in _parsed(out).values()]

    # Then no decoded header value contains the address
    assert [value for value in values if case.hidden in value] == []


def test_rewrite_headers_masks_the_address_in_kept_fields() -> None:
    # Given a message that names the sender's address in its (encoded) Subject and its Content-Description
    _, out = _rewrite(CASES["tricks"])

    # When the kept fields are read
    parsed = _parsed(out)

    # Then the address is replaced by the relay address the recipient answers to
    assert parsed["Subject"] == f"Fwd: question from {USER_RELAY}"
    assert parsed["Content-Description"] == f"Message from {USER_RELAY}"


def test_rewrite_headers_drops_thread_ids_that_contain_the_hidden_address() -> None:
    # Given a message whose In-Reply-To is an id made of the sender's address, also listed in References
    _, out = _rewrite(CASES["tricks"])

    # When the thread fields are read
    parsed = _parsed(out)

    # Then that id is gone: In-Reply-To had nothing else and is dropped, References keeps the other id
    assert parsed.get_all("In-Reply-To") is None
    assert parsed.get_all("References") == ["<CAF1x2y3@mail.real-user.example>"]


def test_rewrite_headers_turns_a_crafted_display_name_into_a_harmless_one() -> None:
    # Given a From display name that decodes to '"jane@real.example\r\nBcc: x@y"'
    _, out = _rewrite(CASES["tricks"])

    # When the output is parsed
    parsed = _parsed(out)
    [sender] = parsed["From"].addresses

    # Then no Bcc field was injected and the name holds no address, no line break
    assert parsed.get_all("Bcc") is None
    assert "@" not in sender.display_name
    assert not re.search(r"[\r\n]", sender.display_name)
    assert sender.addr_spec == USER_RELAY


def test_rewrite_headers_maps_thread_ids_through_the_plan() -> None:
    # Given a follow-up whose References name the sender's first message and a copy we sent
    raw = load_eml("gmail_alternative.eml")
    mapping = {SES_ID: "<reply-1@holiday-flats.example>",
               "<CAF1x2y3@mail.real-user.example>": "<0100019a00000000-first@email.amazonses.com>"}

    # When its headers are rewritten with that mapping
    parsed = _parsed(rewrite_headers(raw, _plan(raw, CASES["gmail"], mapping)))

    # Then each id is replaced, in place
    assert parsed["In-Reply-To"] == "<reply-1@holiday-flats.example>"
    assert parsed["References"].split() == ["<0100019a00000000-first@email.amazonses.com>",
                                            "<reply-1@holiday-flats.example>"]


def test_rewrite_headers_drops_thread_ids_mapped_to_none() -> None:
    # Given a follow-up whose own first message id cannot be mapped (None), and an unknown SES id
    raw = load_eml("gmail_alternative.eml")
    mapping: dict[str, str | None] = {"<CAF1x2y3@mail.real-user.example>": None}

    # When its headers are rewritten
    parsed = _parsed(rewrite_headers(raw, _plan(raw, CASES["gmail"], mapping)))

    # Then the None id is gone and the unmapped one is kept as it came
    assert parsed["References"].split() == [SES_ID]
    assert parsed["In-Reply-To"] == SES_ID


def test_rewrite_headers_drops_a_thread_field_left_without_ids() -> None:
    # Given a message whose only In-Reply-To id maps to None
    raw = load_eml("gmail_alternative.eml")
    mapping: dict[str, str | None] = {SES_ID: None, "<CAF1x2y3@mail.real-user.example>": None}

    # When its headers are rewritten
    names = _names(rewrite_headers(raw, _plan(raw, CASES["gmail"], mapping)))

    # Then neither thread field is written at all
    assert "in-reply-to" not in names
    assert "references" not in names


def test_rewrite_headers_keeps_the_newest_twenty_references() -> None:
    # Given a References field with 30 ids
    ids = [f"<msg-{number}@real-user.example>" for number in range(30)]
    raw, plan = _one_field_message(b"References: " + b"\r\n ".join(message_id.encode() for message_id in ids))

    # When its headers are rewritten
    references = _parsed(rewrite_headers(raw, plan))["References"]

    # Then the last 20 are kept, in order
    assert references.split() == ids[-20:]


@ALL_CASES
def test_rewrite_headers_writes_the_trace_header_once(case: Case) -> None:
    # Given a real-world message

    # When its headers are rewritten
    _, out = _rewrite(case)

    # Then the trace header is there once, with the plan's value
    assert _parsed(out).get_all(TRACE_HEADER) == [TRACE]


def test_rewrite_headers_replaces_an_inbound_trace_header() -> None:
    # Given a message that already carries a (forged or looped) trace header
    raw, plan = _one_field_message(f"{TRACE_HEADER}: v1.0.forged".encode())

    # When its headers are rewritten
    traces = _parsed(rewrite_headers(raw, plan)).get_all(TRACE_HEADER)

    # Then only the relay's own value is there
    assert traces == [TRACE]


@ALL_CASES
@BOTH_ENDINGS
def test_rewrite_headers_output_parses_without_header_defects(case: Case, crlf: bool) -> None:
    # Given a real-world message

    # When its headers are rewritten and the output parsed with the modern policy
    _, out = _rewrite(case, crlf=crlf)
    parsed = _parsed(out)

    # Then neither the message nor any header field reports a defect
    assert parsed.defects == []
    assert {name: value.defects for name, value in parsed.items() if value.defects} == {}


def test_rewrite_headers_keeps_the_pdf_attachment_readable() -> None:
    # Given an Outlook message with a base64 PDF attachment
    raw, out = _rewrite(CASES["outlook"])

    # When input and output are parsed
    before = [part.get_content() for part in _parsed(raw).iter_attachments()]
    after = [part.get_content() for part in _parsed(out).iter_attachments()]

    # Then the attachment decodes to the same PDF
    assert len(after) == 1
    assert after == before
    assert isinstance(after[0], bytes)
    assert after[0].startswith(b"%PDF-1.4")


def test_rewrite_headers_passes_the_split_through() -> None:
    # Given a message already split by the caller
    raw = load_eml("user_first_message.eml")
    split = split_message(raw)
    plan = _plan(raw, CASES["gmail"])

    # When the split is passed in
    out = rewrite_headers(raw, plan, split)

    # Then the result is the same as without it
    assert out == rewrite_headers(raw, plan)


def test_rewrite_headers_folds_kept_fields_with_the_message_line_ending() -> None:
    # Given a CRLF message with a Content-Type folded with a bare LF (a mixed block SES would reject)
    raw, plan = _one_field_message(b'Content-Type: multipart/mixed;\n\tboundary="b1"')

    # When its headers are rewritten
    block = _header_block(rewrite_headers(raw, plan))

    # Then the fold uses CRLF like every other line
    assert b'Content-Type: multipart/mixed;\r\n\tboundary="b1"\r\n' in block
    assert block.count(b"\n") == block.count(b"\r\n")


@pytest.mark.parametrize(("key", "rule"), [
    ("from", HeaderRule.REBUILD), ("reply-to", HeaderRule.REBUILD), (TRACE_HEADER.lower(), HeaderRule.REBUILD),
    ("subject", HeaderRule.SUBJECT), ("references", HeaderRule.THREAD_IDS), ("date", HeaderRule.KEEP_FIRST),
    ("content-type", HeaderRule.KEEP_FIRST), ("content-x-anything", HeaderRule.KEEP_FIRST),
    ("auto-submitted", HeaderRule.KEEP_FIRST), ("sender", HeaderRule.DROP), ("cc", HeaderRule.DROP),
    ("bcc", HeaderRule.DROP), ("return-path", HeaderRule.DROP), ("message-id", HeaderRule.DROP),
    ("list-unsubscribe", HeaderRule.DROP), ("x-original-from", HeaderRule.DROP),
])
def test_rule_for_reads_the_allow_list(key: str, rule: HeaderRule) -> None:
    # Given a lower-case field name

    # When its rule is looked up
    found = rule_for(key)

    # Then it is the rule of the table, and anything unlisted is dropped
    assert found is rule


# --- Regressions: decoded values must not break out of their field ------------------------------------------------


def test_rewrite_headers_masked_value_cannot_inject_a_field() -> None:
    # Given a Subject naming the hidden address, with an encoded CR LF and a Bcc field after it
    raw, plan = _one_field_message(b"Subject: =?utf-8?q?hi_jane.doe=40real-user.example=0D=0ABcc:_evil=40x.example?=")

    # When its headers are rewritten
    out = rewrite_headers(raw, plan)

    # Then there is no Bcc field: the line break stayed inside the Subject
    assert "bcc" not in _names(out)
    assert _parsed(out)["Subject"] == f"hi {USER_RELAY}  Bcc: evil@x.example"


def test_rewrite_headers_masked_value_cannot_end_the_header_block() -> None:
    # Given a long Subject naming the hidden address with an encoded empty line in it
    raw, plan = _one_field_message(b"Subject: =?utf-8?q?hi_jane.doe=40real-user.example" + b"_padding" * 8
                                   + b"=0D=0A=0D=0Ainjected_body?=")

    # When its headers are rewritten
    out = rewrite_headers(raw, plan)

    # Then the header block still ends where the relay ended it, with the trace header in it
    block = rewrite_header_block(split_message(raw), plan)
    assert split_message(out).body_start == len(block)
    assert _parsed(out).get_all(TRACE_HEADER) == [TRACE]
    assert body_after_first_empty_line(out) == b"Hello\r\n"


def test_rewrite_headers_masked_value_keeps_nested_encoded_words_literal() -> None:
    # Given a Subject naming the hidden address, and also carrying it in a word encoded twice
    inner = b"=3D=3Futf-8=3Fq=3Fjane.doe=3D40real-user.example=3F=3D"
    raw, plan = _one_field_message(b"Subject: =?utf-8?q?jane.doe=40real-user.example_" + inner + b"?=")

    # When its headers are rewritten
    out = rewrite_headers(raw, plan)

    # Then decoding the output once (as a client does) does not reveal the address
    assert leaks(_header_block(out), JANE) == []
    assert _parsed(out)["Subject"] == f"{USER_RELAY} =?utf-8?q?jane.doe=40real-user.example?="


def test_rewrite_headers_masked_value_keeps_lines_within_the_limit() -> None:
    # Given a Subject naming the hidden address, followed by 20 adjacent encoded words that decode to one long word
    words = b"\r\n ".join(b"=?utf-8?q?" + b"x" * 60 + b"?=" for _ in range(20))
    raw, plan = _one_field_message(b"Subject: =?utf-8?q?jane.doe=40real-user.example?=\r\n " + words)

    # When its headers are rewritten
    out = rewrite_headers(raw, plan)

    # Then no line is longer than 998 octets and the Subject still reads the same
    assert overlong_lines(_header_block(out)) == []
    assert _parsed(out)["Subject"] == USER_RELAY + "x" * 1200


def test_rewrite_headers_decodes_words_in_a_raw_8bit_subject_once() -> None:
    # Given a raw UTF-8 Subject that also holds an encoded word
    raw, plan = _one_field_message("Subject: Grüße und =?utf-8?q?caf=C3=A9?=".encode())

    # When its headers are rewritten
    out = rewrite_headers(raw, plan)

    # Then the recipient reads the text, not the encoded word
    assert _parsed(out)["Subject"] == "Grüße und café"


def test_rewrite_headers_masks_an_address_encoded_next_to_raw_8bit_text() -> None:
    # Given a raw UTF-8 Content-Description with the hidden address inside an encoded word
    raw, plan = _one_field_message("Content-Description: Grüße von =?utf-8?q?jane.doe=40real-user.example?=".encode())

    # When its headers are rewritten
    out = rewrite_headers(raw, plan)

    # Then the address is masked
    assert leaks(_header_block(out), JANE) == []
    assert _parsed(out)["Content-Description"] == f"Grüße von {USER_RELAY}"


def test_rewrite_headers_masks_an_address_in_a_word_python_reads_differently() -> None:
    # Given an unterminated "word" that Python's decoder lets run on over the next, well-formed word (the address)
    raw, plan = _one_field_message(b"Subject: hi =?utf-8?q? =?utf-8?b?amFuZS5kb2VAcmVhbC11c2VyLmV4YW1wbGU=?=")

    # When its headers are rewritten
    out = rewrite_headers(raw, plan)

    # Then a client, which reads the second word on its own, does not find the address
    assert leaks(_header_block(out), JANE) == []


def test_rewrite_headers_drops_a_thread_id_hiding_the_address_in_an_encoded_word() -> None:
    # Given a References id that holds the hidden address as an encoded word
    raw, plan = _one_field_message(b"References: <a@b.example> <x.=?utf-8?q?jane.doe=40real-user.example?=>")

    # When its headers are rewritten
    out = rewrite_headers(raw, plan)

    # Then that id is dropped and the other kept
    assert leaks(_header_block(out), JANE) == []
    assert _parsed(out)["References"] == "<a@b.example>"


def test_rewrite_headers_keeps_a_long_first_thread_id_within_the_limit() -> None:
    # Given an In-Reply-To whose one id is 997 octets, folded onto its own line as RFC 5322 allows
    long_id = b"<" + b"x" * 977 + b"@real-user.example>"
    raw, plan = _one_field_message(b"In-Reply-To:\r\n " + long_id)

    # When its headers are rewritten
    out = rewrite_headers(raw, plan)

    # Then the id is kept and no line is over 998 octets
    assert overlong_lines(_header_block(out)) == []
    assert _parsed(out)["In-Reply-To"].strip() == long_id.decode()


def test_rewrite_headers_survives_an_undecodable_encoded_word() -> None:
    # Given a Subject and a display name with an encoded word of impossible base64 length
    raw = load_eml("user_first_message.eml", {"Subject: Is the flat free in July?": "Subject: =?utf-8?b?a?=",
                                              "Jane Doe <": "=?utf-8?b?a?= <"})
    plan = _plan(raw, CASES["gmail"])

    # When its headers are rewritten
    out = rewrite_headers(raw, plan)

    # Then the Subject is kept as it came
    assert re.search(rb"^Subject: =\?utf-8\?b\?a\?=\r$", _header_block(out), re.MULTILINE)


# --- Display names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("Jane Doe", "Jane Doe"),
    ("  Jane \t  Doe  ", "Jane Doe"),
    ("Jane\r\nBcc: x@y.example", "Jane Bcc:"),
    ("jane@real.example", ""),
    ("Jane (jane@real.example)", "Jane"),
    ("Jane <jane@real.example>", "Jane"),
    ("<Jane>", ""),
    ("Jane > Bob < Carl", "Jane Bob Carl"),
    ('"Jane \\"the boss\\" Doe"', "Jane the boss Doe"),
    ("=?utf-8?q?Mar=C3=ADa_Garc=C3=ADa?=", "María García"),
    ("=?utf-8?q?=22jane=40real=2Eexample=0D=0ABcc=3A_x=40y=22?=", "Bcc:"),
    ("Jane\u2028Doe\x00\u200b", "Jane Doe"),
])
def test_sanitise_display_name_cleans_the_name(name: str, expected: str) -> None:
    # Given a display name as a sender wrote it

    # When it is sanitised
    clean = sanitise_display_name(name)

    # Then line breaks, controls, quotes and anything address-like are gone, white space collapsed
    assert clean == expected


def test_sanitise_display_name_truncates_a_long_name() -> None:
    # Given a 200-character name
    name = "Holiday Flats by the Lake " * 8

    # When it is sanitised
    clean = sanitise_display_name(name)

    # Then it is cut to the limit, ending in an ellipsis
    assert len(clean) == MAX_DISPLAY_NAME
    assert clean.endswith("\u2026")
    assert clean.startswith("Holiday Flats by the Lake Holiday")


def test_sanitise_display_name_keeps_a_name_at_the_limit() -> None:
    # Given a name exactly as long as the limit
    name = "x" * MAX_DISPLAY_NAME

    # When it is sanitised
    clean = sanitise_display_name(name)

    # Then it is unchanged
    assert clean == name


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_sanitise_display_name_leaves_no_encoded_word_to_decode(depth: int) -> None:
    # Given a (short) address encoded `depth` times over, short enough to fit the display name limit
    name = "a@b.cd"
    for _ in range(depth):
        name = f"=?utf8?b?{base64.b64encode(name.encode()).decode()}?="
    assert len(name) <= MAX_DISPLAY_NAME

    # When it is made the relay's display name and written into a From field (each step sanitises)
    raw, plan = _one_field_message(b"Subject: hi", hidden="a@b.cd")
    block = rewrite_header_block(split_message(raw), replace(plan, from_display_name=relay_display_name(name, BRAND)))

    # Then a reader decoding the From field does not find the address
    assert leaks(block, "a@b.cd") == []


def test_sanitise_display_name_removes_a_literal_encoded_word() -> None:
    # Given a name whose decoded text is itself an encoded word (the address encoded twice)
    name = "=?utf-8?q?=3D=3Futf-8=3Fq=3Fjane=3D40real.example=3F=3D?="

    # When it is sanitised
    clean = sanitise_display_name(name)

    # Then nothing in it can be decoded again into the address
    assert "=?" not in clean


def test_relay_display_name_appends_the_brand() -> None:
    # Given a sender's name

    # When the relay's display name is made
    name = relay_display_name("María García", BRAND)

    # Then it reads "<name> via <brand>"
    assert name == "María García via emailflow"


@pytest.mark.parametrize("name", ["", "   ", "jane@real.example", "<jane@real.example>"])
def test_relay_display_name_falls_back_to_the_brand(name: str) -> None:
    # Given a name with nothing usable left after sanitising

    # When the relay's display name is made
    relay_name = relay_display_name(name, BRAND)

    # Then it is the brand alone
    assert relay_name == BRAND


def test_rewrite_headers_from_field_round_trips_a_name_with_specials() -> None:
    # Given a plan whose display name has a comma and quotes
    raw, plan = _one_field_message(b"Subject: hi")
    plan = replace(plan, from_display_name='Garcia, "Maria" via emailflow')

    # When its headers are rewritten
    [sender] = _parsed(rewrite_headers(raw, plan))["From"].addresses

    # Then the name is one display name, quotes dropped, and the address is the relay's
    assert sender == Address(display_name="Garcia, Maria via emailflow", addr_spec=USER_RELAY)
