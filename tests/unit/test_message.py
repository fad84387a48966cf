"""Reading raw mail: the header/body split, header field text, RFC 2047 words, message ids, inbound headers."""

from __future__ import annotations

import pytest

from emailflow.message import HeaderField, InboundHeaders, decode_each_word, decode_words, message_ids, split_message
from tests.support.mail import load_eml

FIRST_MESSAGE_FIELDS = ["return-path", "received", "dkim-signature", "authentication-results", "from", "to",
                        "subject", "date", "message-id", "mime-version", "content-type", "x-mailer",
                        "list-unsubscribe"]


def _field(raw: bytes) -> HeaderField:
    """The single header field of a one-field header block."""
    [field] = split_message(raw + b"\r\n\r\n").fields
    return field


def test_split_message_reads_a_crlf_message() -> None:
    # Given a real message with CRLF line endings, as SES stores it
    raw = load_eml("user_first_message.eml")

    # When it is split
    split = split_message(raw)

    # Then every field is found in order and the body starts right after the first empty line
    assert [field.key for field in split.fields] == FIRST_MESSAGE_FIELDS
    assert split.body_start == raw.index(b"\r\n\r\n") + 4
    assert raw[split.body_start :].startswith(b"--000000000000b1c2d3\r\n")
    assert split.newline == b"\r\n"


def test_split_message_reads_an_lf_message() -> None:
    # Given the same message with LF line endings
    raw = load_eml("user_first_message.eml", crlf=False)

    # When it is split
    split = split_message(raw)

    # Then the same fields are found and the body starts after the first empty line
    assert [field.key for field in split.fields] == FIRST_MESSAGE_FIELDS
    assert split.body_start == raw.index(b"\n\n") + 2
    assert split.newline == b"\n"


def test_split_message_joins_folded_lines_into_one_field() -> None:
    # Given a message whose Received and DKIM-Signature fields are folded over three lines
    raw = load_eml("user_first_message.eml")

    # When it is split
    split = split_message(raw)

    # Then each folded field is one HeaderField holding every physical line, without the final line ending
    received = split.first("received")
    assert received is not None
    assert received.raw.count(b"\r\n") == 2
    assert received.raw.startswith(b"Received: from mail.real-user.example")
    assert received.raw.endswith(b"(UTC)")
    assert received.text() == (
        "from mail.real-user.example (mail.real-user.example [198.51.100.7])"
        "\tby inbound-smtp.us-east-1.amazonaws.com with SMTP id o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1"
        "\tfor service-placeholder@relay.example; Wed, 25 Nov 2026 10:00:00 +0000 (UTC)"
    )
    assert len(split.all("dkim-signature")) == 1


def test_split_message_reads_a_header_block_without_body() -> None:
    # Given a header block that ends at the end of the input, with no empty line
    raw = b"From: jane@real-user.example\r\nSubject: no body\r\n"

    # When it is split
    split = split_message(raw)

    # Then both fields are read and the body is empty
    assert [field.key for field in split.fields] == ["from", "subject"]
    assert split.body_start == len(raw)


def test_split_message_reads_a_last_field_without_line_ending() -> None:
    # Given a header block whose last field has no line ending at all
    raw = b"From: jane@real-user.example\r\nSubject: cut short"

    # When it is split
    split = split_message(raw)

    # Then the last field is complete and the body is empty
    subject = split.first("subject")
    assert subject is not None
    assert subject.raw == b"Subject: cut short"
    assert split.body_start == len(raw)


def test_split_message_reads_an_empty_body_after_the_empty_line() -> None:
    # Given headers, the empty line and nothing more
    raw = b"Subject: empty\r\n\r\n"

    # When it is split
    split = split_message(raw)

    # Then the body starts at the end
    assert split.body_start == len(raw)


def test_split_message_starts_the_body_at_a_line_that_is_not_a_header() -> None:
    # Given a header block followed, without an empty line, by a line that cannot be a header
    raw = (b"From: owner@holiday-flats.example\r\nSubject: Key handover\r\n"
           b"Hello, the key box code is 4711.\r\nSee you!\r\n")

    # When it is split
    split = split_message(raw)

    # Then that line is the first line of the body, not lost
    assert [field.key for field in split.fields] == ["from", "subject"]
    assert raw[split.body_start :] == b"Hello, the key box code is 4711.\r\nSee you!\r\n"


@pytest.mark.parametrize("line", [b"no colon on this line", b": starts with a colon", b"Two words: not a name",
                                  b"Gr\xc3\xbc\xc3\x9fe: 8-bit name", b"\xff\xfe"])
