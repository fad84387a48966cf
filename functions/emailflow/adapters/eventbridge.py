"""EventBridge: publishes conversation events for the marketplace (optional: off unless a bus is configured)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from emailflow.adapters.clients import events_client
from emailflow.marketplace import SOURCE, MarketplaceEvent
from emailflow.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

_BATCH = 10
"""PutEvents takes at most 10 entries per call."""


class EventBridgePublisher:
    def __init__(self, bus_name: str, client: EventBridgeClient | None = None) -> None:
        self._bus = bus_name
        self._injected = client

    @property
    def _client(self) -> EventBridgeClient:
        return self._injected or events_client()

    def publish(self, events: Sequence[MarketplaceEvent]) -> None:
        """Best effort: a lost analytics event must never fail (and so retry, and so resend) a relayed mail."""
        for start in range(0, len(events), _BATCH):
            entries = [{"Source": SOURCE, "DetailType": event.detail_type, "Detail": json.dumps(event.detail),
                        "EventBusName": self._bus} for event in events[start:start + _BATCH]]
            try:
                response = self._client.put_events(Entries=entries)  # type: ignore[arg-type]
            except (ClientError, BotoCoreError):
                logger.warning("marketplace events not published", count=len(entries))
                continue
            if response.get("FailedEntryCount"):
                logger.warning("marketplace events partly failed", failed=response["FailedEntryCount"])
