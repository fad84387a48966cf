"""Addresses: normalisation, sub-addresses, the relay's own address scheme and log-safe digests."""

from __future__ import annotations

import re

import pytest

from emailflow.addresses import (
    _LOCAL_PART,
    MAX_ADDRESS_LENGTH,
    InvalidAddress,
    RelayAddress,
    RelayAddressing,
    address_digest,
    header_addresses,
    normalise_address,
    without_subaddress,
)
from emailflow.codes import CodeBook, CodeKind, Keyring

ADDRESSING = RelayAddressing("relay.example")
BOOK = CodeBook(Keyring(b"relay-test-secret-0123456789abcdef"))
LOG_KEY = b"log-key-0123456789abcdef"


@pytest.mark.parametrize(("address", "expected"), [
    ("Jane.Doe@Real-User.EXAMPLE", "jane.doe@real-user.example"),
    ("  <Jane.Doe@real-user.example>  ", "jane.doe@real-user.example"),
    ("< jane@real-user.example >", "jane@real-user.example"),
    ("jane@real-user.example.", "jane@real-user.example"),
    ("jane@real-user.example\r\n", "jane@real-user.example"),
    ("jane+listing42@real-user.example", "jane+listing42@real-user.example"),
])
def test_normalise_address_trims_and_lower_cases(address: str, expected: str) -> None:
    # Given an address as it appears in mail

    # When it is normalised
    normalised = normalise_address(address)

    # Then it is trimmed, unbracketed and lower case
    assert normalised == expected


@pytest.mark.parametrize(("address", "expected"), [
    ("jörg@bücher.example", "jörg@xn--bcher-kva.example"),
    ("Jörg@BÜCHER.example", "jörg@xn--bcher-kva.example"),
    ("info@münchen.example.", "info@xn--mnchen-3ya.example"),
])
def test_normalise_address_writes_an_international_domain_in_punycode(address: str, expected: str) -> None:
    # Given an address with a non-ASCII domain

    # When it is normalised
    normalised = normalise_address(address)

    # Then the domain is in its IDNA (punycode) form, so both spellings compare equal
    assert normalised == expected
    assert normalise_address("jörg@xn--bcher-kva.example") == "jörg@xn--bcher-kva.example"


@pytest.mark.parametrize("address", [
    "",
    "   ",
    "jane",
    "@real-user.example",
    "jane@",
    "jane@.",
    "jane@...",
    "jane doe@real-user.example",
    "jane@real-user.example\r\nBcc: x@y.example",
    "jane\t@real-user.example",
    "jane@real-user.example, bob@real-user.example",
    "jane@real-user.example;bob@real-user.example",
    "Jane <jane@real-user.example>",
    "jane\x00@real-user.example",
    "jane@real..example",
    "jane@.real-user.example",
])
def test_normalise_address_rejects_what_is_not_a_mailbox(address: str) -> None:
    # Given text that is not a single usable address

    # When it is normalised, Then it is refused
    with pytest.raises(InvalidAddress):
        normalise_address(address)


def test_normalise_address_local_part_characters_are_rfc5322_atext_and_non_ascii() -> None:
    # Given RFC 5322's atext (section 3.2.3) and UTF-8 local parts (RFC 6532): every non-ASCII code point
    atext = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~")

    # When every code point is tried as a one-character dot-atom local part
    accepted = {code for code in range(0x110000) if _LOCAL_PART.fullmatch(chr(code))}

    # Then exactly those are accepted (the pattern is written as a negated class: cheaper to compile)
    assert accepted == {ord(char) for char in atext} | set(range(0x80, 0x110000))


def test_normalise_address_rejects_an_address_over_the_smtp_limit() -> None:
    # Given an address one character longer than RFC 5321 allows
    address = "j" * (MAX_ADDRESS_LENGTH - len("@real-user.example") + 1) + "@real-user.example"

    # When it is normalised, Then it is refused
    with pytest.raises(InvalidAddress, match="too long"):
        normalise_address(address)


def test_normalise_address_accepts_an_address_at_the_smtp_limit() -> None:
    # Given an address exactly as long as RFC 5321 allows
    address = "j" * (MAX_ADDRESS_LENGTH - len("@real-user.example")) + "@real-user.example"

    # When it is normalised
    normalised = normalise_address(address)

    # Then it is kept
    assert len(normalised) == MAX_ADDRESS_LENGTH


@pytest.mark.parametrize(("address", "expected"), [
    ("jane+listing42@real-user.example", "jane@real-user.example"),
    ("jane+a+b@real-user.example", "jane@real-user.example"),
    ("jane@real-user.example", "jane@real-user.example"),
    ("jane.doe@real-user.example", "jane.doe@real-user.example"),
])
def test_without_subaddress_drops_the_plus_tag(address: str, expected: str) -> None:
    # Given a normalised address with or without a +tag

    # When the sub-address is removed
    bare = without_subaddress(address)

    # Then only the tag is gone
    assert bare == expected


def test_header_addresses_leaves_out_empty_addresses() -> None:
    # Given address header values with a group and a named mailbox
    values = ["Jane Doe <jane@real-user.example>, undisclosed-recipients:;", "bob@real-user.example"]

    # When their addresses are read
    pairs = header_addresses(values)

    # Then every mailbox is listed with its display name, and the empty group is not
    assert pairs == [("Jane Doe", "jane@real-user.example"), ("", "bob@real-user.example")]


