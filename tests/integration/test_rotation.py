"""Rotating the code secret on moto (docs/operations.md, drill 3): codes issued before keep working through the
handler while the old key is listed as previous; new codes use the new key only; a retired key's codes stop."""

from __future__ import annotations

import json
import secrets

import boto3

from emailflow import wiring
from emailflow.codes import CodeBook, CodeKind, Keyring
from emailflow.config import get_settings
from tests.support.mail import load_eml
from tests.support.relay_stack import RelayHarness

USER = "jane.doe@real-user.example"
OWNER = "owner@holiday-flats.example"


def _rotate(document: dict[str, object]) -> None:
    """Store a new version of the secret, and cold-start the function (as a new version or a recycled container)."""
    boto3.client("secretsmanager").put_secret_value(SecretId=get_settings().code_secret_arn,
                                                    SecretString=json.dumps(document))
    wiring.reset()


def _original_key() -> str:
    value: str = boto3.client("secretsmanager").get_secret_value(SecretId=get_settings().code_secret_arn)[
        "SecretString"]
    return value


def _conversation(relay: RelayHarness) -> tuple[str, str]:
    """A service and a first message relayed to it, under the key of the day: (service address, user address)."""
    _, address = relay.register([OWNER], "Flat A")
    relay.deliver(load_eml("user_first_message.eml", {"service-placeholder@relay.example": address}), [address], USER)
    return address, relay.sent()[-1].parsed()["Reply-To"].addresses[0].addr_spec


def _reply(user_address: str) -> bytes:
    return load_eml("service_reply.eml", {"user-placeholder@relay.example": user_address,
                                          "<ses-in-reply-to-placeholder>": "<x@y.example>"})


def _follow_up(address: str) -> bytes:
    return load_eml("user_follow_up.eml", {"service-placeholder@relay.example": address,
                                           "<ses-in-reply-to-placeholder>": "<x@y.example>"})


def test_rotation_codes_issued_before_keep_working_both_ways(relay: RelayHarness) -> None:
    # Given a conversation whose codes were issued under the original key
    address, user_address = _conversation(relay)
    old_key = _original_key()

    # When the secret rotates to a new current key with the old one as previous
    new_key = secrets.token_urlsafe(36)
    _rotate({"current": new_key, "previous": [old_key]})

    # Then the service's answer to the old user code reaches the user, and the user's next message to the old
    # service address reaches the service From the same user code
    reply = relay.deliver(_reply(user_address), [user_address], OWNER)
    follow_up = relay.deliver(_follow_up(address), [address], USER)
    assert [reply["outcomes"][0]["reason"], follow_up["outcomes"][0]["reason"]] == ["relayed", "relayed"]
    assert relay.sent()[-2].destinations[0] == USER
    assert relay.sent()[-1].parsed()["From"].addresses[0].addr_spec == user_address


def test_rotation_new_codes_are_signed_with_the_new_key_only(relay: RelayHarness) -> None:
    # Given a rotated secret
    old_key = _original_key()
    new_key = secrets.token_urlsafe(36)
    _rotate({"current": new_key, "previous": [old_key]})

    # When a service registers and a user writes to it
    address, user_address = _conversation(relay)

    # Then both codes verify with the new key alone, and not with the old one
    for kind, relay_address in ((CodeKind.SERVICE, address), (CodeKind.USER, user_address)):
        code = relay_address.split("@")[0].split("-", 1)[1]
        assert CodeBook(Keyring(new_key.encode())).verify(kind, code) == code
        assert CodeBook(Keyring(old_key.encode())).verify(kind, code) is None


def test_rotation_marker_of_mail_sent_before_is_still_a_loop(relay: RelayHarness) -> None:
    # Given a message the relay sent before the rotation (it carries the old key's loop marker)
    address, _ = _conversation(relay)
    marker = relay.sent()[-1].parsed()["X-Emailflow-Loop"]
    _rotate({"current": secrets.token_urlsafe(36), "previous": [_original_key()]})

    # When that message comes back to the relay (a forwarding loop)
    looped = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address,
                                                 "X-Mailer: ExampleMail 9.1": f"X-Emailflow-Loop: {marker}"})
    result = relay.deliver(looped, [address], USER)

    # Then it is still recognised as the relay's own mail
    assert result["outcomes"][0]["reason"] == "loop"


def test_rotation_retired_key_codes_are_rejected_without_a_read(relay: RelayHarness) -> None:
    # Given a conversation under the original key, then a rotation that does not keep it as previous
    address, user_address = _conversation(relay)
    _rotate({"current": secrets.token_urlsafe(36)})

    # When mail arrives for its codes (the raw mail not even stored: a guess must cost no read)
    results = [relay.deliver(b"never read", [recipient], USER, store=False) for recipient in (address, user_address)]

    # Then both are rejected as invalid codes
    assert [result["outcomes"][0]["reason"] for result in results] == ["invalid_code", "invalid_code"]
