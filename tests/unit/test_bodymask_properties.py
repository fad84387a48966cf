"""Properties of body masking over generated multipart messages.

Each message has text/plain and text/html parts (optionally inside a multipart/alternative) in 7bit, 8bit,
quoted-printable or base64, whose random text may hold the hidden address in any case and position (also glued to
other words, or assembled from pieces), and a base64 binary attachment that may hold the address bytes too.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import compat32

from hypothesis import given, settings
from hypothesis import strategies as st

from emailflow.bodymask import mask_addresses
from emailflow.message import split_message

ADDRESS = "jane.doe@real-user.example"
USER_RELAY = "user-4k2vq8s0bqh1n7pt@relay.example"
BOUNDARY = "==bodymask_outer_7f3e=="
INNER = "==bodymask_inner_1c9a=="
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)

# --- Strategies ------------------------------------------------------------------------------------------------------

_ascii_words = st.sampled_from(["Hello", "Jane", "flat", "July", "wrote:", "On Tue,", "From:", "To:", "mailto:",
                                "<", ">", "=", "==", "--", ".", "@", "jane.doe", "real-user.example", "@real-user",
                                "x", "<br>", "&lt;", "&gt;", '<a href="', '">', "</a>", "\t", "  "])
_other_words = st.sampled_from(["Mar\u00eda", "caf\u00e9", "\u2014", "\u20ac 80", "Stra\u00dfe", "\u65e5\u672c"])
_spellings = st.integers(0, 2 ** len(ADDRESS) - 1).map(
    lambda upper: "".join(char.upper() if upper >> index & 1 else char for index, char in enumerate(ADDRESS)))
"""The address in any case: bit ``i`` upper-cases character ``i``."""
_separators = st.sampled_from(["", " ", "\n", "\n> ", ", ", " <", "> "])


@dataclass(frozen=True)
class TextPart:
    content_type: str
    encoding: str
    text: str

    @property
    def charset(self) -> str:
        return "us-ascii" if self.encoding == "7bit" else "utf-8"

    def mentions(self) -> bool:
        return ADDRESS in self.text.lower()


@dataclass(frozen=True)
class Generated:
    parts: tuple[TextPart, ...]
    attachment: bytes
    nested: bool
    newline: bytes

    def _text_part(self, part: TextPart) -> bytes:
        data = part.text.replace("\n", self.newline.decode()).encode(part.charset)
        if part.encoding == "quoted-printable":
            body = re.sub(rb"\r?\n", self.newline, binascii.b2a_qp(data, istext=True))
        elif part.encoding == "base64":
            encoded = base64.b64encode(data)
            body = self.newline.join(encoded[index : index + 76] for index in range(0, len(encoded), 76))
        else:
            body = data
        header = (f"Content-Type: {part.content_type}; charset={part.charset}\n"
                  f"Content-Transfer-Encoding: {part.encoding}\n\n")
        return header.replace("\n", self.newline.decode()).encode() + body

    @property
    def attachment_part(self) -> bytes:
        encoded = base64.b64encode(self.attachment)
        lines = [b"Content-Type: application/octet-stream; name=\"data.bin\"",
                 b"Content-Disposition: attachment; filename=\"data.bin\"", b"Content-Transfer-Encoding: base64", b""]
        lines += [encoded[index : index + 76] for index in range(0, len(encoded), 76)]
        return self.newline.join(lines)

    @staticmethod
    def _multipart(boundary: str, parts: list[bytes], newline: bytes) -> bytes:
        delimiter = newline + b"--" + boundary.encode() + newline
        return (b"--" + boundary.encode() + newline + delimiter.join(parts)
                + newline + b"--" + boundary.encode() + b"--" + newline)

    @property
    def raw(self) -> bytes:
        texts = [self._text_part(part) for part in self.parts]
        if self.nested:
            inner = self._multipart(INNER, texts, self.newline)
            texts = [f'Content-Type: multipart/alternative; boundary="{INNER}"'.encode() + self.newline * 2 + inner]
        header = ("From: Jane Doe <jane.doe@real-user.example>\nTo: service-7c1m0e4k9p2s5v8y@relay.example\n"
                  f"Subject: Re: Is the flat free in July?\nMIME-Version: 1.0\n"
                  f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"\n\n')
        return (header.replace("\n", self.newline.decode()).encode()
                + self._multipart(BOUNDARY, [*texts, self.attachment_part], self.newline))


@st.composite
def _text_parts(draw: st.DrawFn) -> TextPart:
    encoding = draw(st.sampled_from(["7bit", "8bit", "quoted-printable", "base64"]))
    words = _ascii_words if encoding == "7bit" else st.one_of(_ascii_words, _other_words)
    tokens = draw(st.lists(st.one_of(words, words, _spellings), max_size=24))
    separators = draw(st.lists(_separators, min_size=len(tokens), max_size=len(tokens)))
    text = "".join(token + separator for token, separator in zip(tokens, separators, strict=True))
    return TextPart(draw(st.sampled_from(["text/plain", "text/html"])), encoding, text)


@st.composite
def _attachments(draw: st.DrawFn) -> bytes:
    data = draw(st.binary(max_size=400))
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + ADDRESS.encode() + data[cut:]
    return data


_messages = st.builds(Generated, st.lists(_text_parts(), min_size=1, max_size=3).map(tuple), _attachments(),
                      st.booleans(), st.sampled_from([b"\r\n", b"\n"]))


def _mask(raw: bytes) -> bytes | None:
    return mask_addresses(raw, split_message(raw), [ADDRESS], USER_RELAY)


def _decoded(raw: bytes) -> tuple[list[str], list[bytes]]:
    """The text of every text part and the content of every attachment, as the stdlib parser reads them (compat32:
    ten times faster than policy.default, which the example tests use, and it decodes bodies the same way)."""
    texts: list[str] = []
    attachments: list[bytes] = []
    for part in BytesParser(policy=compat32).parsebytes(raw).walk():
        content = part.get_payload(decode=True)
        if part.get_content_disposition() == "attachment":
            assert isinstance(content, bytes)
            attachments.append(content)
        elif part.get_content_maintype() == "text":
            assert isinstance(content, bytes)
            texts.append(content.decode(part.get_content_charset() or "us-ascii"))
    return texts, attachments


# --- Properties ------------------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(_messages)
def test_mask_addresses_leaves_no_address_in_any_text_part(message: Generated) -> None:
    # Given a generated message
    raw = message.raw

    # When it is masked
    masked = _mask(raw)

    # Then no text part holds the address in any case, and each reads as before with the address replaced
    texts, _ = _decoded(raw if masked is None else masked)
    before, _ = _decoded(raw)
    for text, original in zip(texts, before, strict=True):
        assert ADDRESS not in text.lower()
        assert text == re.sub(re.escape(ADDRESS), USER_RELAY, original, flags=re.IGNORECASE)


@PROPERTY_SETTINGS
@given(_messages)
def test_mask_addresses_keeps_attachment_bytes(message: Generated) -> None:
    # Given a generated message whose binary attachment may hold the address
    raw = message.raw

    # When it is masked
    masked = _mask(raw)

    # Then the attachment part is byte-identical, and so is its content
    result = raw if masked is None else masked
    assert message.attachment_part in result
    assert _decoded(result)[1] == [message.attachment]


@PROPERTY_SETTINGS
@given(_messages)
def test_mask_addresses_returns_none_exactly_when_no_text_part_mentions_the_address(message: Generated) -> None:
    # Given a generated message
    raw = message.raw

    # When it is masked
    masked = _mask(raw)

    # Then there is a result exactly when some text part held the address, and its header block is untouched
    assert (masked is None) == (not any(part.mentions() for part in message.parts))
    if masked is not None:
        body_start = split_message(raw).body_start
        assert masked[:body_start] == raw[:body_start]


@PROPERTY_SETTINGS
@given(_messages, st.data())
def test_mask_addresses_never_raises_on_damaged_messages(message: Generated, data: st.DataObject) -> None:
    # Given a generated message cut short and with random bytes spliced in at random places
    raw = message.raw
    cut = data.draw(st.integers(0, len(raw)))
    at = data.draw(st.integers(0, cut))
    damaged = raw[:at] + data.draw(st.binary(max_size=40)) + raw[at:cut]

    # When it is masked
    masked = _mask(damaged)

    # Then it returns a message or None, never an exception, and never touches the header block
    if masked is not None:
        body_start = split_message(damaged).body_start
        assert masked[:body_start] == damaged[:body_start]
