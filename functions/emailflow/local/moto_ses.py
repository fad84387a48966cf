"""A byte-exact seam for moto's SESv2 raw sends, and the hook local mode delivers outbound mail through.

moto (5.2) decodes SESv2 ``Content.Raw`` as UTF-8 and so fails on 8-bit mail in any other charset (a Latin-1 body
with ``Content-Transfer-Encoding: 8bit`` is common, and real SES accepts it). This replaces moto's SESv2
``send_email`` response handler with one that decodes with ``surrogateescape``: every byte survives, and
``sent_bytes`` recovers the exact bytes the relay sent. Nothing about the message is changed or re-encoded.

The same handler hands every accepted raw send, as the exact bytes the caller passed, to the registered outbound
listeners (``add_outbound_listener``): that is where local mode takes the mail SES would go on to deliver. It runs
in-process with moto (``mock_aws`` or a ``ThreadedMotoServer`` in this process), never against a remote emulator.

In-process moto also assumes a request body is ``bytes``: it hands anything else to werkzeug as form data. The
SESv2 adapter sends a ``bytearray`` (built in place, see ``emailflow.adapters.sesv2``), which botocore, urllib3 and
AWS take as it is; the seam gives moto the same bytes as ``bytes``.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]
from moto.core.botocore_stubber import BotocoreStubber
from moto.ses.models import ses_backends
from moto.sesv2.responses import SESV2Response


@dataclass(frozen=True, slots=True)
class OutboundMail:
    """One raw message SES accepted for sending: what its delivery needs, bytes exactly as the caller sent them."""

    ses_message_id: str
    from_address: str
    recipients: tuple[str, ...]
    """The envelope: ``Destination`` To, Cc and Bcc addresses as passed (never the header fields)."""
    raw: bytes
    configuration_set: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


OutboundListener = Callable[[OutboundMail], None]

_installed = False
_listeners: list[OutboundListener] = []
_lock = threading.Lock()


def install_byte_exact_sesv2() -> None:
    """Patch moto's SESv2 response handler (idempotent)."""
    global _installed  # noqa: PLW0603 - a process-wide patch, installed once
    with _lock:
        if _installed:
            return
        original = SESV2Response.send_email

        def send_email(self: Any) -> str:
            params = json.loads(self.body)
            content = params.get("Content") or {}
            if "Raw" not in content:
                return str(original(self))
            destination = params.get("Destination") or {}
            recipients = (*destination.get("ToAddresses", []), *destination.get("CcAddresses", []),
                          *destination.get("BccAddresses", []))
            raw = base64.b64decode(content["Raw"]["Data"])
            message = self.sesv2_backend.send_raw_email(
                source=params.get("FromEmailAddress"),
                destinations=list(recipients),  # a copy: moto appends the header To/Cc addresses to this list
                raw_data=raw.decode("utf-8", "surrogateescape"),
            )
            _notify(OutboundMail(
                ses_message_id=message.id,
                from_address=str(params.get("FromEmailAddress") or ""),
                recipients=recipients,
                raw=raw,
                configuration_set=params.get("ConfigurationSetName"),
                tags={tag["Name"]: tag["Value"] for tag in params.get("EmailTags") or []},
            ))
            return json.dumps({"MessageId": message.id})

        SESV2Response.send_email = send_email  # type: ignore[method-assign]
        process_request = BotocoreStubber.process_request

        def bytes_body(self: BotocoreStubber, request: Any) -> Any:
            if isinstance(request.body, bytearray | memoryview):
                request.body = bytes(request.body)
            return process_request(self, request)

        BotocoreStubber.process_request = bytes_body  # type: ignore[method-assign]
        _installed = True


def add_outbound_listener(listener: OutboundListener) -> None:
    """Call ``listener`` with every raw message SES accepts from now on (in the thread that served the request)."""
    with _lock:
        _listeners.append(listener)


def remove_outbound_listener(listener: OutboundListener) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def _notify(mail: OutboundMail) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(mail)


def sent_bytes(raw_data: str) -> bytes:
    """The exact bytes of a raw message recorded by the patched handler."""
    return raw_data.encode("utf-8", "surrogateescape")


def sent_messages(region: str = "us-east-1") -> list[Any]:
    """moto's record of every raw message sent in this process (in-process moto only)."""
    return list(ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages)
