"""The relay use case on in-memory fakes: outcomes, exactly-once delivery, pair figures and threading."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from emailflow.codes import CodeBook, CodeKind
from emailflow.model import DeliveryKey, DeliveryState, Direction, Pair, Service, ServiceStatus, Snapshot
from emailflow.outcomes import Action, Reason, RelayOutcome
from emailflow.ports import RelayFault, SendFailed, SendRejected
from emailflow.relay import DeliveryInDoubt, RelayContext, relay_inbound
from emailflow.services import register_service, service_address, set_service_status
from tests.support.fakes import (
    KEYRING,
    START,
    DictMailStore,
    FakeClock,
    InMemoryDirectory,
    RecordingMailer,
    SentMail,
    inbound_mail,
    make_context,
)
from tests.support.mail import load_eml, new_message_id

USER = "jane.doe@real-user.example"
OTHER_USER = "bob@other-user.example"
OWNER = "owner@holiday-flats.example"
BOOKINGS = "bookings@holiday-flats.example"
USER_MESSAGE_ID = "<CAF1x2y3@mail.real-user.example>"
SERVICE_MESSAGE_ID = "<reply-1@holiday-flats.example>"
FROM_JANE = "From: Jane Doe <jane.doe@real-user.example>"


class _Crash(Exception):
    """The Lambda died (time-out, out of memory) between two steps."""


@dataclass
class Relay:
    """The use case wired to fakes, with the steps a conversation is made of."""

    clock: FakeClock = field(default_factory=FakeClock)
    mailer: RecordingMailer = field(default_factory=RecordingMailer)
    mail_store: DictMailStore = field(default_factory=DictMailStore)
    directory: InMemoryDirectory = field(init=False)
    context: RelayContext = field(init=False)

    def __post_init__(self) -> None:
        self.directory = InMemoryDirectory(self.clock)
        self.context = make_context(directory=self.directory, mailer=self.mailer, mail_store=self.mail_store,
                                    clock=self.clock)

    def register(self, addresses: Sequence[str] = (OWNER, BOOKINGS), name: str = "María García") -> Service:
        return register_service(self.directory, self.context.codebook, addresses, name, clock=self.clock)

    def address(self, service: Service) -> str:
        return service_address(self.context.addressing, service)

    def deliver(self, raw: bytes, recipients: Sequence[str], source: str,
                message_id: str | None = None) -> list[RelayOutcome]:
        """What SES does: store the raw mail under its message id, then invoke the relay with the receipt."""
        message_id = message_id or new_message_id()
        self.mail_store.put(message_id, raw)
        return relay_inbound(inbound_mail(message_id, recipients, source), self.context)

    def user_writes(self, service: Service, fixture: str = "user_first_message.eml",
                    replacements: Mapping[str, str] | None = None, source: str = USER,
                    message_id: str | None = None) -> list[RelayOutcome]:
        address = self.address(service)
        # The caller's replacements win, after the relay address (dicts keep the first position of a key).
        raw = load_eml(fixture, {"service-placeholder@relay.example": address,
                                 "<ses-in-reply-to-placeholder>": "<none@nowhere.example>", **(replacements or {})})
        return self.deliver(raw, [address], source, message_id)

    def service_replies(self, user_address: str, in_reply_to: str,
                        replacements: Mapping[str, str] | None = None, source: str = OWNER,
                        message_id: str | None = None) -> list[RelayOutcome]:
        # The caller's replacements go first, so that one may rewrite a whole line before the placeholders.
        raw = load_eml("service_reply.eml", {**(replacements or {}), "user-placeholder@relay.example": user_address,
                                             "<ses-in-reply-to-placeholder>": in_reply_to})
        return self.deliver(raw, [user_address], source, message_id)

    def start_conversation(self, service: Service | None = None) -> tuple[Service, SentMail]:
        """Phase 0: the user's first message reaches the service; returns the service and the copy it got."""
        service = service or self.register()
        self.user_writes(service)
        return service, self.mailer.sent[-1]


@pytest.fixture
def relay() -> Relay:
    return Relay()


def _only(outcomes: list[RelayOutcome]) -> RelayOutcome:
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


# -- phase 0: the user writes to a service ---------------------------------------------------------------------


