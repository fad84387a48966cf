"""Masking quoted real addresses in text parts: what is masked, and every byte that must stay as it came."""

from __future__ import annotations

import base64
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from emailflow.bodymask import mask_addresses
from emailflow.message import split_message
from tests.support.mail import load_eml

JANE = "jane.doe@real-user.example"
RENEE = "renee@boite-postale.example"
OWNER = "maria.garcia@holiday-flats.example"
USER_RELAY = "user-4k2vq8s0bqh1n7pt@relay.example"
GMAIL_BOUNDARY = b"000000000000a1c9f20625e3b4d7"
MIXED_BOUNDARY = b"_004_DB9PR08MB6620A1B2C3D4E5F6A7B8C9D0_"
ALTERNATIVE_BOUNDARY = b"_000_DB9PR08MB6620A1B2C3D4E5F6A7B8C9D0_"


def _mask(raw: bytes, *addresses: str, **limits: int) -> bytes | None:
    return mask_addresses(raw, split_message(raw), addresses, USER_RELAY, **limits)


def _parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def _texts(raw: bytes) -> dict[str, str]:
    """The decoded text of every inline text part, by content type, as a mail client reads it."""
    texts: dict[str, str] = {}
    for part in _parse(raw).walk():
        if part.get_content_maintype() == "text" and part.get_content_disposition() != "attachment":
            try:
                content = part.get_content()
            except LookupError:  # a charset no client can read: nothing a reader would see
                continue
            assert isinstance(content, str)
            texts[part.get_content_type()] = texts.get(part.get_content_type(), "") + content
    return texts


def _segments(raw: bytes, boundary: bytes) -> list[bytes]:
    """``raw`` cut at every ``--boundary``: preamble, each part (header block and body) and the epilogue."""
    return raw.split(b"--" + boundary)


def _assert_masked(texts: dict[str, str], address: str) -> None:
    for content_type, text in texts.items():
        assert address not in text.lower(), content_type
        assert USER_RELAY in text, content_type


def test_mask_addresses_masks_both_parts_of_a_gmail_reply() -> None:
    # Given Jane's Gmail follow-up quoting her own message ("On ..., Jane Doe <...> wrote:" and mailto: links)
    raw = load_eml("quoted_gmail_reply.eml")
    assert all(JANE in text for text in _texts(raw).values())

    # When her address is masked
    masked = _mask(raw, JANE)

    # Then neither the text/plain nor the text/html part shows it; both show her relay address instead
    assert masked is not None
    texts = _texts(masked)
    assert set(texts) == {"text/plain", "text/html"}
    _assert_masked(texts, JANE)
    assert f'href="mailto:{USER_RELAY}"' in texts["text/html"]


def test_mask_addresses_keeps_the_header_block_byte_identical() -> None:
    # Given a reply whose header block holds the sender's address too (From, Return-Path, Received-SPF)
    raw = load_eml("quoted_gmail_reply.eml")
    split = split_message(raw)
    assert JANE.encode() in raw[: split.body_start]

    # When the body is masked
    masked = _mask(raw, JANE)

    # Then the header block is untouched: it is the header rewrite's to change, not this function's
    assert masked is not None
    assert masked[: split.body_start] == raw[: split.body_start]


def test_mask_addresses_keeps_boundaries_preamble_and_epilogue() -> None:
    # Given the Gmail reply
    raw = load_eml("quoted_gmail_reply.eml")

    # When it is masked
    masked = _mask(raw, JANE)

    # Then the same delimiters cut it into the same number of pieces, and the pieces around the parts are identical
    assert masked is not None
    before, after = _segments(raw, GMAIL_BOUNDARY), _segments(masked, GMAIL_BOUNDARY)
    assert len(after) == len(before) == 4
    assert after[0] == before[0]
    assert after[-1] == before[-1] == b"--\r\n"


def test_mask_addresses_finds_an_address_split_by_a_soft_line_break() -> None:
    # Given a quoted-printable HTML part where the encoder broke a line inside the address
    raw = load_eml("quoted_gmail_reply.eml")
    html_part = _segments(raw, GMAIL_BOUNDARY)[2]
    assert b"mailto:jane.doe@re=\r\nal-user.example" in html_part

    # When it is masked
    masked = _mask(raw, JANE)

    # Then the address is found in the decoded text, not in the encoded bytes, and is gone
    assert masked is not None
    assert JANE not in _texts(masked)["text/html"]