def test_split_message_ends_the_header_block_at_an_invalid_field_name(line: bytes) -> None:
    # Given a header block interrupted by a line whose "name" is not a field name
    raw = b"Subject: hi\r\n" + line + b"\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n"

    # When it is split
    split = split_message(raw)

    # Then the header block ends there and the line starts the body
    assert [field.key for field in split.fields] == ["subject"]
    assert raw[split.body_start :].startswith(line + b"\r\n")


def test_split_message_keeps_a_field_with_a_long_name() -> None:
    # Given a field whose name is 100 characters long, before the Content-Type
    name = b"X-" + b"Long" * 24 + b"-Id"
    raw = b"Subject: hi\r\n" + name + b": 1\r\nContent-Type: text/plain\r\n\r\nbody\r\n"

    # When it is split
    split = split_message(raw)

    # Then it is a field like any other (RFC 5322 sets no limit below the line length) and the body is after it
    assert [field.name for field in split.fields] == [b"Subject", name, b"Content-Type"]
    assert raw[split.body_start :] == b"body\r\n"


def test_split_message_reads_a_name_with_space_before_the_colon() -> None:
    # Given the obsolete syntax of RFC 5322 section 4.5.3: white space between name and colon
    raw = b"Subject \t: spaced\r\n\r\nbody"

    # When it is split
    split = split_message(raw)

    # Then the name is read without the space
    [field] = split.fields
    assert (field.name, field.key, field.text()) == (b"Subject", "subject", "spaced")


def test_split_message_keeps_whitespace_led_body_lines_in_the_body() -> None:
    # Given a body that starts with indented lines, one of which looks like a folded field
    raw = b"Subject: poem\r\n\r\n   indented first line\r\n\tTabbed: line\r\n \r\nend\r\n"

    # When it is split
    split = split_message(raw)

    # Then the Subject keeps its value and the body is every byte after the empty line
    subject = split.first("subject")
    assert subject is not None
    assert subject.text() == "poem"
    assert raw[split.body_start :] == b"   indented first line\r\n\tTabbed: line\r\n \r\nend\r\n"


def test_split_message_reads_a_message_that_starts_with_whitespace_as_all_body() -> None:
    # Given input whose first line is indented: a continuation with nothing to continue
    raw = b" Subject: not a field\r\nFrom: x@y.example\r\n\r\nbody"

    # When it is split
    split = split_message(raw)

    # Then there are no fields and everything is body
    assert split.fields == ()
    assert split.body_start == 0


def test_split_message_reads_a_message_that_starts_with_the_empty_line() -> None:
    # Given a message with no header fields at all
    raw = b"\r\nHello\r\n"

    # When it is split
    split = split_message(raw)

    # Then the body follows the empty line
    assert (split.fields, split.body_start, split.newline) == ((), 2, b"\r\n")


def test_split_message_finds_the_body_after_the_first_empty_line_only() -> None:
    # Given a body that itself contains header-like lines and empty lines
    raw = load_eml("webform_no_date.eml", crlf=False)

    # When it is split
    split = split_message(raw)

    # Then the header block ends at the first empty line: the body's "From:" line is body
    assert [field.key for field in split.fields] == ["received", "from", "to", "subject",
                                                     "x-php-originating-script", "content-type"]
    assert raw[split.body_start :].startswith(b"Hello,\n")
    assert b"From: the owners\n" in raw[split.body_start :]


def test_split_message_first_and_all_find_fields_by_lower_case_name() -> None:
    # Given a message with two Subject fields and two Content-Type fields
    split = split_message(load_eml("duplicated_headers.eml"))

    # When fields are looked up
    first = split.first("subject")
    subjects = split.all("subject")

    # Then first is the earliest, and all lists both in order; a missing name gives nothing
    assert first is not None
    assert first.text() == "Your booking 2026-0703"
    assert [field.text() for field in subjects] == ["Your booking 2026-0703", "Your booking 2026-0703 (copy)"]
    assert len(split.all("content-type")) == 2
    assert split.first("cc") is None
    assert split.all("cc") == []


def test_header_field_text_reads_raw_utf8() -> None:
    # Given a raw 8-bit UTF-8 Subject (RFC 6532)
    field = _field("Subject: Grüße aus München".encode())

    # When its text is read
    text = field.text()

    # Then it is decoded as UTF-8
    assert text == "Grüße aus München"


def test_header_field_text_falls_back_to_latin1() -> None:
    # Given a raw 8-bit Subject that is not valid UTF-8 (Latin-1 bytes)
    field = _field("Subject: Grüße aus München".encode("latin-1"))

    # When its text is read
    text = field.text()

    # Then it is read as Latin-1 rather than failing
    assert text == "Grüße aus München"


def test_header_field_text_unfolds_and_trims() -> None:
    # Given a folded Subject with CRLF and LF folds and surrounding space
    field = _field(b"Subject:   first part\r\n second part\n\tthird part  ")

    # When its text is read
    text = field.text()

    # Then the line breaks are removed and the folding white space kept
    assert text == "first part second part\tthird part"