def test_relay_inbound_first_message_forwards_from_new_user_code_to_first_service_address(relay: Relay) -> None:
    # Given a service with two real addresses
    service = relay.register([OWNER, BOOKINGS])

    # When the user writes to its relay address for the first time
    outcome = _only(relay.user_writes(service))

    # Then the service's first address receives it From the user code of a new pair
    [pair] = relay.directory.list_pairs(service.code)
    [sent] = relay.mailer.sent
    assert outcome == RelayOutcome(relay.address(service), Action.FORWARDED, Reason.RELAYED, Direction.TO_SERVICE,
                                   sent.ses_message_id, new_conversation=True, service_code=service.code,
                                   conversation=pair.user_code)
    assert (pair.user_address, pair.started_at) == (USER, START)
    assert sent.to_address == OWNER
    assert sent.from_address == f"user-{pair.user_code}@relay.example"
    assert sent.parsed()["From"].addresses[0].addr_spec == sent.from_address
    assert USER.encode() not in sent.header_block.lower()


def test_relay_inbound_tags_send_with_direction_service_and_pair(relay: Relay) -> None:
    # Given a service
    service = relay.register()

    # When the user writes to it
    relay.user_writes(service)

    # Then the send carries the low-cardinality tags the bounce handler and SES events read
    [pair] = relay.directory.list_pairs(service.code)
    assert relay.mailer.sent[0].tags == {"direction": "to_service", "service": service.code, "pair": pair.user_code}


def test_relay_inbound_second_user_message_reuses_pair(relay: Relay) -> None:
    # Given a conversation the user started
    service, first = relay.start_conversation()

    # When the same user writes again, from a differently-cased address
    outcome = _only(relay.user_writes(service, "user_follow_up.eml", source="JANE.DOE@real-user.example"))

    # Then the service sees the same user code, and no new conversation
    second = relay.mailer.sent[1]
    assert (outcome.action, outcome.new_conversation) == (Action.FORWARDED, False)
    assert second.from_address == first.from_address
    assert len(relay.directory.list_pairs(service.code)) == 1


def test_relay_inbound_one_message_to_two_services_sends_twice_with_own_pairs(relay: Relay) -> None:
    # Given two services
    flat, boat = relay.register([OWNER], "Flat"), relay.register(["skipper@boats.example"], "Boat")
    recipients = [relay.address(flat), relay.address(boat)]

    # When one message is addressed to both
    raw = load_eml("user_first_message.eml", {"To: service-placeholder@relay.example": f"To: {', '.join(recipients)}"})
    outcomes = relay.deliver(raw, recipients, USER)

    # Then each service gets its own copy From its own pair's user code, and S3 was read once
    [flat_pair], [boat_pair] = relay.directory.list_pairs(flat.code), relay.directory.list_pairs(boat.code)
    assert [(o.recipient, o.action, o.new_conversation) for o in outcomes] == [
        (recipients[0], Action.FORWARDED, True), (recipients[1], Action.FORWARDED, True)]
    assert [(sent.to_address, sent.from_address) for sent in relay.mailer.sent] == [
        (OWNER, f"user-{flat_pair.user_code}@relay.example"),
        ("skipper@boats.example", f"user-{boat_pair.user_code}@relay.example")]
    assert flat_pair.user_code != boat_pair.user_code
    assert relay.mail_store.reads == 1


def test_relay_inbound_two_spellings_of_one_relay_address_send_once(relay: Relay) -> None:
    # Given a service, and a message whose envelope names its address twice: plain and with a +tag in upper case
    flat = relay.register([OWNER], "Flat")
    plain = relay.address(flat)
    local, _, domain = plain.partition("@")
    tagged = f"{local.upper()}+july@{domain}"

    # When SES delivers it with both recipients
    raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": plain})
    outcomes = relay.deliver(raw, [plain, tagged], USER)

    # Then the service receives one copy, and one outcome is recorded for the one relay address
    assert [(o.recipient, o.action) for o in outcomes] == [(plain, Action.FORWARDED)]
    assert len(relay.mailer.sent) == 1


# -- phase 2: the service replies to a user code ---------------------------------------------------------------


def test_relay_inbound_service_reply_goes_to_user_from_service_code(relay: Relay) -> None:
    # Given a conversation the user started
    service, to_service = relay.start_conversation()

    # When the service replies to the user code
    outcome = _only(relay.service_replies(to_service.from_address, to_service.header_message_id))

    # Then the user's real address receives it From the service code
    to_user = relay.mailer.sent[1]
    assert (outcome.action, outcome.reason, outcome.direction) == (Action.FORWARDED, Reason.RELAYED,
                                                                   Direction.TO_USER)
    assert (to_user.to_address, to_user.from_address) == (USER, relay.address(service))
    assert b"holiday-flats.example" not in to_user.header_block.lower()