def test_mask_addresses_reencodes_quoted_printable_with_the_part_line_endings() -> None:
    # Given the Gmail reply stored with LF line endings
    raw = load_eml("quoted_gmail_reply.eml", crlf=False)

    # When it is masked
    masked = _mask(raw, JANE)

    # Then the re-encoded parts use LF as well, and no line is longer than RFC 2045 allows
    assert masked is not None
    assert b"\r" not in masked
    assert max(len(line) for line in masked[split_message(masked).body_start :].split(b"\n")) <= 76
    _assert_masked(_texts(masked), JANE)


def test_mask_addresses_reencodes_a_base64_html_part_with_its_line_layout() -> None:
    # Given an Outlook reply whose base64 text/html part quotes "From: Jane Doe <JANE.DOE@real-user.example>"
    raw = load_eml("quoted_outlook_base64.eml")

    # When it is masked
    masked = _mask(raw, JANE)

    # Then the html part is still base64 in 76-character CRLF lines, with the same blank line before the delimiter
    assert masked is not None
    html_part = _segments(masked, ALTERNATIVE_BOUNDARY)[2]
    header, _, body = html_part.partition(b"\r\n\r\n")
    assert header == _segments(raw, ALTERNATIVE_BOUNDARY)[2].partition(b"\r\n\r\n")[0]
    lines = body.split(b"\r\n")
    assert lines[-2:] == [b"", b""]
    assert {len(line) for line in lines[:-3]} == {76}
    assert 0 < len(lines[-3]) <= 76
    assert b"\n" not in body.replace(b"\r\n", b"")
    decoded = base64.b64decode(body).decode("utf-8")
    assert "jane.doe@" not in decoded.lower()
    assert f"Jane Doe &lt;{USER_RELAY}&gt;" in decoded


def test_mask_addresses_leaves_attachments_byte_identical() -> None:
    # Given the Outlook reply with a PDF and a text/plain attachment that both hold the address
    raw = load_eml("quoted_outlook_base64.eml")
    pdf, notes = _segments(raw, MIXED_BOUNDARY)[2:4]
    assert JANE.encode() in base64.b64decode(pdf.partition(b"\r\n\r\n")[2])
    assert JANE.encode() in notes

    # When the message is masked
    masked = _mask(raw, JANE)

    # Then both attachments are exactly the bytes that came in: they are the sender's to share
    assert masked is not None
    assert _segments(masked, MIXED_BOUNDARY)[2:4] == [pdf, notes]


def test_mask_addresses_masks_text_parts_nested_in_mixed_and_alternative() -> None:
    # Given multipart/mixed > multipart/alternative > text/plain (quoted-printable) + text/html (base64)
    raw = load_eml("quoted_outlook_base64.eml")

    # When it is masked
    masked = _mask(raw, JANE)

    # Then both nested text parts are masked and the outer structure (preamble, epilogue) is untouched
    assert masked is not None
    _assert_masked(_texts(masked), JANE)
    before, after = _segments(raw, MIXED_BOUNDARY), _segments(masked, MIXED_BOUNDARY)
    assert (after[0], after[-1]) == (before[0], before[-1])


def test_mask_addresses_matches_case_insensitively() -> None:
    # Given an Outlook quote writing the address as "Jane.Doe@Real-User.Example"
    raw = load_eml("quoted_outlook_base64.eml")
    assert "From: Jane Doe <Jane.Doe@Real-User.Example>" in _texts(raw)["text/plain"]

    # When the normalised (lower-case) address is masked
    masked = _mask(raw, JANE)

    # Then the mixed-case spelling is replaced as well, and only that line of the quoted-printable part changed
    assert masked is not None
    assert f"From: Jane Doe <{USER_RELAY}>" in _texts(masked)["text/plain"]
    before, after = _segments(raw, ALTERNATIVE_BOUNDARY)[1], _segments(masked, ALTERNATIVE_BOUNDARY)[1]
    assert before.replace(b"Jane.Doe@Real-User.Example", USER_RELAY.encode()) == after


def test_mask_addresses_keeps_a_latin1_8bit_body_in_latin1() -> None:
    # Given a single-part ISO-8859-1 8bit message quoting "Renée Dupré <Renee@Boite-Postale.example>"
    raw = load_eml("quoted_latin1_8bit.eml")
    split = split_message(raw)

    # When it is masked
    masked = _mask(raw, RENEE)

    # Then the body is still Latin-1 8bit (é is the byte E9), differs only by the replaced addresses
    assert masked is not None
    assert masked[: split.body_start] == raw[: split.body_start]
    body = masked[split.body_start :]
    assert b"Ren\xe9e Dupr\xe9 <" + USER_RELAY.encode() + b"> a \xe9crit" in body
    assert body == raw[split.body_start :].replace(b"Renee@Boite-Postale.example", USER_RELAY.encode()).replace(
        RENEE.encode(), USER_RELAY.encode())
    _assert_masked(_texts(masked), RENEE)


