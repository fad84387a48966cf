"""Reading raw mail: split the header block from the body without touching the body, and read header fields.

Mail stays bytes. ``split_message`` walks the header block line by line and stops at the first empty line (or at the
first line that cannot be a header: RFC 5322 allows a body with no separating empty line to be read that way,
and such a line must pass through as body, not vanish). Its cost is proportional to the header block, never to the
body: it never searches the body for a separator.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from email.errors import MessageError
from email.header import decode_header, make_header
from email.utils import getaddresses

_MESSAGE_ID = re.compile(r"<[^<>\s\x00-\x1f\x7f]{1,995}>")
"""An id between angle brackets: no white space and no control character (a NUL in an id would go out in the
headers of a reply or a notice)."""
_MAX_FIELD_NAME = 996
"""RFC 5322 limits only the line (998 octets): a longer name read as the start of the body would push every later
field, Content-Type and From included, into the body."""
_FIELD = re.compile(
    rf"(?P<name>[!-9;-~]{{1,{_MAX_FIELD_NAME}}})[ \t]*:(?P<value>[^\n]*(?:\n[ \t][^\n]*)*)\n?".encode())
"""One field: its name (RFC 5322 section 3.6.8: printable US-ASCII except colon), white space, the colon, and the
value through the line ending of its last line, continuation lines (starting with WSP) included. The bounded name
keeps a first body line that is one long run of name characters (base64) from costing more than 996 steps."""
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_ENCODED_RUN = re.compile(rf"{_ENCODED_WORD.pattern}(?:[ \t]+{_ENCODED_WORD.pattern})*")
"""Encoded words separated only by white space: decoded together (RFC 2047 section 6.2)."""


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


_LATIN1_FALLBACK = "emailflow-latin1-fallback"
codecs.register_error(_LATIN1_FALLBACK, _latin1_fallback)


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
        """The unfolded value as text: UTF-8 (RFC 6532), any byte that is not part of a UTF-8 sequence read as
        Latin-1; RFC 2047 words left encoded. Byte by byte, not all or nothing: one stray 8-bit byte in a display
        name must not turn a UTF-8 (IDN) address beside it into a different, wrong address."""
        decoded = self.raw_value.decode("utf-8", _LATIN1_FALLBACK)
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
    fields: list[HeaderField] = []
    position = 0
    size = len(raw)
    while position < size:
        # One C-level match per field, continuation lines included: Python work per physical line (~45 lines in a
        # common inbound header block) was about a third of the rewrite's fixed cost.
        match = _FIELD.match(raw, position)
        if match is None or match.start("value") - 1 - position > _MAX_FIELD_NAME:
            break
        end = match.end()
        content_end = end - 2 if raw.endswith(b"\r\n", 0, end) else end - 1 if raw[end - 1] == 0x0A else end
        fields.append(HeaderField(name=match["name"], raw=raw[position:content_end]))
        position = end
    if raw.startswith(b"\r\n", position):
        body_start = position + 2
    elif raw.startswith(b"\n", position):
        body_start = position + 1
    else:
        body_start = position  # the end of the message, or a first line that cannot be a header: it is body
    return SplitMessage(fields=tuple(fields), body_start=body_start, newline=_newline_of(raw))


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words; text that is not validly encoded is returned as it is."""
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (MessageError, ValueError, LookupError, UnicodeError):
        # One bad word, an unknown charset or raw 8-bit text beside the words (RFC 6532) fails the whole value;
        # decode what can be decoded, run by run, as mail clients do, so nothing hides behind the bad part.
        return decode_each_word(text)


def decode_each_word(text: str) -> str:
    """Decode the RFC 2047 words of ``text`` as RFC 2047 delimits them (no white space or ``?`` inside a word),
    run by run, leaving the rest as it is. ``decode_words`` reads some malformed values differently (it lets a word
    run on over white space, swallowing the next one); a mail client reads them this way."""
    return _ENCODED_RUN.sub(_decode_run, text) if "=?" in text else text


def _decode_run(run: re.Match[str]) -> str:
    try:
        return str(make_header(decode_header(run.group())))
    except (MessageError, ValueError, LookupError, UnicodeError):
        return "".join(_decode_word(word) for word in _ENCODED_WORD.findall(run.group()))


def _decode_word(word: str) -> str:
    payload: bytes | str
    charset: str | None
    try:
        [(payload, charset)] = decode_header(word)
    except (MessageError, ValueError):
        return word
    if isinstance(payload, str):
        return payload
    try:
        return payload.decode((charset or "us-ascii").partition("*")[0], "replace")
    except (LookupError, ValueError):  # an unknown (or NUL-bearing) charset: show the bytes rather than hide them
        return payload.decode("latin-1")


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