def test_relay_inbound_service_reply_reports_response_seconds_and_first_reply(relay: Relay) -> None:
    # Given a user message that has waited an hour
    _, to_service = relay.start_conversation()
    relay.clock.advance(3600)

    # When the service replies
    outcome = _only(relay.service_replies(to_service.from_address, to_service.header_message_id))

    # Then the outcome says how long the user waited, and that it is the service's first reply
    assert (outcome.response_seconds, outcome.first_reply) == (3600, True)


def test_relay_inbound_second_service_reply_reports_no_wait_and_no_first_reply(relay: Relay) -> None:
    # Given a service that has answered already
    _, to_service = relay.start_conversation()
    relay.service_replies(to_service.from_address, to_service.header_message_id)

    # When it writes again before the user answered
    outcome = _only(relay.service_replies(to_service.from_address, to_service.header_message_id))

    # Then nobody was waiting, and it is not a first reply
    assert (outcome.action, outcome.response_seconds, outcome.first_reply) == (Action.FORWARDED, None, False)


def test_relay_inbound_accepts_reply_from_registered_address_in_other_case(relay: Relay) -> None:
    # Given a conversation with a service registered as owner@holiday-flats.example
    _, to_service = relay.start_conversation()

    # When the service answers as Owner@Holiday-Flats.example (the From of the fixture reply)
    outcome = _only(relay.service_replies(to_service.from_address, to_service.header_message_id))

    # Then the reply is relayed
    assert outcome.action is Action.FORWARDED


def test_relay_inbound_accepts_reply_from_subaddress_of_registered_address(relay: Relay) -> None:
    # Given a conversation
    _, to_service = relay.start_conversation()

    # When the service answers from a +tag variant of its address
    outcome = _only(relay.service_replies(to_service.from_address, to_service.header_message_id,
                                          {"Owner@Holiday-Flats.example": "owner+listing-4711@holiday-flats.example"}))

    # Then the reply is relayed
    assert outcome.action is Action.FORWARDED


def test_relay_inbound_accepts_reply_from_second_registered_address(relay: Relay) -> None:
    # Given a service registered with two addresses
    _, to_service = relay.start_conversation(relay.register([OWNER, BOOKINGS]))

    # When the reply comes from the second one
    outcome = _only(relay.service_replies(to_service.from_address, to_service.header_message_id,
                                          {"Owner@Holiday-Flats.example": BOOKINGS}))

    # Then it is relayed
    assert outcome.action is Action.FORWARDED


def test_relay_inbound_rejects_stranger_writing_to_user_code(relay: Relay) -> None:
    # Given a conversation
    _, to_service = relay.start_conversation()

    # When someone else writes to the user code
    outcome = _only(relay.service_replies(to_service.from_address, to_service.header_message_id,
                                          {"Owner@Holiday-Flats.example": "spam@elsewhere.example"}))

    # Then it is rejected, the user receives nothing, and the (authenticated) stranger is told why
    assert (outcome.action, outcome.reason, outcome.direction) == (Action.REJECTED, Reason.STRANGER,
                                                                   Direction.TO_USER)
    assert outcome.notice_sent
    notice = relay.mailer.sent[-1]
    assert len(relay.mailer.sent) == 2
    assert (notice.to_address, notice.from_address) == ("spam@elsewhere.example", "no-reply@relay.example")
    assert USER not in notice.raw.decode()


# -- rejections ------------------------------------------------------------------------------------------------


def test_relay_inbound_rejects_unknown_service_code(relay: Relay) -> None:
    # Given a genuine service code that no service has
    address = f"service-{CodeBook(KEYRING).new_code(CodeKind.SERVICE)}@relay.example"

    # When the user writes to it
    raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address})
    outcome = _only(relay.deliver(raw, [address], USER))

    # Then it is an unknown code; only the (authenticated) user is told, by an error mail
    assert outcome == RelayOutcome(address, Action.REJECTED, Reason.UNKNOWN_CODE, Direction.TO_SERVICE,
                                   notice_sent=True)
    assert [sent.to_address for sent in relay.mailer.sent] == [USER]


def test_relay_inbound_rejects_unknown_user_code(relay: Relay) -> None:
    # Given a genuine user code that no pair has
    address = f"user-{CodeBook(KEYRING).new_code(CodeKind.USER)}@relay.example"

    # When someone writes to it
    raw = load_eml("service_reply.eml", {"user-placeholder@relay.example": address})
    outcome = _only(relay.deliver(raw, [address], OWNER))

    # Then it is an unknown code; only the writer is told
    assert outcome == RelayOutcome(address, Action.REJECTED, Reason.UNKNOWN_CODE, Direction.TO_USER,
                                   notice_sent=True)
    assert [sent.to_address for sent in relay.mailer.sent] == [OWNER]


