"""SES v2: sends the rewritten mail raw, under the configuration set whose event destination reports bounces.

Retries are this adapter's, not botocore's (the client is created with none, ``clients.sesv2_client``): a send may
be repeated only when SES answered that it did not take the mail (throttling, a 5xx) or when no connection was made.
A read time-out or a dropped connection after the request left is ``SendOutcomeUnknown`` and never repeated:
botocore's standard retries would send the mail again (a second copy for every lost answer).

**The request body is built here, not by botocore.** SESv2 is a JSON API: the raw message travels base64-encoded
inside the JSON body. botocore's serialiser holds, at its peak, the base64 bytes, the base64 text, the JSON text and
the JSON bytes of the message at once: four copies of 1.33x its size, next to the inbound message and the rewritten
one, 6x in all at 40 MB (benchmarks/bench_memory.py; most of the encoding time too, benchmarks/bench_profile.py).
So ``send_raw`` lets botocore serialise the request with an empty ``Data``, and a ``before-sign`` handler swaps in
a body that holds the same JSON, with the message base64-encoded chunk by chunk straight from its pieces into one
preallocated buffer: one 1.33x copy. botocore still does everything else, the same way: endpoint, headers,
signature (over the body actually sent), error parsing. Each attempt of the retry loop is a new call: its body is
built again, and the previous one is already garbage, so a retry never holds two copies.
"""

from __future__ import annotations

import binascii
import contextvars
import json
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

from emailflow.adapters.clients import sesv2_client
from emailflow.observability import logger
from emailflow.ports import MailBytes, SendFailed, SendOutcomeUnknown, SendRejected

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client

_REJECTED = frozenset({"MessageRejected", "BadRequestException", "MailFromDomainNotVerifiedException"})
"""Errors about this very message: sending it again cannot succeed."""
_THROTTLED = frozenset({"TooManyRequestsException", "ThrottlingException", "Throttling"})
"""Over the account's sending rate (https://docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas-errors.html):
nothing was sent, and the same send a moment later usually goes through. A spent daily quota
(``LimitExceededException``) or paused sending (``SendingPausedException``) is not retried here: it lasts hours, so
the claim is released and the event goes back to Lambda (retries, then the DLQ for a redrive)."""
MAX_ATTEMPTS = 4
BACKOFF_SECONDS = 0.25
"""First back-off ceiling; it doubles per attempt (full jitter), up to ``MAX_BACKOFF_SECONDS``."""
MAX_BACKOFF_SECONDS = 4.0
_CHUNK = 48 * 1024
"""Bytes base64-encoded per step: a multiple of 3, so that the encoded chunks simply follow each other. Small
enough that each step's output stays in the CPU cache and reuses the same heap block: 40 MB encoded in ~110 ms
here with 48 KiB steps, ~185 ms with 3 MiB ones (a new, page-faulted 4 MiB block per step)."""
_HANDLER_ID = "emailflow-sesv2-raw-body"
_BODY_KEY = "emailflow_raw_body"
"""Where the built body is kept in botocore's per-request context (signing it again reuses it)."""

_raw_message: contextvars.ContextVar[MailBytes | None] = contextvars.ContextVar("emailflow_raw_message", default=None)
"""The message of the ``send_raw`` call in progress in this thread (botocore runs the call in the caller's)."""


