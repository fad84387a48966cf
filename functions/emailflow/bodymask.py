"""Masking the sender's real address where mail clients quote it in the body of a reply.

The relay rewrites only the header block (``rewrite``) and passes the body through byte for byte. Mail clients break
that promise for us: a reply quotes the message it answers ("On Tue, Jane Doe <jane@real.example> wrote:", Outlook's
quoted "From: ... To: jane@real.example" block, a ``mailto:`` link), and when that message was the sender's own, the
quote hands the sender's real address to the other side. ``mask_addresses`` replaces those occurrences with the
sender's relay address in the parts a recipient reads as text, and nowhere else.

Why on bytes, and why so narrow:

* Re-serialising a parsed message (``email`` generator) rewrites boundaries, folding, line endings and transfer
  encodings of every part, attachments included; it breaks signatures and costs memory proportional to the message.
  Here the MIME structure is walked on the raw bytes (RFC 2046 section 5.1.1 delimiter lines found with
  ``bytes.find``), only the body of a text part that really contains an address is decoded and re-encoded, and
  every other byte - header blocks, preamble, delimiters, other parts, attachments, epilogue - is copied as it was.
* Only ``text/plain`` and ``text/html`` parts that are not attachments are examined: they are what a client shows
  as the message. Attachments (a PDF that happens to hold the address) are the sender's to share and are never
  decoded. Forwarded ``message/rfc822`` parts are not entered either.
* The work is bounded (``max_text_bytes``, ``max_depth``) and malformed input never raises: a part that cannot be
  read is left as it is. This is protection against an accident of the sender's own mail client, not against a
  sender who wants to reveal their address (they can always type it in a form nobody recognises).

Every occurrence is matched as a case-insensitive substring, as the header rewrite does: an address that merely
contains a hidden one (``xjane@real.example``) is masked too, which errs on the side of privacy.
"""

from __future__ import annotations

import binascii
import codecs
import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message

from emailflow.message import SplitMessage, split_message

MAX_PART_HEADER_BYTES = 64 * 1024
"""A part's header block is read from at most this many bytes: a part whose header block does not end within them
is left untouched instead of being copied whole just to look for its end."""
MAX_PARTS = 10_000
"""Body parts visited per message, all levels together: later parts are left untouched. Real mail has a handful;
without a bound a message of many tiny parts would cost time in proportion to their number."""
_BASE64_LINE = 76
"""RFC 2045 section 6.8: encoded lines are no more than 76 characters."""
_IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
"""RFC 2045 section 6.2: the body is the content itself."""
_TEXT_TYPES = frozenset({"text/plain", "text/html"})
_HTML_AT = r"(?:@|&#0*64;|&#x0*40;)"
"""``@`` as HTML writes it: literally or as a decimal or hexadecimal character reference (``x`` case-insensitive)."""
_PADDING = b" \t"
"""RFC 2046 section 5.1.1 transport padding after a boundary delimiter."""


@dataclass(frozen=True, slots=True)
class _Matcher:
    """The patterns for one call, as sources: ``re.compile`` (which caches) runs only when a part gets past the
    pre-check. Most messages quote no hidden address, and compiling the three alternations for every message was
    the largest cost of our own code in relaying a small one (~1 ms of ~20 ms CPU, benchmarks/bench_profile.py)."""

    plain: str
    html: str
    ascii_html: bytes | None
    """The HTML pattern (a superset of the plain one) on bytes, for the pre-check of parts whose bytes are the text
    in an ASCII-compatible charset; None when an address is not ASCII (then every text part is decoded)."""
    ascii_parts: tuple[tuple[bytes, bytes], ...]
    """(local part, domain) of each address in lower-case ASCII (empty when ``ascii_html`` is None): any match of
    ``ascii_html`` contains both, so a part that lacks them needs no pattern at all."""
    replacement: str


@dataclass(frozen=True, slots=True)
class _Edit:
    """Replace ``raw[start:end]`` with ``data``."""

    start: int
    end: int
    data: bytes


@dataclass(frozen=True, slots=True)
class _TextPart:
    """What the MIME header fields of a text part say about its body."""

    content_type: str
    charset: str
    transfer_encoding: str


