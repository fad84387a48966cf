"""The business figures: reply rate and response time per service, computed from the pairs. Pure.

Definitions (docs/stats.md):

- a **conversation** is one user x one service (a pair); it starts with the user's first message (``started_at``);
- it is **replied** once the service sent at least one message that was not an auto-reply (``first_reply_at``);
- the **first response time** is ``first_reply_at - started_at``;
- **reply rate** over a period = replied conversations / conversations started in the period; conversations that
  are not replied yet and younger than the grace period are **pending** (shown apart: not yet a failure);
- **percentiles** use the nearest-rank method (the value at rank ceil(p * n)): every reported figure is a real
  response time of a real conversation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from emailflow.model import Pair

DEFAULT_GRACE_SECONDS = 48 * 3600


def nearest_rank(values: Sequence[int], fraction: float) -> int | None:
    """The nearest-rank percentile of ``values`` (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class ServiceStats:
    service_code: str
    conversations: int
    replied: int
    pending: int
    """Not replied yet, but younger than the grace period."""
    unreplied: int
    reply_rate: float | None
    first_response_median: int | None
    first_response_p90: int | None
    user_messages: int
    service_messages: int
    auto_replies: int
    delivered: int
    contact_details: int
    """Messages whose text showed an e-mail address or phone number (only counted when the signal is on)."""

    def as_dict(self) -> dict[str, object]:
        return {field: getattr(self, field) for field in self.__slots__}


def service_stats(service_code: str, pairs: Iterable[Pair], now: int, since: int | None = None,
                  until: int | None = None, grace_seconds: int = DEFAULT_GRACE_SECONDS) -> ServiceStats:
    """Figures of one service over the conversations started in ``[since, until)`` (open ends: all)."""
    chosen = [pair for pair in pairs if pair.user_messages > 0
              and (since is None or pair.started_at >= since) and (until is None or pair.started_at < until)]
    replied = [pair for pair in chosen if pair.first_reply_at is not None]
    waiting = [pair for pair in chosen if pair.first_reply_at is None]
    pending = [pair for pair in waiting if now - pair.started_at < grace_seconds]
    first_responses = [pair.first_reply_at - pair.started_at for pair in replied if pair.first_reply_at is not None]
    return ServiceStats(
        service_code=service_code,
        conversations=len(chosen),
        replied=len(replied),
        pending=len(pending),
        unreplied=len(waiting) - len(pending),
        reply_rate=len(replied) / len(chosen) if chosen else None,
        first_response_median=nearest_rank(first_responses, 0.5),
        first_response_p90=nearest_rank(first_responses, 0.9),
        user_messages=sum(pair.user_messages for pair in chosen),
        service_messages=sum(pair.service_messages for pair in chosen),
        auto_replies=sum(pair.service_auto_replies for pair in chosen),
        delivered=sum(pair.delivered_to_service + pair.delivered_to_user for pair in chosen),
        contact_details=sum(pair.contact_details_messages for pair in chosen),
    )


def top_services(stats: Iterable[ServiceStats], count: int) -> list[ServiceStats]:
    """The ``count`` services with the most conversations (ties: higher reply rate first, then code)."""
    return sorted(stats, key=lambda item: (-item.conversations, -(item.reply_rate or 0.0), item.service_code))[:count]
