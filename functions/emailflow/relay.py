"""The relay use case: one inbound message, each of its relay recipients to exactly one outcome.

Orchestrates the ports (``MailStore``, ``Directory``, ``Mailer``) around the pure pieces: codes, ``policy``
(what to do), ``rewrite`` (the header block), ``bodymask`` (quoted addresses) and ``notices`` (error mails). No AWS
SDK here: the handler wires adapters in, tests wire fakes or moto-backed adapters in.

Exactly-once per (inbound message id, recipient): anything the relay sends for it - the relayed mail or an error
mail - is preceded by a conditional *claim* in the store and followed by closing it. A claim found closed is a
duplicate (nothing is sent); a claim found still open means an earlier attempt died between claim and close, when
nobody knows whether SES got the mail, so the relay raises ``DeliveryInDoubt`` instead of risking a second copy:
the event is retried, then parked in the DLQ with the raw mail still in S3 (docs/reliability.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from email.utils import formatdate
from functools import partial

from emailflow.addresses import RelayAddress, RelayAddressing, address_digest, spellings, without_subaddress
from emailflow.bodymask import mask_addresses
from emailflow.codes import CodeBook, CodeKind, Keyring
from emailflow.events import InboundMail
from emailflow.loops import loop_marker
from emailflow.message import InboundHeaders, SplitMessage, split_message
from emailflow.model import DeliveryKey, DeliveryState, Direction, Pair, SentMessage, Service, Snapshot, ThreadRefs
from emailflow.observability import logger
from emailflow.outcomes import Action, Reason, RelayOutcome
from emailflow.policy import (
    Decision,
    Disposition,
    MailFacts,
    SpamPolicy,
    decide_recipient,
    decide_service_mail,
    decide_user_mail,
    may_notify,
    read_facts,
    screen,
    tagged_subject,
)
from emailflow.ports import (
    ClaimResult,
    Directory,
    MailBytes,
    Mailer,
    MailStore,
    RelayFault,
    SenderBudget,
    SendFailed,
    SendRejected,
    mail_bytes,
    mail_size,
)
from emailflow.rewrite import RewritePlan, relay_display_name, rewrite_headers, rewrite_message

MAX_THREAD_LOOKUPS = 10
"""In-Reply-To plus the newest References: enough to thread, bounded so a crafted header costs little."""
SES_MESSAGE_ID_DOMAIN = ".amazonses.com"
MAX_OUTBOUND_BYTES = 40_000_000
"""SES v2 sends messages up to 40 MB (https://docs.aws.amazon.com/ses/latest/dg/quotas.html); kept a little under
40 MiB on purpose. A larger message is offered as a download link instead of being dropped."""
_HOUR = 3600


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
    spam_policy: SpamPolicy = SpamPolicy.DROP
    notices_per_sender_per_hour: int = 5
    pair_messages_per_minute: int = 10
    sender_messages_per_hour: int = 60
    """0: no per-sender limit."""
    noreply_local_part: str = "no-reply"
    oversize_link_seconds: int = 24 * _HOUR
    max_outbound_bytes: int = MAX_OUTBOUND_BYTES
    off_platform_signal: bool = False
    approval_url: str = ""
    """Where a service allows a new sender (the approval page's ``/senders/allow``); empty: strangers are only
    told."""
    approval_seconds: int = 72 * _HOUR
    download_page_url: str = ""
    """The downloads API (``emailflow.downloads``) that oversize links point to; empty: presigned S3 URLs."""
    clock: Callable[[], float] = time.time

    @property
    def noreply_address(self) -> str:
        return f"{self.noreply_local_part}@{self.addressing.domain}"


@dataclass(frozen=True, slots=True)
class _Inbound:
    """The parsed inbound message shared by all its recipients."""

    mail: InboundMail
    raw: bytes
    split: SplitMessage
    headers: InboundHeaders
    facts: MailFacts


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
            inbound = _read(mail, context)
        outcomes.append(_relay_one(inbound, recipient, target, context))
    for outcome in outcomes:
        logger.info("relay outcome", action=str(outcome.action), reason=str(outcome.reason),
                    direction=str(outcome.direction) if outcome.direction else None, notice=outcome.notice_sent,
                    inbound_message_id=mail.message_id, ses_message_id=outcome.ses_message_id)
    return outcomes


def _read(mail: InboundMail, context: RelayContext) -> _Inbound:
    raw = context.mail_store.get_raw(mail.message_id)
    split = split_message(raw)
    headers = InboundHeaders.read(split)
    facts = read_facts(mail, split, headers, context.addressing, context.codebook, context.keyring)
    return _Inbound(mail, raw, split, headers, facts)


def _check_recipient(recipient: str, context: RelayContext) -> RelayAddress | Reason:
    if not context.addressing.is_relay_domain(recipient):
        return Reason.NOT_RELAY_DOMAIN
    target = context.addressing.parse(recipient, context.codebook)
    return Reason.INVALID_CODE if target is None else target


def _rejected(recipient: str, reason: Reason, direction: Direction | None = None,
              notice_sent: bool = False) -> RelayOutcome:
    return RelayOutcome(recipient=recipient, action=Action.REJECTED, reason=reason, direction=direction,
                        notice_sent=notice_sent)


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
    direction = Direction.TO_SERVICE if target.kind is CodeKind.SERVICE else Direction.TO_USER
    delivery = DeliveryKey(inbound.mail.message_id, recipient)
    screening = screen(inbound.facts, recipient, target.kind, context.spam_policy)
    if screening.disposition is not Disposition.FORWARD:
        return _conclude(inbound, delivery, screening, direction, context)
    refs = _thread_refs(inbound.headers, f"{target.kind.value}:{target.code}")
    if target.kind is CodeKind.SERVICE:
        return _to_service(inbound, delivery, target.code, refs, screening, context)
    return _to_user(inbound, delivery, target.code, refs, screening, context)


def _to_service(inbound: _Inbound, delivery: DeliveryKey, service_code: str, refs: ThreadRefs,
                screening: Decision, context: RelayContext) -> RelayOutcome:
    user_address = inbound.facts.sender or ""
    directory = context.directory
    snapshot = directory.load_for_user_mail(service_code, user_address, delivery, refs)
    decision = decide_user_mail(inbound.facts, snapshot.service)
    if decision is not None:
        return _conclude(inbound, delivery, decision, Direction.TO_SERVICE, context)
    service = snapshot.service
    if service is None:  # decide_user_mail rejects this; this narrows the type
        raise RelayFault("an unknown service code passed the policy")
    if duplicate := _duplicate(snapshot, delivery, Direction.TO_SERVICE):
        return duplicate
    deliverable = [address for address in service.addresses if address not in service.undeliverable]
    refusal = decide_recipient(inbound.facts, Direction.TO_SERVICE.value, snapshot.pair, not deliverable)
    if refusal is not None:
        return replace(_conclude(inbound, delivery, refusal, Direction.TO_SERVICE, context), service_code=service.code,
                       conversation=snapshot.pair.user_code if snapshot.pair else None)
    if snapshot.recent_messages >= context.pair_messages_per_minute:
        return replace(_rejected(delivery.recipient, Reason.RATE_LIMITED, Direction.TO_SERVICE),
                       service_code=service.code, conversation=snapshot.pair.user_code if snapshot.pair else None)
    now = int(context.clock())
    budget = _sender_budget(inbound.facts, now, context)
    pair = snapshot.pair
    new_pair = None
    if pair is None:
        new_pair = pair = Pair(service_code=service.code, user_address=user_address,
                               user_code=context.codebook.new_code(CodeKind.USER), started_at=now)
    claim = directory.claim_delivery(delivery, new_pair, now + context.delivery_record_seconds, budget)
    raced = claim is ClaimResult.PAIR_EXISTS
    if raced:  # a concurrent first message won the race: use its pair
        snapshot = directory.load_for_user_mail(service_code, user_address, delivery, refs)
        if snapshot.pair is None:
            raise RelayFault("pair reported as existing but not found")
        pair, new_pair = snapshot.pair, None
        claim = directory.claim_delivery(delivery, None, now + context.delivery_record_seconds, budget)
    if claim is ClaimResult.BUDGET_SPENT:
        logger.info("sender budget spent", sender=budget.sender_key if budget else None)
        return replace(_rejected(delivery.recipient, Reason.SENDER_RATE_LIMITED, Direction.TO_SERVICE),
                       service_code=service.code, conversation=snapshot.pair.user_code if snapshot.pair else None)
    if claim is not ClaimResult.CLAIMED:
        return RelayOutcome(delivery.recipient, Action.DUPLICATE, Reason.DUPLICATE, Direction.TO_SERVICE)
    name = inbound.headers.from_addresses[0][0] if inbound.headers.from_addresses else ""
    plan = RewritePlan(
        from_display_name=relay_display_name(name, context.brand),
        from_address=context.addressing.address(CodeKind.USER, pair.user_code),
        to_address=deliverable[0],  # the first registered address that still accepts mail
        hidden_addresses=spellings(user_address),
        trace_value=loop_marker(context.keyring, context.addressing.domain, now),
        date=formatdate(now, usegmt=True),
        thread_ids=_thread_ids(refs, snapshot, pair, context.ses_message_id_domain),
        subject=tagged_subject(inbound.headers.subject, screening.subject_tag),
    )
    outcome = _send(inbound, delivery, plan, pair, service, Direction.TO_SERVICE, now, context)
    # A conversation starts with the first user message that is actually sent. A pair can exist without one: the
    # first attempt created it and then SES refused to send (SendFailed), so the retry reports the start.
    started = (new_pair is not None or (not raced and pair.user_messages == 0)) and not inbound.facts.auto_generated
    if outcome.action is not Action.FORWARDED:
        return outcome
    return replace(outcome, new_conversation=started, auto_reply=inbound.facts.auto_generated)


def _to_user(inbound: _Inbound, delivery: DeliveryKey, user_code: str, refs: ThreadRefs,
             screening: Decision, context: RelayContext) -> RelayOutcome:
    """Mail to a user code. The first call claims the delivery on the code's alias item and reads the alias back,
    the second reads everything else (the alias holds the other keys): one read fewer than reading first
    (docs/store.md). So this path holds a claim while it decides; every way out that sends nothing gives it back
    before it does anything else (a notice has a claim of its own)."""
    directory = context.directory
    now = int(context.clock())
    claim = directory.claim_for_user_code(user_code, delivery, now + context.delivery_record_seconds)
    if claim.result is None:  # no such user code: nothing was claimed
        return _conclude(inbound, delivery, _unknown_code(inbound.facts), Direction.TO_USER, context)
    if claim.result is not ClaimResult.CLAIMED:
        raise DeliveryInDoubt(f"delivery of {delivery.inbound_message_id} was claimed and never closed")
    try:
        snapshot = directory.load_for_service_mail(user_code, claim.service_code, claim.user_address, delivery,
                                                   refs)
        not_sent = _not_to_send_to_user(inbound, delivery, snapshot, context)
    except Exception:
        directory.release_delivery(delivery, alias=user_code)
        raise
    if not_sent is not None:
        directory.release_delivery(delivery, alias=user_code)
        return not_sent()
    pair, service = snapshot.pair, snapshot.service
    if pair is None or service is None:  # _not_to_send_to_user refuses these; this narrows the types
        raise RelayFault("a user code without pair or service passed the policy")
    plan = RewritePlan(
        from_display_name=relay_display_name(service.display_name, context.brand),
        from_address=context.addressing.address(CodeKind.SERVICE, service.code),
        to_address=pair.user_address,
        hidden_addresses=tuple(form for address in (inbound.facts.sender or "", *service.addresses)
                               for form in spellings(address)),
        trace_value=loop_marker(context.keyring, context.addressing.domain, now),
        date=formatdate(now, usegmt=True),
        thread_ids=_thread_ids(refs, snapshot, pair, context.ses_message_id_domain),
        subject=tagged_subject(inbound.headers.subject, screening.subject_tag),
    )
    outcome = _send(inbound, delivery, plan, pair, service, Direction.TO_USER, now, context, alias=user_code)
    if outcome.action is not Action.FORWARDED:
        return outcome
    if inbound.facts.auto_generated:
        return replace(outcome, auto_reply=True)
    waited = now - pair.awaiting_reply_since if pair.awaiting_reply_since is not None else None
    return replace(outcome, response_seconds=waited, first_reply=pair.first_reply_at is None)


def _hold_for_approval(inbound: _Inbound, delivery: DeliveryKey, service: Service,
                       context: RelayContext) -> RelayOutcome:
    """A reply to a user code from an address the service has not registered, by a sender SPF or DKIM vouches
    for: keep it, ask the service's registered address to allow the new one (emailflow.senders), and tell the
    sender as for any stranger. While the service has not answered, further messages from that address are kept
    with the first, without another mail. The delivery is closed as ``stranger_held``: allowing reopens it, and a
    retry of this event is a duplicate.

    Only with an approval URL, for a stranger: ``senders`` (and ``email.policy``) is imported here, not by every
    cold start (benchmarks/bench_coldstart.py)."""
    from emailflow.senders import (  # noqa: PLC0415 - deferred, see the docstring
        MAX_LATER_MESSAGES,
        HeldMessage,
        approval_link,
        approval_mail,
        approval_token,
        hold_id_for,
    )

    now = int(context.clock())
    claim = context.directory.claim_delivery(delivery, None, now + context.delivery_record_seconds)
    if claim is not ClaimResult.CLAIMED:
        return RelayOutcome(delivery.recipient, Action.DUPLICATE, Reason.DUPLICATE, Direction.TO_USER)
    sender = without_subaddress(inbound.facts.sender or "")
    verdicts = inbound.mail.verdicts
    held = HeldMessage(hold_id=hold_id_for(context.keyring, delivery.inbound_message_id, delivery.recipient),
                       service_code=service.code, sender=sender, inbound_message_id=delivery.inbound_message_id,
                       recipient=delivery.recipient, envelope_sender=inbound.mail.envelope_sender,
                       spf=verdicts.spf, dkim=verdicts.dkim, spam=verdicts.spam, created_at=now,
                       expires_at=now + context.approval_seconds)
    reason = Reason.STRANGER
    sender_key = address_digest(sender, context.keyring.current)
    if context.directory.hold_later(held, sender_key, MAX_LATER_MESSAGES):
        # The service was asked about this address already: this message waits with that one, no second mail.
        reason = Reason.STRANGER_HELD
    # Approval mails to one service share the notice budget's hourly limit: someone who learnt a user code cannot
    # flood the service with approval mails by writing from many addresses (each would get its own hold).
    elif context.directory.allow_notice(f"approvals:{service.code}", now // _HOUR,
                                        context.notices_per_sender_per_hour, now + 2 * _HOUR) and \
            context.directory.hold_message(held, sender_key):
        link = approval_link(context.approval_url, approval_token(context.keyring, held.hold_id, held.expires_at))
        mail = approval_mail(to_address=service.addresses[0], new_sender=sender, service_name=service.display_name,
                             link=link, hours=context.approval_seconds // _HOUR, brand=context.brand,
                             noreply_address=context.noreply_address,
                             trace_value=loop_marker(context.keyring, context.addressing.domain, now), now=now)
        if _send_claimed(context, delivery, mail, context.noreply_address, service.addresses[0],
                         {"direction": "approval", "service": service.code}) is None:
            return _rejected(delivery.recipient, Reason.SEND_REJECTED, Direction.TO_USER)
        reason = Reason.STRANGER_HELD
    notified = _notify(inbound, delivery, Reason.STRANGER, context, claimed=True, record_as=reason)
    return replace(_rejected(delivery.recipient, reason, Direction.TO_USER, notice_sent=bool(notified)),
                   service_code=service.code)


def _sender_budget(facts: MailFacts, now: int, context: RelayContext) -> SenderBudget | None:
    """The hourly budget this message counts against (mail to services only: services answer many people); None
    when there is none. The claim counts it in the same write (docs/store.md, "Calls per message"), so a
    redelivered event, a duplicate, is not counted again.

    Mail that neither SPF nor DKIM vouches for counts against a budget of its own: a forger cannot use up a real
    person's budget by writing in their name.
    """
    if context.sender_messages_per_hour <= 0 or facts.sender is None:
        return None
    key = address_digest(facts.sender, context.keyring.current) + ("" if facts.authenticated else "-unverified")
    return SenderBudget(key, now // _HOUR, context.sender_messages_per_hour, now + 2 * _HOUR)


def _unknown_code(facts: MailFacts) -> Decision:
    decision = decide_service_mail(facts, None, None)
    if decision is None:  # the policy refuses every unknown code; this narrows the type
        raise RelayFault("an unknown user code passed the policy")
    return decision


def _not_to_send_to_user(inbound: _Inbound, delivery: DeliveryKey, snapshot: Snapshot,
                         context: RelayContext) -> Callable[[], RelayOutcome] | None:
    """Why mail to a user code is not sent, as the step that carries it out once the claim is given back; None:
    send it. The checks and their order are those of mail to a service code."""
    pair, service = snapshot.pair, snapshot.service
    decision = decide_service_mail(inbound.facts, pair, service)
    if decision is not None:
        if decision.reason is Reason.STRANGER:
            sender = address_digest(inbound.facts.sender or "", context.keyring.current)
            logger.info("stranger wrote to a user code", sender=sender)
            if context.approval_url and service is not None and may_notify(inbound.facts):
                return partial(_hold_for_approval, inbound, delivery, service, context)  # claims on its own
        return partial(_conclude, inbound, delivery, decision, Direction.TO_USER, context)
    if pair is None or service is None:  # decide_service_mail rejects these; this narrows the types
        raise RelayFault("a user code without pair or service passed the policy")
    if snapshot.delivery is not None:
        return partial(_duplicate_or_in_doubt, snapshot, delivery, Direction.TO_USER)
    code, conversation = service.code, pair.user_code
    refusal = decide_recipient(inbound.facts, Direction.TO_USER.value, pair, snapshot.user_undeliverable is not None)
    if refusal is not None:
        return lambda: replace(_conclude(inbound, delivery, refusal, Direction.TO_USER, context), service_code=code,
                               conversation=conversation)
    if snapshot.recent_messages >= context.pair_messages_per_minute:
        return lambda: replace(_rejected(delivery.recipient, Reason.RATE_LIMITED, Direction.TO_USER),
                               service_code=code, conversation=conversation)
    return None


def _duplicate_or_in_doubt(snapshot: Snapshot, delivery: DeliveryKey, direction: Direction) -> RelayOutcome:
    duplicate = _duplicate(snapshot, delivery, direction)
    if duplicate is None:
        raise RelayFault("no delivery state to act on")
    return duplicate


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


def _outbound(inbound: _Inbound, plan: RewritePlan) -> MailBytes:
    """The message to send, in pieces (``rewrite_message``): the rewritten header block, and the body with the
    sender's quoted real address masked in text parts (every other byte of the body untouched)."""
    raw = inbound.raw
    masked = mask_addresses(raw, inbound.split, plan.hidden_addresses, plan.from_address)
    if masked is not None:
        raw = masked
        return rewrite_message(raw, plan, split_message(raw))
    return rewrite_message(raw, plan, inbound.split)


def _send(inbound: _Inbound, delivery: DeliveryKey, plan: RewritePlan, pair: Pair, service: Service,
          direction: Direction, now: int, context: RelayContext, alias: str | None = None) -> RelayOutcome:
    """Send under the claim held for ``delivery`` (on the alias item of ``alias``, for mail to a user code)."""
    rewritten = _outbound(inbound, plan)
    if mail_size(rewritten) > context.max_outbound_bytes:
        return _send_oversize(inbound, delivery, plan, mail_bytes(rewritten), pair, service, direction, now,
                              context, alias)
    tags = {"direction": direction.value, "service": service.code, "pair": pair.user_code}
    ses_message_id = _send_claimed(context, delivery, rewritten, plan.from_address, plan.to_address, tags, alias)
    if ses_message_id is None:
        return _rejected(delivery.recipient, Reason.SEND_REJECTED, direction)
    # Read from what was sent (the new header block and the body view, never joined): a quote of the sender's own
    # address is masked by then and does not count.
    contact = context.off_platform_signal and _carries_contact_details(rewritten, context.addressing.domain)
    _record(inbound, delivery, ses_message_id, pair, service, direction, now, context, plan.to_address, contact)
    return RelayOutcome(delivery.recipient, Action.FORWARDED, Reason.RELAYED, direction, ses_message_id,
                        service_code=service.code, conversation=pair.user_code, contact_details=contact)


def _carries_contact_details(raw: MailBytes, relay_domain: str) -> bool:
    """The off-platform signal, off by default: ``signals`` (and ``email.policy``) is imported only when it is on
    (benchmarks/bench_coldstart.py)."""
    from emailflow.signals import carries_contact_details  # noqa: PLC0415 - deferred, see the docstring

    return carries_contact_details(raw, relay_domain)


def _send_claimed(context: RelayContext, delivery: DeliveryKey, raw: MailBytes, from_address: str, to_address: str,
                  tags: dict[str, str], alias: str | None = None) -> str | None:
    """Send under a claim already held. None: SES refused for good (the claim is closed as rejected)."""
    try:
        ses_message_id = context.mailer.send_raw(raw, from_address=from_address, to_address=to_address, tags=tags)
    except SendRejected:
        context.directory.reject_delivery(delivery, Reason.SEND_REJECTED.value, alias,
                                          int(context.clock()) + context.delivery_record_seconds)
        return None
    except SendFailed:
        # SES answered with an error, so nothing was sent: give the claim back for the Lambda retry. Any other
        # exception (a read time-out after the request left) keeps the claim open: the mail may have gone out.
        context.directory.release_delivery(delivery, alias)
        raise
    # Before the claim is closed: if closing fails, this line is how an operator knows the mail went out
    # (docs/operations.md, "The DLQ alarm fired").
    logger.info("sent", inbound_message_id=delivery.inbound_message_id, recipient=delivery.recipient,
                ses_message_id=ses_message_id)
    return ses_message_id


def _record(inbound: _Inbound, delivery: DeliveryKey, ses_message_id: str, pair: Pair, service: Service,
            direction: Direction, now: int, context: RelayContext, recipient_address: str,
            contact_details: bool = False) -> None:
    sent = SentMessage(
        ses_message_id=ses_message_id,
        direction=direction,
        service_code=service.code,
        user_code=pair.user_code,
        original_sender=inbound.facts.sender or "",
        original_message_id=inbound.headers.message_id,
        inbound_message_id=inbound.mail.message_id,
        sent_at=now,
        recipient_address=recipient_address,
        sender_automatic=inbound.facts.auto_generated,
        user_address=pair.user_address,
        recipient_name=service.display_name if direction is Direction.TO_SERVICE else "",
        contact_details=contact_details,
    )
    recipient_key = f"{CodeKind.SERVICE.value}:{service.code}" if direction is Direction.TO_SERVICE else \
        f"{CodeKind.USER.value}:{pair.user_code}"
    context.directory.record_sent(delivery, sent, pair, recipient_key, now + context.sent_record_seconds,
                                  now + context.delivery_record_seconds)


def _send_oversize(inbound: _Inbound, delivery: DeliveryKey, plan: RewritePlan, rewritten: bytes, pair: Pair,
                   service: Service, direction: Direction, now: int, context: RelayContext,
                   alias: str | None = None) -> RelayOutcome:
    """Too large for SES: keep the rewritten copy (no real address of the sender in it), send the recipient a
    short mail with an expiring link, tell the sender. Never dropped silently."""
    if context.oversize_link_seconds <= 0:
        context.directory.reject_delivery(delivery, Reason.OVERSIZE.value, alias,
                                          now + context.delivery_record_seconds)
        notified = _notify(inbound, delivery, Reason.OVERSIZE, context, claimed=True)
        return _rejected(delivery.recipient, Reason.OVERSIZE, direction, notice_sent=bool(notified))
    name = f"{inbound.mail.message_id}-{pair.user_code}-{direction.value}.eml"
    key = context.mail_store.put_copy(name, rewritten)
    url = _download_link(context, name, key, now)
    hours = max(1, context.oversize_link_seconds // _HOUR)
    text = (f"A message for you was too large to deliver by e-mail ({len(rewritten) // 1_000_000} MB).\n\n"
            f"Download it within {hours} hour(s) (open the .eml file with your mail program):\n{url}\n\n"
            f"Reply to this message to answer the sender as usual.\n")
    link_mail = _link_mail(plan, text, now)
    tags = {"direction": direction.value, "service": service.code, "pair": pair.user_code}
    ses_message_id = _send_claimed(context, delivery, link_mail, plan.from_address, plan.to_address, tags, alias)
    if ses_message_id is None:
        return _rejected(delivery.recipient, Reason.SEND_REJECTED, direction)
    _record(inbound, delivery, ses_message_id, pair, service, direction, now, context, plan.to_address)
    _notify(inbound, DeliveryKey(delivery.inbound_message_id, f"notice:{delivery.recipient}"), Reason.OVERSIZE,
            context)
    return RelayOutcome(delivery.recipient, Action.FORWARDED, Reason.OVERSIZE, direction, ses_message_id,
                        service_code=service.code, conversation=pair.user_code)


def _download_link(context: RelayContext, copy_name: str, key: str, now: int) -> str:
    """The link to a kept copy: through the downloads API, which presigns on every click (a URL presigned here
    would die with this function's role session, hours before the link's stated lifetime); a presigned URL only
    where no downloads API is configured. ``downloads`` is imported here: oversize mail is rare."""
    if not context.download_page_url:
        return context.mail_store.download_url(key, context.oversize_link_seconds)
    from emailflow.downloads import download_link, download_token  # noqa: PLC0415 - deferred, see the docstring

    token = download_token(context.keyring, copy_name, now + context.oversize_link_seconds)
    return download_link(context.download_page_url, token)


def _link_mail(plan: RewritePlan, text: str, now: int) -> bytes:
    """A short plain-text mail carrying the download link, with the relayed message's own rewritten headers."""
    body = text.replace("\n", "\r\n").encode("utf-8")
    headers = (b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: 8bit\r\n\r\n")
    stub = split_message(headers + body)
    return rewrite_headers(headers + body, replace(plan, date=formatdate(now, usegmt=True)), stub)


def _conclude(inbound: _Inbound, delivery: DeliveryKey, decision: Decision, direction: Direction,
              context: RelayContext) -> RelayOutcome:
    """Carry out a decision not to relay: drop, or reject and tell the sender when the policy allows it.

    Error mails are the exception, not the path of a relayed message: ``notices`` is imported here and in
    ``_notify``, not by every cold start (benchmarks/bench_coldstart.py)."""
    from emailflow.notices import NOTICE_TEXTS  # noqa: PLC0415 - deferred, see the docstring

    if decision.disposition is Disposition.NOTIFY and decision.reason in NOTICE_TEXTS:
        notified = _notify(inbound, delivery, decision.reason, context)
        if notified is None:
            return RelayOutcome(delivery.recipient, Action.DUPLICATE, Reason.DUPLICATE, direction)
        return _rejected(delivery.recipient, decision.reason, direction, notice_sent=notified)
    return _rejected(delivery.recipient, decision.reason, direction)


def _notify(inbound: _Inbound, delivery: DeliveryKey, reason: Reason, context: RelayContext,
            claimed: bool = False, record_as: Reason | None = None) -> bool | None:
    """Send the sender an error mail for ``reason`` if the policy allows and the per-sender budget is not spent;
    the delivery is closed as rejected for ``record_as`` (default: ``reason``).

    Returns whether a notice went out; None when this delivery was handled before (a retry: never twice).
    """
    from emailflow.notices import NoticeAddressing, build_notice  # noqa: PLC0415 - deferred, see _conclude

    facts = inbound.facts
    recorded = (record_as or reason).value
    if not may_notify(facts) or facts.sender is None:
        if claimed:
            context.directory.reject_delivery(delivery, recorded)
        return False
    now = int(context.clock())
    if not claimed:
        claim = context.directory.claim_delivery(delivery, None, now + context.delivery_record_seconds)
        if claim is not ClaimResult.CLAIMED:
            return None
    sender_key = address_digest(facts.sender, context.keyring.current)
    if not context.directory.allow_notice(sender_key, now // _HOUR, context.notices_per_sender_per_hour,
                                          now + 2 * _HOUR):
        logger.info("notice budget spent", sender=sender_key, reason=str(reason))
        context.directory.reject_delivery(delivery, recorded)
        return False
    notice = build_notice(
        reason,
        to_address=facts.sender,
        relay_address=delivery.recipient.removeprefix("notice:"),
        original_subject=inbound.headers.subject,
        original_message_id=inbound.headers.message_id,
        addressing=NoticeAddressing(context.brand, context.noreply_address,
                                    loop_marker(context.keyring, context.addressing.domain, now)),
        now=now,
    )
    sent = _send_claimed(context, delivery, notice, context.noreply_address, facts.sender,
                         {"direction": "notice", "reason": reason.value})
    context.directory.reject_delivery(delivery, recorded)
    return sent is not None


def relay_messages(mails: Sequence[InboundMail], context: RelayContext) -> list[RelayOutcome]:
    """Relay every message of one event."""
    return [outcome for mail in mails for outcome in relay_inbound(mail, context)]