def test_mask_addresses_carries_bytes_outside_the_charset_through_unchanged() -> None:
    # Given the Latin-1 message with its charset parameter lost: US-ASCII by default, with 8-bit bytes in it
    raw = load_eml("quoted_latin1_8bit.eml").replace(b'; charset="iso-8859-1"', b"")
    split = split_message(raw)

    # When it is masked
    masked = _mask(raw, RENEE)

    # Then the addresses are replaced and every other byte, the undecodable ones included, is as it came
    assert masked is not None
    before, after = raw[split.body_start :], masked[split.body_start :]
    assert after == before.replace(b"Renee@Boite-Postale.example", USER_RELAY.encode()).replace(
        RENEE.encode(), USER_RELAY.encode())


def test_mask_addresses_leaves_utf16_text_with_a_broken_sequence_untouched() -> None:
    # Given a UTF-16 text part (not ASCII-compatible) whose last code unit is cut in half
    text = "On Tue, Jane Doe <jane.doe@real-user.example> wrote:".encode("utf-16")
    raw = (b"From: Jane Doe <jane.doe@real-user.example>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-16\r\nContent-Transfer-Encoding: base64\r\n\r\n")

    # When the intact and the broken part are masked
    intact = _mask(raw + base64.b64encode(text) + b"\r\n", JANE)
    broken = _mask(raw + base64.b64encode(text[:-1]) + b"\r\n", JANE)

    # Then the intact part is masked, in UTF-16, and the broken one, which cannot be read back exactly, is not
    assert intact is not None
    body = intact[split_message(intact).body_start :]
    assert base64.b64decode(body).decode("utf-16") == f"On Tue, Jane Doe <{USER_RELAY}> wrote:"
    assert broken is None


def test_mask_addresses_returns_none_without_a_match() -> None:
    # Given a reply whose quote holds only relay addresses
    raw = load_eml("quoted_clean_reply.eml")

    # When Jane's address is masked
    masked = _mask(raw, JANE)

    # Then there is nothing to do: the caller keeps the original bytes
    assert masked is None


def test_mask_addresses_ignores_addresses_in_the_header_block() -> None:
    # Given a reply where the sender's address appears only in its header block
    raw = load_eml("quoted_clean_reply.eml")
    assert OWNER.encode() in raw[: split_message(raw).body_start]

    # When that address is masked
    masked = _mask(raw, OWNER)

    # Then the body has no match, so nothing changes
    assert masked is None


def test_mask_addresses_returns_none_without_addresses() -> None:
    # Given a reply that quotes Jane's address
    raw = load_eml("quoted_gmail_reply.eml")

    # When no address is to be masked
    masked = _mask(raw)

    # Then nothing is masked
    assert masked is None


def test_mask_addresses_masks_entity_encoded_addresses_in_html() -> None:
    # Given a webmail HTML quote writing "@" as &#64;, &#064;, &#x40; and &#X40;, in mixed case
    raw = load_eml("quoted_html_entities.eml")

    # When it is masked
    masked = _mask(raw, JANE)

    # Then every spelling is replaced, links included, and a browser would show no trace of the address
    assert masked is not None
    html = _texts(masked)["text/html"]
    assert "real-user" not in html.lower()
    assert html.count(USER_RELAY) == 4
    assert f'href="mailto:{USER_RELAY}"' in html


def test_mask_addresses_leaves_a_part_with_an_unknown_charset_untouched() -> None:
    # Given a text/plain part in a charset nobody knows and a text/html part in UTF-8, both quoting the address
    raw = load_eml("quoted_unknown_charset.eml")
    boundary = b"OldClient_Alt_0042"

    # When it is masked
    masked = _mask(raw, JANE)

    # Then the unreadable part is left exactly as it came (no guessing), and the readable one is masked
    assert masked is not None
    assert _segments(masked, boundary)[:2] == _segments(raw, boundary)[:2]
    assert JANE not in _texts(masked)["text/html"]


def test_mask_addresses_masks_the_last_part_of_an_unterminated_multipart() -> None:
    # Given a message cut off in transit: its multipart body has no closing delimiter
    raw = load_eml("quoted_unterminated.eml")

    # When it is masked
    masked = _mask(raw, JANE)

    # Then it does not fail, and the last part is read to the end, as mail clients show it
    assert masked is not None
    assert masked.replace(USER_RELAY.encode(), JANE.encode()) == raw