def test_relay_inbound_rejects_guessed_code_without_any_read(relay: Relay) -> None:
    # Given a well-formed code whose keyed tag is wrong (a guess)
    genuine = CodeBook(KEYRING).new_code(CodeKind.SERVICE)
    address = f"service-{genuine[:-1]}{'0' if genuine[-1] != '0' else '1'}@relay.example"

    # When mail arrives for it
    outcome = _only(relay.deliver(load_eml("user_first_message.eml"), [address], USER))

    # Then it is an invalid code, decided without reading S3 or the directory
    assert outcome == RelayOutcome(address, Action.REJECTED, Reason.INVALID_CODE)
    assert (relay.mail_store.reads, relay.directory.reads, relay.mailer.attempts) == (0, 0, 0)


def test_relay_inbound_rejects_recipient_outside_relay_domain(relay: Relay) -> None:
    # Given a recipient SES matched that is not in the relay domain
    address = "info@other.example"

    # When mail arrives for it
    outcome = _only(relay.deliver(load_eml("user_first_message.eml"), [address], USER))

    # Then it is not relayed, and nothing was read
    assert outcome == RelayOutcome(address, Action.REJECTED, Reason.NOT_RELAY_DOMAIN)
    assert (relay.mail_store.reads, relay.directory.reads) == (0, 0)


def test_relay_inbound_rejects_user_mail_to_disabled_service(relay: Relay) -> None:
    # Given a disabled service
    service = relay.register()
    set_service_status(relay.directory, service.code, ServiceStatus.DISABLED)

    # When the user writes to it
    outcome = _only(relay.user_writes(service))

    # Then nothing reaches the service; the user is told the address no longer receives mail
    assert (outcome.reason, outcome.direction, outcome.notice_sent) == (Reason.SERVICE_DISABLED,
                                                                        Direction.TO_SERVICE, True)
    assert [sent.to_address for sent in relay.mailer.sent] == [USER]


def test_relay_inbound_rejects_service_mail_once_service_is_disabled(relay: Relay) -> None:
    # Given a conversation whose service was disabled afterwards
    service, to_service = relay.start_conversation()
    set_service_status(relay.directory, service.code, ServiceStatus.DISABLED)

    # When the service replies to the user code
    outcome = _only(relay.service_replies(to_service.from_address, to_service.header_message_id))

    # Then the user receives nothing; the service's sender is told
    assert (outcome.reason, outcome.direction) == (Reason.SERVICE_DISABLED, Direction.TO_USER)
    assert [sent.to_address for sent in relay.mailer.sent] == [OWNER, OWNER]


@pytest.mark.parametrize(
    ("from_line", "reason"),
    [
        ("", Reason.NO_FROM),
        (f"{FROM_JANE}\r\nFrom: Bob <bob@other-user.example>", Reason.MULTIPLE_FROM),
        ("From: Jane Doe <jane.doe@real-user.example>, Bob <bob@other-user.example>", Reason.MULTIPLE_FROM),
        ("From: Jane Doe <jane.doe>", Reason.INVALID_FROM),
    ],
    ids=["no-from", "two-from-fields", "two-mailboxes", "no-domain"],
)
def test_relay_inbound_rejects_mail_without_single_valid_from(relay: Relay, from_line: str, reason: Reason) -> None:
    # Given a service, and a message whose From is unusable
    service = relay.register()
    raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": relay.address(service)})
    raw = raw.replace(f"{FROM_JANE}\r\n".encode(), f"{from_line}\r\n".encode() if from_line else b"")

    # When it arrives
    outcome = _only(relay.deliver(raw, [relay.address(service)], USER))

    # Then it is rejected for that reason, and no pair is created
    assert (outcome.action, outcome.reason, outcome.direction) == (Action.REJECTED, reason, Direction.TO_SERVICE)
    assert relay.directory.list_pairs(service.code) == []


# -- exactly once --------------------------------------------------------------------------------------------


def test_relay_inbound_same_message_twice_is_duplicate(relay: Relay) -> None:
    # Given a message that was relayed
    service = relay.register()
    message_id = new_message_id()
    relay.user_writes(service, message_id=message_id)

    # When SES (or a Lambda retry) delivers it again
    outcome = _only(relay.user_writes(service, message_id=message_id))

    # Then it is a duplicate and the service got one copy
    assert outcome == RelayOutcome(relay.address(service), Action.DUPLICATE, Reason.DUPLICATE, Direction.TO_SERVICE)
    assert relay.mailer.attempts == 1