def _content_type(split: SplitMessage, default_type: str) -> Message:
    """The entity's Content-Type, parsed.

    ``email.message.Message`` serves only as a parameter parser: it unquotes values, reads parameter names
    case-insensitively and collapses RFC 2231 continuations exactly as the stdlib parser does, so the boundary found
    here is the one every client built on it would use.
    """
    header = Message()
    header.set_default_type(default_type)
    content_type = split.first("content-type")
    if content_type is not None:
        header["Content-Type"] = content_type.text()
    return header


def _is_attachment(split: SplitMessage) -> bool:
    """RFC 2183: ``Content-Disposition: attachment`` is a file to save, not text to show."""
    disposition = split.first("content-disposition")
    return disposition is not None and disposition.text().partition(";")[0].strip().lower() == "attachment"


def mask_addresses(raw: bytes, split: SplitMessage, addresses: Sequence[str], replacement: str,
                   max_text_bytes: int = 2_000_000, max_depth: int = 30) -> bytes | None:
    """``raw`` with every occurrence of ``addresses`` in its text/plain and text/html parts replaced by
    ``replacement``, or None when no such part mentions any of them (the caller then keeps ``raw`` as it is).

    ``split`` is ``split_message(raw)``; the header block it describes is never changed (``rewrite`` owns it).
    Matching is case-insensitive and, in HTML, also finds ``@`` written as ``&#64;`` or ``&#x40;``; ``mailto:`` links
    are covered because they hold the address itself. Text parts larger than ``max_text_bytes`` (encoded) and parts
    nested deeper than ``max_depth`` multipart levels are left untouched.
    """
    matcher = _matcher(addresses, replacement)
    if matcher is None:
        return None
    walk = _Walk(raw, matcher, max_text_bytes, max_depth)
    walk.entity(split, split.body_start, len(raw), "text/plain", 0)
    if not walk.edits:
        return None
    view = memoryview(raw)
    pieces: list[bytes | memoryview] = []
    position = 0
    for edit in walk.edits:
        pieces.append(view[position : edit.start])
        pieces.append(edit.data)
        position = edit.end
    pieces.append(view[position:])
    return b"".join(pieces)


def _matcher(addresses: Sequence[str], replacement: str) -> _Matcher | None:
    normalised = sorted({address.strip().lower() for address in addresses if "@" in address.strip()[1:-1]},
                        key=len, reverse=True)  # longest first: one hidden address may contain another
    if not normalised:
        return None
    plain = "|".join(re.escape(address) for address in normalised)
    in_html = "|".join(
        re.escape(local) + _HTML_AT + re.escape(domain)
        for local, _, domain in (address.rpartition("@") for address in normalised)
    )
    ascii_html = in_html.encode("ascii") if in_html.isascii() else None
    ascii_parts = tuple((local.encode("ascii"), domain.encode("ascii"))
                        for local, _, domain in (address.rpartition("@") for address in normalised)) if ascii_html \
        else ()
    return _Matcher(plain=plain, html=in_html, ascii_html=ascii_html, ascii_parts=ascii_parts, replacement=replacement)


@dataclass(slots=True)
class _Walk:
    """One walk over the MIME tree of ``raw``: the edits found so far and what is left of the budget."""

    raw: bytes
    matcher: _Matcher
    max_text_bytes: int
    max_depth: int
    parts_left: int = MAX_PARTS
    edits: list[_Edit] = field(default_factory=list)

    def entity(self, split: SplitMessage, start: int, end: int, default_type: str, depth: int) -> None:
        """Visit the entity whose header fields are ``split`` and whose body is ``raw[start:end]``."""
        header = _content_type(split, default_type)
        content_type = header.get_content_type()
        if content_type.startswith("multipart/"):
            self.multipart(header, start, end, depth)
            return
        if content_type not in _TEXT_TYPES or end - start > self.max_text_bytes or _is_attachment(split):
            return
        encoding = split.first("content-transfer-encoding")
        text_part = _TextPart(
            content_type=content_type,
            # RFC 2046 section 4.1.2: a text part without a charset parameter is US-ASCII.
            charset=header.get_content_charset() or "us-ascii",
            # RFC 2045 section 6.1: no Content-Transfer-Encoding field means 7bit.
            transfer_encoding=encoding.text().lower() if encoding is not None else "7bit",
        )
        raw = self.raw
        masked = _masked_text(raw[start:end], text_part, self.matcher, _newline(raw, start, end, split.newline))
        if masked is not None:
            self.edits.append(_Edit(start, end, masked))

    def multipart(self, header: Message, start: int, end: int, depth: int) -> None:
        """Visit each body part of the multipart body ``raw[start:end]`` (RFC 2046 section 5.1)."""
        found = header.get_boundary()
        if depth >= self.max_depth or not found:
            return
        try:
            boundary = found.encode("ascii")
        except UnicodeEncodeError:  # RFC 2046 section 5.1.1: boundaries are US-ASCII; this one cannot be trusted
            return
        # RFC 2046 section 5.1.5: in a digest a part without Content-Type is a message/rfc822, not text.
        part_type = "message/rfc822" if header.get_content_type() == "multipart/digest" else "text/plain"
        for part_start, part_end in _parts(self.raw, start, end, boundary):
            if self.parts_left <= 0:
                return
            self.parts_left -= 1
            # Only a bounded prefix is copied to read the part's header block: never a whole attachment.
            prefix = self.raw[part_start : min(part_end, part_start + MAX_PART_HEADER_BYTES)]
            part = split_message(prefix)
            if part.body_start >= len(prefix) and part_end - part_start > len(prefix):
                continue  # the header block does not end within the limit: leave the part as it is
            self.entity(part, part_start + part.body_start, part_end, part_type, depth + 1)


