"""Secrets and addresses in what operators see: Powertools' JSON logs and the faults' messages.

A whole conversation runs through the real handlers on moto - a first message, a reply, a stranger, an unknown code,
a guessed code, a bounce - and the error paths too (SES throttled past the back-off, a missing raw mail, an attempt
in doubt). Then every log line is searched for the HMAC secret (raw, and as the key bytes in hex and base64) and every
INFO line for the clear addresses of everyone involved.
"""

from __future__ import annotations

import base64
import io
import json
import os
import traceback
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from emailflow import wiring
from emailflow.adapters.clients import sesv2_client
from emailflow.adapters.secrets import load_keyring
from emailflow.adapters.sesv2 import SesMailer
from emailflow.codes import CodeKind
from emailflow.config import ConfigurationError, get_settings
from emailflow.local.lambda_context import LocalLambdaContext
from emailflow.ports import RelayFault
from tests.support.faults import error_answer, injector
from tests.support.feedback import ses_feedback, sns_event
from tests.support.mail import load_eml, new_message_id
from tests.support.relay_stack import RelayHarness

USER = "jane.doe@real-user.example"
OWNER = "owner@holiday-flats.example"
STRANGER = "intruder@elsewhere.example"
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _secret() -> str:
    value: str = boto3.client("secretsmanager").get_secret_value(SecretId=get_settings().code_secret_arn)[
        "SecretString"]
    return value


def _forms_of(secret: str) -> list[str]:
    """The secret as text, and its key bytes as hex and base64 (how a careless log line might print a key)."""
    key = secret.encode()
    return [secret, key.hex(), base64.b64encode(key).decode(), repr(key)[2:-1]]


def _conversation_and_error_paths(relay: RelayHarness, bounces_handler: Handler,
                                  monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Every path a production day has; returns the faults the handlers raised."""
    faults: list[BaseException] = []
    _, address = relay.register([OWNER], "María García")
    relay.deliver(load_eml("user_first_message.eml", {"service-placeholder@relay.example": address}), [address], USER)
    to_service = relay.sent()[-1]
    user_address = to_service.parsed()["Reply-To"].addresses[0].addr_spec
    reply = {"user-placeholder@relay.example": user_address, "<ses-in-reply-to-placeholder>": "<x@y.example>"}
    relay.deliver(load_eml("service_reply.eml", reply), [user_address], OWNER)
    relay.deliver(load_eml("service_reply.eml", {**reply, "Owner@Holiday-Flats.example": STRANGER}), [user_address],
                  STRANGER)
    unknown = f"service-{wiring.relay_context().codebook.new_code(CodeKind.SERVICE)}@relay.example"
    relay.deliver(load_eml("user_first_message.eml", {"service-placeholder@relay.example": unknown}), [unknown], USER)
    relay.deliver(b"never read", ["service-abcdefghjkmnpqrs@relay.example"], USER, store=False)
    bounces_handler(sns_event(ses_feedback("Bounce", to_service.ses_message_id, OWNER)), LocalLambdaContext())
    mailer = wiring.relay_context().mailer
    assert isinstance(mailer, SesMailer)
    monkeypatch.setattr(mailer, "_sleep", lambda _: None)
    message_id = new_message_id()
    follow_up = load_eml("user_follow_up.eml", {"service-placeholder@relay.example": address,
                                               "<ses-in-reply-to-placeholder>": "<x@y.example>"})
    with injector() as inject:
        inject.fail_call(sesv2_client(), "SendEmail", lambda: error_answer("TooManyRequestsException", 429), times=-1)
        try:
            relay.deliver(follow_up, [address], USER, message_id=message_id)
        except RelayFault as exc:
            faults.append(exc)
    with injector() as inject:
        inject.lose_answer(sesv2_client(), "SendEmail")
        for store in (False, False):  # SES took it, the answer was lost; then the retry finds the claim open
            try:
                relay.deliver(follow_up, [address], USER, message_id=message_id, store=store)
            except RelayFault as exc:
                faults.append(exc)
    try:
        relay.deliver(b"", [address], USER, store=False)
    except RelayFault as exc:
        faults.append(exc)
    return faults


def test_secrets_never_in_logs_and_no_clear_address_at_info(relay: RelayHarness, bounces_handler: Handler,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            log_lines: io.StringIO) -> None:
    # Given a relay whose secret we know, and its log lines captured
    secret = _secret()

    # When a whole conversation and every error path run through the handlers
    faults = _conversation_and_error_paths(relay, bounces_handler, monkeypatch)

    # Then the logs are Powertools JSON lines, none holds the secret in any form, and no INFO line names anyone
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert len(lines) >= 8
    text = "\n".join(json.dumps(line) for line in lines)
    for form in _forms_of(secret):
        assert form not in text
    info = [json.dumps(line).lower() for line in lines if line["level"] in ("INFO", "WARNING")]
    for address in (USER, OWNER, STRANGER):
        assert not [line for line in info if address in line], address
    assert any('"sender"' in line for line in info)  # the stranger is logged by digest
    # And the faults (what Lambda prints with the traceback) carry neither the secret nor an address
    assert len(faults) == 4
    for fault in faults:
        printed = "".join(traceback.format_exception(fault)).lower()
        for needle in (*_forms_of(secret), USER, OWNER):
            assert needle.lower() not in printed


@pytest.mark.parametrize("stored", [
    '{"current": "s3cr3t-value-that-must-not-leak-0123',  # malformed JSON
    '{"current": "s3cr3t-short"}',  # a key under 16 bytes
    '{"previous": ["s3cr3t-value-that-must-not-leak-0123"]}',  # no current key
    "s3cr3t",  # a plain secret under 16 bytes
])
def test_secrets_malformed_secret_error_never_quotes_it(stored: str) -> None:
    # Given a Secrets Manager client that returns a malformed secret
    class Client:
        @staticmethod
        def get_secret_value(SecretId: str) -> dict[str, str]:
            return {"SecretString": stored}

    # When the keyring is loaded (cold start)
    with pytest.raises(ConfigurationError) as raised:
        load_keyring("arn:aws:secretsmanager:us-east-1:123456789012:secret:code", Client())  # type: ignore[arg-type]

    # Then neither the message nor the printed traceback (causes included) quotes any part of it
    printed = "".join(traceback.format_exception(raised.value))
    assert "s3cr3t" not in printed
    assert "s3cr3t" not in str(raised.value)


def test_secrets_unreadable_secret_error_names_no_value(stack: object) -> None:
    # Given a secret ARN that does not exist
    # When the keyring is loaded, Then the error says what failed, not what the secret is
    with pytest.raises(ConfigurationError, match="could not read the code secret"):
        load_keyring("arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf")


def test_secrets_not_in_the_environment(relay: RelayHarness) -> None:
    # Given a relay that has loaded its keyring (cold start done)
    wiring.relay_context()

    # Then the process environment holds the secret's ARN, never its value
    secret = _secret()
    assert get_settings().code_secret_arn in os.environ.values()
    assert not [name for name, value in os.environ.items() if secret in value]
