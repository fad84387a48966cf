"""Reply rate and response time from pairs: exact figures on hand-built conversations."""

from __future__ import annotations

import pytest

from emailflow.model import Pair
from emailflow.stats import nearest_rank, service_stats, top_services

HOUR = 3600
NOW = 1_800_000_000


def _pair(started: int, reply_after: int | None = None, auto: int = 0, user_messages: int = 1) -> Pair:
    return Pair(service_code="s", user_address=f"u{started}-{reply_after}@x.example", user_code="c", started_at=started,
                user_messages=user_messages, service_messages=0 if reply_after is None else 1,
                first_reply_at=None if reply_after is None else started + reply_after, service_auto_replies=auto)


@pytest.mark.parametrize(("values", "fraction", "expected"), [
    ([], 0.5, None), ([7], 0.9, 7), ([1, 2, 3, 4], 0.5, 2), ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9, 9),
    ([10, 1, 5], 0.5, 5),
])
def test_nearest_rank_percentile(values: list[int], fraction: float, expected: int | None) -> None:
    # Given values, Then the nearest-rank percentile is a value of the list at rank ceil(p*n)
    assert nearest_rank(values, fraction) == expected


def test_service_stats_reply_rate_pending_and_unreplied() -> None:
    # Given four conversations: two replied (1 h, 5 h), one unanswered for 3 days, one unanswered started 1 h ago
    pairs = [_pair(NOW - 10 * 24 * HOUR, HOUR), _pair(NOW - 9 * 24 * HOUR, 5 * HOUR), _pair(NOW - 3 * 24 * HOUR),
             _pair(NOW - HOUR)]

    # When the figures are computed
    stats = service_stats("s", pairs, NOW)

    # Then 2 of 4 are replied, 1 pending (young), 1 unreplied; median first response 1 h, p90 5 h
    assert (stats.conversations, stats.replied, stats.pending, stats.unreplied) == (4, 2, 1, 1)
    assert stats.reply_rate == 0.5
    assert (stats.first_response_median, stats.first_response_p90) == (HOUR, 5 * HOUR)


def test_service_stats_auto_replies_are_counted_apart() -> None:
    # Given a conversation answered only by an out-of-office
    stats = service_stats("s", [_pair(NOW - 5 * 24 * HOUR, None, auto=1)], NOW)

    # Then it is not replied, and the auto-reply is counted on its own
    assert (stats.replied, stats.unreplied, stats.auto_replies) == (0, 1, 1)


def test_service_stats_period_selects_by_start() -> None:
    # Given conversations started in two different weeks
    pairs = [_pair(NOW - 14 * 24 * HOUR, HOUR), _pair(NOW - 2 * 24 * HOUR, None)]

    # When only the last week is asked for, Then only the second counts
    stats = service_stats("s", pairs, NOW, since=NOW - 7 * 24 * HOUR)
    assert (stats.conversations, stats.replied, stats.reply_rate) == (1, 0, 0.0)


def test_service_stats_pairs_without_user_message_are_not_conversations() -> None:
    # Given a pair created by a first message whose send failed (no user message counted yet)
    stats = service_stats("s", [_pair(NOW - HOUR, user_messages=0)], NOW)

    # Then there is no conversation and no reply rate
    assert (stats.conversations, stats.reply_rate) == (0, None)


def test_top_services_orders_by_conversations_then_reply_rate() -> None:
    # Given three services' figures, Then the busiest come first, ties broken by reply rate
    a = service_stats("a", [_pair(NOW - 5 * 24 * HOUR, HOUR)], NOW)
    b = service_stats("b", [_pair(NOW - 5 * 24 * HOUR), _pair(NOW - 4 * 24 * HOUR)], NOW)
    c = service_stats("c", [_pair(NOW - 5 * 24 * HOUR)], NOW)
    assert [item.service_code for item in top_services([c, a, b], 2)] == ["b", "a"]