def _parts(raw: bytes, start: int, end: int, boundary: bytes) -> Iterator[tuple[int, int]]:
    """The ``(start, end)`` of each body part of the multipart body ``raw[start:end]``.

    RFC 2046 section 5.1.1: a delimiter is ``--boundary`` at the start of a line, then optional transport padding
    and the line ending (``--boundary--`` closes); the line ending before it belongs to the delimiter, not to the
    part. LF-only line endings are accepted as they are stored on disk. A body with no closing delimiter keeps its
    last part to the end, as the stdlib parser and mail clients read it (and show it).
    """
    delimiter = b"--" + boundary
    at_line_start = b"\n" + delimiter  # searched for instead of the delimiter: "--boundary" inside a line is no hit
    part_start: int | None = None
    position = start  # where the line ending before the next delimiter may be
    hit = start if raw.startswith(delimiter, start, end) else -1
    while True:
        if hit == -1:
            found = raw.find(at_line_start, position, end)
            if found == -1:
                break
            hit = found + 1
        position = hit
        cursor = hit + len(delimiter)
        closing = raw.startswith(b"--", cursor, end)
        if closing:
            cursor += 2
        while cursor < end and raw[cursor] in _PADDING:
            cursor += 1
        if raw.startswith(b"\r\n", cursor, end):
            line_end = cursor + 2
        elif cursor < end and raw[cursor] in b"\r\n":
            line_end = cursor + 1
        elif cursor == end:
            line_end = cursor
        else:
            hit = -1
            continue  # "--boundary" followed by more text: a line of content, not a delimiter
        if part_start is not None:
            yield part_start, _before_line_ending(raw, part_start, hit)
        if closing:
            return
        part_start = line_end
        position, hit = line_end - 1, -1
    if part_start is not None and part_start < end:
        yield part_start, end


def _before_line_ending(raw: bytes, start: int, end: int) -> int:
    if end > start and raw[end - 1] == 0x0A:
        end -= 1
        if end > start and raw[end - 1] == 0x0D:
            end -= 1
    return end


def _newline(raw: bytes, start: int, end: int, fallback: bytes) -> bytes:
    """The line ending the body ``raw[start:end]`` uses (its first one), else that of its header block."""
    found = raw.find(b"\n", start, end)
    if found == -1:
        return fallback
    return b"\r\n" if found > start and raw[found - 1] == 0x0D else b"\n"


def _masked_text(body: bytes, part: _TextPart, matcher: _Matcher, newline: bytes) -> bytes | None:
    """The re-encoded body of a text part with the addresses replaced, or None when it is to stay as it is."""
    encoding = part.transfer_encoding
    is_html = part.content_type == "text/html"
    if _surely_absent(body, part, matcher):
        return None
    try:
        data = _decode_transfer(body, encoding)
        if data is None:
            return None
        ascii_compatible = _ascii_compatible(part.charset)
        # Where every ASCII character is its own byte, bytes the charset does not define (a "us-ascii" part that is
        # really UTF-8, one broken sequence) are carried through as they are: surrogateescape gives back exactly the
        # bytes it read. Keeping such a part whole would keep the address too, and clients do show these parts.
        errors = "surrogateescape" if ascii_compatible else "strict"
        text = data.decode(part.charset, errors)
        pattern = re.compile(matcher.html if is_html else matcher.plain, re.IGNORECASE)
        replacement = html.escape(matcher.replacement) if is_html else matcher.replacement
        masked, count = pattern.subn(lambda _: replacement, text)
        if count == 0:
            return None
        if not ascii_compatible and text.encode(part.charset) != data:
            return None  # the codec does not give back the bytes it read: re-encoding would change more than the match
        return _encode_transfer(masked.encode(part.charset, errors), encoding, body, newline)
    except (binascii.Error, LookupError, UnicodeError, ValueError):
        # RFC 2045/2046 do not let us guess: base64 that cannot be decoded, an unknown charset, or text that is not
        # in its declared (stateful or multi-byte) charset is left exactly as it came.
        return None


