"""Registering and managing services on the in-memory directory."""

from __future__ import annotations

import pytest

from emailflow.addresses import RelayAddressing
from emailflow.codes import CodeBook, CodeKind
from emailflow.model import Service, ServiceStatus
from emailflow.services import ServiceError, find_service, register_service, service_address, set_service_status
from tests.support.fakes import KEYRING, START, FakeClock, InMemoryDirectory, ScriptedCodeBook

OWNER = "owner@holiday-flats.example"
BOOKINGS = "bookings@holiday-flats.example"


@pytest.fixture
def directory() -> InMemoryDirectory:
    return InMemoryDirectory()


@pytest.fixture
def codebook() -> CodeBook:
    return CodeBook(KEYRING)


def test_register_service_stores_active_service_with_genuine_code(directory: InMemoryDirectory,
                                                                  codebook: CodeBook) -> None:
    # Given an operator's request

    # When the service is registered
    service = register_service(directory, codebook, [OWNER], "Holiday Flats", {"listing": "flat-4711"},
                               clock=FakeClock(START))

    # Then it is stored, active, under a code the relay will accept as a service code
    assert directory.get_service(service.code) == service
    assert service == Service(code=service.code, addresses=(OWNER,), display_name="Holiday Flats",
                              status=ServiceStatus.ACTIVE, context={"listing": "flat-4711"}, created_at=START)
    assert codebook.verify(CodeKind.SERVICE, service.code) == service.code


def test_register_service_normalises_addresses(directory: InMemoryDirectory, codebook: CodeBook) -> None:
    # Given addresses as an operator might paste them
    addresses = ["  Owner@Holiday-Flats.EXAMPLE ", "<Bookings@holiday-flats.example>", "info@Bücher.example"]

    # When the service is registered
    service = register_service(directory, codebook, addresses, "Holiday Flats")

    # Then they are stored trimmed, in lower case, with the domain in IDNA form, in the given order
    assert service.addresses == (OWNER, BOOKINGS, "info@xn--bcher-kva.example")


def test_register_service_drops_duplicate_addresses_keeping_first_as_receiver(directory: InMemoryDirectory,
                                                                             codebook: CodeBook) -> None:
    # Given the same address twice, differently written
    addresses = [OWNER, BOOKINGS, "OWNER@holiday-flats.example"]

    # When the service is registered
    service = register_service(directory, codebook, addresses, "Holiday Flats")

    # Then it is kept once, and the first address still receives the mail
    assert service.addresses == (OWNER, BOOKINGS)


def test_register_service_sanitises_display_name(directory: InMemoryDirectory, codebook: CodeBook) -> None:
    # Given a display name with a line break, an address and surrounding space
    name = '  "María\r\n García" <owner@holiday-flats.example> '

    # When the service is registered
    service = register_service(directory, codebook, [OWNER], name)

    # Then only the name is kept: nothing a From field could be forged or leak with
    assert service.display_name == "María García"


def test_register_service_rejects_no_addresses(directory: InMemoryDirectory, codebook: CodeBook) -> None:
    # Given a request without any real address

    # When it is registered, Then it is refused and nothing is stored
    with pytest.raises(ServiceError, match="at least one real address"):
        register_service(directory, codebook, [], "Holiday Flats")
    assert directory.list_services() == []


@pytest.mark.parametrize("name", ["", "   ", "\r\n", OWNER], ids=["empty", "spaces", "line-break", "only-address"])
def test_register_service_rejects_empty_display_name(directory: InMemoryDirectory, codebook: CodeBook,
                                                      name: str) -> None:
    # Given a display name with nothing left after sanitising

    # When it is registered, Then it is refused and nothing is stored
    with pytest.raises(ServiceError, match="display name"):
        register_service(directory, codebook, [OWNER], name)
    assert directory.list_services() == []


def test_register_service_rejects_invalid_address(directory: InMemoryDirectory, codebook: CodeBook) -> None:
    # Given an address without a domain

    # When it is registered, Then it is refused and nothing is stored
    with pytest.raises(ServiceError, match="not a usable e-mail address"):
        register_service(directory, codebook, [OWNER, "bookings"], "Holiday Flats")
    assert directory.list_services() == []


def test_register_service_rejects_address_in_relay_domain(directory: InMemoryDirectory, codebook: CodeBook) -> None:
    # Given a "real" address that is itself in the relay domain (another relay address)

    # When it is registered, Then it is refused: the relay would be mailing itself
    with pytest.raises(ServiceError, match="relay domain"):
        register_service(directory, codebook, ["service-abc@Relay.Example"], "Loop", relay_domain="relay.example")
    assert directory.list_services() == []


