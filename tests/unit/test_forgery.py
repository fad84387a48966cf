"""Keyed values resist forgery: loop markers and codes made with any key but the relay's are not accepted, and a
rotation keeps the previous key's values valid until that key is retired."""

from __future__ import annotations

from emailflow.addresses import address_digest
from emailflow.codes import CodeBook, CodeKind, Keyring
from emailflow.loops import is_own_marker, loop_marker

DOMAIN = "relay.example"
OLD = Keyring(current=b"old-relay-secret-0123456789abcdef")
NEW = Keyring(current=b"new-relay-secret-fedcba9876543210", previous=(OLD.current,))
RETIRED = Keyring(current=NEW.current)
ATTACKER = Keyring(current=b"attacker-guess-0123456789abcdefg")
T = 1_795_600_800


def test_loop_marker_made_with_a_wrong_key_is_not_ours() -> None:
    # Given a marker made with a key that is not the relay's
    forged = loop_marker(ATTACKER, DOMAIN, T)

    # When the relay checks it, Then it is not its own (mail carrying it is not dropped as a loop)
    assert not is_own_marker(forged, NEW, DOMAIN)


def test_loop_marker_with_changed_time_or_domain_is_not_ours() -> None:
    # Given a genuine marker, and copies with its time or its domain changed
    genuine = loop_marker(NEW, DOMAIN, T)
    later = genuine.replace(f"t={T}", f"t={T + 1}")
    elsewhere = loop_marker(NEW, "other.example", T).replace("other.example", DOMAIN)

    # Then only the genuine one is accepted
    assert is_own_marker(genuine, NEW, DOMAIN)
    assert not is_own_marker(later, NEW, DOMAIN)
    assert not is_own_marker(elsewhere, NEW, DOMAIN)


def test_loop_marker_with_a_truncated_or_altered_signature_is_not_ours() -> None:
    # Given a genuine marker
    genuine = loop_marker(NEW, DOMAIN, T)
    signature = genuine.rpartition("sig=")[2]

    # When each signature character is changed, or the signature shortened
    altered = [genuine[: -len(signature)] + signature[:index] + ("0" if char != "0" else "1") + signature[index + 1:]
               for index, char in enumerate(signature)]

    # Then none is accepted
    assert not any(is_own_marker(marker, NEW, DOMAIN) for marker in altered)
    assert not is_own_marker(genuine[:-1], NEW, DOMAIN)


def test_loop_marker_of_the_previous_key_is_ours_during_a_rotation_only() -> None:
    # Given a marker sent before the secret rotated
    sent_before = loop_marker(OLD, DOMAIN, T)

    # Then it is still recognised while the old key is listed as previous, and no longer once it is retired
    assert is_own_marker(sent_before, NEW, DOMAIN)
    assert not is_own_marker(sent_before, RETIRED, DOMAIN)


def test_codes_made_with_a_wrong_key_are_rejected() -> None:
    # Given 5000 codes of both kinds made with an attacker's key
    forged = [CodeBook(ATTACKER).new_code(kind) for kind in (CodeKind.SERVICE, CodeKind.USER) for _ in range(2500)]

    # When the relay verifies them
    accepted = [code for code in forged for kind in CodeKind if CodeBook(NEW).verify(kind, code)]

    # Then at most one passes by chance (the tag has 25 bits: one in 33 million per try)
    assert len(accepted) <= 1


def test_codes_of_a_retired_key_are_rejected() -> None:
    # Given codes issued under the old key
    codes = [CodeBook(OLD).new_code(CodeKind.USER) for _ in range(50)]

    # Then they verify during the rotation and not once the old key is retired
    assert all(CodeBook(NEW).verify(CodeKind.USER, code) for code in codes)
    assert not any(CodeBook(RETIRED).verify(CodeKind.USER, code) for code in codes)


def test_address_digest_with_a_wrong_key_does_not_match() -> None:
    # Given the digest logs carry for an address
    logged = address_digest("jane.doe@real-user.example", NEW.current)

    # Then a dictionary attack with another key cannot reproduce it
    assert address_digest("jane.doe@real-user.example", ATTACKER.current) != logged
