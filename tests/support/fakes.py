"""In-memory fakes of the ports (``Directory``, ``Mailer``, ``MailStore``) and a ``RelayContext`` wired with them.

``InMemoryDirectory`` follows ``emailflow.adapters.dynamodb.DynamoDirectory`` write for write: the same conditions
(a claim succeeds only on a missing or expired delivery; a first message's pair, user-code alias and claim are
written all or nothing), the same ``ClaimResult`` precedence, the same expiry checks on reads and the same pair
update expressions in ``record_sent``. Hooks let a test play a concurrent writer or a crash at the exact moment a
race or a crash matters.
"""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from email.message import EmailMessage

from emailflow.addresses import RelayAddressing
from emailflow.codes import CodeBook, CodeKind, Keyring
from emailflow.events import InboundMail, Verdicts
from emailflow.feedback import AddressHealth, SentRecord
from emailflow.model import (
    DeliveryKey,
    DeliveryState,
    Direction,
    FeedbackState,
    Pair,
    SentMessage,
    Service,
    Snapshot,
    ThreadRefs,
)
from emailflow.ports import (
    ClaimResult,
    MailBytes,
    RelayFault,
    SenderBudget,
    UserCodeClaim,
    mail_bytes,
)
from emailflow.relay import RelayContext
from emailflow.senders import HeldMessage, HoldState, held_mail, kept_with
from emailflow.services import PriorRegistration, RegistrationRequest

DOMAIN = "relay.example"
BRAND = "emailflow"
KEYRING = Keyring(current=b"unit-test-code-secret-0123456789")
START = 1_795_600_800
"""2026-11-25 10:00:00 UTC, the day the fixture messages were written."""
DAY = 86_400
SES_DOMAIN = "email.amazonses.com"

ClaimHook = Callable[[DeliveryKey, Pair | None], None]


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class _Delivery:
    state: DeliveryState
    expires_at: int | None
    ses_message_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class _Timed:
    record: SentMessage
    expires_at: int