def test_register_service_draws_another_code_on_collision(directory: InMemoryDirectory) -> None:
    # Given a code book whose first draw is a code already taken
    taken, fresh = CodeBook(KEYRING).new_code(CodeKind.SERVICE), CodeBook(KEYRING).new_code(CodeKind.SERVICE)
    existing = Service(code=taken, addresses=(BOOKINGS,), display_name="Earlier Service")
    directory.put_service(existing)
    codebook = ScriptedCodeBook(KEYRING, [taken, fresh])

    # When a service is registered
    service = register_service(directory, codebook, [OWNER], "Holiday Flats")

    # Then it gets the second code, and the earlier service is untouched
    assert service.code == fresh
    assert directory.get_service(taken) == existing
    assert directory.put_service_calls == 3  # the seed, the collision, the success


def test_register_service_gives_up_after_repeated_collisions(directory: InMemoryDirectory) -> None:
    # Given a code book that only ever draws one taken code
    taken = CodeBook(KEYRING).new_code(CodeKind.SERVICE)
    directory.put_service(Service(code=taken, addresses=(BOOKINGS,), display_name="Earlier Service"))
    codebook = ScriptedCodeBook(KEYRING, [taken] * 10)

    # When a service is registered, Then it fails instead of looping
    with pytest.raises(RuntimeError, match="unused service code"):
        register_service(directory, codebook, [OWNER], "Holiday Flats")
    assert len(directory.list_services()) == 1


def test_set_service_status_disables_service(directory: InMemoryDirectory, codebook: CodeBook) -> None:
    # Given an active service
    service = register_service(directory, codebook, [OWNER], "Holiday Flats")

    # When it is disabled
    updated = set_service_status(directory, service.code, ServiceStatus.DISABLED)

    # Then the stored service is disabled, and nothing else changed
    assert updated == directory.get_service(service.code)
    assert (updated.status, updated.active) == (ServiceStatus.DISABLED, False)
    assert updated.addresses == service.addresses


def test_set_service_status_enables_disabled_service(directory: InMemoryDirectory, codebook: CodeBook) -> None:
    # Given a disabled service
    service = register_service(directory, codebook, [OWNER], "Holiday Flats")
    set_service_status(directory, service.code, ServiceStatus.DISABLED)

    # When it is enabled again
    updated = set_service_status(directory, service.code, ServiceStatus.ACTIVE)

    # Then it is active
    assert directory.get_service(service.code) == updated == service


def test_set_service_status_rejects_unknown_code(directory: InMemoryDirectory, codebook: CodeBook) -> None:
    # Given a code no service has
    code = codebook.new_code(CodeKind.SERVICE)

    # When its status is set, Then it is refused and nothing is created
    with pytest.raises(ServiceError, match="no such service"):
        set_service_status(directory, code, ServiceStatus.DISABLED)
    assert directory.list_services() == []


def test_service_address_is_relay_address_of_service_code(directory: InMemoryDirectory, codebook: CodeBook) -> None:
    # Given a registered service
    service = register_service(directory, codebook, [OWNER], "Holiday Flats")

    # When its public address is asked for
    address = service_address(RelayAddressing("relay.example"), service)

    # Then it is service-<code>@ the relay domain
    assert address == f"service-{service.code}@relay.example"


@pytest.mark.parametrize("spelling", [
    "{code}", "{CODE}", "service-{code}", "service-{code}@relay.example", "Service-{CODE}+july@Relay.Example",
], ids=["code", "upper-case-code", "local-part", "address", "tagged-address"])
def test_find_service_by_code_or_address(directory: InMemoryDirectory, codebook: CodeBook, spelling: str) -> None:
    # Given a registered service
    service = register_service(directory, codebook, [OWNER], "Holiday Flats")

    # When it is looked up by its code or its public address, however written
    found = find_service(directory, RelayAddressing("relay.example"), codebook,
                         spelling.format(code=service.code, CODE=service.code.upper()))

    # Then it is that service
    assert found == service


@pytest.mark.parametrize("kind", ["guess", "user-code", "other-domain"])
def test_find_service_rejects_what_is_not_a_service_code_without_reading(codebook: CodeBook, kind: str) -> None:
    # Given a guessed code, a genuine user code, or a service code in another domain
    directory = InMemoryDirectory()
    genuine = codebook.new_code(CodeKind.SERVICE)
    text = {"guess": genuine[:-1] + ("0" if genuine[-1] != "0" else "1"),
            "user-code": f"user-{codebook.new_code(CodeKind.USER)}@relay.example",
            "other-domain": f"service-{genuine}@elsewhere.example"}[kind]

    # When it is looked up, Then it is refused before the directory is read
    with pytest.raises(ServiceError, match="not a service code"):
        find_service(directory, RelayAddressing("relay.example"), codebook, text)
    assert directory.reads == 0


def test_find_service_reports_unknown_genuine_code(directory: InMemoryDirectory, codebook: CodeBook) -> None:
    # Given a genuine code no service was registered under

    # When it is looked up, Then it is reported as unknown
    with pytest.raises(ServiceError, match="no such service"):
        find_service(directory, RelayAddressing("relay.example"), codebook, codebook.new_code(CodeKind.SERVICE))
