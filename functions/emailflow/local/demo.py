"""``make demo``: a scripted conversation (phases 0-4) through the real relay handler on an in-process AWS
emulator, printed hop by hop. No AWS account, no network.

Phases: (0) a user writes to a service's public relay address; (1) the service receives it From a user code;
(2) the service replies to that code; (3) the user receives it From the service code; (4) the user answers again
and the same codes are reused.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import io
import os
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

DOMAIN = "relay.example"
BRAND = "emailflow"
USER = ("Jane Doe", "jane.doe@real-user.example")
OWNER = ("María García", "owner@holiday-flats.example")


def _compose(sender: tuple[str, str], to: str, subject: str, body: str, in_reply_to: str | None = None,
             references: str | None = None) -> tuple[bytes, str]:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = email.utils.formataddr(sender)
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message_id = make_msgid(domain=sender[1].rpartition("@")[2])
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = references or in_reply_to
    message["X-Mailer"] = "DemoMail 1.0"
    message.set_content(body)
    return message.as_bytes(), message_id


def _body(raw: bytes) -> bytes:
    return raw[raw.index(b"\r\n\r\n") + 4 :]


def _show(label: str, raw: bytes, original: bytes, hidden: str) -> Any:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    print(f"{label}")
    for name in ("From", "To", "Reply-To", "Subject", "In-Reply-To"):
        if parsed[name]:
            print(f"      {name + ':':<12} {parsed[name]}")
    same = "identical to what was sent" if _body(raw) == _body(original) else "CHANGED (bug!)"
    print(f"      {'body:':<12} {len(_body(raw))} bytes, {same}")
    leaked = hidden.lower().encode() in raw.lower()
    print(f"      {'leak check:':<12} sender's real address {'FOUND (bug!)' if leaked else 'appears nowhere'}")
    return parsed


def main() -> int:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(name, None)
    os.environ.update({"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_DEFAULT_REGION": "us-east-1"})

    from moto import mock_aws

    with mock_aws():
        from emailflow import wiring
        from emailflow.config import get_settings
        from emailflow.local.lambda_context import LocalLambdaContext
        from emailflow.local.moto_ses import install_byte_exact_sesv2, sent_bytes, sent_messages
        from emailflow.local.ses_inbound import LocalInbound
        from emailflow.local.stack import deploy_locally
        from emailflow.services import register_service, service_address

        install_byte_exact_sesv2()
        stack = deploy_locally({"DomainName": DOMAIN, "BrandName": BRAND})
        os.environ.update(stack.function_environment("RelayFunction"))
        wiring.reset()
        from relay.app import handler

        print(f"emailflow demo: {DOMAIN} on an in-process AWS emulator (moto), the real relay handler")
        print(f"  created from template.yaml: {', '.join(stack.created)}\n")
        relay = wiring.relay_context()
        local_inbound = LocalInbound(get_settings(), handler, LocalLambdaContext())

        def receive(raw: bytes, recipient: str, sender: str) -> None:
            with contextlib.redirect_stdout(io.StringIO()):  # the handler's EMF metric lines
                local_inbound.receive(raw, [recipient], sender)

        def last_sent() -> bytes:
            return sent_bytes(sent_messages()[-1].raw_data)

        def last_ses_id() -> str:
            return f"<{sent_messages()[-1].id}@{relay.ses_message_id_domain}>"

        service = register_service(relay.directory, relay.codebook, [OWNER[1]], OWNER[0], {"listing": "flat-4711"},
                                   relay_domain=DOMAIN)
        public = service_address(relay.addressing, service)
        print(f'Operator registers "{OWNER[0]}" <{OWNER[1]}> for listing flat-4711')
        print(f"  public relay address (the web form shows it): {public}\n")

        first, _ = _compose(USER, public, "Is the flat free in July?",
                            "Hello,\n\nis the flat free from 3 to 17 July? Two adults and a dog.\n\nJane\n")
        print(f"[0] {USER[1]} writes to {public}")
        receive(first, public, USER[1])
        got = _show(f"[1] {OWNER[1]} receives:", last_sent(), first, USER[1])
        user_code_address = got["Reply-To"].addresses[0].addr_spec
        to_owner_id = last_ses_id()

        reply, _ = _compose(OWNER, user_code_address, "Re: Is the flat free in July?",
                            "Hello Jane,\n\nyes, it is free. Dogs are welcome.\n\nMaría\n", in_reply_to=to_owner_id)
        print(f"\n[2] {OWNER[1]} replies to {user_code_address}")
        receive(reply, user_code_address, OWNER[1])
        _show(f"[3] {USER[1]} receives:", last_sent(), reply, OWNER[1])
        to_user_id = last_ses_id()

        again, _ = _compose(USER, public, "Re: Is the flat free in July?",
                            "Wonderful, we take it. How do we pay?\n\nJane\n", in_reply_to=to_user_id)
        print(f"\n[4] {USER[1]} answers again to {public}")
        receive(again, public, USER[1])
        got = _show(f"    {OWNER[1]} receives:", last_sent(), again, USER[1])
        same_code = got["Reply-To"].addresses[0].addr_spec == user_code_address
        print(f"      {'same code:':<12} {'yes, ' + user_code_address if same_code else 'NO (bug!)'}")

        [pair] = wiring.directory().list_pairs(service.code)
        print(f"\nConversation {USER[1].split('@')[0][:1]}*** x {OWNER[0]}: {pair.user_messages} user messages, "
              f"{pair.service_messages} service message(s), replied: {'yes' if pair.first_reply_at else 'no'}, "
              f"awaiting reply: {'yes' if pair.awaiting_reply_since else 'no'}")
        ok = same_code and len(sent_messages()) == 3
        print("demo finished:", "OK" if ok else "FAILED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
