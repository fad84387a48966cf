"""The relay use case: one inbound message, each of its relay recipients to exactly one outcome.

Orchestrates the ports (``MailStore``, ``Directory``, ``Mailer``) around the pure pieces (codes, header rewrite). No
AWS SDK here: the handler wires adapters in, tests wire fakes or moto-backed adapters in.

Exactly-once per (inbound message id, recipient): the delivery is *claimed* in the store with a conditional write
before the send and closed after it. A claim found closed is a duplicate (nothing is sent); a claim found still open
means an earlier attempt died between claim and close, when nobody knows whether SES got the mail, so the relay
raises ``DeliveryInDoubt`` instead of risking a second copy: the event is retried, then parked in the DLQ with the
raw mail still in S3 (docs/reliability.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from email.utils import formatdate

from emailflow.addresses import (
    InvalidAddress,
    RelayAddress,
    RelayAddressing,
    address_digest,
    normalise_address,
    without_subaddress,
)
from emailflow.codes import CodeBook, CodeKind, Keyring
from emailflow.events import InboundMail
from emailflow.loops import loop_marker
from emailflow.message import InboundHeaders, SplitMessage, split_message
from emailflow.model import DeliveryKey, DeliveryState, Direction, Pair, SentMessage, Service, Snapshot, ThreadRefs
from emailflow.observability import logger
from emailflow.outcomes import Action, Reason, RelayOutcome
from emailflow.ports import ClaimResult, Directory, Mailer, MailStore, RelayFault, SendFailed, SendRejected
from emailflow.rewrite import RewritePlan, relay_display_name, rewrite_headers

MAX_THREAD_LOOKUPS = 10
"""In-Reply-To plus the newest References: enough to thread, bounded so a crafted header costs little."""
SES_MESSAGE_ID_DOMAIN = ".amazonses.com"


class DeliveryInDoubt(RelayFault):
    """An earlier attempt claimed this delivery and never closed it: it may or may not have been sent."""


@dataclass(frozen=True, slots=True)
class RelayContext:
    """Everything the use case needs, wired once per container."""

    addressing: RelayAddressing
    brand: str
    codebook: CodeBook
    keyring: Keyring
    directory: Directory
    mailer: Mailer
    mail_store: MailStore
    sent_record_seconds: int
    delivery_record_seconds: int
    ses_message_id_domain: str = "email.amazonses.com"
    """The right-hand side of the Message-ID SES gives sent mail in this region."""
    clock: Callable[[], float] = time.time


@dataclass(frozen=True, slots=True)
class _Inbound:
    """The parsed inbound message shared by all its recipients."""

    mail: InboundMail
    raw: bytes
    split: SplitMessage
    headers: InboundHeaders


def relay_inbound(mail: InboundMail, context: RelayContext) -> list[RelayOutcome]:
    """Relay one inbound message to each of its relay recipients. Raises only ``RelayFault`` (retry may help)."""
    checked: dict[str, RelayAddress | Reason] = {}
    for recipient in mail.recipients:
        target = _check_recipient(recipient.strip().lower(), context)
        # One delivery per relay address, whatever its spelling: "service-<code>+tag@" and a look-alike
        # spelling of the same code are the same recipient and must not produce two copies.
        key = recipient.strip().lower() if isinstance(target, Reason) else \
            context.addressing.address(target.kind, target.code)
        checked.setdefault(key, target)
    inbound: _Inbound | None = None
    outcomes = []
    for recipient, target in checked.items():
        if isinstance(target, Reason):
            outcomes.append(_rejected(recipient, target))
            continue
        if inbound is None:  # read S3 only once a recipient passed the keyed check: guesses cost no I/O
            raw = context.mail_store.get_raw(mail.message_id)
            split = split_message(raw)
            inbound = _Inbound(mail, raw, split, InboundHeaders.read(split))
        outcomes.append(_relay_one(inbound, recipient, target, context))
    for outcome in outcomes:
        logger.info("relay outcome", action=str(outcome.action), reason=str(outcome.reason),
                    direction=str(outcome.direction) if outcome.direction else None,
                    inbound_message_id=mail.message_id, ses_message_id=outcome.ses_message_id)
    return outcomes


def _check_recipient(recipient: str, context: RelayContext) -> RelayAddress | Reason:
    if not context.addressing.is_relay_domain(recipient):
        return Reason.NOT_RELAY_DOMAIN
    target = context.addressing.parse(recipient, context.codebook)
    return Reason.INVALID_CODE if target is None else target


def _rejected(recipient: str, reason: Reason, direction: Direction | None = None) -> RelayOutcome:
    return RelayOutcome(recipient=recipient, action=Action.REJECTED, reason=reason, direction=direction)


def _sender(headers: InboundHeaders) -> tuple[str, str] | Reason:
    """(display name, normalised address) of the single From mailbox, or why there is none."""
    if not headers.from_addresses:
        return Reason.NO_FROM
    if len(headers.from_addresses) > 1:
        return Reason.MULTIPLE_FROM
    name, address = headers.from_addresses[0]
    try:
        return name, normalise_address(address)
    except InvalidAddress:
        return Reason.INVALID_FROM


def _thread_refs(headers: InboundHeaders, recipient_key: str) -> ThreadRefs:
    """In-Reply-To and the newest References, split into ids SES gave our copies and ids of the sender's side."""
    ses_ids: dict[str, str] = {}
    foreign: list[str] = []
    for message_id in dict.fromkeys((*headers.in_reply_to, *reversed(headers.references))):
        if len(ses_ids) + len(foreign) >= MAX_THREAD_LOOKUPS:
            break
        local, _, domain = message_id[1:-1].rpartition("@")
        if local and domain.lower().endswith(SES_MESSAGE_ID_DOMAIN):
            ses_ids[message_id] = local
        else:
            foreign.append(message_id)
    return ThreadRefs(recipient_key=recipient_key, ses_ids=ses_ids, foreign_ids=tuple(foreign))