def test_relay_inbound_open_claim_raises_delivery_in_doubt(relay: Relay) -> None:
    # Given an attempt that died between claiming the delivery and sending
    service = relay.register()
    message_id = new_message_id()

    def crash(delivery: DeliveryKey, new_pair: Pair | None) -> None:
        raise _Crash

    relay.directory.after_claim = crash
    with pytest.raises(_Crash):
        relay.user_writes(service, message_id=message_id)
    relay.directory.after_claim = None

    # When the event is retried
    with pytest.raises(DeliveryInDoubt):
        relay.user_writes(service, message_id=message_id)

    # Then nothing was sent: a second copy is never risked
    assert relay.mailer.attempts == 0


def test_relay_inbound_expired_open_claim_may_be_claimed_again(relay: Relay) -> None:
    # Given an attempt that died after its claim, and the claim's lifetime is over
    service = relay.register()
    message_id = new_message_id()

    def crash(delivery: DeliveryKey, new_pair: Pair | None) -> None:
        raise _Crash

    relay.directory.after_claim = crash
    with pytest.raises(_Crash):
        relay.user_writes(service, message_id=message_id)
    relay.directory.after_claim = None
    relay.clock.advance(relay.context.delivery_record_seconds)

    # When the message is relayed again
    outcome = _only(relay.user_writes(service, message_id=message_id))

    # Then it is sent once
    assert outcome.action is Action.FORWARDED
    assert len(relay.mailer.sent) == 1


def test_relay_inbound_send_failed_releases_claim_and_propagates(relay: Relay) -> None:
    # Given a mail service that answers the next send with a throttling error
    service = relay.register()
    message_id = new_message_id()
    relay.mailer.fail_next(SendFailed("SES answered Throttling"))

    # When the user's message is relayed
    with pytest.raises(SendFailed):
        relay.user_writes(service, message_id=message_id)

    # Then the claim is given back for the retry
    assert relay.directory.delivery_state(DeliveryKey(message_id, relay.address(service))) is None


def test_relay_inbound_retry_after_send_failed_sends_exactly_once(relay: Relay) -> None:
    # Given a send that failed with a retryable error
    service = relay.register()
    message_id = new_message_id()
    relay.mailer.fail_next(SendFailed("SES answered Throttling"))
    with pytest.raises(SendFailed):
        relay.user_writes(service, message_id=message_id)

    # When Lambda retries the event, twice
    first_retry = _only(relay.user_writes(service, message_id=message_id))
    second_retry = _only(relay.user_writes(service, message_id=message_id))

    # Then the message went out once, on the first retry
    assert (first_retry.action, second_retry.action) == (Action.FORWARDED, Action.DUPLICATE)
    assert len(relay.mailer.sent) == 1
    assert relay.directory.delivery_state(DeliveryKey(message_id, relay.address(service))) is DeliveryState.SENT


def test_relay_inbound_retry_after_send_failed_reports_new_conversation(relay: Relay) -> None:
    # Given a user's first message whose send failed with a retryable error
    service = relay.register()
    message_id = new_message_id()
    relay.mailer.fail_next(SendFailed("SES answered Throttling"))
    with pytest.raises(SendFailed):
        relay.user_writes(service, message_id=message_id)

    # When the retry forwards it
    outcome = _only(relay.user_writes(service, message_id=message_id))

    # Then it still counts as the start of a conversation (no attempt so far reported it)
    assert outcome.new_conversation is True


def test_relay_inbound_send_rejected_is_rejected_and_closes_delivery(relay: Relay) -> None:
    # Given a mail service that refuses the message for good
    service = relay.register()
    message_id = new_message_id()
    relay.mailer.fail_next(SendRejected("MessageRejected"))

    # When the message is relayed
    outcome = _only(relay.user_writes(service, message_id=message_id))

    # Then the outcome says so and the delivery is closed
    assert outcome == RelayOutcome(relay.address(service), Action.REJECTED, Reason.SEND_REJECTED,
                                   Direction.TO_SERVICE)
    assert relay.directory.delivery_state(DeliveryKey(message_id, relay.address(service))) is DeliveryState.REJECTED


