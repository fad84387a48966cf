"""Hostile and malformed mail: generators, and the invariants every relayed message must keep.

Used three ways: hypothesis property tests on the fakes (``tests/unit/test_hostile_mail.py``), a smaller number
through the real handler on moto (``tests/integration/test_hostile_mail_handler.py``), and the fuzz target
(``tests/fuzz/fuzz_relay.py``), which feeds arbitrary bytes through the same checks.

The invariants (``check_relay``), on every message:

* no exception escapes the relay (faults are ``RelayFault``; with fakes there are none);
* every relay recipient ends with one outcome and a reason;
* a forwarded body is byte-identical to the inbound body, except for the documented masking of the hidden
  addresses in text parts (compared against ``mask_addresses``' own output);
* no hidden address (the counterpart's real address, in any case, raw, unfolded or RFC 2047-decoded, in ASCII or
  IDNA form) appears in the header block or the envelope of anything sent;
* the header block of everything sent is valid: ASCII, lines of at most 998 octets, every line a field or a
  continuation, only allow-listed fields, From/To/Reply-To/X-Emailflow-Loop exactly once each, and the stdlib
  parses it without header defects (a field kept verbatim from the sender may keep the sender's own defects:
  the relay adds none).
"""

from __future__ import annotations

import base64
import contextlib
import email.message
import email.parser
import email.policy
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hypothesis import strategies as st

from emailflow.addresses import InvalidAddress, normalise_address, spellings
from emailflow.bodymask import mask_addresses
from emailflow.message import InboundHeaders, split_message
from emailflow.outcomes import Action, Reason, RelayOutcome
from emailflow.rewrite import HEADER_RULES, HeaderRule, rule_for
from tests.unit.rewrite_checks import leaks, overlong_lines

MAX_LINE = 998
NOTICES_FROM = "no-reply@relay.example"
_CONTINUATION = re.compile(rb"^[ \t]")
_FIELD_START = re.compile(rb"^[!-9;-~]+[ \t]*:")
ONCE = ("from", "to", "reply-to", "x-emailflow-loop")


class InvariantBroken(AssertionError):
    """A relayed message broke one of the invariants above."""


@dataclass(frozen=True)
class Sent:
    """What the relay handed to the mail service, whichever mailer recorded it."""

    raw: bytes
    from_address: str
    to_address: str


def header_block(raw: bytes) -> tuple[bytes, bytes]:
    """(header block without the empty line, body) of a message the relay wrote."""
    split = split_message(raw)
    return raw[: split.body_start].rstrip(b"\r\n"), raw[split.body_start :]


def hidden_forms(address: str) -> set[str]:
    """An address as the relay stores it (IDNA domain) and as a person writes it (Unicode domain)."""
    forms = {address.lower()}
    local, _, domain = address.rpartition("@")
    with contextlib.suppress(UnicodeError):
        forms.add(f"{local}@{domain.encode('ascii').decode('idna')}".lower())
    with contextlib.suppress(InvalidAddress):
        forms.add(normalise_address(address))
    return forms


def check_header_block(block: bytes, source_defects: dict[str, bool], relayed: bool = True) -> None:
    """The header block is valid RFC 5322 and, for a relayed copy, holds only what the rewrite may send (a notice
    has its own fixed set of fields)."""
    if not block.isascii():
        raise InvariantBroken(f"header block not ASCII: {block[:200]!r}")
    if overlong_lines(block):
        raise InvariantBroken("header line over 998 octets")
    lines = re.split(rb"\r?\n", block)
    if any(b"\r" in line or b"\x00" in line for line in lines):
        raise InvariantBroken("bare CR or NUL in the header block")
    names = _field_names(lines)
    if relayed:
        _check_allow_list(names)
    parsed = _parse(block)
    if len(parsed.keys()) != len(names):
        raise InvariantBroken(f"the stdlib reads {len(parsed.keys())} fields, the relay wrote {len(names)}")
    for name, raw_value in parsed.raw_items():
        defects = _defects(name, raw_value)
        key = name.lower()
        # The relay adds no defect: a field it writes itself has none; a field it passes on may keep the defects
        # the sender's own field had (a Date that is no date stays no date, masked or not).
        if defects and (key in REBUILT or not source_defects.get(key)):
            raise InvariantBroken(f"{name} has defects {defects!r}")


