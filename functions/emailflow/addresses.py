"""E-mail addresses: normalisation, the relay's own address format, and log-safe digests."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from email.utils import getaddresses

from emailflow.codes import CodeBook, CodeKind

MAX_ADDRESS_LENGTH = 254
"""RFC 5321 section 4.5.3.1.3 (path limit 256, minus the angle brackets)."""


_NOT_IN_ADDRESSES = frozenset(" <>,;\x7f") | {chr(code) for code in range(0x20)}
"""White space, control characters (CR, LF, NUL and the rest: a header injection or a mangled address) and the
characters that separate or bracket addresses."""
_ATEXT = r"""[^\x00-\x20\x7f"(),.:;<>@\[\\\]]"""
r"""RFC 5322 atext (letters, digits and ``!#$%&'*+-/=?^_`{|}~``) and every non-ASCII character, written as what it
is not: printable ASCII minus the specials. The same set as ``[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]``
(checked code point by code point in tests/unit/test_addresses.py), but an explicit range up to U+10FFFF costs the
regex compiler ~8 ms on every cold start, ~3 % of ``import boto3`` (benchmarks/bench_coldstart.py)."""
_LOCAL_PART = re.compile(rf'{_ATEXT}+(?:\.{_ATEXT}+)*|"(?:[^"\\]|\\.)*"')
"""RFC 5322 section 3.4.1 (dot-atom or quoted-string; UTF-8 as RFC 6532 allows): what a header can carry as an
address without a parser finding a defect in it."""
_HOST_NAME = re.compile(r"(?:[a-z0-9_-]+\.)*[a-z0-9_-]+|\[[!-Z^-~]+\]", re.IGNORECASE)
"""Labels of letters, digits, hyphens (and underscores, seen in the wild) after IDNA, or a domain literal."""


class InvalidAddress(ValueError):
    """Not a usable mailbox address."""


def normalise_address(address: str) -> str:
    """The form an address is stored and compared in: trimmed, lower case, domain in IDNA (punycode).

    The local part is lower-cased too: RFC 5321 lets it be case-sensitive, but no mailbox provider a marketplace
    meets treats it so, and "John@" and "john@" starting two conversations is the bug users would report.
    """
    text = address.strip().strip("<>").strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or any(char in _NOT_IN_ADDRESSES for char in text):
        raise InvalidAddress("not an address")
    if "=?" in text or not _LOCAL_PART.fullmatch(local):
        # RFC 2047 section 5: no encoded word in an addr-spec (a header parser decodes it, CR/LF and all)
        raise InvalidAddress("not an address")
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidAddress("domain is not a valid IDNA name") from exc
    if not ascii_domain:  # "jane@." would otherwise come out as "jane@"
        raise InvalidAddress("not an address")
    normalised = f"{local.lower()}@{ascii_domain.lower()}"
    if not _HOST_NAME.fullmatch(ascii_domain):
        # e.g. IDNA 2003 maps U+00B8 (cedilla) to a space and a combining cedilla: not a host name
        raise InvalidAddress("domain is not a host name")
    if len(normalised) > MAX_ADDRESS_LENGTH:
        raise InvalidAddress("address too long")
    return normalised


def spellings(address: str) -> tuple[str, ...]:
    """A stored (normalised) address and the other way people write it: an IDNA domain also in Unicode
    (``jane@xn--bcher-kva.example`` and ``jane@bücher.example``). Masking must find both."""
    local, _, domain = address.rpartition("@")
    try:
        unicode_domain = domain.encode("ascii").decode("idna")
    except UnicodeError:
        return (address,)
    unicode_form = f"{local}@{unicode_domain.lower()}"
    return (address,) if unicode_form == address else (address, unicode_form)


def without_subaddress(address: str) -> str:
    """``jane+listing42@host`` -> ``jane@host``: for matching a registered sender whatever tag it used."""
    local, _, domain = address.rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def header_addresses(values: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs of address header values, empty addresses left out."""
    return [(name, addr) for name, addr in getaddresses(values) if addr]


def address_digest(address: str, key: bytes) -> str:
    """A short keyed digest of an address, for logs: correlates lines without exposing (or letting anyone
    brute-force from a dictionary) the address itself."""
    return hmac.new(key, b"log:" + address.encode(), hashlib.sha256).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class RelayAddress:
    """A parsed address of this relay: ``<prefix>-<code>[+tag]@<domain>``."""

    kind: CodeKind
    code: str


@dataclass(frozen=True, slots=True)
class RelayAddressing:
    """The relay's address scheme: domain and the two prefixes."""

    domain: str
    service_prefix: str = "service"
    user_prefix: str = "user"

    def address(self, kind: CodeKind, code: str) -> str:
        prefix = self.service_prefix if kind is CodeKind.SERVICE else self.user_prefix
        return f"{prefix}-{code}@{self.domain}"

    def is_relay_domain(self, address: str) -> bool:
        return address.rpartition("@")[2].lower().rstrip(".") == self.domain

    def split(self, address: str) -> tuple[CodeKind, str] | None:
        """Kind and (unverified) code text of a relay address, or None if it is not one of ours at all.

        Case and a ``+tag`` are ignored: ``Service-AB12...+hello@Relay.Example`` resolves like the bare address.
        """
        local, at, domain = address.strip().strip("<>").rpartition("@")
        if not at or domain.lower().rstrip(".") != self.domain:
            return None
        prefix, dash, code = local.split("+", 1)[0].lower().partition("-")
        if not dash:
            return None
        if prefix == self.service_prefix:
            return CodeKind.SERVICE, code
        if prefix == self.user_prefix:
            return CodeKind.USER, code
        return None

    def parse(self, address: str, codebook: CodeBook) -> RelayAddress | None:
        """A verified relay address, or None when it is not ours or its code fails the keyed check."""
        split = self.split(address)
        if split is None:
            return None
        kind, text = split
        code = codebook.verify(kind, text)
        return None if code is None else RelayAddress(kind, code)

    def code_of(self, kind: CodeKind, reference: str, codebook: CodeBook) -> str | None:
        """The verified code of ``kind`` an operator names: a relay address (any case, ``+tag`` allowed), the bare
        code, or ``<prefix>-<code>``. None for anything else; the keyed check runs first, so a typo costs no read."""
        text = reference.strip()
        if "@" in text:
            parsed = self.parse(text, codebook)
            return parsed.code if parsed is not None and parsed.kind is kind else None
        prefix = self.service_prefix if kind is CodeKind.SERVICE else self.user_prefix
        return codebook.verify(kind, text.removeprefix(f"{prefix}-"))