def test_relay_inbound_retry_after_send_rejected_is_duplicate(relay: Relay) -> None:
    # Given a message the mail service refused for good
    service = relay.register()
    message_id = new_message_id()
    relay.mailer.fail_next(SendRejected("MessageRejected"))
    relay.user_writes(service, message_id=message_id)

    # When it is delivered again
    outcome = _only(relay.user_writes(service, message_id=message_id))

    # Then it is a duplicate and no second send is tried
    assert outcome.action is Action.DUPLICATE
    assert relay.mailer.attempts == 1


def test_relay_inbound_unexpected_send_error_keeps_claim(relay: Relay) -> None:
    # Given a send whose response never arrived (the request may have left)
    service = relay.register()
    message_id = new_message_id()
    relay.mailer.fail_next(TimeoutError("read timed out"))
    with pytest.raises(TimeoutError):
        relay.user_writes(service, message_id=message_id)

    # When the event is retried
    with pytest.raises(DeliveryInDoubt):
        relay.user_writes(service, message_id=message_id)

    # Then the claim is still open and no second send was tried
    assert relay.directory.delivery_state(DeliveryKey(message_id, relay.address(service))) is (
        DeliveryState.IN_PROGRESS)
    assert relay.mailer.attempts == 1


def test_relay_inbound_concurrent_first_message_uses_existing_pair(relay: Relay) -> None:
    # Given a service, and another invocation that creates the user's pair just before this one claims
    service = relay.register()
    winner = Pair(service.code, USER, CodeBook(KEYRING).new_code(CodeKind.USER), started_at=START)

    def concurrent_first_message(delivery: DeliveryKey, new_pair: Pair | None) -> None:
        if new_pair is not None:
            relay.directory.add_pair(winner)

    relay.directory.before_claim = concurrent_first_message

    # When the user's message is relayed
    outcome = _only(relay.user_writes(service))

    # Then it goes out From the winner's user code, the race left one pair, and the winner counts the conversation
    assert relay.mailer.sent[0].from_address == f"user-{winner.user_code}@relay.example"
    assert [pair.user_code for pair in relay.directory.list_pairs(service.code)] == [winner.user_code]
    assert list(relay.directory.aliases) == [winner.user_code]
    assert (outcome.action, outcome.new_conversation) == (Action.FORWARDED, False)


# -- exactly once, mail to a user code (claimed on the alias item, docs/store.md) ------------------------------


def _reply_delivery(to_service: SentMail, message_id: str) -> DeliveryKey:
    return DeliveryKey(message_id, to_service.from_address)


def test_relay_inbound_reply_crash_after_claim_raises_delivery_in_doubt_on_retry(relay: Relay) -> None:
    # Given a service's reply whose attempt died right after claiming its delivery
    _, to_service = relay.start_conversation()
    message_id = new_message_id()

    def crash(delivery: DeliveryKey, new_pair: Pair | None) -> None:
        raise _Crash

    relay.directory.after_claim = crash
    with pytest.raises(_Crash):
        relay.service_replies(to_service.from_address, to_service.header_message_id, message_id=message_id)
    relay.directory.after_claim = None

    # When the event is retried
    with pytest.raises(DeliveryInDoubt):
        relay.service_replies(to_service.from_address, to_service.header_message_id, message_id=message_id)

    # Then the claim is still open and the user got nothing
    assert relay.directory.delivery_state(_reply_delivery(to_service, message_id)) is DeliveryState.IN_PROGRESS
    assert len(relay.mailer.sent) == 1


def test_relay_inbound_reply_send_failed_gives_claim_back_and_retry_sends_once(relay: Relay) -> None:
    # Given a reply whose send SES answered with a throttling error
    _, to_service = relay.start_conversation()
    message_id = new_message_id()
    relay.mailer.fail_next(SendFailed("SES answered Throttling"))
    with pytest.raises(SendFailed):
        relay.service_replies(to_service.from_address, to_service.header_message_id, message_id=message_id)
    released = relay.directory.delivery_state(_reply_delivery(to_service, message_id))

    # When Lambda retries the event, twice
    first_retry = _only(relay.service_replies(to_service.from_address, to_service.header_message_id,
                                              message_id=message_id))
    second_retry = _only(relay.service_replies(to_service.from_address, to_service.header_message_id,
                                               message_id=message_id))

    # Then the claim had been given back, the reply went out once, and the delivery is closed as sent
    assert released is None
    assert (first_retry.action, second_retry.action) == (Action.FORWARDED, Action.DUPLICATE)
    assert [sent.to_address for sent in relay.mailer.sent] == [OWNER, USER]
    assert relay.directory.delivery_state(_reply_delivery(to_service, message_id)) is DeliveryState.SENT