@pytest.mark.parametrize(("address", "expected"), [
    ("service-abc@relay.example", (CodeKind.SERVICE, "abc")),
    ("user-abc@relay.example", (CodeKind.USER, "abc")),
    ("Service-ABC@Relay.Example", (CodeKind.SERVICE, "abc")),
    ("USER-Abc+listing42@relay.example", (CodeKind.USER, "abc")),
    ("<service-abc+re+fwd@relay.example.>", (CodeKind.SERVICE, "abc")),
    ("  service-abc@relay.example  ", (CodeKind.SERVICE, "abc")),
])
def test_relay_addressing_split_reads_kind_and_code(address: str, expected: tuple[CodeKind, str]) -> None:
    # Given an address of this relay, in any case, with or without a +tag

    # When it is split
    split = ADDRESSING.split(address)

    # Then kind and code text are read, the tag ignored
    assert split == expected


@pytest.mark.parametrize("address", [
    "service-abc@other.example",
    "service-abc@relay.example.com",
    "service-abc@sub.relay.example",
    "seller-abc@relay.example",
    "serviceabc@relay.example",
    "user@relay.example",
    "service-abc",
    "",
    "+service-abc@relay.example",
])
def test_relay_addressing_split_rejects_other_addresses(address: str) -> None:
    # Given an address that is not of the form <prefix>-<code>@relay.example

    # When it is split
    split = ADDRESSING.split(address)

    # Then it is not ours
    assert split is None


def test_relay_addressing_split_uses_configured_prefixes() -> None:
    # Given a relay configured with other prefixes
    addressing = RelayAddressing("relay.example", service_prefix="shop", user_prefix="buyer")

    # When its addresses and the default ones are split
    shop = addressing.split("shop-abc@relay.example")
    buyer = addressing.split("buyer-abc@relay.example")
    default = addressing.split("service-abc@relay.example")

    # Then only the configured prefixes are recognised
    assert (shop, buyer, default) == ((CodeKind.SERVICE, "abc"), (CodeKind.USER, "abc"), None)


@pytest.mark.parametrize("kind", list(CodeKind))
def test_relay_addressing_parse_verifies_an_address_it_built(kind: CodeKind) -> None:
    # Given an address built for a fresh code
    code = BOOK.new_code(kind)
    address = ADDRESSING.address(kind, code)

    # When it is parsed
    parsed = ADDRESSING.parse(address, BOOK)

    # Then kind and code come back
    assert parsed == RelayAddress(kind, code)


def test_relay_addressing_parse_accepts_case_tag_and_look_alikes() -> None:
    # Given a service address retyped in capitals, with a tag and o/l for 0/1
    code = next(code for code in (BOOK.new_code(CodeKind.SERVICE) for _ in range(200)) if "0" in code or "1" in code)
    retyped = code.upper().replace("0", "O").replace("1", "l")

    # When it is parsed
    parsed = ADDRESSING.parse(f"SERVICE-{retyped}+july@Relay.Example", BOOK)

    # Then the canonical code is found
    assert parsed == RelayAddress(CodeKind.SERVICE, code)


def test_relay_addressing_parse_rejects_a_code_of_the_other_kind() -> None:
    # Given a user code written behind the service prefix
    code = BOOK.new_code(CodeKind.USER)

    # When it is parsed
    parsed = ADDRESSING.parse(f"service-{code}@relay.example", BOOK)

    # Then the keyed check fails
    assert parsed is None


def test_relay_addressing_parse_rejects_a_mistyped_code() -> None:
    # Given a genuine code with its last character changed
    code = BOOK.new_code(CodeKind.SERVICE)
    typo = code[:-1] + ("0" if code[-1] != "0" else "1")

    # When it is parsed
    parsed = ADDRESSING.parse(f"service-{typo}@relay.example", BOOK)

    # Then it is rejected
    assert parsed is None


def test_relay_addressing_parse_rejects_a_genuine_code_at_another_domain() -> None:
    # Given a genuine code at a domain that is not the relay's
    code = BOOK.new_code(CodeKind.SERVICE)

    # When it is parsed
    parsed = ADDRESSING.parse(f"service-{code}@relay.example.org", BOOK)

    # Then it is not ours
    assert parsed is None


def test_relay_addressing_is_relay_domain_ignores_case_and_trailing_dot() -> None:
    # Given addresses at the relay domain and elsewhere

    # When their domains are checked
    ours = [ADDRESSING.is_relay_domain(address) for address in ("x@relay.example", "x@RELAY.Example.")]
    theirs = ADDRESSING.is_relay_domain("x@relay.example.org")

    # Then only the relay domain matches
    assert ours == [True, True]
    assert theirs is False


def test_address_digest_is_stable() -> None:
    # Given one address and key

    # When it is digested twice
    first = address_digest("jane@real-user.example", LOG_KEY)
    second = address_digest("jane@real-user.example", LOG_KEY)

    # Then both digests are the same 12 hex characters
    assert first == second
    assert re.fullmatch(r"[0-9a-f]{12}", first)


def test_address_digest_depends_on_the_key() -> None:
    # Given one address

    # When it is digested with two keys
    first = address_digest("jane@real-user.example", LOG_KEY)
    second = address_digest("jane@real-user.example", b"another-log-key-0123456789")

    # Then the digests differ: a dictionary of addresses cannot be digested without the key
    assert first != second


def test_address_digest_differs_between_addresses() -> None:
    # Given many addresses
    addresses = [f"user{number}@real-user.example" for number in range(500)]

    # When each is digested
    digests = {address_digest(address, LOG_KEY) for address in addresses}

    # Then the digests tell them apart
    assert len(digests) == 500


def test_address_digest_does_not_contain_the_address() -> None:
    # Given an address

    # When it is digested
    digest = address_digest("jane@real-user.example", LOG_KEY)

    # Then neither the address nor its parts appear
    assert all(part not in digest for part in ("jane", "real-user", "example", "@"))