def test_mask_addresses_returns_none_for_a_multipart_without_boundary() -> None:
    # Given a multipart message whose Content-Type lost its boundary parameter
    raw = load_eml("quoted_gmail_reply.eml").replace(b'boundary="000000000000a1c9f20625e3b4d7"', b"charset=utf-8")

    # When it is masked
    masked = _mask(raw, JANE)

    # Then its parts cannot be found, and nothing is changed
    assert masked is None


def test_mask_addresses_leaves_garbage_base64_untouched() -> None:
    # Given the Outlook reply whose base64 html part was damaged (a stray character breaks the padding)
    raw = load_eml("quoted_outlook_base64.eml")
    html_part = _segments(raw, ALTERNATIVE_BOUNDARY)[2]
    header, _, body = html_part.partition(b"\r\n\r\n")
    damaged = raw.replace(html_part, header + b"\r\n\r\n" + b"Q" + body)

    # When it is masked
    masked = _mask(damaged, JANE)

    # Then the damaged part is left as it is, and the readable text/plain part is still masked
    assert masked is not None
    assert _segments(masked, ALTERNATIVE_BOUNDARY)[2] == _segments(damaged, ALTERNATIVE_BOUNDARY)[2]
    assert JANE not in _texts(masked)["text/plain"].lower()


def test_mask_addresses_reads_base64_without_its_padding() -> None:
    # Given the Outlook reply whose base64 html part lost its "=" padding (clients and the stdlib still read it)
    raw = load_eml("quoted_outlook_base64.eml")
    html_part = _segments(raw, ALTERNATIVE_BOUNDARY)[2]
    header, _, body = html_part.partition(b"\r\n\r\n")
    assert body.rstrip().endswith(b"=")
    unpadded = raw.replace(html_part, header + b"\r\n\r\n" + body.replace(b"=", b""))

    # When it is masked
    masked = _mask(unpadded, JANE)

    # Then the html part is masked like any other
    assert masked is not None
    assert "jane.doe@" not in _texts(masked)["text/html"].lower()


def test_mask_addresses_treats_digest_parts_without_content_type_as_messages() -> None:
    # Given a multipart/digest whose part has no Content-Type (RFC 2046 section 5.1.5: message/rfc822)
    raw = load_eml("quoted_digest.eml")

    # When the address it quotes is masked
    masked = _mask(raw, JANE)

    # Then the part is not read as text, and nothing changes
    assert masked is None


def test_mask_addresses_leaves_text_larger_than_the_limit_untouched() -> None:
    # Given the Gmail reply, whose text parts are each over 300 bytes encoded
    raw = load_eml("quoted_gmail_reply.eml")

    # When it is masked with a 300-byte limit on text parts
    masked = _mask(raw, JANE, max_text_bytes=300)

    # Then no part is decoded and nothing changes
    assert masked is None


def _nested(depth: int, text: bytes) -> bytes:
    """A message with ``depth`` multipart/mixed levels around one text/plain part."""
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="level-%d"\r\n\r\n--level-%d\r\n' % (level, level)
                       for level in range(depth))
    closing = b"".join(b"\r\n--level-%d--\r\n" % level for level in reversed(range(depth)))
    return (b"From: Jane Doe <jane.doe@real-user.example>\r\nMIME-Version: 1.0\r\n" + opening
            + b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + text + closing)


@pytest.mark.parametrize("depth", [1, 5, 30])
def test_mask_addresses_masks_text_nested_up_to_max_depth(depth: int) -> None:
    # Given a text part nested ``depth`` multipart levels deep
    raw = _nested(depth, b"On Tue, Jane Doe <jane.doe@real-user.example> wrote:")

    # When it is masked with the default depth limit (30)
    masked = _mask(raw, JANE)

    # Then the text is found and masked
    assert masked is not None
    assert masked == raw.replace(b"<jane.doe@real-user.example> wrote", b"<" + USER_RELAY.encode() + b"> wrote")


def test_mask_addresses_leaves_text_deeper_than_max_depth_untouched() -> None:
    # Given a text part nested 31 multipart levels deep
    raw = _nested(31, b"On Tue, Jane Doe <jane.doe@real-user.example> wrote:")

    # When it is masked with the default depth limit (30)
    masked = _mask(raw, JANE)

    # Then the bounded walk does not reach it
    assert masked is None


def test_mask_addresses_survives_a_depth_bomb() -> None:
    # Given 1000 nested multiparts around a text part quoting the address
    raw = _nested(1000, b"On Tue, Jane Doe <jane.doe@real-user.example> wrote:")

    # When it is masked
    masked = _mask(raw, JANE)

    # Then it neither recurses without bound nor crashes: the part beyond max_depth is left as it is
    assert masked is None