def test_relay_inbound_reply_send_rejected_closes_delivery_and_retry_is_duplicate(relay: Relay) -> None:
    # Given a reply SES refuses for good
    _, to_service = relay.start_conversation()
    message_id = new_message_id()
    relay.mailer.fail_next(SendRejected("MessageRejected"))
    outcome = _only(relay.service_replies(to_service.from_address, to_service.header_message_id,
                                          message_id=message_id))

    # When it is delivered again
    retry = _only(relay.service_replies(to_service.from_address, to_service.header_message_id,
                                        message_id=message_id))

    # Then the first is rejected and closed (no claim left on the alias), the retry a duplicate, one send tried
    assert (outcome.action, outcome.reason) == (Action.REJECTED, Reason.SEND_REJECTED)
    assert relay.directory.delivery_state(_reply_delivery(to_service, message_id)) is DeliveryState.REJECTED
    assert retry.action is Action.DUPLICATE
    assert relay.mailer.attempts == 2


def test_relay_inbound_refused_reply_gives_its_claim_back_before_the_notice(relay: Relay) -> None:
    # Given a conversation, and a stranger writing to its user code
    _, to_service = relay.start_conversation()
    message_id = new_message_id()

    # When the stranger's message is handled, then delivered again
    outcome = _only(relay.service_replies(to_service.from_address, to_service.header_message_id,
                                          {"Owner@Holiday-Flats.example": "spam@elsewhere.example"},
                                          message_id=message_id))
    retry = _only(relay.service_replies(to_service.from_address, to_service.header_message_id,
                                        {"Owner@Holiday-Flats.example": "spam@elsewhere.example"},
                                        message_id=message_id))

    # Then one notice went out under the delivery's own claim, now closed, and no claim is left on the alias
    assert (outcome.reason, outcome.notice_sent, retry.action) == (Reason.STRANGER, True, Action.DUPLICATE)
    assert relay.directory.delivery_state(_reply_delivery(to_service, message_id)) is DeliveryState.REJECTED
    assert relay.directory.alias_claims == {to_service.from_address[5:21]: {}}
    assert len(relay.mailer.sent) == 2