def test_header_field_text_leaves_encoded_words_encoded() -> None:
    # Given an RFC 2047 Subject
    field = _field(b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=")

    # When its plain text is read
    text = field.text()

    # Then the encoded word is still there
    assert text == "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?="


@pytest.mark.parametrize(("raw", "expected"), [
    (b"Subject: =?UTF-8?Q?Mar=C3=ADa_Garc=C3=ADa?=", "María García"),
    (b"Subject: =?utf-8?b?R3LDvMOfZSBhdXMgTcO8bmNoZW4=?=", "Grüße aus München"),
    (b"Subject: =?ISO-8859-1?Q?Disponibilit=E9_en_ao=FBt?=", "Disponibilité en août"),
    (b"Subject: Re: =?utf-8?q?caf=C3=A9?= au lait", "Re: café au lait"),
    (b"Subject: =?utf-8?q?Gr=C3=BC?=\r\n =?utf-8?q?=C3=9Fe?=", "Grüße"),
    (b"Subject: plain = text? yes", "plain = text? yes"),
])
def test_header_field_decoded_text_decodes_rfc2047_words(raw: bytes, expected: str) -> None:
    # Given a Subject with encoded words (Q and B, UTF-8 and Latin-1, adjacent and folded) or none
    field = _field(raw)

    # When its decoded text is read
    text = field.decoded_text()

    # Then the words are decoded, and white space between adjacent words is dropped (RFC 2047 section 6.2)
    assert text == expected


@pytest.mark.parametrize("text", ["=?utf-8?b?a?=", "=?utf-8?b?QUJD?= =?utf-8?b?a?=", "=?utf-8?q?broken"])
def test_decode_words_returns_malformed_words_unchanged(text: str) -> None:
    # Given text with an encoded word that cannot be decoded (base64 of impossible length) or is unterminated

    # When it is decoded
    decoded = decode_words(text)

    # Then nothing is raised and the bad word is left as it came
    assert "=?utf-8?" in decoded


def test_decode_words_decodes_good_words_next_to_a_bad_one() -> None:
    # Given a good encoded word and an undecodable one
    text = "=?utf-8?q?jane=40real-user.example?= =?utf-8?b?a?="

    # When it is decoded
    decoded = decode_words(text)

    # Then the good word is decoded as a mail client would show it
    assert decoded.startswith("jane@real-user.example")


def test_decode_words_decodes_words_next_to_raw_8bit_text() -> None:
    # Given raw UTF-8 text (RFC 6532) followed by an encoded word
    text = "Grüße von =?utf-8?q?jane=40real-user.example?="

    # When it is decoded
    decoded = decode_words(text)

    # Then the encoded word is decoded too
    assert decoded == "Grüße von jane@real-user.example"


def test_decode_words_reads_an_unknown_charset_as_latin1() -> None:
    # Given an encoded word in a charset Python does not know
    text = "=?x-unknown?q?jane=40real-user.example?="

    # When it is decoded
    decoded = decode_words(text)

    # Then its bytes are still read (mail clients fall back the same way)
    assert decoded == "jane@real-user.example"


@pytest.mark.parametrize(("text", "expected"), [
    ("=?utf-8?q? =?utf-8?b?amFuZS5kb2VAcmVhbC11c2VyLmV4YW1wbGU=?=", "=?utf-8?q? jane.doe@real-user.example"),
    ("=?utf-8?q?a b?=", "=?utf-8?q?a b?="),
    ("Grüße =?utf-8?q?caf=C3=A9?= =?utf-8?q?_au_lait?=", "Grüße café au lait"),
    ("no words here", "no words here"),
])
def test_decode_each_word_reads_words_as_rfc2047_delimits_them(text: str, expected: str) -> None:
    # Given text with well-formed words, malformed ones, or none

    # When each word is decoded on its own terms
    decoded = decode_each_word(text)

    # Then only well-formed words (no white space or "?" inside) are decoded, adjacent ones joined
    assert decoded == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("<a@b.example>", ["<a@b.example>"]),
    ("<CAF1x2y3@mail.real-user.example> <reply-1@holiday-flats.example>",
     ["<CAF1x2y3@mail.real-user.example>", "<reply-1@holiday-flats.example>"]),
    ("<a@b.example>,\t(comment) <c@d.example>garbage<e@f.example>",
     ["<a@b.example>", "<c@d.example>", "<e@f.example>"]),
    ("no ids at all", []),
    ("<>", []),
    ("<with space@b.example>", []),
    ("<" + "x" * 995 + ">", ["<" + "x" * 995 + ">"]),
    ("<" + "x" * 996 + ">", []),
])
def test_message_ids_finds_angle_bracketed_ids_in_order(text: str, expected: list[str]) -> None:
    # Given a Message-ID, In-Reply-To or References value

    # When its ids are read
    ids = message_ids(text)

    # Then every well-formed <id> is found in order, nothing else
    assert ids == expected