class SesMailer:
    """``Mailer`` on SESv2 ``SendEmail`` with ``Content.Raw``."""

    def __init__(self, configuration_set: str, client: SESV2Client | None = None, *,
                 max_attempts: int = MAX_ATTEMPTS, sleep: Callable[[float], None] = time.sleep) -> None:
        self._configuration_set = configuration_set
        self._injected = client
        self._max_attempts = max_attempts
        self._sleep = sleep

    @property
    def _client(self) -> SESV2Client:
        return self._injected or sesv2_client()

    def send_raw(self, raw: MailBytes, *, from_address: str, to_address: str, tags: Mapping[str, str]) -> str:
        """Send ``raw`` to ``to_address`` only (the envelope is explicit: never taken from the To/Cc headers)."""
        client = self._client
        # Registering again under the same id is a no-op: the handler is installed once per client.
        client.meta.events.register("before-sign.sesv2.SendEmail", _insert_raw_message, unique_id=_HANDLER_ID)
        token = _raw_message.set(raw)
        try:
            return self._send_with_retries(client, from_address=from_address, to_address=to_address, tags=tags)
        finally:
            _raw_message.reset(token)

    def _send_with_retries(self, client: SESV2Client, *, from_address: str, to_address: str,
                           tags: Mapping[str, str]) -> str:
        attempt = 1
        while True:
            try:
                response = client.send_email(
                    FromEmailAddress=from_address,
                    Destination={"ToAddresses": [to_address]},
                    Content={"Raw": {"Data": b""}},  # the message goes in at signing time: see the module docstring
                    ConfigurationSetName=self._configuration_set,
                    EmailTags=[{"Name": name, "Value": value} for name, value in tags.items()],
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in _REJECTED:
                    raise SendRejected(code) from exc
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if attempt >= self._max_attempts or not (code in _THROTTLED or status >= 500):
                    raise SendFailed(f"SES answered {code or 'an error'}") from exc
            except (EndpointConnectionError, ConnectTimeoutError) as exc:  # no connection: nothing reached SES
                if attempt >= self._max_attempts:
                    raise SendFailed("SES could not be reached") from exc
            except BotoCoreError as exc:
                raise SendOutcomeUnknown("no answer from SES after the request was sent") from exc
            else:
                return response["MessageId"]
            delay = random.uniform(0, min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2 ** (attempt - 1)))  # noqa: S311
            logger.warning("SES send backing off", attempt=attempt, delay=round(delay, 3))
            self._sleep(delay)
            attempt += 1


def _insert_raw_message(request: Any, **_: Any) -> None:
    """botocore ``before-sign`` handler: put the message of the call in progress into the serialised request."""
    raw = _raw_message.get()
    if raw is None:  # a SendEmail that did not come through send_raw: leave it as botocore made it
        return
    body = request.context.get(_BODY_KEY)
    if body is None:
        body = request.context[_BODY_KEY] = request_body(request.data, raw)
    request.data = body


def request_body(serialised: bytes | str, raw: MailBytes) -> bytearray:
    """The JSON of ``serialised`` (botocore's body, ``Content.Raw.Data`` empty) with ``raw`` as ``Data``."""
    document = json.loads(serialised)
    if document.get("Content") != {"Raw": {"Data": ""}}:
        raise ValueError("the SendEmail request does not carry the empty raw placeholder")
    del document["Content"]
    head = json.dumps(document).encode("utf-8")[:-1] + (b", " if document else b"")
    head += b'"Content": {"Raw": {"Data": "'
    tail = b'"}}}'
    pieces = (raw,) if isinstance(raw, bytes) else raw
    size = sum(len(piece) for piece in pieces)
    body = bytearray(len(head) + 4 * ((size + 2) // 3) + len(tail))
    body[: len(head)] = head
    end = _base64_into(memoryview(body), len(head), pieces)
    body[end:] = tail
    return body


def _base64_into(target: memoryview, position: int, pieces: tuple[bytes | memoryview, ...]) -> int:
    """Base64 of the pieces back to back, written into ``target`` from ``position``; returns where it ended."""
    carry = b""
    for piece in pieces:
        view = memoryview(piece)
        if carry:  # complete the 3-byte group left over from the previous piece
            take = 3 - len(carry)
            carry += bytes(view[:take])
            view = view[take:]
            if len(carry) < 3:
                continue
            position = _write(target, position, binascii.b2a_base64(carry, newline=False))
            carry = b""
        whole = len(view) - len(view) % 3
        for start in range(0, whole, _CHUNK):
            position = _write(target, position, binascii.b2a_base64(view[start : min(start + _CHUNK, whole)],
                                                                    newline=False))
        carry = bytes(view[whole:])
    if carry:
        position = _write(target, position, binascii.b2a_base64(carry, newline=False))
    return position


def _write(target: memoryview, position: int, data: bytes) -> int:
    target[position : position + len(data)] = data
    return position + len(data)
