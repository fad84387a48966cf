"""Relay codes: random, unguessable, case-insensitive and self-checking.

A code is ``RANDOM_CHARS`` characters of randomness followed by ``TAG_CHARS`` characters of a keyed tag, all in
Crockford's base32 alphabet, lower case (no ``i``, ``l``, ``o`` or ``u``, so nothing is ambiguous when read aloud or
retyped). The tag is an HMAC-SHA256 over the code's kind and its random part with a secret only the relay knows, so
a guessed or mistyped code is rejected by arithmetic alone, before any database read: a guesser has one chance in
2**25 per try of even reaching the database.

Key rotation: a ``Keyring`` signs with its current key and accepts the previous ones too, so codes already handed
out keep working while a new secret rolls out (see docs/operations.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from enum import StrEnum

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
RANDOM_CHARS = 11
"""55 random bits: the issue asks for at least 50."""
TAG_CHARS = 5
"""25 bits of keyed tag: the issue asks for at least 20."""
CODE_LENGTH = RANDOM_CHARS + TAG_CHARS

# Crockford's decoding rules: read the look-alikes as the digits they resemble.
_READ_AS = str.maketrans({"o": "0", "i": "1", "l": "1"})
_VALUES = {char: value for value, char in enumerate(ALPHABET)}


class CodeKind(StrEnum):
    """Which side of a conversation a code stands for."""

    SERVICE = "service"
    """A service's public code: ``service-<code>@`` reaches the service."""
    USER = "user"
    """A user's code within one pair: ``user-<code>@`` reaches that user, for that service only."""


@dataclass(frozen=True, slots=True)
class Keyring:
    """The HMAC keys: ``current`` signs; ``current`` and ``previous`` verify."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if any(len(key) < 16 for key in self.all_keys()):
            raise ValueError("every code secret must be at least 16 bytes")

    @classmethod
    def from_secret_string(cls, secret: str) -> Keyring:
        """Read a secret as stored in Secrets Manager: a plain string, or ``{"current": .., "previous": [..]}``."""
        text = secret.strip()
        if text.startswith("{"):
            document = json.loads(text)
            listed = document.get("previous", [])
            previous = tuple(str(key).encode() for key in ([listed] if isinstance(listed, str) else listed))
            return cls(current=str(document["current"]).encode(), previous=previous)
        return cls(current=text.encode())

    def all_keys(self) -> tuple[bytes, ...]:
        return (self.current, *self.previous)


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _tag(key: bytes, kind: CodeKind, random_part: str) -> str:
    digest = hmac.new(key, f"{kind.value}:{random_part}".encode("ascii"), hashlib.sha256).digest()
    return _encode(int.from_bytes(digest[:4], "big") >> (32 - 5 * TAG_CHARS), TAG_CHARS)


def canonical_code(text: str) -> str | None:
    """Return the canonical (lower-case, look-alikes resolved) form of ``text``, or None if it cannot be a code."""
    code = text.lower().translate(_READ_AS)
    if len(code) != CODE_LENGTH or any(char not in _VALUES for char in code):
        return None
    return code


class CodeBook:
    """Issues and verifies codes with one ``Keyring``."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def new_code(self, kind: CodeKind) -> str:
        """A fresh code of ``kind``: 55 bits from the OS CSPRNG plus the keyed tag."""
        random_part = _encode(secrets.randbits(5 * RANDOM_CHARS), RANDOM_CHARS)
        return random_part + _tag(self._keyring.current, kind, random_part)

    def verify(self, kind: CodeKind, text: str) -> str | None:
        """The canonical code if ``text`` is a genuine code of ``kind``; None for a guess, a typo or the other kind.

        Costs one or two HMACs and no I/O: this is the gate that keeps brute force off the database.
        """
        code = canonical_code(text)
        if code is None:
            return None
        random_part, tag = code[:RANDOM_CHARS], code[RANDOM_CHARS:]
        for key in self._keyring.all_keys():
            if hmac.compare_digest(_tag(key, kind, random_part), tag):
                return code
        return None
