"""Relay codes: format, keyed verification, key rotation and randomness."""

from __future__ import annotations

import json
import random
import re

import pytest

from emailflow import codes
from emailflow.codes import ALPHABET, CODE_LENGTH, RANDOM_CHARS, CodeBook, CodeKind, Keyring, canonical_code

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
CROCKFORD_LOWER = re.compile(r"[0-9a-hjkmnp-tv-z]{16}")


class _SeededSecrets:
    """Stands in for the ``secrets`` module inside ``emailflow.codes``: the same codes on every run, so checks that
    could only fail by a 1-in-2**25 tag collision are decided once, not re-rolled on every test run."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def randbits(self, bits: int) -> int:
        return self._random.getrandbits(bits)


@pytest.fixture
def seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codes, "secrets", _SeededSecrets(20261125))


def _mutations(code: str) -> list[str]:
    """Every code that differs from ``code`` in exactly one character (by canonical value)."""
    return [code[:index] + char + code[index + 1 :]
            for index in range(len(code)) for char in ALPHABET if char != code[index]]


def test_new_code_is_sixteen_lower_case_crockford_characters() -> None:
    # Given a code book
    book = CodeBook(Keyring(KEY))

    # When codes of both kinds are issued
    issued = [book.new_code(kind) for kind in CodeKind for _ in range(50)]

    # Then each is 16 characters of Crockford's lower-case alphabet (no i, l, o or u)
    assert CODE_LENGTH == 16
    assert all(CROCKFORD_LOWER.fullmatch(code) for code in issued)


def test_verify_accepts_new_codes_of_the_same_kind() -> None:
    # Given codes just issued
    book = CodeBook(Keyring(KEY))
    issued = [(kind, book.new_code(kind)) for kind in CodeKind for _ in range(50)]

    # When each is verified as its own kind
    verified = [book.verify(kind, code) for kind, code in issued]

    # Then each comes back as itself
    assert verified == [code for _, code in issued]


def test_verify_is_case_insensitive() -> None:
    # Given a code as a user might retype it, in capitals
    book = CodeBook(Keyring(KEY))
    code = book.new_code(CodeKind.SERVICE)

    # When it is verified
    verified = book.verify(CodeKind.SERVICE, code.upper())

    # Then the canonical lower-case code is returned
    assert verified == code


@pytest.mark.usefixtures("seeded")
def test_verify_reads_look_alike_letters_as_digits() -> None:
    # Given a code that contains both 0 and 1, retyped with o/O for 0 and i/I/l/L for 1
    book = CodeBook(Keyring(KEY))
    code = next(code for code in (book.new_code(CodeKind.USER) for _ in range(200)) if "0" in code and "1" in code)
    retyped = [code.replace("0", zero).replace("1", one) for zero in "oO" for one in "iIlL"]

    # When each spelling is verified
    verified = {book.verify(CodeKind.USER, text) for text in retyped}

    # Then every spelling resolves to the canonical code
    assert verified == {code}


@pytest.mark.usefixtures("seeded")
def test_verify_rejects_every_single_character_change() -> None:
    # Given genuine codes and every code one character away from each of them
    book = CodeBook(Keyring(KEY))
    genuine = [(kind, book.new_code(kind)) for kind in CodeKind for _ in range(4)]
    mutated = [(kind, mutation) for kind, code in genuine for mutation in _mutations(code)]

    # When the mutated codes are verified
    accepted = [text for kind, text in mutated if book.verify(kind, text) is not None]

    # Then the keyed tag rejects them all (8 codes x 16 positions x 31 characters)
    assert len(mutated) == 8 * 16 * 31
    assert accepted == []


@pytest.mark.usefixtures("seeded")
def test_verify_rejects_a_service_code_as_a_user_code() -> None:
    # Given service codes
    book = CodeBook(Keyring(KEY))
    service_codes = [book.new_code(CodeKind.SERVICE) for _ in range(200)]

    # When they are verified as user codes
    accepted = [code for code in service_codes if book.verify(CodeKind.USER, code) is not None]

    # Then none passes: the kind is bound into the tag
    assert accepted == []


@pytest.mark.usefixtures("seeded")
def test_verify_rejects_a_code_of_another_key() -> None:
    # Given codes issued under another secret
    foreign = CodeBook(Keyring(OTHER_KEY))
    foreign_codes = [foreign.new_code(CodeKind.SERVICE) for _ in range(200)]
    book = CodeBook(Keyring(KEY))

    # When this relay verifies them
    accepted = [code for code in foreign_codes if book.verify(CodeKind.SERVICE, code) is not None]

    # Then none passes
    assert accepted == []


def test_verify_accepts_a_code_of_the_previous_key_after_rotation() -> None:
    # Given a code issued before the secret was rotated
    old_code = CodeBook(Keyring(OTHER_KEY)).new_code(CodeKind.USER)
    rotated = CodeBook(Keyring(current=KEY, previous=(OTHER_KEY,)))

    # When the rotated code book verifies it
    verified = rotated.verify(CodeKind.USER, old_code)

    # Then it is still accepted
    assert verified == old_code


def test_new_code_after_rotation_is_signed_with_the_current_key() -> None:
    # Given a rotated key ring
    rotated = CodeBook(Keyring(current=KEY, previous=(OTHER_KEY,)))

    # When it issues a code
    code = rotated.new_code(CodeKind.SERVICE)

    # Then a book with only the current key accepts it
    assert CodeBook(Keyring(KEY)).verify(CodeKind.SERVICE, code) == code


@pytest.mark.parametrize("text", ["", "0123456789abcde", "0123456789abcdefg", "0123456789abcdeu", "0123456789abcd-f",
                                  " 0123456789abcdef"])
def test_canonical_code_rejects_wrong_length_or_characters(text: str) -> None:
    # Given text that is not 16 characters of the alphabet

    # When it is canonicalised
    code = canonical_code(text)

    # Then it cannot be a code
    assert code is None


def test_verify_rejects_text_that_cannot_be_a_code() -> None:
    # Given a genuine code with a stray character appended
    book = CodeBook(Keyring(KEY))
    code = book.new_code(CodeKind.SERVICE)

    # When it is verified
    verified = book.verify(CodeKind.SERVICE, code + "x")

    # Then it is rejected before any HMAC
    assert verified is None


def test_keyring_from_secret_string_reads_a_plain_secret() -> None:
    # Given a plain secret as stored in Secrets Manager, with a trailing newline
    secret = "s3cr3t-value-of-32-characters!!!\n"

    # When it is read
    keyring = Keyring.from_secret_string(secret)

    # Then it is the current key, with no previous keys
    assert keyring == Keyring(current=b"s3cr3t-value-of-32-characters!!!")
    assert keyring.all_keys() == (b"s3cr3t-value-of-32-characters!!!",)


def test_keyring_from_secret_string_reads_the_rotation_document() -> None:
    # Given the JSON form with a current and two previous secrets
    secret = json.dumps({"current": "new-secret-0123456789",
                         "previous": ["old-secret-0123456789", "older-secret-01234"]})

    # When it is read
    keyring = Keyring.from_secret_string(secret)

    # Then current signs and all three verify, newest first
    assert keyring.current == b"new-secret-0123456789"
    assert keyring.all_keys() == (b"new-secret-0123456789", b"old-secret-0123456789", b"older-secret-01234")


def test_keyring_from_secret_string_without_previous_has_only_current() -> None:
    # Given the JSON form with no previous secrets
    secret = '{"current": "only-secret-0123456789"}'

    # When it is read
    keyring = Keyring.from_secret_string(secret)

    # Then there is nothing else to verify with
    assert keyring.previous == ()


@pytest.mark.parametrize("secret", ["short", "   fifteen-bytes  ", '{"current": "short"}'])
def test_keyring_from_secret_string_rejects_a_short_secret(secret: str) -> None:
    # Given a secret shorter than 16 bytes, plain or JSON

    # When it is read, Then it is refused
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Keyring.from_secret_string(secret)


def test_keyring_rejects_a_short_current_key() -> None:
    # Given a 15-byte key

    # When a key ring is built with it, Then it is refused
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Keyring(b"x" * 15)


def test_new_code_two_thousand_codes_are_all_distinct() -> None:
    # Given a code book on the real CSPRNG
    book = CodeBook(Keyring(KEY))

    # When 2000 codes are issued
    issued = [book.new_code(CodeKind.USER) for _ in range(2000)]

    # Then no code and no random part repeats
    assert len(set(issued)) == 2000
    assert len({code[:RANDOM_CHARS] for code in issued}) == 2000