class InMemoryDirectory:
    """``Directory`` in dictionaries, with the conditional-write semantics of the DynamoDB adapter."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or FakeClock()
        self.services: dict[str, Service] = {}
        self.pairs: dict[tuple[str, str], Pair] = {}
        """(service code, user address) -> pair: the pair items."""
        self.aliases: dict[str, tuple[str, str]] = {}
        """user code -> (service code, user address): the alias items."""
        self.deliveries: dict[DeliveryKey, _Delivery] = {}
        self.alias_claims: dict[str, dict[DeliveryKey, int]] = {}
        """user code -> open claims of mail to it (delivery -> expiry): the ``claim#...`` attributes of its alias."""
        self.sent: dict[str, _Timed] = {}
        self.copies: dict[tuple[str, str], _Timed] = {}
        """(original message id, recipient key) -> our copy."""
        self.rates: dict[tuple[str, str, int], int] = {}
        """(service code, user address, minute) -> messages relayed in the pair that minute."""
        self.notices: dict[tuple[str, int], int] = {}
        """(sender key, hour) -> error mails sent."""
        self.sender_messages: dict[tuple[str, int], int] = {}
        """(sender key, hour) -> messages counted against the sender's budget."""
        self.health: dict[str, AddressHealth] = {}
        """address -> delivery health (the ADDR items)."""
        self.feedback: dict[str, dict[str, object]] = {}
        """SES message id -> feedback attributes on the sent item (bounce, complaint, delivered_at)."""
        self.held: dict[str, HeldMessage] = {}
        self.hold_guards: dict[tuple[str, str], tuple[int, str]] = {}
        """(service code, sender key) -> (expires_at, hold id): one pending approval per new sender (HOLDFOR)."""
        self.kept_later: dict[tuple[str, str], list[dict[str, str]]] = {}
        """(service code, sender key) -> the stored-mail fields of each message kept with its pending approval (the
        guard's ``later`` list)."""
        self.closed_guards: set[tuple[str, str]] = set()
        self.registrations: dict[str, tuple[PriorRegistration, int]] = {}
        """key digest -> (what it created, expires_at): the REQ items."""
        self.reads = 0
        """Read calls (each stands for one or two BatchGetItem round trips of the real store)."""
        self.claims = 0
        self.put_service_calls = 0
        self.before_claim: ClaimHook | None = None
        """Runs just before a claim is evaluated: a concurrent writer that wins the race."""
        self.after_claim: ClaimHook | None = None
        """Runs just after a successful claim: raise from it to simulate a crash between claim and send."""

    # -- test helpers ----------------------------------------------------------------------------------------

    def add_pair(self, pair: Pair) -> None:
        """Write a pair and its user-code alias, as another invocation's first message would."""
        self.pairs[(pair.service_code, pair.user_address)] = pair
        self.aliases[pair.user_code] = (pair.service_code, pair.user_address)

    def delivery_state(self, delivery: DeliveryKey) -> DeliveryState | None:
        """The stored state, expired or not (what a look at the table would show): a claim on an alias item is in
        progress; otherwise the delivery item's state."""
        if any(delivery in claims for claims in self.alias_claims.values()):
            return DeliveryState.IN_PROGRESS
        item = self.deliveries.get(delivery)
        return None if item is None else item.state

    def pair_of(self, service_code: str, user_address: str) -> Pair | None:
        return self.pairs.get((service_code, user_address))

    def sent_record(self, ses_message_id: str) -> SentMessage | None:
        timed = self.sent.get(ses_message_id)
        return None if timed is None else timed.record

    def list_pairs(self, service_code: str) -> list[Pair]:
        return [pair for (code, _), pair in self.pairs.items() if code == service_code]

    def list_services(self) -> list[Service]:
        return sorted(self.services.values(), key=lambda service: (service.created_at, service.code))

    # -- services ---------------------------------------------------------------------------------------------

    def put_service(self, service: Service) -> bool:
        self.put_service_calls += 1
        if service.code in self.services:
            return False
        self.services[service.code] = service
        return True

    def put_service_once(self, service: Service, request: RegistrationRequest) -> PriorRegistration | bool:
        self.put_service_calls += 1
        prior = self.registrations.get(request.key_digest)
        if prior is not None and prior[1] >= int(self._clock()):
            return prior[0]
        if service.code in self.services:
            return False
        self.services[service.code] = service
        self.registrations[request.key_digest] = (PriorRegistration(service.code, request.fingerprint),
                                                  request.expires_at)
        return True

    def update_service(self, service: Service) -> None:
        current = self.services.get(service.code)
        if current is None:
            raise RelayFault("DynamoDB update_item failed")
        self.services[service.code] = replace(current, addresses=service.addresses,
                                              display_name=service.display_name, context=dict(service.context))

    def get_service(self, code: str) -> Service | None:
        self.reads += 1
        return self.services.get(code)

    def set_service_status(self, service: Service) -> None:
        current = self.services.get(service.code)
        if current is None:  # the adapter's update is conditional on attribute_exists(pk)
            raise RelayFault("DynamoDB update_item failed")
        self.services[service.code] = replace(current, status=service.status)

    # -- relay reads ----------------------------------------------------------------------------------------

    def load_for_user_mail(self, service_code: str, user_address: str, delivery: DeliveryKey,
                           refs: ThreadRefs) -> Snapshot:
        self.reads += 1
        sent, copies = self._thread_records(refs)
        return Snapshot(service=self.services.get(service_code), pair=self.pairs.get((service_code, user_address)),
                        delivery=self._delivery_now(delivery), sent=sent, copies=copies,
                        recent_messages=self._recent(service_code, user_address))

    def claim_for_user_code(self, user_code: str, delivery: DeliveryKey, expires_at: int) -> UserCodeClaim:
        self.claims += 1
        if self.before_claim is not None:
            self.before_claim(delivery, None)
        alias = self.aliases.get(user_code)
        if alias is None:  # the update is conditional on attribute_exists(pk): nothing is written
            return UserCodeClaim(None)
        claims = self.alias_claims.setdefault(user_code, {})
        held = claims.get(delivery)
        if held is not None and held > int(self._clock()):  # "attribute_not_exists(#claim) OR #claim <= :now"
            return UserCodeClaim(ClaimResult.DUPLICATE, *alias)
        claims[delivery] = expires_at
        if self.after_claim is not None:
            self.after_claim(delivery, None)
        return UserCodeClaim(ClaimResult.CLAIMED, *alias)

    def load_for_service_mail(self, user_code: str, service_code: str, user_address: str, delivery: DeliveryKey,
                              refs: ThreadRefs) -> Snapshot:
        self.reads += 1
        sent, copies = self._thread_records(refs)
        return Snapshot(service=self.services.get(service_code), pair=self.pairs.get((service_code, user_address)),
                        delivery=self._delivery_now(delivery), sent=sent, copies=copies,
                        recent_messages=self._recent(service_code, user_address),
                        user_undeliverable=self._undeliverable(user_address))

    def _undeliverable(self, address: str) -> str | None:
        health = self.health.get(address)
        return None if health is None else health.undeliverable_reason

    def _recent(self, service_code: str, user_address: str) -> int:
        return self.rates.get((service_code, user_address, int(self._clock()) // 60), 0)

    def _thread_records(self, refs: ThreadRefs) -> tuple[dict[str, SentMessage], dict[str, SentMessage]]:
        sent = {ses_id: timed.record for ses_id in refs.ses_ids.values()
                if (timed := self.sent.get(ses_id)) is not None and not self._expired(timed.expires_at)}
        copies = {message_id: timed.record for message_id in refs.foreign_ids
                  if (timed := self.copies.get((message_id, refs.recipient_key))) is not None
                  and not self._expired(timed.expires_at)}
        return sent, copies

    def _delivery_now(self, delivery: DeliveryKey) -> DeliveryState | None:
        item = self.deliveries.get(delivery)
        return None if item is None or self._expired(item.expires_at) else item.state

    def _expired(self, expires_at: int | None) -> bool:
        # TTL deletion lags, so the real store compares expires_at itself; an item without one never expires.
        return expires_at is not None and expires_at <= self._clock()

    # -- relay writes ---------------------------------------------------------------------------------------

    def claim_delivery(self, delivery: DeliveryKey, new_pair: Pair | None, expires_at: int,
                       budget: SenderBudget | None = None) -> ClaimResult:
        self.claims += 1
        if self.before_claim is not None:
            self.before_claim(delivery, new_pair)
        existing = self.deliveries.get(delivery)
        # "attribute_not_exists(pk) OR expires_at <= :now": an item without expires_at fails the comparison.
        claim_fails = existing is not None and (existing.expires_at is None or existing.expires_at > int(self._clock()))
        budget_fails = budget is not None and \
            self.sender_messages.get((budget.sender_key, budget.window), 0) >= budget.limit
        # One write: any failed condition cancels everything; the claim's reason is read first, then the pair's,
        # then the budget's (the adapter's order).
        if claim_fails:
            return ClaimResult.DUPLICATE
        if new_pair is not None:
            if (new_pair.service_code, new_pair.user_address) in self.pairs:
                return ClaimResult.PAIR_EXISTS
            if budget_fails:
                return ClaimResult.BUDGET_SPENT
            if new_pair.user_code in self.aliases:
                raise RelayFault("claim cancelled: user code taken")
            self.add_pair(Pair(service_code=new_pair.service_code, user_address=new_pair.user_address,
                               user_code=new_pair.user_code, started_at=new_pair.started_at))
        elif budget_fails:
            return ClaimResult.BUDGET_SPENT
        if budget is not None:
            counted = (budget.sender_key, budget.window)
            self.sender_messages[counted] = self.sender_messages.get(counted, 0) + 1
        self.deliveries[delivery] = _Delivery(DeliveryState.IN_PROGRESS, expires_at)
        if self.after_claim is not None:
            self.after_claim(delivery, new_pair)
        return ClaimResult.CLAIMED

    def release_delivery(self, delivery: DeliveryKey, alias: str | None = None) -> None:
        if alias is not None:  # REMOVE conditional on attribute_exists(#claim)
            if delivery not in self.alias_claims.get(alias, {}):
                raise RelayFault("could not release the delivery claim")
            del self.alias_claims[alias][delivery]
            return
        item = self.deliveries.get(delivery)
        if item is None or item.state is not DeliveryState.IN_PROGRESS:  # delete conditional on state = open
            raise RelayFault("could not release the delivery claim")
        del self.deliveries[delivery]

    def reject_delivery(self, delivery: DeliveryKey, reason: str, alias: str | None = None,
                        expires_at: int | None = None) -> None:
        if alias is not None and alias not in self.aliases:  # the claim's removal needs attribute_exists(pk)
            raise RelayFault("DynamoDB transact_write_items failed")
        # An unconditional update_item: it creates the item if it is missing and keeps expires_at if present
        # (if_not_exists when one is given).
        item = self.deliveries.setdefault(delivery, _Delivery(DeliveryState.REJECTED, expires_at))
        item.state, item.reason = DeliveryState.REJECTED, reason
        if item.expires_at is None:
            item.expires_at = expires_at
        if alias is not None:
            self.alias_claims.get(alias, {}).pop(delivery, None)

    def record_sent(self, delivery: DeliveryKey, sent: SentMessage, pair: Pair, recipient_key: str,
                    sent_expires_at: int, delivery_expires_at: int | None = None) -> None:
        stored = self.pairs.get((pair.service_code, pair.user_address))
        if stored is None:  # the pair update is conditional on attribute_exists(pk): the transaction is cancelled
            raise RelayFault("DynamoDB transact_write_items failed")
        if sent.direction is Direction.TO_USER and pair.user_code not in self.aliases:  # claim removal: same
            raise RelayFault("DynamoDB transact_write_items failed")
        now = sent.sent_at
        if sent.sender_automatic and sent.direction is Direction.TO_SERVICE:
            updated = replace(stored, user_auto_replies=stored.user_auto_replies + 1)  # ADD user_auto_replies :one
        elif sent.sender_automatic:
            updated = replace(stored, service_auto_replies=stored.service_auto_replies + 1)
        elif sent.direction is Direction.TO_SERVICE:
            # SET last_user_message_at = :now, awaiting_reply_since = if_not_exists(awaiting_reply_since, :now)
            # ADD user_messages :one
            updated = replace(stored, last_user_message_at=now, user_messages=stored.user_messages + 1,
                              awaiting_reply_since=stored.awaiting_reply_since if stored.awaiting_reply_since
                              is not None else now)
        else:
            # SET last_service_message_at = :now, first_reply_at = if_not_exists(first_reply_at, :now)
            # REMOVE awaiting_reply_since ADD service_messages :one
            updated = replace(stored, last_service_message_at=now, service_messages=stored.service_messages + 1,
                              first_reply_at=stored.first_reply_at if stored.first_reply_at is not None else now,
                              awaiting_reply_since=None)
        if sent.contact_details:  # ADD contact_details_messages :one
            updated = replace(updated, contact_details_messages=updated.contact_details_messages + 1)
        # An unconditional update: creates the delivery item for an alias claim, expires_at if_not_exists.
        item = self.deliveries.setdefault(delivery, _Delivery(DeliveryState.SENT, delivery_expires_at))
        item.state, item.ses_message_id = DeliveryState.SENT, sent.ses_message_id
        if item.expires_at is None:
            item.expires_at = delivery_expires_at
        if sent.direction is Direction.TO_USER:
            self.alias_claims.get(pair.user_code, {}).pop(delivery, None)
        self.sent[sent.ses_message_id] = _Timed(sent, sent_expires_at)
        if sent.original_message_id:
            self.copies[(sent.original_message_id, recipient_key)] = _Timed(sent, sent_expires_at)
        self.pairs[(pair.service_code, pair.user_address)] = updated
        rate = (pair.service_code, pair.user_address, sent.sent_at // 60)
        self.rates[rate] = self.rates.get(rate, 0) + 1

    # -- feedback -------------------------------------------------------------------------------------------

    def feedback_context(self, ses_message_id: str, address: str | None) -> tuple[SentRecord | None, AddressHealth]:
        self.reads += 1
        timed = self.sent.get(ses_message_id)
        record = None
        if timed is not None:
            attributes = self.feedback.get(ses_message_id, {})
            bounce, complaint = attributes.get("bounce"), attributes.get("complaint")
            record = SentRecord(timed.record, bounce if isinstance(bounce, FeedbackState) else None,
                                complaint if isinstance(complaint, FeedbackState) else None,
                                "delivered_at" in attributes)
        health = self.health.get(address or "", AddressHealth(address or ""))
        return record, health

    def record_bounce(self, sent: SentMessage, address: str, undeliverable_reason: str | None, now: int) -> bool:
        attributes = self.feedback.setdefault(sent.ses_message_id, {})
        if sent.ses_message_id not in self.sent or "bounce" in attributes:
            return False
        attributes["bounce"] = FeedbackState.DONE
        old = self.health.get(address, AddressHealth(address))
        reason = undeliverable_reason if undeliverable_reason is not None else old.undeliverable_reason
        self.health[address] = AddressHealth(address, reason, old.transient_bounces + 1)
        if undeliverable_reason is not None and sent.direction is Direction.TO_SERVICE:
            service = self.services.get(sent.service_code)
            if service is None:
                raise RelayFault("DynamoDB transaction failed")
            self.services[sent.service_code] = replace(
                service, undeliverable={**service.undeliverable, address: undeliverable_reason})
        return True

    def set_bounce_state(self, ses_message_id: str, state: FeedbackState) -> None:
        self.feedback.setdefault(ses_message_id, {})["bounce"] = state

    def record_complaint(self, sent: SentMessage, reason: str, now: int) -> bool:
        attributes = self.feedback.setdefault(sent.ses_message_id, {})
        pair = self.pairs.get((sent.service_code, sent.user_address))
        if sent.ses_message_id not in self.sent or "complaint" in attributes:
            return False
        if pair is None:
            raise RelayFault("DynamoDB transaction failed")
        attributes["complaint"] = FeedbackState.DONE
        self.pairs[(sent.service_code, sent.user_address)] = replace(
            pair, suspended={**pair.suspended, sent.direction.value: reason})
        return True

    def record_delivery(self, sent: SentMessage, address: str, now: int) -> bool:
        attributes = self.feedback.setdefault(sent.ses_message_id, {})
        pair = self.pairs.get((sent.service_code, sent.user_address))
        if sent.ses_message_id not in self.sent or "delivered_at" in attributes:
            return False
        if pair is None:
            raise RelayFault("DynamoDB transaction failed")
        attributes["delivered_at"] = now
        if sent.direction is Direction.TO_SERVICE:
            pair = replace(pair, delivered_to_service=pair.delivered_to_service + 1)
        else:
            pair = replace(pair, delivered_to_user=pair.delivered_to_user + 1)
        self.pairs[(sent.service_code, sent.user_address)] = pair
        old = self.health.get(address, AddressHealth(address))
        self.health[address] = AddressHealth(address, old.undeliverable_reason, 0)
        return True

    # -- new senders held for approval ------------------------------------------------------------------------

    def hold_message(self, held: HeldMessage, sender_key: str) -> bool:
        now = int(self._clock())
        existing = self.held.get(held.hold_id)
        guard = self.hold_guards.get((held.service_code, sender_key))
        if existing is not None and existing.state is not HoldState.PENDING:
            return False
        if guard is not None and guard[0] > now and guard[1] != held.hold_id:
            return False
        self.held[held.hold_id] = replace(held, sender_key=sender_key)
        guard_key = (held.service_code, sender_key)
        if guard is None or guard[1] != held.hold_id:  # a new guard item: nothing kept with it, not closed
            self.kept_later.pop(guard_key, None)
            self.closed_guards.discard(guard_key)
        self.hold_guards[guard_key] = (held.expires_at, held.hold_id)
        return True

    def hold_later(self, held: HeldMessage, sender_key: str, limit: int) -> bool:
        guard_key = (held.service_code, sender_key)
        guard = self.hold_guards.get(guard_key)
        kept = self.kept_later.setdefault(guard_key, [])
        if guard is None or guard[0] <= int(self._clock()) or guard[1] == held.hold_id or \
                guard_key in self.closed_guards or len(kept) >= limit:
            return False
        kept.append(held_mail(held))
        return True

    def close_hold(self, held: HeldMessage) -> list[HeldMessage]:
        guard_key = (held.service_code, held.sender_key)
        guard = self.hold_guards.get(guard_key)
        if guard is None or guard[1] != held.hold_id:
            return []
        self.closed_guards.add(guard_key)
        return [kept_with(held, mail) for mail in self.kept_later.get(guard_key, [])]

    def get_held(self, hold_id: str) -> HeldMessage | None:
        self.reads += 1
        return self.held.get(hold_id)

    def approve_held(self, hold_id: str, now: int) -> bool:
        held = self.held.get(hold_id)
        if held is None or held.state is not HoldState.PENDING or held.expires_at <= now:
            return False
        self.held[hold_id] = replace(held, state=HoldState.APPROVED)
        return True

    def reopen_delivery(self, delivery: DeliveryKey, reason: str) -> bool:
        item = self.deliveries.get(delivery)
        if item is None:
            return True
        if item.state is not DeliveryState.REJECTED or item.reason != reason:
            return False
        del self.deliveries[delivery]
        return True

    # -- operator reads and repairs ---------------------------------------------------------------------------

    def get_alias(self, user_code: str) -> tuple[str, str] | None:
        self.reads += 1
        return self.aliases.get(user_code)

    def find_pair(self, user_code: str) -> Pair | None:
        self.reads += 1
        alias = self.aliases.get(user_code)
        return None if alias is None else self.pairs.get(alias)

    def address_health(self, address: str) -> AddressHealth:
        self.reads += 1
        return self.health.get(address, AddressHealth(address))

    def forget_address_health(self, address: str) -> None:
        self.health.pop(address, None)

    def clear_service_undeliverable(self, service_code: str, address: str) -> None:
        current = self.services.get(service_code)
        if current is None:
            raise RelayFault("DynamoDB update_item failed")
        self.services[service_code] = replace(
            current, undeliverable={key: value for key, value in current.undeliverable.items() if key != address})

    def resume_pair(self, service_code: str, user_address: str, direction: Direction) -> None:
        current = self.pairs.get((service_code, user_address))
        if current is None:
            raise RelayFault("DynamoDB update_item failed")
        self.pairs[(service_code, user_address)] = replace(
            current, suspended={key: value for key, value in current.suspended.items() if key != direction.value})

    def allow_notice(self, sender_key: str, window: int, limit: int, expires_at: int) -> bool:
        return _count_within(self.notices, (sender_key, window), limit)


def _count_within(counters: dict[tuple[str, int], int], key: tuple[str, int], limit: int) -> bool:
    """ADD count :one, conditional on count < limit (expiry is by window: a new hour is a new item)."""
    count = counters.get(key, 0)
    if count >= limit:
        return False
    counters[key] = count + 1
    return True


@dataclass(frozen=True)
class SentMail:
    """One message handed to the fake mail service."""

    ses_message_id: str
    raw: bytes
    from_address: str
    to_address: str
    tags: Mapping[str, str]

    @property
    def header_block(self) -> bytes:
        end = self.raw.find(b"\r\n\r\n")
        return self.raw if end == -1 else self.raw[:end]

    @property
    def header_message_id(self) -> str:
        """The Message-ID SES gives this mail on the wire: what the recipient's client threads on."""
        return f"<{self.ses_message_id}@{SES_DOMAIN}>"

    def parsed(self) -> EmailMessage:
        message: EmailMessage = email.message_from_bytes(self.raw, policy=email.policy.default)
        return message


@dataclass
class RecordingMailer:
    """``Mailer`` that records every send and answers with SES-shaped message ids; can fail the next send."""

    sent: list[SentMail] = field(default_factory=list)
    attempts: int = 0
    _failures: list[BaseException] = field(default_factory=list)

    def fail_next(self, *errors: BaseException) -> None:
        """Raise these on the next sends, one per send, in order (``SendFailed``, ``SendRejected``, anything)."""
        self._failures.extend(errors)

    def send_raw(self, raw: MailBytes, *, from_address: str, to_address: str, tags: Mapping[str, str]) -> str:
        self.attempts += 1
        if self._failures:
            raise self._failures.pop(0)
        number = len(self.sent) + 1
        ses_message_id = f"0100019a{number:08x}-{uuid.UUID(int=number)}-000000"
        self.sent.append(SentMail(ses_message_id, bytes(mail_bytes(raw)), from_address, to_address, dict(tags)))
        return ses_message_id


@dataclass
class DictMailStore:
    """``MailStore`` on a dict: raw mail by inbound message id; counts reads."""

    objects: dict[str, bytes] = field(default_factory=dict)
    reads: int = 0

    def put(self, message_id: str, raw: bytes) -> None:
        self.objects[message_id] = raw

    def copy_key(self, name: str) -> str:
        return f"copies/{name}"

    def put_copy(self, name: str, raw: bytes) -> str:
        key = self.copy_key(name)
        self.objects[key] = raw
        return key

    def download_url(self, key: str, seconds: int) -> str:
        return f"https://inbound.example/{key}?expires={seconds}"

    def get_raw(self, key: str) -> bytes:
        self.reads += 1
        try:
            return self.objects[key]
        except KeyError:  # S3 NoSuchKey surfaces from the adapter as a fault
            raise RelayFault("could not read the inbound message from S3") from None


class ScriptedCodeBook(CodeBook):
    """A ``CodeBook`` whose ``new_code`` hands out given codes first (to force a collision), then random ones."""

    def __init__(self, keyring: Keyring, codes: Iterable[str] = ()) -> None:
        super().__init__(keyring)
        self._script = list(codes)

    def new_code(self, kind: CodeKind) -> str:
        return self._script.pop(0) if self._script else super().new_code(kind)


def make_context(*, directory: InMemoryDirectory | None = None, mailer: RecordingMailer | None = None,
                 mail_store: DictMailStore | None = None, clock: FakeClock | None = None,
                 codebook: CodeBook | None = None, sent_record_seconds: int = 90 * DAY,
                 delivery_record_seconds: int = 7 * DAY) -> RelayContext:
    """A ``RelayContext`` on fakes: fixed keyring, ``relay.example``, brand ``emailflow``, a controllable clock
    shared with the directory (pass your own fakes to inspect them)."""
    clock = clock or FakeClock()
    return RelayContext(
        addressing=RelayAddressing(DOMAIN),
        brand=BRAND,
        codebook=codebook or CodeBook(KEYRING),
        keyring=KEYRING,
        directory=directory if directory is not None else InMemoryDirectory(clock),
        mailer=mailer if mailer is not None else RecordingMailer(),
        mail_store=mail_store if mail_store is not None else DictMailStore(),
        sent_record_seconds=sent_record_seconds,
        delivery_record_seconds=delivery_record_seconds,
        ses_message_id_domain=SES_DOMAIN,
        clock=clock,
    )


def inbound_mail(message_id: str, recipients: Iterable[str], envelope_sender: str) -> InboundMail:
    """The ``InboundMail`` of an SES receipt event for a stored message (verdicts all pass)."""
    passed = Verdicts(spf="PASS", dkim="PASS", spam="PASS", virus="PASS", dmarc="PASS")
    return InboundMail(message_id=message_id, recipients=tuple(recipients), envelope_sender=envelope_sender,
                       timestamp="2026-11-25T10:00:00.000Z", verdicts=passed)