def _relay_one(inbound: _Inbound, recipient: str, target: RelayAddress, context: RelayContext) -> RelayOutcome:
    sender = _sender(inbound.headers)
    direction = Direction.TO_SERVICE if target.kind is CodeKind.SERVICE else Direction.TO_USER
    if isinstance(sender, Reason):
        return _rejected(recipient, sender, direction)
    delivery = DeliveryKey(inbound.mail.message_id, recipient)
    refs = _thread_refs(inbound.headers, f"{target.kind.value}:{target.code}")
    if target.kind is CodeKind.SERVICE:
        return _to_service(inbound, delivery, target.code, sender, refs, context)
    return _to_user(inbound, delivery, target.code, sender, refs, context)


def _to_service(inbound: _Inbound, delivery: DeliveryKey, service_code: str, sender: tuple[str, str],
                refs: ThreadRefs, context: RelayContext) -> RelayOutcome:
    name, user_address = sender
    directory = context.directory
    snapshot = directory.load_for_user_mail(service_code, user_address, delivery, refs)
    service = snapshot.service
    if service is None:
        return _rejected(delivery.recipient, Reason.UNKNOWN_CODE, Direction.TO_SERVICE)
    if not service.active:
        return _rejected(delivery.recipient, Reason.SERVICE_DISABLED, Direction.TO_SERVICE)
    if duplicate := _duplicate(snapshot, delivery, Direction.TO_SERVICE):
        return duplicate
    now = int(context.clock())
    pair = snapshot.pair
    new_pair = None
    if pair is None:
        new_pair = pair = Pair(service_code=service.code, user_address=user_address,
                               user_code=context.codebook.new_code(CodeKind.USER), started_at=now)
    claim = directory.claim_delivery(delivery, new_pair, now + context.delivery_record_seconds)
    raced = claim is ClaimResult.PAIR_EXISTS
    if raced:  # a concurrent first message won the race: use its pair
        snapshot = directory.load_for_user_mail(service_code, user_address, delivery, refs)
        if snapshot.pair is None:
            raise RelayFault("pair reported as existing but not found")
        pair, new_pair = snapshot.pair, None
        claim = directory.claim_delivery(delivery, None, now + context.delivery_record_seconds)
    if claim is not ClaimResult.CLAIMED:
        return RelayOutcome(delivery.recipient, Action.DUPLICATE, Reason.DUPLICATE, Direction.TO_SERVICE)
    plan = RewritePlan(
        from_display_name=relay_display_name(name, context.brand),
        from_address=context.addressing.address(CodeKind.USER, pair.user_code),
        to_address=service.addresses[0],
        hidden_addresses=(user_address,),
        trace_value=loop_marker(context.keyring, context.addressing.domain, now),
        date=formatdate(now, usegmt=True),
        thread_ids=_thread_ids(refs, snapshot, pair, context.ses_message_id_domain),
    )
    outcome = _send(inbound, delivery, plan, pair, service, Direction.TO_SERVICE, user_address, now, context)
    # A conversation starts with the first user message that is actually sent. A pair can exist without one: the
    # first attempt created it and then SES refused to send (SendFailed), so the retry reports the start.
    started = new_pair is not None or (not raced and pair.user_messages == 0)
    return replace(outcome, new_conversation=started) if outcome.action is Action.FORWARDED else outcome


