"""Header-only rewrite of raw mail: an allow-list of header rules, applied to bytes.

Only the header block is rebuilt; the body is joined back from a ``memoryview`` of the input, so it leaves
byte-for-byte as it came and is copied exactly once (into the output). The rules are one table, ``HEADER_RULES``,
documented in docs/rewrite.md. Working from an allow-list is deliberate: relays that strip a block-list of headers
leak what they forgot and trip over SES rejecting a duplicated header they did not expect
(https://docs.aws.amazon.com/ses/latest/dg/header-fields.html lists the fields SES allows only once).
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.header import Header
from email.utils import format_datetime, formataddr, parsedate_to_datetime
from enum import Enum

from emailflow.message import (
    HeaderField,
    SplitMessage,
    decode_each_word,
    decode_words,
    message_ids,
    split_message,
)

TRACE_HEADER = "X-Emailflow-Loop"
"""Our own header on every relayed message: the loop marker (its value is keyed, see ``loops``)."""
MAX_DISPLAY_NAME = 64
_MAX_IDS = 20
"""How many message ids of a References field are kept (the newest): threading needs only the last few."""
_MAX_LINE = 998
"""RFC 5322 section 2.1.1: octets per line, line ending excluded."""


class HeaderRule(Enum):
    """What happens to one header field of the inbound message."""

    KEEP_FIRST = "keep the first copy verbatim (SES rejects duplicates); drop later copies"
    SUBJECT = "keep the first copy; RFC 2047-encode it when it arrived as raw 8-bit text"
    THREAD_IDS = "keep the first copy with message ids mapped back to the ids the recipient knows"
    REBUILD = "dropped here and written anew by the relay"
    DROP = "dropped"


HEADER_RULES: Mapping[str, HeaderRule] = {
    "from": HeaderRule.REBUILD,
    "to": HeaderRule.REBUILD,
    "reply-to": HeaderRule.REBUILD,
    TRACE_HEADER.lower(): HeaderRule.REBUILD,
    "subject": HeaderRule.SUBJECT,
    "date": HeaderRule.KEEP_FIRST,
    "mime-version": HeaderRule.KEEP_FIRST,
    "in-reply-to": HeaderRule.THREAD_IDS,
    "references": HeaderRule.THREAD_IDS,
    # RFC 3834 section 5: responders must not answer auto-submitted mail. Keeping the field is what stops the
    # recipient's own autoresponder from answering a relayed out-of-office, and so a loop.
    "auto-submitted": HeaderRule.KEEP_FIRST,
}
CONTENT_RULE = HeaderRule.KEEP_FIRST
"""Every ``Content-*`` field (type, transfer encoding, disposition, ...): the body cannot be read without them."""


def rule_for(key: str) -> HeaderRule:
    """The rule for a lower-case field name; anything not listed is dropped."""
    if key.startswith("content-"):
        return CONTENT_RULE
    return HEADER_RULES.get(key, HeaderRule.DROP)


@dataclass(frozen=True, slots=True)
class RewritePlan:
    """Everything the rewrite needs to know, decided by the use case."""

    from_display_name: str
    """The full display name to show (already ``"<name> via <brand>"``); sanitised again here."""
    from_address: str
    """The relay address the recipient sees and answers to."""
    to_address: str
    """The real recipient."""
    hidden_addresses: tuple[str, ...]
    """Real addresses that must not appear anywhere in the output header block (the sender's)."""
    trace_value: str
    date: str
    """A Date value to add when the message has none (RFC 5322 requires one)."""
    thread_ids: Mapping[str, str | None] = field(default_factory=dict)
    """Message id -> the id the recipient knows it by (``<...>`` forms); None drops the id. Others are kept."""
    subject: str | None = None
    """A replacement Subject (e.g. tagged ``[SPAM]``); None keeps the message's own."""


_ADDRESS_LIKE = re.compile(r"\S*@\S*|<[^>]*>|[<>@]")


def sanitise_display_name(name: str, limit: int = MAX_DISPLAY_NAME) -> str:
    """A display name that is safe to put in a From field: decoded from RFC 2047, without line breaks or control
    characters, without anything that looks like an address (so "jane@real.example" in a name cannot leak the
    address or pass for another), whitespace collapsed, and truncated."""
    text = decode_words(name).replace("=?", " ")  # what is left encoded would be decoded by the reader's client
    text = "".join(" " if unicodedata.category(char)[0] in "CZ" else char for char in text)
    text = _ADDRESS_LIKE.sub(" ", text)
    text = " ".join(text.replace('"', "").replace("\\", "").split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "\u2026"
    return text


def relay_display_name(name: str, brand: str) -> str:
    """``"<name> via <brand>"``, or the brand alone when the sender gave no usable name."""
    clean = sanitise_display_name(name)
    return f"{clean} via {brand}" if clean else brand


def _address_field(name: str, display: str, address: str, newline: bytes) -> bytes:
    value = formataddr((sanitise_display_name(display, 2 * MAX_DISPLAY_NAME), address), charset="utf-8")
    return _folded(name, value, newline)


def _folded(name: str, value: str, newline: bytes) -> bytes:
    """A field with an ASCII-or-not value: plain when ASCII and short, RFC 2047-encoded when not ASCII."""
    if value.isascii() and len(name) + len(value) < 76:
        return f"{name}: {value}".encode("ascii")
    if value.isascii():
        encoded = Header(value, header_name=name).encode(linesep=newline.decode())
    else:
        encoded = Header(value, "utf-8", header_name=name).encode(linesep=newline.decode())
    return f"{name}: {encoded}".encode("ascii")


_LINE_BREAKING = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
"""Control characters, and what ``str.splitlines`` (so ``Header.encode``) breaks lines at."""


def _text_field(name: str, text: str, newline: bytes) -> bytes:
    """A kept field rewritten from decoded text. The text came out of encoded words, so it may hold line breaks
    (a field injected, or the header block ended early), text that reads as encoded words once written plainly
    (decoded again by the recipient's client), or words too long to fold: it is written plainly only when none of
    that can happen, RFC 2047-encoded otherwise."""
    value = _LINE_BREAKING.sub(" ", text)
    if value.isascii() and "=?" not in value:
        field = _folded(name, value, newline)
        if all(len(line) <= _MAX_LINE for line in field.split(newline)):
            return field
    encoded = Header(value, "utf-8", header_name=name).encode(linesep=newline.decode())
    return f"{name}: {encoded}".encode("ascii")


def _folded_ids(name: bytes, ids: list[str], newline: bytes) -> bytes:
    """``In-Reply-To`` / ``References`` with one id per line (every id fits a line of its own: ids are at most 997
    bytes; the first goes on the field's own line only when it fits there)."""
    encoded = [message_id.encode("ascii", "replace") for message_id in ids]
    start = b": " if len(name) + 2 + len(encoded[0]) <= _MAX_LINE else b":" + newline + b" "
    return name + start + (newline + b" ").join(encoded)


def _normalise_folding(raw: bytes, newline: bytes) -> bytes:
    """Fold lines of a kept field with the message's own line ending (a mixed CRLF/LF block is a SES reject)."""
    if b"\n" not in raw:
        return raw
    return re.sub(rb"\r?\n", newline, raw)


def _mentions(text: str, hidden: tuple[str, ...]) -> bool:
    lowered = text.lower()
    return any(address in lowered for address in hidden)


def _mentions_in_any_reading(text: str, hidden: tuple[str, ...]) -> bool:
    """Whether ``text`` mentions a hidden address as written, as Python decodes its encoded words, or as a mail
    client does (the two differ on malformed words: each can reveal what the other does not)."""
    return any(_mentions(reading, hidden) for reading in (text, decode_words(text), decode_each_word(text)))


def _mask(text: str, hidden: tuple[str, ...], replacement: str) -> str:
    for address in hidden:
        text = re.sub(re.escape(address), replacement, text, flags=re.IGNORECASE)
    return text


def _kept_field(header: HeaderField, rule: HeaderRule, plan: RewritePlan, hidden: tuple[str, ...],
                newline: bytes) -> bytes:
    name = header.name.decode("ascii")
    if _mentions(name, hidden) or len(name) > _MAX_FIELD_NAME:
        # "Content-<address>: ..." or a name of hundreds of characters is no MIME field: dropped, not rebuilt
        return b""
    if rule is HeaderRule.THREAD_IDS:
        mapped = [plan.thread_ids.get(message_id, message_id) for message_id in message_ids(header.text())]
        ids = [message_id for message_id in mapped if message_id and not _mentions_in_any_reading(message_id, hidden)]
        return _folded_ids(header.name, ids[-_MAX_IDS:], newline) if ids else b""
    if rule is HeaderRule.SUBJECT and plan.subject is not None:
        return _text_field(name, _mask(plan.subject, hidden, plan.from_address), newline)
    raw_text = header.raw.decode("latin-1")
    if _mentions(raw_text, hidden) or _mentions_in_any_reading(header.text(), hidden):
        return _rebuilt_field(header.key, name, _mask(header.decoded_text(), hidden, plan.from_address), newline)
    if _UNSAFE_BYTES.search(header.raw_value) or _has_overlong_line(header.raw):
        # Raw 8-bit text (RFC 6532), a control character or a line over RFC 5322's 998 octets: rebuilt in ASCII.
        return _rebuilt_field(header.key, name, header.decoded_text(), newline)
    # name + ":" + value: white space before the colon (RFC 5322's obsolete syntax) is dropped, as strict parsers
    # would end the header block at such a line
    return _normalise_folding(header.name + b":" + header.raw_value, newline)


def _rebuilt_field(key: str, name: str, text: str, newline: bytes) -> bytes:
    """A kept field written anew from its decoded text, in the form its kind allows: RFC 2047 text for free text
    (Subject, Content-Description), RFC 2231 parameters for Content-Type and Content-Disposition, plain ASCII for
    every other (structured) field, where an encoded word would be no value at all (RFC 2047 section 5)."""
    if key in _TEXT_FIELDS:
        return _text_field(name, text, newline)
    if key in _PARAMETER_FIELDS:
        return _parameter_field(name, text, newline)
    if key == "date":
        return _date_field(name, text)
    return _structured_field(name, text, newline)


def _date_field(name: str, text: str) -> bytes:
    """A Date written anew from the date it names; empty when it names none (the relay writes its own Date)."""
    try:
        moment = parsedate_to_datetime(_LINE_BREAKING.sub(" ", text))
    except (TypeError, ValueError, OverflowError):
        return b""
    return f"{name}: {format_datetime(moment)}".encode("ascii")


def _structured_field(name: str, text: str, newline: bytes) -> bytes:
    """Plain ASCII (other characters become ``?``), white space collapsed, folded at white space; empty when a word
    is too long to fit a line: the field is then dropped (a Date the relay writes itself)."""
    value = " ".join(_LINE_BREAKING.sub(" ", text).encode("ascii", "replace").decode("ascii").split())
    value = value.replace("=?", "= ?")  # would read as an encoded word to a lenient client
    lines = [f"{name}:"]
    for word in value.split(" ") if value else ():
        if len(word) > _MAX_LINE - 2:
            return b""
        joined = f"{lines[-1]} {word}"
        if len(joined) <= 78 or (len(lines) == 1 and joined.count(" ") == 1 and len(joined) <= _MAX_LINE):
            lines[-1] = joined  # (the first word goes beside the name whenever it fits the line at all)
        else:
            lines.append(f" {word}")
    return newline.join(line.encode("ascii") for line in lines)


_UNSAFE_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff]|\r(?!\n)")
"""What a kept field may not pass on as it came: 8-bit bytes (SES and RFC 5322 want an ASCII header block) and
control characters - above all a CR that does not end a line, which many parsers (Python's among them) read as a
line break: ``Subject: x<CR>Reply-To: attacker@...`` would add a field."""
_PARAMETER_FIELDS = frozenset({"content-type", "content-disposition"})
_TEXT_FIELDS = frozenset({"subject", "content-description"})
"""Kept fields of free text (RFC 5322 unstructured): the only ones where encoded words mean anything."""
_PARAMETER = re.compile(r';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')
_ATTRIBUTE_CHARS = "!#$&+-.^_`|~"
"""RFC 2231 section 7: besides letters and digits, what an extended value may carry without %-encoding."""
_MAX_MAIN_VALUE = 255
_MAX_FIELD_NAME = 200
"""Longer kept field names are dropped: no MIME field has one, and a rebuilt field must fit its name on a line."""
_PARAMETER_CHUNK = 200
"""Bytes of a parameter value per RFC 2231 continuation: even fully %-encoded, a line stays far under 998."""


def _parameter_field(name: str, value: str, newline: bytes) -> bytes:
    """``Content-Type`` / ``Content-Disposition`` written anew in ASCII from decoded text, one parameter per line:
    ASCII values quoted, others (and overlong ones, and ones that would read as encoded words) in RFC 2231 form
    (``filename*=utf-8''r%C3%A9sum%C3%A9.pdf``), split into continuations when long. The main value keeps its
    ASCII characters only."""
    value = _LINE_BREAKING.sub(" ", value)
    main = value.split(";", 1)[0].strip().replace("=?", "  ").encode("ascii", "replace").decode("ascii")
    if len(main) > _MAX_MAIN_VALUE:  # no MIME type is that long (RFC 6838: 127 + 127): not one, and not foldable
        main = ""
    parts = [f"{name}: {main or 'application/octet-stream'}"]
    for key, quoted in _PARAMETER.findall(value):
        if not key.isascii() or len(key) > _MAX_MAIN_VALUE:
            continue
        text = quoted.strip()
        if key.endswith("*"):  # already RFC 2231: an ASCII token, kept when it is one
            if text.isascii() and " " not in text and "=?" not in text and len(text) < _MAX_LINE - len(key) - 10:
                parts.append(f"{key}={text}")
            continue
        if text.startswith('"'):
            text = re.sub(r"\\(.)", r"\1", text[1:-1] if text.endswith('"') and len(text) > 1 else text[1:])
        if text.isascii() and "=?" not in text and len(text) < _MAX_LINE - len(key) - 10:
            parts.append(f'{key}="{_quoted(text)}"')
            continue
        data = text.encode("utf-8")
        chunks = [urllib.parse.quote(data[start : start + _PARAMETER_CHUNK], safe=_ATTRIBUTE_CHARS)
                  for start in range(0, len(data), _PARAMETER_CHUNK)]
        if len(chunks) == 1:
            parts.append(f"{key}*=utf-8''{chunks[0]}")
            continue
        parts.extend(f"{key}*{index}*=" + ("utf-8''" if index == 0 else "") + chunk
                     for index, chunk in enumerate(chunks))
    return (";" + newline.decode("ascii") + " ").join(parts).encode("ascii")


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _has_overlong_line(raw: bytes) -> bool:
    return len(raw) > _MAX_LINE and any(len(line.rstrip(b"\r")) > _MAX_LINE for line in raw.split(b"\n"))


def rewrite_header_block(split: SplitMessage, plan: RewritePlan) -> bytes:
    """The new header block, empty line included."""
    newline = split.newline
    hidden = tuple(address.lower() for address in plan.hidden_addresses if address)
    lines = [
        _address_field("From", plan.from_display_name, plan.from_address, newline),
        f"To: {plan.to_address}".encode(),
        f"Reply-To: {plan.from_address}".encode(),
    ]
    seen: set[str] = set()
    for header in split.fields:
        key = header.key
        rule = rule_for(key)
        if rule in (HeaderRule.DROP, HeaderRule.REBUILD) or key in seen:
            continue
        seen.add(key)
        line = _kept_field(header, rule, plan, hidden, newline)
        if line:
            lines.append(line)
        elif key == "date":
            seen.discard(key)  # a Date that could not be kept: the relay writes its own
    if "subject" not in seen and plan.subject is not None:
        lines.append(_text_field("Subject", _mask(plan.subject, hidden, plan.from_address), newline))
    if "date" not in seen:
        lines.append(f"Date: {plan.date}".encode("ascii"))
    lines.append(f"{TRACE_HEADER}: {plan.trace_value}".encode("ascii"))
    return newline.join(lines) + newline + newline


def rewrite_message(raw: bytes, plan: RewritePlan, split: SplitMessage | None = None) -> tuple[bytes, memoryview]:
    """``raw`` rewritten, in two pieces: the new header block and a view of the untouched body of ``raw``.

    Nothing of the body is copied: whoever carries the message on copies it once, straight from the view (the SESv2
    adapter into its request; ``rewrite_headers`` into one bytes object). Pass ``split`` when the caller already
    split the message, to avoid walking the header block twice.
    """
    parts = split if split is not None else split_message(raw)
    return rewrite_header_block(parts, plan), memoryview(raw)[parts.body_start :]


def rewrite_headers(raw: bytes, plan: RewritePlan, split: SplitMessage | None = None) -> bytes:
    """``raw`` with its header block rewritten by ``HEADER_RULES`` and ``plan``; the body bytes untouched."""
    # bytes.join copies the body straight from the memoryview into the result: one copy, no intermediate slice.
    return b"".join(rewrite_message(raw, plan, split))
