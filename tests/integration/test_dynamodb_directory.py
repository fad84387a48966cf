"""The DynamoDB adapter's promises on moto: conditional claims, atomic pair creation, counters, expiry."""

from __future__ import annotations

from typing import Any

import pytest

from emailflow.adapters.clients import dynamodb_client
from emailflow.adapters.dynamodb import DynamoDirectory, sender_budget_key
from emailflow.config import get_settings
from emailflow.local.stack import LocalStack
from emailflow.model import DeliveryKey, DeliveryState, Direction, Pair, SentMessage, Service, ThreadRefs
from emailflow.ports import ClaimResult, SenderBudget, UserCodeClaim

NOW = 1_800_000_000


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory(stack: LocalStack, clock: Clock) -> DynamoDirectory:
    return DynamoDirectory(get_settings().table_name, clock=clock)


def stack_item(key: dict[str, Any]) -> dict[str, Any]:
    """One raw item of the table, read directly (what the adapter wrote, not what it reads back)."""
    item: dict[str, Any] = dynamodb_client().get_item(TableName=get_settings().table_name, Key=key)["Item"]
    return item


def _pair(user_code: str = "u" * 16) -> Pair:
    return Pair(service_code="s" * 16, user_address="jane@real.example", user_code=user_code, started_at=NOW)


def _refs() -> ThreadRefs:
    return ThreadRefs(recipient_key="service:" + "s" * 16)


def _sent(direction: Direction, ses_id: str, original: str | None = "<orig@real.example>") -> SentMessage:
    return SentMessage(ses_message_id=ses_id, direction=direction, service_code="s" * 16, user_code="u" * 16,
                       original_sender="jane@real.example", original_message_id=original,
                       inbound_message_id="in-1", sent_at=NOW)


def test_directory_put_service_refuses_a_taken_code(directory: DynamoDirectory) -> None:
    # Given a stored service
    service = Service(code="s" * 16, addresses=("owner@flats.example",), display_name="Flat A")
    assert directory.put_service(service)

    # When another service with the same code is stored, Then it is refused and the first is intact
    assert not directory.put_service(Service(code="s" * 16, addresses=("x@y.example",), display_name="Other"))
    assert directory.get_service("s" * 16) == service


def test_directory_claim_twice_is_duplicate(directory: DynamoDirectory) -> None:
    # Given a claimed delivery
    delivery = DeliveryKey("in-1", "service-x@relay.example")
    assert directory.claim_delivery(delivery, None, NOW + 60) is ClaimResult.CLAIMED

    # When it is claimed again, Then it is a duplicate
    assert directory.claim_delivery(delivery, None, NOW + 60) is ClaimResult.DUPLICATE


def test_directory_expired_claim_can_be_claimed_again(directory: DynamoDirectory, clock: Clock) -> None:
    # Given a claim whose expiry has passed but which TTL has not deleted yet (moto never deletes)
    delivery = DeliveryKey("in-1", "service-x@relay.example")
    directory.claim_delivery(delivery, None, NOW + 60)
    clock.now += 61

    # When it is claimed again, Then the claim succeeds
    assert directory.claim_delivery(delivery, None, NOW + 200) is ClaimResult.CLAIMED


def test_directory_released_claim_can_be_claimed_again(directory: DynamoDirectory) -> None:
    # Given a claim that was released after a failed send
    delivery = DeliveryKey("in-1", "service-x@relay.example")
    directory.claim_delivery(delivery, None, NOW + 60)
    directory.release_delivery(delivery)

    # When claimed again, Then it succeeds
    assert directory.claim_delivery(delivery, None, NOW + 60) is ClaimResult.CLAIMED


