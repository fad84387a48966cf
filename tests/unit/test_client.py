"""The Python client (``emailflow.Relay``) on the in-memory store: what a marketplace backend, the CLI and the API
get, with the rules of ``services`` and ``conversations`` behind it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from emailflow.addresses import RelayAddressing
from emailflow.client import Relay
from emailflow.codes import CodeBook, CodeKind
from emailflow.conversations import ConversationError
from emailflow.feedback import AddressHealth
from emailflow.model import Direction, Pair
from emailflow.services import RequestKeyReused, ServiceError, ServiceNotFound
from tests.support.fakes import DAY, DOMAIN, KEYRING, START, FakeClock, InMemoryDirectory

OWNER = "owner@holiday-flats.example"
BOOKINGS = "bookings@holiday-flats.example"
USER = "jane.doe@real-user.example"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store(clock: FakeClock) -> InMemoryDirectory:
    return InMemoryDirectory(clock)


@pytest.fixture
def relay(store: InMemoryDirectory, clock: FakeClock) -> Relay:
    return Relay(store, CodeBook(KEYRING), RelayAddressing(DOMAIN), clock=clock)


def _conversation(store: InMemoryDirectory, relay: Relay, service_code: str, user_messages: int = 0,
                  service_messages: int = 0) -> Pair:
    pair = Pair(service_code, USER, relay.codebook.new_code(CodeKind.USER), START, user_messages, service_messages)
    store.add_pair(pair)
    return pair


def test_create_service_returns_public_address_of_stored_service(relay: Relay, store: InMemoryDirectory) -> None:
    # When a marketplace registers a listing's owner
    created = relay.create_service(OWNER, "María García", {"listing": "flat-4711"})

    # Then it gets the address for its web form, and the service is stored under that code
    assert created.address == f"service-{created.code}@{DOMAIN}"
    assert created.as_dict() == {"address": created.address, "code": created.code, "name": "María García",
                                 "status": "active", "addresses": [OWNER], "context": {"listing": "flat-4711"},
                                 "created_at": START, "undeliverable": {}}
    assert relay.get_service(created.address) == created
    assert store.services[created.code].addresses == (OWNER,)


def test_create_service_twice_with_same_key_creates_one_service(relay: Relay, store: InMemoryDirectory) -> None:
    # Given a web form submitted once
    first = relay.create_service([OWNER], "María García", {"listing": "4711"}, idempotency_key="form-81f3")

    # When the browser submits it again (same key, same content)
    again = relay.create_service([OWNER], "María García", {"listing": "4711"}, idempotency_key="form-81f3")

    # Then the same service comes back and only one exists
    assert again == first
    assert len(store.services) == 1


def test_create_service_same_key_other_request_is_refused(relay: Relay, store: InMemoryDirectory) -> None:
    # Given a key already used for one owner
    relay.create_service([OWNER], "María García", idempotency_key="form-81f3")

    # When a different request reuses it
    with pytest.raises(RequestKeyReused):
        relay.create_service([BOOKINGS], "María García", idempotency_key="form-81f3")

    # Then nothing new was stored
    assert len(store.services) == 1


def test_create_service_key_expires_after_a_week(relay: Relay, store: InMemoryDirectory, clock: FakeClock) -> None:
    # Given a key used a week and a day ago
    first = relay.create_service([OWNER], "María García", idempotency_key="form-81f3")
    clock.advance(8 * DAY)

    # When it is used again
    later = relay.create_service([OWNER], "María García", idempotency_key="form-81f3")

    # Then it protects nothing any more: a second service is registered
    assert later.code != first.code
    assert len(store.services) == 2


@pytest.mark.parametrize("context", [{"k" * 300: "v"}, {"k": "v" * 300}, {f"k{n}": "v" for n in range(21)}, {"": "v"}])
def test_create_service_rejects_oversized_or_empty_context(relay: Relay, context: dict[str, str]) -> None:
    with pytest.raises(ServiceError):
        relay.create_service([OWNER], "María García", context)


def test_update_service_changes_addresses_name_and_context_keeping_code(relay: Relay) -> None:
    # Given a service with one mailbox
    created = relay.create_service([OWNER], "María García", {"listing": "4711"})

    # When the owner adds a second mailbox and a new name
    updated = relay.update_service(created.code, addresses=[BOOKINGS, OWNER], name="García Flats")

    # Then the code (and so the public address) is unchanged; the first address receives mail; context stays
    assert (updated.code, updated.address) == (created.code, created.address)
    assert updated.addresses == (BOOKINGS, OWNER)
    assert (updated.name, dict(updated.context)) == ("García Flats", {"listing": "4711"})
    assert relay.get_service(created.code) == updated


def test_update_service_rejects_address_in_relay_domain(relay: Relay) -> None:
    created = relay.create_service([OWNER], "María García")
    with pytest.raises(ServiceError, match="relay domain"):
        relay.update_service(created.code, addresses=[f"service-x@{DOMAIN}"])
    assert relay.get_service(created.code).addresses == (OWNER,)


def test_disable_and_enable_by_address(relay: Relay) -> None:
    created = relay.create_service([OWNER], "María García")
    assert relay.disable_service(created.address).status == "disabled"
    assert relay.get_service(created.code).status == "disabled"
    assert relay.enable_service(created.address.upper()).status == "active"


def test_unknown_genuine_code_is_not_found_and_forged_code_costs_no_read(relay: Relay,
                                                                         store: InMemoryDirectory) -> None:
    genuine = relay.codebook.new_code(CodeKind.SERVICE)
    with pytest.raises(ServiceNotFound):
        relay.get_service(genuine)
    reads = store.reads
    with pytest.raises(ServiceError):
        relay.get_service("service-0000000000000000@relay.example")
    assert store.reads == reads


def test_service_stats_counts_conversations_of_that_service_only(relay: Relay, store: InMemoryDirectory) -> None:
    # Given two services, one replied conversation for the first
    first = relay.create_service([OWNER], "María García")
    other = relay.create_service([BOOKINGS], "Other")
    pair = _conversation(store, relay, first.code, user_messages=1, service_messages=1)
    store.add_pair(Pair(first.code, USER, pair.user_code, START, user_messages=1, service_messages=1,
                        first_reply_at=START + 3600))

    # When its stats are read
    figures = relay.service_stats(first.address)

    # Then the one conversation was replied in an hour; the other service has none
    assert (figures.conversations, figures.replied, figures.first_response_median) == (1, 1, 3600)
    assert relay.service_stats(other.code).conversations == 0


def test_conversation_by_user_address_shows_figures_and_state(relay: Relay, store: InMemoryDirectory) -> None:
    # Given a conversation whose service complained once and whose user address bounced
    created = relay.create_service([OWNER], "María García")
    pair = _conversation(store, relay, created.code, user_messages=2)
    store.pairs[(created.code, USER)] = Pair(created.code, USER, pair.user_code, START, user_messages=2,
                                             suspended={"to_service": "complaint:abuse"})
    store.health[USER] = AddressHealth(USER, "permanent:General")

    # When the operator looks it up by the address the service writes to
    found = relay.conversation(f"user-{pair.user_code}@{DOMAIN}")

    # Then the figures and state are there, and no real address is
    assert found.service_address == created.address
    assert (found.user_messages, found.suspended, found.user_undeliverable) == \
        (2, {"to_service": "complaint:abuse"}, "permanent:General")
    assert USER not in str(found.as_dict())
    assert OWNER not in str(found.as_dict())
    assert relay.conversation(pair.user_code) == found


def test_conversation_rejects_service_address_and_unknown_code(relay: Relay) -> None:
    created = relay.create_service([OWNER], "María García")
    with pytest.raises(ConversationError):
        relay.conversation(created.address)
    with pytest.raises(ConversationError, match="no conversation"):
        relay.conversation(relay.codebook.new_code(CodeKind.USER))


def test_clear_address_lifts_bounce_mirror_and_complaint_suspensions(relay: Relay, store: InMemoryDirectory) -> None:
    # Given an owner address that bounced for good and complained about one conversation
    created = relay.create_service([OWNER, BOOKINGS], "María García")
    store.services[created.code] = replace(store.services[created.code], undeliverable={OWNER: "permanent:General"})
    store.health[OWNER] = AddressHealth(OWNER, "permanent:General")
    pair = _conversation(store, relay, created.code)
    store.pairs[(created.code, USER)] = Pair(created.code, USER, pair.user_code, START,
                                             suspended={Direction.TO_SERVICE.value: "complaint:abuse"})

    # When the operator clears it (twice: safe to repeat)
    lifted = relay.clear_address(OWNER.upper())
    again = relay.clear_address(OWNER)

    # Then the address, the service's mirror and the suspension are gone; the second run had nothing to do
    assert len(lifted) == 3
    assert store.health.get(OWNER) is None
    assert store.services[created.code].undeliverable == {}
    assert store.pairs[(created.code, USER)].suspended == {}
    assert again == []


def test_clear_address_of_user_lifts_to_user_suspension_only_for_that_user(relay: Relay,
                                                                           store: InMemoryDirectory) -> None:
    created = relay.create_service([OWNER], "María García")
    pair = _conversation(store, relay, created.code)
    store.pairs[(created.code, USER)] = Pair(created.code, USER, pair.user_code, START,
                                             suspended={"to_user": "complaint:abuse"})
    assert relay.clear_address("someone.else@real-user.example") == []
    assert relay.clear_address(USER) == [f"conversation {pair.user_code} to_user: complaint:abuse"]
    assert store.pairs[(created.code, USER)].suspended == {}


def test_clear_address_rejects_non_address(relay: Relay) -> None:
    with pytest.raises(ConversationError):
        relay.clear_address("not an address")


def test_from_emailflow_import_relay_loads_no_aws_sdk() -> None:
    # The package root exports the client lazily: importing it must not pull boto3 into a web backend's process
    # before a Relay is built (nor into the Lambda handlers, which import modules directly).
    code = ("import sys; from emailflow import Relay, ServiceError; "
            "assert Relay.__name__ == 'Relay' and issubclass(ServiceError, ValueError); "
            "print('boto3' in sys.modules, 'botocore' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code],  # noqa: S603 - this interpreter, a fixed program
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