def _field_names(lines: list[bytes]) -> list[str]:
    names: list[str] = []
    for number, line in enumerate(lines):
        if _CONTINUATION.match(line) and number > 0:
            continue
        if not _FIELD_START.match(line):
            raise InvariantBroken(f"line is neither a field nor a continuation: {line[:80]!r}")
        names.append(line.split(b":", 1)[0].strip().decode("ascii").lower())
    return names


def _check_allow_list(names: list[str]) -> None:
    """Only allow-listed fields; the rebuilt ones exactly once, every other one at most once."""
    for name in names:
        if rule_for(name) is HeaderRule.DROP and name not in HEADER_RULES:
            raise InvariantBroken(f"field {name} is not allow-listed")
        if names.count(name) > 1:
            raise InvariantBroken(f"{name} appears {names.count(name)} times")
    for name in ONCE:
        if name not in names:
            raise InvariantBroken(f"{name} is missing")


REBUILT = frozenset({"from", "to", "reply-to", "x-emailflow-loop", "in-reply-to", "references"})


def _parse(block: bytes) -> email.message.Message:
    return email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(block + b"\r\n\r\n")


def _defects(name: str, raw_value: str) -> tuple[object, ...]:
    """The stdlib's defects in one field; a field it cannot parse at all (it raises) counts as defective."""
    try:
        return tuple(getattr(email.policy.default.header_fetch_parse(name, raw_value), "defects", ()))
    except Exception as exc:  # e.g. OverflowError on a Date with a huge zone offset
        return (exc,)


def source_defects(raw: bytes) -> dict[str, bool]:
    """Whether the stdlib finds defects in the first inbound field of each name."""
    split = split_message(raw)
    found: dict[str, bool] = {}
    for field in split.fields:
        if field.key in found:
            continue
        parsed = _parse(field.raw.replace(b"\r", b" ").replace(b"\n ", b"\r\n "))
        items = list(parsed.raw_items())
        found[field.key] = not items or bool(_defects(*items[0]))
    return found


def check_no_leak(sent: Sent, hidden: Iterable[str]) -> None:
    block, _ = header_block(sent.raw)
    # The recipient's own address (in To) is no leak, even when a hidden address happens to be a part of it
    block = re.sub(re.escape(sent.to_address.encode()), b"<recipient>", block, flags=re.IGNORECASE)
    for address in hidden:
        for form in hidden_forms(address):
            found = leaks(block, form)
            if found:
                raise InvariantBroken(f"hidden address {form} in the header block ({', '.join(found)})")
            if form in (sent.from_address.lower(), sent.to_address.lower()):
                raise InvariantBroken(f"hidden address {form} in the envelope")


def check_relay(raw: bytes, recipients: Sequence[str], outcomes: list[RelayOutcome], sent: list[Sent], *,
                relayed_to: str, hidden: Sequence[str], sender_relay_address: str | None = None,
                notices_from: str = NOTICES_FROM) -> None:
    """Every invariant of one inbound message (see the module docstring).

    ``relayed_to`` is the real address a forwarded copy must go to, ``hidden`` the sender's real addresses
    (they must appear nowhere in what is sent to ``relayed_to``; and ``relayed_to`` nowhere in an error mail to the
    sender); ``sender_relay_address`` the address the
    sender is known by, when the caller knows it (masking in the body uses it). Mail from ``notices_from`` is an
    error mail, not a copy, even when the sender wrote to their own service.
    """
    distinct = {recipient.strip().lower() for recipient in recipients}
    if len(outcomes) > len(distinct) or not outcomes:
        raise InvariantBroken(f"{len(outcomes)} outcomes for {len(distinct)} recipients")
    for outcome in outcomes:
        if not isinstance(outcome.action, Action) or not isinstance(outcome.reason, Reason):
            raise InvariantBroken(f"outcome without a reason: {outcome!r}")
    defects = source_defects(raw)
    forwarded = [outcome for outcome in outcomes if outcome.action is Action.FORWARDED]
    copies = [mail for mail in sent if mail.to_address == relayed_to and mail.from_address != notices_from]
    if len(copies) != len(forwarded):
        raise InvariantBroken(f"{len(forwarded)} forwarded, {len(copies)} copies sent")
    for mail in sent:
        block, body = header_block(mail.raw)
        is_copy = mail in copies
        check_header_block(block, defects, relayed=is_copy)
        if not is_copy and relayed_to.lower().encode() not in raw.lower() and \
                mail.to_address.lower() != relayed_to.lower():
            # An error mail to the sender names the other side by its relay address only (unless the sender's own
            # message already held the real address: the notice may echo the sender's subject and ids)
            check_no_leak(mail, [relayed_to])
        if is_copy:  # (someone writing to their own address knows it: the recipient's address is not hidden)
            check_no_leak(mail, [address for address in hidden if relayed_to.lower() not in hidden_forms(address)])
            if any(outcome.reason is Reason.RELAYED for outcome in forwarded):
                check_body(raw, body, hidden, sender_relay_address or mail.from_address)