def test_inbound_headers_read_reads_a_real_message() -> None:
    # Given the follow-up fixture
    split = split_message(load_eml("user_follow_up.eml"))

    # When its headers are read
    headers = InboundHeaders.read(split)

    # Then From, To, Subject, Message-ID and the thread ids are read
    assert headers.from_addresses == (("Jane Doe", "JANE.DOE@real-user.example"),)
    assert headers.to_addresses == ("service-placeholder@relay.example",)
    assert headers.cc_addresses == ()
    assert headers.subject == "Re: Is the flat free in July?"
    assert headers.message_id == "<CAF9z8y7@mail.real-user.example>"
    assert headers.in_reply_to == ("<ses-in-reply-to-placeholder>",)
    assert headers.references == ("<CAF1x2y3@mail.real-user.example>", "<ses-in-reply-to-placeholder>")


def test_inbound_headers_read_decodes_encoded_display_names() -> None:
    # Given a reply whose From display name is RFC 2047-encoded
    split = split_message(load_eml("service_reply.eml"))

    # When its headers are read
    headers = InboundHeaders.read(split)

    # Then the name is decoded and the address left as it came
    assert headers.from_addresses == (("María García", "Owner@Holiday-Flats.example"),)


def test_inbound_headers_read_lists_every_from_mailbox() -> None:
    # Given two From fields, one with two mailboxes (RFC 5322 allows a mailbox-list)
    raw = (b"From: Jane <jane@real-user.example>, =?utf-8?q?Bj=C3=B6rn?= <bjorn@real-user.example>\r\n"
           b"To: a@relay.example, b@relay.example\r\nCc: Carl <carl@real-user.example>\r\n"
           b"From: third@real-user.example\r\n\r\n")

    # When its headers are read
    headers = InboundHeaders.read(split_message(raw))

    # Then every mailbox of every From field is listed
    assert headers.from_addresses == (("Jane", "jane@real-user.example"), ("Björn", "bjorn@real-user.example"),
                                      ("", "third@real-user.example"))
    assert headers.to_addresses == ("a@relay.example", "b@relay.example")
    assert headers.cc_addresses == ("carl@real-user.example",)


def test_inbound_headers_read_keeps_a_comma_inside_an_encoded_name() -> None:
    # Given a display name "Doe, Jane" whose comma is inside an encoded word
    raw = b"From: =?utf-8?q?Doe=2C_Jane?= <jane@real-user.example>\r\n\r\n"

    # When its headers are read
    headers = InboundHeaders.read(split_message(raw))

    # Then it is one mailbox with the decoded name
    assert headers.from_addresses == (("Doe, Jane", "jane@real-user.example"),)


def test_inbound_headers_read_reads_folded_thread_ids() -> None:
    # Given In-Reply-To and References folded over several lines, with a comment
    raw = (b"In-Reply-To: <reply-1@holiday-flats.example> (Maria's message)\r\n"
           b"References: <CAF1x2y3@mail.real-user.example>\r\n <reply-1@holiday-flats.example>\r\n"
           b"\t<reply-2@holiday-flats.example>\r\n\r\n")

    # When its headers are read
    headers = InboundHeaders.read(split_message(raw))

    # Then the ids are read in order
    assert headers.in_reply_to == ("<reply-1@holiday-flats.example>",)
    assert headers.references == ("<CAF1x2y3@mail.real-user.example>", "<reply-1@holiday-flats.example>",
                                  "<reply-2@holiday-flats.example>")


def test_inbound_headers_read_tolerates_missing_fields() -> None:
    # Given a header block with only a From field
    raw = b"From: jane@real-user.example\r\n\r\nhi"

    # When its headers are read
    headers = InboundHeaders.read(split_message(raw))

    # Then the missing fields read as empty
    assert (headers.subject, headers.message_id, headers.in_reply_to, headers.references) == ("", None, (), ())


def test_inbound_headers_read_survives_a_malformed_encoded_subject() -> None:
    # Given a Subject with an encoded word of impossible base64 length and a name with one too
    raw = b"From: =?utf-8?b?a?= <jane@real-user.example>\r\nSubject: =?utf-8?b?a?=\r\n\r\nhi"

    # When its headers are read
    headers = InboundHeaders.read(split_message(raw))

    # Then the words are left as they came instead of failing the whole message
    assert headers.subject == "=?utf-8?b?a?="
    assert headers.from_addresses == (("=?utf-8?b?a?=", "jane@real-user.example"),)