def _to_user(inbound: _Inbound, delivery: DeliveryKey, user_code: str, sender: tuple[str, str],
             refs: ThreadRefs, context: RelayContext) -> RelayOutcome:
    _, sender_address = sender
    snapshot = context.directory.load_for_service_mail(user_code, delivery, refs)
    pair, service = snapshot.pair, snapshot.service
    if pair is None or service is None:
        return _rejected(delivery.recipient, Reason.UNKNOWN_CODE, Direction.TO_USER)
    if not service.active:
        return _rejected(delivery.recipient, Reason.SERVICE_DISABLED, Direction.TO_USER)
    if without_subaddress(sender_address) not in {without_subaddress(address) for address in service.addresses}:
        logger.info("stranger wrote to a user code", sender=address_digest(sender_address, context.keyring.current))
        return _rejected(delivery.recipient, Reason.STRANGER, Direction.TO_USER)
    if duplicate := _duplicate(snapshot, delivery, Direction.TO_USER):
        return duplicate
    now = int(context.clock())
    claim = context.directory.claim_delivery(delivery, None, now + context.delivery_record_seconds)
    if claim is not ClaimResult.CLAIMED:
        return RelayOutcome(delivery.recipient, Action.DUPLICATE, Reason.DUPLICATE, Direction.TO_USER)
    plan = RewritePlan(
        from_display_name=relay_display_name(service.display_name, context.brand),
        from_address=context.addressing.address(CodeKind.SERVICE, service.code),
        to_address=pair.user_address,
        hidden_addresses=(sender_address, *service.addresses),
        trace_value=loop_marker(context.keyring, context.addressing.domain, now),
        date=formatdate(now, usegmt=True),
        thread_ids=_thread_ids(refs, snapshot, pair, context.ses_message_id_domain),
    )
    outcome = _send(inbound, delivery, plan, pair, service, Direction.TO_USER, sender_address, now, context)
    if outcome.action is not Action.FORWARDED:
        return outcome
    waited = now - pair.awaiting_reply_since if pair.awaiting_reply_since is not None else None
    return replace(outcome, response_seconds=waited, first_reply=pair.first_reply_at is None)


def _duplicate(snapshot: Snapshot, delivery: DeliveryKey, direction: Direction) -> RelayOutcome | None:
    if snapshot.delivery is None:
        return None
    if snapshot.delivery is DeliveryState.IN_PROGRESS:
        raise DeliveryInDoubt(f"delivery of {delivery.inbound_message_id} was claimed and never closed")
    return RelayOutcome(delivery.recipient, Action.DUPLICATE, Reason.DUPLICATE, direction)


def _thread_ids(refs: ThreadRefs, snapshot: Snapshot, pair: Pair, ses_domain: str) -> dict[str, str | None]:
    """How the ids an inbound message refers to appear to its recipient, so both clients keep one thread.

    An SES id of a copy we sent maps back to the original id the recipient's client knows; a foreign id (the
    sender's own messages) maps to the SES id of our copy to this recipient. A foreign id we cannot map is dropped
    (None): its right-hand side is often the sender's own domain. Only records of this very pair are used, so a
    forged References cannot pull another conversation's ids through.
    """
    def same_pair(sent: SentMessage) -> bool:
        return sent.service_code == pair.service_code and sent.user_code == pair.user_code

    mapping: dict[str, str | None] = {}
    for message_id, ses_id in refs.ses_ids.items():
        sent = snapshot.sent.get(ses_id)
        if sent is not None and sent.original_message_id and same_pair(sent):
            mapping[message_id] = sent.original_message_id
    for message_id in refs.foreign_ids:
        copy = snapshot.copies.get(message_id)
        mapping[message_id] = f"<{copy.ses_message_id}@{ses_domain}>" if copy and same_pair(copy) else None
    return mapping


def _send(inbound: _Inbound, delivery: DeliveryKey, plan: RewritePlan, pair: Pair, service: Service,
          direction: Direction, original_sender: str, now: int, context: RelayContext) -> RelayOutcome:
    rewritten = rewrite_headers(inbound.raw, plan, inbound.split)
    tags = {"direction": direction.value, "service": service.code, "pair": pair.user_code}
    try:
        ses_message_id = context.mailer.send_raw(rewritten, from_address=plan.from_address,
                                                 to_address=plan.to_address, tags=tags)
    except SendRejected:
        context.directory.reject_delivery(delivery, Reason.SEND_REJECTED.value)
        return _rejected(delivery.recipient, Reason.SEND_REJECTED, direction)
    except SendFailed:
        # SES answered with an error, so nothing was sent: give the claim back for the Lambda retry. Any other
        # exception (a read time-out after the request left) keeps the claim open: the mail may have gone out.
        context.directory.release_delivery(delivery)
        raise
    sent = SentMessage(
        ses_message_id=ses_message_id,
        direction=direction,
        service_code=service.code,
        user_code=pair.user_code,
        original_sender=original_sender,
        original_message_id=inbound.headers.message_id,
        inbound_message_id=inbound.mail.message_id,
        sent_at=now,
    )
    recipient_key = f"{CodeKind.SERVICE.value}:{service.code}" if direction is Direction.TO_SERVICE else \
        f"{CodeKind.USER.value}:{pair.user_code}"
    context.directory.record_sent(delivery, sent, pair, recipient_key, now + context.sent_record_seconds)
    return RelayOutcome(delivery.recipient, Action.FORWARDED, Reason.RELAYED, direction, ses_message_id)


def relay_messages(mails: Sequence[InboundMail], context: RelayContext) -> list[RelayOutcome]:
    """Relay every message of one event."""
    return [outcome for mail in mails for outcome in relay_inbound(mail, context)]