def test_directory_claim_counts_the_sender_budget_in_the_same_write(directory: DynamoDirectory) -> None:
    # Given a sender budget of 2 messages this hour
    budget = SenderBudget("digest-jane", NOW // 3600, 2, NOW + 7200)

    # When a first message (new pair), a second message and a redelivery of the first are claimed with it
    first = directory.claim_delivery(DeliveryKey("in-1", "r"), _pair("a" * 16), NOW + 60, budget)
    second = directory.claim_delivery(DeliveryKey("in-2", "r"), None, NOW + 60, budget)
    again = directory.claim_delivery(DeliveryKey("in-1", "r"), None, NOW + 60, budget)

    # Then both were claimed and counted, and the redelivery is a duplicate that was not counted
    assert (first, second, again) == (ClaimResult.CLAIMED, ClaimResult.CLAIMED, ClaimResult.DUPLICATE)
    item = stack_item(sender_budget_key("digest-jane", NOW // 3600))
    assert item["count"] == {"N": "2"}


def test_directory_spent_sender_budget_claims_and_creates_nothing(directory: DynamoDirectory) -> None:
    # Given a sender budget already spent this hour
    budget = SenderBudget("digest-jane", NOW // 3600, 1, NOW + 7200)
    assert directory.claim_delivery(DeliveryKey("in-0", "r"), None, NOW + 60, budget) is ClaimResult.CLAIMED

    # When a first message of a new pair is claimed with it
    result = directory.claim_delivery(DeliveryKey("in-1", "r"), _pair("a" * 16), NOW + 60, budget)

    # Then it is refused as spent: no pair, no alias, no claim, and the count did not move
    assert result is ClaimResult.BUDGET_SPENT
    snapshot = directory.load_for_user_mail("s" * 16, "jane@real.example", DeliveryKey("in-1", "r"), _refs())
    assert (snapshot.pair, snapshot.delivery) == (None, None)
    assert directory.get_alias("a" * 16) is None
    assert stack_item(sender_budget_key("digest-jane", NOW // 3600))["count"] == {"N": "1"}


def test_directory_second_first_message_finds_pair_exists(directory: DynamoDirectory) -> None:
    # Given a pair created by one first message
    assert directory.claim_delivery(DeliveryKey("in-1", "r"), _pair("a" * 16), NOW + 60) is ClaimResult.CLAIMED

    # When a concurrent first message tries to create the same pair with another code
    result = directory.claim_delivery(DeliveryKey("in-2", "r"), _pair("b" * 16), NOW + 60)

    # Then it is told the pair exists, its claim was not written, and the first code stands
    assert result is ClaimResult.PAIR_EXISTS
    snapshot = directory.load_for_user_mail("s" * 16, "jane@real.example", DeliveryKey("in-2", "r"), _refs())
    assert snapshot.pair is not None
    assert snapshot.pair.user_code == "a" * 16
    assert snapshot.delivery is None


def test_directory_record_sent_updates_counters_and_closes_delivery(directory: DynamoDirectory) -> None:
    # Given a new pair and its first delivery claimed
    delivery = DeliveryKey("in-1", "r")
    pair = _pair()
    directory.claim_delivery(delivery, pair, NOW + 60)

    # When a user message and then a service reply are recorded
    directory.record_sent(delivery, _sent(Direction.TO_SERVICE, "ses-1"), pair, "service:" + "s" * 16, NOW + 999)
    reply_delivery = DeliveryKey("in-2", "r2")
    directory.claim_delivery(reply_delivery, None, NOW + 60)
    reply = SentMessage(ses_message_id="ses-2", direction=Direction.TO_USER, service_code="s" * 16,
                        user_code="u" * 16, original_sender="owner@flats.example",
                        original_message_id="<reply@flats.example>", inbound_message_id="in-2", sent_at=NOW + 90)
    directory.record_sent(reply_delivery, reply, pair, "user:" + "u" * 16, NOW + 999)

    # Then the pair's figures and the delivery state say so, and both sent records are readable
    refs = ThreadRefs(recipient_key="service:" + "s" * 16, ses_ids={"<ses-1@x>": "ses-1"},
                      foreign_ids=("<orig@real.example>",))
    snapshot = directory.load_for_user_mail("s" * 16, "jane@real.example", delivery, refs)
    assert snapshot.delivery is DeliveryState.SENT
    assert snapshot.pair is not None
    assert (snapshot.pair.user_messages, snapshot.pair.service_messages) == (1, 1)
    assert snapshot.pair.first_reply_at == NOW + 90
    assert snapshot.pair.awaiting_reply_since is None
    assert snapshot.sent["ses-1"].original_message_id == "<orig@real.example>"
    assert snapshot.copies["<orig@real.example>"].ses_message_id == "ses-1"


def test_directory_user_code_claim_reads_alias_and_lookup_finds_pair_and_service(
        directory: DynamoDirectory) -> None:
    # Given a service and a pair
    service = Service(code="s" * 16, addresses=("owner@flats.example",), display_name="Flat A")
    directory.put_service(service)
    directory.claim_delivery(DeliveryKey("in-1", "r"), _pair(), NOW + 60)

    # When mail to the user code is claimed, then looked up with what the claim read
    claim = directory.claim_for_user_code("u" * 16, DeliveryKey("in-9", "r"), NOW + 60)
    snapshot = directory.load_for_service_mail("u" * 16, claim.service_code, claim.user_address,
                                               DeliveryKey("in-9", "r"), ThreadRefs("user:" + "u" * 16))

    # Then the claim holds, and pair and service come back
    assert claim == UserCodeClaim(ClaimResult.CLAIMED, "s" * 16, "jane@real.example")
    assert snapshot.service == service
    assert snapshot.pair is not None
    assert snapshot.pair.user_address == "jane@real.example"


def test_directory_user_code_claim_of_unknown_code_writes_nothing(directory: DynamoDirectory) -> None:
    # Given no alias for a code
    delivery = DeliveryKey("in-9", "user-z@relay.example")

    # When mail to it is claimed, twice
    first = directory.claim_for_user_code("z" * 16, delivery, NOW + 60)
    second = directory.claim_for_user_code("z" * 16, delivery, NOW + 60)

    # Then the code is unknown both times: the conditional update created no alias item
    assert first == second == UserCodeClaim(None)


def test_directory_user_code_claim_twice_is_duplicate_until_released_or_expired(directory: DynamoDirectory,
                                                                               clock: Clock) -> None:
    # Given mail to a user code claimed by one attempt
    directory.claim_delivery(DeliveryKey("in-1", "r"), _pair(), NOW + 60)
    delivery = DeliveryKey("in-9", "user-u@relay.example")
    directory.claim_for_user_code("u" * 16, delivery, NOW + 60)

    # When another attempt claims it, after a release, and after the claim's lifetime
    while_held = directory.claim_for_user_code("u" * 16, delivery, NOW + 60)
    directory.release_delivery(delivery, alias="u" * 16)
    after_release = directory.claim_for_user_code("u" * 16, delivery, NOW + 60)
    clock.now += 61
    after_expiry = directory.claim_for_user_code("u" * 16, delivery, NOW + 200)

    # Then only the held claim refuses (the alias comes back with it), the others are claimed again
    assert while_held == UserCodeClaim(ClaimResult.DUPLICATE, "s" * 16, "jane@real.example")
    assert (after_release.result, after_expiry.result) == (ClaimResult.CLAIMED, ClaimResult.CLAIMED)


def test_directory_record_sent_to_user_closes_the_alias_claim_and_records_delivery(
        directory: DynamoDirectory, clock: Clock) -> None:
    # Given mail to a user code claimed on the alias
    pair = _pair()
    directory.claim_delivery(DeliveryKey("in-1", "r"), pair, NOW + 60)
    delivery = DeliveryKey("in-9", "user-u@relay.example")
    directory.claim_for_user_code("u" * 16, delivery, NOW + 60)

    # When the send is recorded
    reply = SentMessage(ses_message_id="ses-9", direction=Direction.TO_USER, service_code="s" * 16,
                        user_code="u" * 16, original_sender="owner@flats.example", original_message_id=None,
                        inbound_message_id="in-9", sent_at=NOW)
    directory.record_sent(delivery, reply, pair, "user:" + "u" * 16, NOW + 999, NOW + 60)

    # Then the delivery item says sent and expires with the claim's lifetime, and the alias holds no claim
    snapshot = directory.load_for_service_mail("u" * 16, "s" * 16, "jane@real.example", delivery,
                                               ThreadRefs("user:" + "u" * 16))
    assert snapshot.delivery is DeliveryState.SENT
    assert directory.claim_for_user_code("u" * 16, delivery, NOW + 60).result is ClaimResult.CLAIMED
    clock.now += 61
    expired = directory.load_for_service_mail("u" * 16, "s" * 16, "jane@real.example", delivery,
                                              ThreadRefs("user:" + "u" * 16))
    assert expired.delivery is None
