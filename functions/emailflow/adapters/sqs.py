"""SQS: the relay's dead-letter queue, where Lambda parks an event after its retries (on-failure destination).

Each message body is Lambda's invocation record: ``requestPayload`` is the SES event as the function received
it, ``responsePayload`` the error (``errorType``, ``errorMessage``). Used by `emailflow redrive`, never by a
function.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from emailflow.adapters.clients import sqs_client
from emailflow.ports import RelayFault

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

_VISIBILITY_SECONDS = 300
"""While a redrive works on a parked event, no other reader sees it; if the redrive dies, it reappears."""


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """One event Lambda parked: the SES event to run again, and why it failed."""

    receipt_handle: str
    event: dict[str, Any]
    error_type: str
    error_message: str


class DeadLetterQueue:
    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self._url = queue_url
        self._injected = client

    @property
    def _client(self) -> SQSClient:
        return self._injected or sqs_client()

    def receive(self, limit: int) -> list[ParkedEvent]:
        """Up to ``limit`` parked events, hidden from other readers for five minutes."""
        events: list[ParkedEvent] = []
        while len(events) < limit:
            try:
                response = self._client.receive_message(QueueUrl=self._url,
                                                        MaxNumberOfMessages=min(10, limit - len(events)),
                                                        VisibilityTimeout=_VISIBILITY_SECONDS, WaitTimeSeconds=0)
            except (ClientError, BotoCoreError) as exc:
                raise RelayFault("could not read the dead-letter queue") from exc
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                events.append(parked_event(message["ReceiptHandle"], message.get("Body", "")))
        return events

    def delete(self, event: ParkedEvent) -> None:
        try:
            self._client.delete_message(QueueUrl=self._url, ReceiptHandle=event.receipt_handle)
        except (ClientError, BotoCoreError) as exc:
            raise RelayFault("could not delete the redriven event from the dead-letter queue") from exc

    def release(self, event: ParkedEvent) -> None:
        """Leave ``event`` parked and visible again at once (its redrive failed; the next may succeed)."""
        try:
            self._client.change_message_visibility(QueueUrl=self._url, ReceiptHandle=event.receipt_handle,
                                                   VisibilityTimeout=0)
        except (ClientError, BotoCoreError) as exc:
            raise RelayFault("could not release the event in the dead-letter queue") from exc


def parked_event(receipt_handle: str, body: str) -> ParkedEvent:
    """Lambda's on-failure record; a body that is a bare SES event (parked by hand) is accepted too."""
    try:
        record = json.loads(body)
    except ValueError:
        record = {}
    if not isinstance(record, dict):
        record = {}
    payload = record.get("requestPayload", record)
    response = record.get("responsePayload") or {}
    return ParkedEvent(receipt_handle=receipt_handle, event=payload if isinstance(payload, dict) else {},
                       error_type=str(response.get("errorType", "")) if isinstance(response, dict) else "",
                       error_message=str(response.get("errorMessage", "")) if isinstance(response, dict) else "")
