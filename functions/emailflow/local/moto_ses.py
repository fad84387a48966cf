"""A byte-exact seam for moto's SESv2 raw sends.

moto (5.2) decodes SESv2 ``Content.Raw`` as UTF-8 and so fails on 8-bit mail in any other charset (a Latin-1 body
with ``Content-Transfer-Encoding: 8bit`` is common, and real SES accepts it). This replaces moto's SESv2
``send_email`` response handler with one that decodes with ``surrogateescape``: every byte survives, and
``sent_bytes`` recovers the exact bytes the relay sent. Nothing about the message is changed or re-encoded.

In-process moto also assumes a request body is ``bytes``: it hands anything else to werkzeug as form data. The
SESv2 adapter sends a ``bytearray`` (built in place, see ``emailflow.adapters.sesv2``), which botocore, urllib3 and
AWS take as it is; the seam gives moto the same bytes as ``bytes``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]
from moto.core.botocore_stubber import BotocoreStubber
from moto.ses.models import ses_backends
from moto.sesv2.responses import SESV2Response

_installed = False


def install_byte_exact_sesv2() -> None:
    """Patch moto's SESv2 response handler (idempotent)."""
    global _installed  # noqa: PLW0603 - a process-wide patch, installed once
    if _installed:
        return
    original = SESV2Response.send_email

    def send_email(self: Any) -> str:
        params = json.loads(self.body)
        content = params.get("Content") or {}
        if "Raw" not in content:
            return str(original(self))
        destination = params.get("Destination") or {}
        recipients = [*destination.get("ToAddresses", []), *destination.get("CcAddresses", []),
                      *destination.get("BccAddresses", [])]
        message = self.sesv2_backend.send_raw_email(
            source=params.get("FromEmailAddress"),
            destinations=recipients,
            raw_data=base64.b64decode(content["Raw"]["Data"]).decode("utf-8", "surrogateescape"),
        )
        return json.dumps({"MessageId": message.id})

    SESV2Response.send_email = send_email  # type: ignore[method-assign]
    process_request = BotocoreStubber.process_request

    def bytes_body(self: BotocoreStubber, request: Any) -> Any:
        if isinstance(request.body, bytearray | memoryview):
            request.body = bytes(request.body)
        return process_request(self, request)

    BotocoreStubber.process_request = bytes_body  # type: ignore[method-assign]
    _installed = True


def sent_bytes(raw_data: str) -> bytes:
    """The exact bytes of a raw message recorded by the patched handler."""
    return raw_data.encode("utf-8", "surrogateescape")


def sent_messages(region: str = "us-east-1") -> list[Any]:
    """moto's record of every raw message sent in this process (in-process moto only)."""
    return list(ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages)
