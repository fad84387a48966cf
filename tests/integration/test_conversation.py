"""A whole user <-> service conversation through the real relay handler on moto (phases 0-4)."""

from __future__ import annotations

import re

from tests.support.mail import load_eml
from tests.support.relay_stack import RelayHarness

USER = "jane.doe@real-user.example"
OWNER = "owner@holiday-flats.example"


def _body(raw: bytes) -> bytes:
    return raw[raw.index(b"\r\n\r\n") + 4 :]


def _user_code_address(header_block: bytes) -> str:
    match = re.search(rb"Reply-To: (user-[0-9a-z]+@relay\.example)", header_block)
    assert match, header_block
    return match[1].decode()


def test_conversation_phases_0_to_4_reuse_codes_and_hide_addresses(relay: RelayHarness) -> None:
    # Given a registered service
    _, service_address = relay.register([OWNER], "María García", {"listing": "flat-4711"})
    assert re.fullmatch(r"service-[0-9a-hjkmnp-tv-z]{16}@relay\.example", service_address)

    # When the user writes to the service's relay address (phase 0)
    first = load_eml("user_first_message.eml", {"service-placeholder@relay.example": service_address})
    result = relay.deliver(first, [service_address], USER)

    # Then the service receives it From a new user code, To its real address (phase 1)
    assert result["outcomes"] == [{"direction": "to_service", "action": "forwarded", "reason": "relayed",
                                   "ses_message_id": relay.sent()[0].ses_message_id}]
    [to_service] = relay.sent()
    assert to_service.destinations[0] == OWNER
    user_address = _user_code_address(to_service.header_block)
    parsed = to_service.parsed()
    assert parsed["From"].addresses[0].addr_spec == user_address
    assert parsed["From"].addresses[0].display_name == "Jane Doe via emailflow"
    assert parsed["To"].addresses[0].addr_spec == OWNER
    assert parsed["Subject"] == "Is the flat free in July?"
    assert USER.encode() not in to_service.header_block.lower()
    assert _body(to_service.raw) == _body(first)

    # When the service replies to the user code, threading on the message it received (phase 2)
    reply = load_eml("service_reply.eml", {"user-placeholder@relay.example": user_address,
                                           "<ses-in-reply-to-placeholder>": to_service.ses_header_message_id()})
    relay.deliver(reply, [user_address], OWNER)

    # Then the user receives it From the service code, threaded on the user's own message (phase 3)
    to_user = relay.sent()[1]
    assert to_user.destinations[0] == USER
    parsed = to_user.parsed()
    assert parsed["From"].addresses[0].addr_spec == service_address
    assert parsed["From"].addresses[0].display_name == "María García via emailflow"
    assert parsed["Reply-To"].addresses[0].addr_spec == service_address
    assert parsed["In-Reply-To"] == "<CAF1x2y3@mail.real-user.example>"
    assert b"holiday-flats.example" not in to_user.header_block.lower()
    assert b"Disposition-Notification-To" not in to_user.header_block
    assert _body(to_user.raw) == _body(reply)

    # When the user answers again from a differently-cased address (phase 4)
    follow_up = load_eml("user_follow_up.eml", {"service-placeholder@relay.example": service_address,
                                                "<ses-in-reply-to-placeholder>": to_user.ses_header_message_id()})
    relay.deliver(follow_up, [service_address], "JANE.DOE@real-user.example")

    # Then the service receives it From the same user code, threaded on the service's own reply
    to_service_again = relay.sent()[2]
    assert to_service_again.destinations[0] == OWNER
    assert _user_code_address(to_service_again.header_block) == user_address
    assert to_service_again.parsed()["In-Reply-To"] == "<reply-1@holiday-flats.example>"
    # the user's own first message is known to the service by the SES id of its copy
    references = f"{to_service.ses_header_message_id()} <reply-1@holiday-flats.example>"
    assert to_service_again.parsed()["References"] == references
    assert b"real-user.example" not in to_service_again.header_block.lower()
    assert _body(to_service_again.raw) == _body(follow_up)