def sender_of(raw: bytes) -> list[str]:
    """The sender's address as the relay reads it (the single From mailbox), or none: what the relay hides."""
    senders = InboundHeaders.read(split_message(raw)).from_addresses
    return [senders[0][1]] if len(senders) == 1 and senders[0][1].strip() else []


def _masked_forms(address: str) -> tuple[str, ...]:
    """What the documented masking replaces: the stored form of the address and its other spelling."""
    try:
        return spellings(normalise_address(address))
    except InvalidAddress:
        return (address.lower(),)


def check_body(raw: bytes, sent_body: bytes, hidden: Sequence[str], replacement: str) -> None:
    """The body went out as it came, but for the masking of hidden addresses in text parts."""
    split = split_message(raw)
    forms = sorted({form for address in hidden for form in _masked_forms(address)})
    masked = mask_addresses(raw, split, forms, replacement)
    expected = raw if masked is None else masked
    expected_body = expected[split_message(expected).body_start :]
    if sent_body != expected_body:
        raise InvariantBroken(f"body changed: {len(expected_body)} bytes expected, {len(sent_body)} sent")


# -- generators ---------------------------------------------------------------------------------------------------

USER = "jane.doe@real-user.example"
SENDERS = [USER, "Jane.Doe+flats@Real-User.Example", '"jane.doe"@real-user.example', "jane@b\u00fccher.example",
           "jane@xn--bcher-kva.example", "j\u00f6rg@real-user.example", "x@[192.0.2.1]"]
"""Sender addresses: plain, cased with a +tag, quoted local part, IDN (Unicode and punycode), UTF-8 local part."""


def encoded_word(text: str, encoding: str = "b", charset: str = "utf-8") -> str:
    data = text.encode("utf-8", "surrogatepass")
    if encoding == "b":
        return f"=?{charset}?b?{base64.b64encode(data).decode()}?="
    return f"=?{charset}?q?{''.join(f'={byte:02X}' for byte in data)}?="


def _tricks(relay_address: str, hidden: str) -> list[bytes]:
    """Pieces of header values that have broken relays: injections, address look-alikes, encodings."""
    return [
        b"\r\nBcc: victim@elsewhere.example", b"\rReply-To: attacker@evil.example", b"\nX-Injected: 1",
        b"\x00", b"\"", b"\\", b"<>", b"<", b">", b",", b";", b":", b"@", b"(comment", b")",
        f'"{hidden}" <{hidden}>'.encode(), f"<{hidden}>".encode(), hidden.upper().encode(), f"mailto:{hidden}".encode(),
        f'"{relay_address}"'.encode(), f"<{relay_address}>".encode(),
        encoded_word(hidden).encode(), encoded_word(f"x\r\nReply-To: {hidden}", "q").encode(),
        encoded_word("\r\n\r\nbody?").encode(), encoded_word(f"<{hidden}>").encode(),
        encoded_word(hidden[:5], "q").encode() + b" " + encoded_word(hidden[5:]).encode(),
        encoded_word(hidden, charset="x-unknown").encode(), b"=?utf-8?b?broken", b"=?=?utf-8?q?a?=?=",
        "Mar\u00eda \u65e5\u672c".encode(), "Mar\u00eda".encode("latin-1"), b"\xff\xfe\x80", b"\xc3\x28",
        "j\u00f6rg@b\u00fccher.example".encode(), b"x" * 1200, b" ".join([b"y" * 80] * 20),
        b"<" + b"id@host" * 200 + b">",
    ]


