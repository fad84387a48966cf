"""Reading raw mail: split the header block from the body without touching the body, and read header fields.

Mail stays bytes. ``split_message`` walks the header block line by line and stops at the first empty line (or at the
first line that cannot be a header: RFC 5322 allows a body with no separating empty line to be read that way,
and such a line must pass through as body, not vanish). Its cost is proportional to the header block, never to the
body: it never searches the body for a separator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.utils import getaddresses

_FIELD_NAME = re.compile(rb"[!-9;-~]+")
"""RFC 5322 section 3.6.8: printable US-ASCII except colon."""
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,995}>")
_MAX_FIELD_NAME = 76
_WSP = (0x20, 0x09)


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field as it was received: the name and every physical line, line endings inside a folded
    field included, the final line ending excluded."""

    name: bytes
    raw: bytes

    @property
    def key(self) -> str:
        """The lower-case field name, for rule lookups."""
        return self.name.decode("ascii").lower()

    @property
    def raw_value(self) -> bytes:
        return self.raw[self.raw.index(b":") + 1 :]

    def text(self) -> str:
        """The unfolded value as text: UTF-8 (RFC 6532) or, failing that, Latin-1; RFC 2047 words left encoded."""
        value = self.raw_value
        try:
            decoded = value.decode("utf-8")
        except UnicodeDecodeError:
            decoded = value.decode("latin-1")
        return re.sub(r"\r?\n(?=[ \t])", "", decoded).strip()

    def decoded_text(self) -> str:
        """The value with RFC 2047 encoded words decoded; falls back to ``text()`` for malformed words."""
        return decode_words(self.text())


@dataclass(frozen=True, slots=True)
class SplitMessage:
    """A raw message split into header fields and the offset where the body starts."""

    fields: tuple[HeaderField, ...]
    body_start: int
    newline: bytes
    """The line ending the message uses (of its first line): new header lines are written with it."""

    def first(self, key: str) -> HeaderField | None:
        return next((field for field in self.fields if field.key == key), None)

    def all(self, key: str) -> list[HeaderField]:
        return [field for field in self.fields if field.key == key]


def _newline_of(raw: bytes) -> bytes:
    end = raw.find(b"\n", 0, 8192)
    return b"\r\n" if end > 0 and raw[end - 1] == 0x0D else b"\n"


def split_message(raw: bytes) -> SplitMessage:
    """Split ``raw`` into its header fields and the body offset. Linear in the header block only."""
    fields: list[tuple[int, int]] = []  # (start, end) of each field, end excluding the final line ending
    position = 0
    size = len(raw)
    body_start = size
    while position < size:
        if raw.startswith(b"\r\n", position):
            body_start = position + 2
            break
        if raw[position] == 0x0A:
            body_start = position + 1
            break
        end = raw.find(b"\n", position)
        line_end = size if end == -1 else end + 1
        content_end = size if end == -1 else (end - 1 if end > position and raw[end - 1] == 0x0D else end)
        if raw[position] in _WSP:
            if not fields:
                body_start = position
                break
            fields[-1] = (fields[-1][0], content_end)
        else:
            colon = raw.find(b":", position, min(content_end, position + _MAX_FIELD_NAME + 1))
            name_end = _rstrip_wsp(raw, position, colon) if colon > position else position
            if name_end == position or not _FIELD_NAME.fullmatch(raw, position, name_end):
                body_start = position
                break
            fields.append((position, content_end))
        position = line_end
    header_fields = tuple(_field(raw[start:end]) for start, end in fields)
    return SplitMessage(fields=header_fields, body_start=body_start, newline=_newline_of(raw))


def _rstrip_wsp(raw: bytes, start: int, end: int) -> int:
    while end > start and raw[end - 1] in _WSP:
        end -= 1
    return end


def _field(raw: bytes) -> HeaderField:
    name = raw[: raw.index(b":")].rstrip(b" \t")
    return HeaderField(name=name, raw=raw)


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words; text that is not validly encoded is returned as it is."""
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text


def message_ids(text: str) -> list[str]:
    """The ``<id>`` tokens of a Message-ID, In-Reply-To or References value, in order."""
    return _MESSAGE_ID.findall(text)


@dataclass(frozen=True, slots=True)
class InboundHeaders:
    """What the relay reads from an inbound header block."""

    from_addresses: tuple[tuple[str, str], ...]
    """(decoded display name, address) of every mailbox in every From field."""
    to_addresses: tuple[str, ...]
    cc_addresses: tuple[str, ...]
    subject: str
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]

    @classmethod
    def read(cls, split: SplitMessage) -> InboundHeaders:
        def addresses(key: str) -> list[tuple[str, str]]:
            values = [field.text() for field in split.all(key)]
            return [(decode_words(name), address) for name, address in getaddresses(values) if address]

        def ids(key: str) -> tuple[str, ...]:
            field = split.first(key)
            return tuple(message_ids(field.text())) if field else ()

        subject = split.first("subject")
        message_id = ids("message-id")
        return cls(
            from_addresses=tuple(addresses("from")),
            to_addresses=tuple(address for _, address in addresses("to")),
            cc_addresses=tuple(address for _, address in addresses("cc")),
            subject=subject.decoded_text() if subject else "",
            message_id=message_id[0] if message_id else None,
            in_reply_to=ids("in-reply-to"),
            references=ids("references"),
        )