def test_relay_inbound_reply_read_fault_gives_claim_back_for_the_retry(relay: Relay,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a reply whose second read fails once (DynamoDB throttled it)
    _, to_service = relay.start_conversation()
    message_id = new_message_id()
    read = relay.directory.load_for_service_mail

    def failing_once(*args: Any) -> Snapshot:
        monkeypatch.setattr(relay.directory, "load_for_service_mail", read)
        raise RelayFault("could not read from DynamoDB")

    monkeypatch.setattr(relay.directory, "load_for_service_mail", failing_once)
    with pytest.raises(RelayFault):
        relay.service_replies(to_service.from_address, to_service.header_message_id, message_id=message_id)

    # When Lambda retries the event
    outcome = _only(relay.service_replies(to_service.from_address, to_service.header_message_id,
                                          message_id=message_id))

    # Then the fault left no claim behind, and the retry relays the reply
    assert outcome.action is Action.FORWARDED
    assert len(relay.mailer.sent) == 2


def test_relay_inbound_reply_to_unknown_user_code_claims_nothing(relay: Relay) -> None:
    # Given a genuine user code that no pair has
    address = f"user-{CodeBook(KEYRING).new_code(CodeKind.USER)}@relay.example"

    # When the same message to it arrives twice
    raw = load_eml("service_reply.eml", {"user-placeholder@relay.example": address})
    message_id = new_message_id()
    first = _only(relay.deliver(raw, [address], OWNER, message_id))
    second = _only(relay.deliver(raw, [address], OWNER, message_id))

    # Then nothing was claimed on any alias, and the writer was told once
    assert relay.directory.alias_claims == {}
    assert (first.reason, second.action) == (Reason.UNKNOWN_CODE, Action.DUPLICATE)
    assert [sent.to_address for sent in relay.mailer.sent] == [OWNER]


# -- pair figures -------------------------------------------------------------------------------------------------


def test_relay_inbound_pair_figures_after_user_user_service_user(relay: Relay) -> None:
    # Given a service
    service = relay.register()

    # When the user writes twice, the service answers, and the user writes again
    relay.user_writes(service)
    relay.clock.advance(60)
    relay.user_writes(service, "user_follow_up.eml")
    relay.clock.advance(3540)
    to_service = relay.mailer.sent[0]
    reply = _only(relay.service_replies(to_service.from_address, to_service.header_message_id))
    relay.clock.advance(3600)
    relay.user_writes(service, "user_follow_up.eml")

    # Then the pair counts both sides, and waits on the last user message only
    [pair] = relay.directory.list_pairs(service.code)
    assert pair == Pair(service_code=service.code, user_address=USER, user_code=pair.user_code, started_at=START,
                        user_messages=3, service_messages=1, awaiting_reply_since=START + 7200,
                        first_reply_at=START + 3600, last_user_message_at=START + 7200,
                        last_service_message_at=START + 3600)
    assert reply.response_seconds == 3600


# -- threading ------------------------------------------------------------------------------------------------


def test_relay_inbound_maps_service_in_reply_to_back_to_user_message_id(relay: Relay) -> None:
    # Given the service received the user's message under the SES id of our copy
    _, to_service = relay.start_conversation()

    # When the service replies, threading on that id
    relay.service_replies(to_service.from_address, to_service.header_message_id)

    # Then the user's client sees its own Message-ID in In-Reply-To and References
    to_user = relay.mailer.sent[1].parsed()
    assert (to_user["In-Reply-To"], to_user["References"]) == (USER_MESSAGE_ID, USER_MESSAGE_ID)


def test_relay_inbound_maps_user_reference_to_ses_id_of_service_copy(relay: Relay) -> None:
    # Given a conversation in which the service replied
    service, to_service = relay.start_conversation()
    relay.service_replies(to_service.from_address, to_service.header_message_id)
    to_user = relay.mailer.sent[1]

    # When the user follows up, referencing their own first message and the reply they received
    relay.user_writes(service, "user_follow_up.eml", {"<ses-in-reply-to-placeholder>": to_user.header_message_id})

    # Then the service sees ids it knows: the SES id of its copy of the first message, and its own reply's id
    follow_up = relay.mailer.sent[2].parsed()
    assert follow_up["In-Reply-To"] == SERVICE_MESSAGE_ID
    assert follow_up["References"] == f"{to_service.header_message_id} {SERVICE_MESSAGE_ID}"


def test_relay_inbound_drops_foreign_reference_it_cannot_map(relay: Relay) -> None:
    # Given the service received the user's message
    _, to_service = relay.start_conversation()

    # When its reply also references a message of its own that never went through the relay
    relay.service_replies(to_service.from_address, to_service.header_message_id, {
        "References: <ses-in-reply-to-placeholder>":
            f"References: <older-7@holiday-flats.example> {to_service.header_message_id}"})

    # Then that id is dropped (it names the service's own domain), the mapped one stays
    to_user = relay.mailer.sent[1]
    assert to_user.parsed()["References"] == USER_MESSAGE_ID
    assert b"older-7" not in to_user.header_block


def test_relay_inbound_does_not_map_ses_id_of_another_pairs_copy(relay: Relay) -> None:
    # Given two users in conversation with one service
    service = relay.register()
    relay.user_writes(service, replacements={FROM_JANE: "From: Bob <bob@other-user.example>",
                                             USER_MESSAGE_ID: "<bob-1@other-user.example>"}, source=OTHER_USER)
    to_service_bob = relay.mailer.sent[0]
    _, to_service_jane = relay.start_conversation(service)

    # When the service's reply to Jane references the copy of Bob's message
    relay.service_replies(to_service_jane.from_address, to_service_jane.header_message_id, {
        "References: <ses-in-reply-to-placeholder>":
            f"References: {to_service_bob.header_message_id} {to_service_jane.header_message_id}"})

    # Then Jane's copy names her own message, and never Bob's
    to_jane = relay.mailer.sent[2]
    assert to_jane.to_address == USER
    assert USER_MESSAGE_ID.encode() in to_jane.header_block
    assert b"bob-1@other-user.example" not in to_jane.header_block


def test_relay_inbound_does_not_map_foreign_id_of_another_pairs_message(relay: Relay) -> None:
    # Given Bob wrote to a service
    service = relay.register()
    relay.user_writes(service, replacements={FROM_JANE: "From: Bob <bob@other-user.example>",
                                             USER_MESSAGE_ID: "<bob-1@other-user.example>"}, source=OTHER_USER)
    to_service_bob = relay.mailer.sent[0]

    # When Jane writes to the same service, referencing Bob's Message-ID
    relay.user_writes(service, "user_follow_up.eml", {"<ses-in-reply-to-placeholder>": "<bob-1@other-user.example>"})

    # Then the service's copy does not point at its copy of Bob's message
    to_service_jane = relay.mailer.sent[1]
    assert to_service_bob.ses_message_id.encode() not in to_service_jane.header_block