def _surely_absent(body: bytes, part: _TextPart, matcher: _Matcher) -> bool:
    """A cheap pre-check that skips decoding: for identity encodings in an ASCII-compatible charset the bytes are the
    text, so an ASCII address is there as its ASCII bytes or not at all. It says nothing about quoted-printable or
    base64 (an address can hide behind "=40", a soft line break or base64) nor about charsets such as UTF-16 or UTF-7
    that spell ASCII differently: those are always decoded."""
    if matcher.ascii_html is None or part.transfer_encoding not in _IDENTITY_ENCODINGS or \
            not _ascii_compatible(part.charset):
        return False
    lowered = body.lower()  # bytes.lower changes ASCII letters only, as IGNORECASE matches them
    if not any(local in lowered and domain in lowered for local, domain in matcher.ascii_parts):
        return True
    return re.compile(matcher.ascii_html, re.IGNORECASE).search(body) is None


def _ascii_compatible(charset: str) -> bool:
    """Whether every ASCII character is always written as its own single byte (so a byte search finds it)."""
    try:
        name = codecs.lookup(charset).name
    except (LookupError, ValueError):  # unknown, or not even a name (a NUL in it raises ValueError)
        return False
    return name in ("ascii", "utf-8") or name.startswith(("iso8859-", "cp125", "koi8-"))


def _decode_transfer(body: bytes, encoding: str) -> bytes | None:
    if encoding in _IDENTITY_ENCODINGS:
        return body
    if encoding == "quoted-printable":
        return binascii.a2b_qp(body)
    if encoding == "base64":
        # Lenient as the stdlib parser and mail clients are: characters outside the alphabet are skipped and missing
        # padding is supplied (extra padding is ignored). What still fails (a stray character too many) is garbage.
        return binascii.a2b_base64(body + b"==")
    return None  # RFC 2045 section 6.4: an unknown encoding is to be treated as application/octet-stream


def _encode_transfer(data: bytes, encoding: str, original: bytes, newline: bytes) -> bytes:
    """``data`` in the part's own transfer encoding, line length and line endings."""
    if encoding == "quoted-printable":
        return _quoted_printable(data, newline)
    if encoding == "base64":
        return _base64(data, original, newline)
    return data


def _quoted_printable(data: bytes, newline: bytes) -> bytes:
    """RFC 2045 section 6.7, line by line so hard line breaks stay the part's own; a stray CR or LF is encoded."""
    lines = data.split(newline)
    encoded = (binascii.b2a_qp(line, quotetabs=False, istext=False) for line in lines)
    # A line without CR or LF comes back with only soft line breaks, written "=\n": give them the part's ending.
    return newline.join(line.replace(b"=\n", b"=" + newline) for line in encoded)


def _base64(data: bytes, original: bytes, newline: bytes) -> bytes:
    """RFC 2045 section 6.8 with the original's line length (76 unless it used a shorter multiple of four) and the
    white space around the original (the line ending before the next delimiter belongs to the delimiter)."""
    stripped = original.strip(b" \t\r\n")
    leading = original[: len(original) - len(original.lstrip(b" \t\r\n"))]
    trailing = original[len(leading) + len(stripped) :]
    first_end = stripped.find(b"\n")
    width = len(stripped[:first_end].strip()) if first_end != -1 else _BASE64_LINE
    if width <= 0 or width > _BASE64_LINE or width % 4:
        width = _BASE64_LINE
    chunk = width // 4 * 3
    lines = [binascii.b2a_base64(data[index : index + chunk], newline=False) for index in range(0, len(data), chunk)]
    return leading + newline.join(lines) + trailing


__all__ = ["MAX_PARTS", "MAX_PART_HEADER_BYTES", "mask_addresses"]