_NAMES = ["To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
          "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Content-Description",
          "Auto-Submitted", "Sender", "Return-Path", "Received", "X-Emailflow-Loop", "DKIM-Signature", "List-Id",
          "Precedence", "X-Mailer", "SUBJECT", "content-type", "Bcc"]
"""Field names of the extra fields (a second From comes from ``from_count``)."""


@st.composite
def header_values(draw: st.DrawFn, relay_address: str, hidden: str) -> bytes:
    tricks = _tricks(relay_address, hidden)
    pieces = draw(st.lists(st.sampled_from(tricks) | st.binary(max_size=40) |
                           st.text(max_size=30).map(lambda text: text.encode("utf-8", "surrogatepass")),
                           max_size=6))
    separator = draw(st.sampled_from([b" ", b"", b"\r\n ", b"\r\n\t", b"\n "]))
    return separator.join(pieces)


@dataclass(frozen=True)
class HostileMail:
    raw: bytes
    sender: str
    """The envelope sender (SES ``mail.source``)."""


@st.composite
def hostile_mails(draw: st.DrawFn, relay_address: str, sender: str | None = None) -> HostileMail:
    """A message to ``relay_address`` whose header block and body are hostile or broken in any way."""
    sender = sender or draw(st.sampled_from(SENDERS))
    hidden = sender
    newline = draw(st.sampled_from([b"\r\n", b"\n"]))
    fields: list[bytes] = []
    from_count = draw(st.sampled_from([1] * 8 + [0, 2]))
    for _ in range(from_count):
        plain = st.sampled_from([b"", b"Jane", b'"Jane Doe"', b"=?utf-8?q?Mar=C3=ADa?=", "María".encode()])
        hostile = draw(st.sampled_from([False, False, True]))
        name = draw(header_values(relay_address, hidden)) if hostile else draw(plain)
        fields.append(b"From: " + name + b" <" + sender.encode("utf-8") + b">")
    to_count = draw(st.sampled_from([1] * 6 + [0, 2]))
    for _ in range(to_count):
        extra = draw(st.sampled_from([b"", b", other@example.net", b", " + relay_address.encode()]))
        fields.append(b"To: " + draw(st.sampled_from([b"", b'"Flat" '])) + b"<" + relay_address.encode() + b">" + extra)
    for _ in range(draw(st.integers(0, 8))):
        field_name = draw(st.sampled_from(_NAMES) | st.from_regex(r"\A[!-9;-~]{1,30}\Z"))
        fields.append(field_name.encode() + b":" + draw(st.sampled_from([b" ", b"", b"\t"])) +
                      draw(header_values(relay_address, hidden)))
    content_type, body = draw(bodies(hidden, newline))
    if content_type is not None:
        fields.append(content_type)
    fields = draw(st.permutations(fields))
    raw = newline.join(field.replace(b"\r\n", newline) for field in fields) + newline + newline + body
    # Truncated mail, cut anywhere: 1 in 20 (a middle range of values, which hypothesis draws without its bias
    # towards the ends of a range)
    if draw(st.integers(0, 99)) in range(40, 45):
        raw = raw[: draw(st.integers(1, max(1, len(raw) - 1)))]
    return HostileMail(raw, sender)


@st.composite
def bodies(draw: st.DrawFn, hidden: str, newline: bytes) -> tuple[bytes | None, bytes]:
    """(a Content-Type field for the header block or None, the body): raw bytes, a quoting text, or multipart."""
    kind = draw(st.sampled_from(["bytes", "text", "multipart"]))
    if kind == "bytes":
        return None, draw(st.binary(max_size=300))
    mention = draw(st.sampled_from([hidden, hidden.upper(), "nobody@example.org"])).encode("utf-8")
    text = b"On Tue, Jane <" + mention + b"> wrote:" + newline + b"> hello \xe9\x00" + newline
    if kind == "text":
        return None, text
    boundary = draw(st.sampled_from([b"b1", b"=_b", b"x" * 70]))
    body = (b"--" + boundary + newline + b"Content-Type: text/plain; charset=utf-8" + newline + newline + text +
            b"--" + boundary + newline + b"Content-Type: application/octet-stream" + newline + newline + mention +
            newline + b"--" + boundary + b"--" + newline)
    return b'Content-Type: multipart/mixed; boundary="' + boundary + b'"', body
