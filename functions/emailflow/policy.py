"""Mail policy: what happens to one inbound message for one relay recipient, decided by pure functions.

Inputs are facts (``MailFacts``, read from SES's receipt verdicts and the header block) and the store's answers;
the output is a ``Decision``: forward, reject and tell the sender (an error mail), or drop silently, always with a
``Reason``. The relay use case carries decisions out; nothing here does I/O. docs/outcomes.md lists every rule.

The order matters and follows cost: everything decidable from the message alone comes before any database read,
so forged, looping, infected or unaddressed mail costs one S3 read and no DynamoDB call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from emailflow.addresses import InvalidAddress, RelayAddressing, normalise_address, without_subaddress
from emailflow.codes import CodeBook, CodeKind, Keyring
from emailflow.events import InboundMail
from emailflow.loops import is_own_marker
from emailflow.message import InboundHeaders, SplitMessage
from emailflow.model import Pair, Service
from emailflow.outcomes import Reason
from emailflow.rewrite import TRACE_HEADER

MAX_RECEIVED_HOPS = 25
"""More Received fields than any honest path has (RFC 5321 section 6.3 suggests 100 as a *minimum* cut-off for
MTAs; a relay in front of people can be far stricter): mail that has looped this often is not relayed again."""

_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_LIST_PRECEDENCE = frozenset({"bulk", "list"})
_NULL_SENDERS = frozenset({"", "<>", "mailer-daemon", "postmaster"})


class Disposition(StrEnum):
    FORWARD = "forward"
    NOTIFY = "notify"
    """Not relayed; the sender gets an error mail explaining what to do (if they may be told: ``may_notify``)."""
    DROP = "drop"
    """Not relayed; nobody is told (backscatter, forgeries, loops, guesses)."""


class SpamPolicy(StrEnum):
    DROP = "drop"
    TAG = "tag"
    """Forward with ``[SPAM]`` prefixed to the subject."""


@dataclass(frozen=True, slots=True)
class Decision:
    disposition: Disposition
    reason: Reason
    subject_tag: str | None = None


FORWARD = Decision(Disposition.FORWARD, Reason.RELAYED)


@dataclass(frozen=True, slots=True)
class MailFacts:
    """What the policy knows about one inbound message, read once for all its recipients."""

    sender: str | None
    """The single From mailbox, normalised; None when From is missing, multiple or unusable (see ``from_problem``)."""
    from_problem: Reason | None
    envelope_sender: str
    authenticated: bool
    """SES's SPF or DKIM verdict is PASS: the From domain is probably not forged, so an error mail reaches the
    person who wrote, not a victim whose address was forged (backscatter)."""
    spf_and_dkim_failed: bool
    virus: bool
    spam: bool
    dmarc_reject: bool
    auto_generated: bool
    delivery_report: bool
    mailing_list: bool
    own_marker: bool
    from_relay_domain: bool
    received_hops: int
    open_recipients: frozenset[str]
    """Canonical relay addresses named in To or Cc (a relay recipient not among them was BCC'd)."""


def _header_value(split: SplitMessage, key: str) -> str:
    field = split.first(key)
    return field.text().strip().lower() if field is not None else ""


def is_auto_generated(split: SplitMessage, envelope_sender: str) -> bool:
    """RFC 3834 and the de-facto signals: Auto-Submitted other than "no", Precedence bulk/junk/list/auto_reply,
    X-Autoreply / X-Autorespond / X-Auto-Response-Suppress, and null or MAILER-DAEMON senders."""
    auto_submitted = _header_value(split, "auto-submitted")
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        return True
    if _header_value(split, "precedence") in _AUTO_PRECEDENCE:
        return True
    if any(split.first(key) is not None for key in ("x-autoreply", "x-autorespond", "x-auto-response-suppress")):
        return True
    return is_null_sender(envelope_sender)


def is_null_sender(envelope_sender: str) -> bool:
    local = envelope_sender.strip().strip("<>").partition("@")[0].lower()
    return envelope_sender.strip() in ("", "<>") or local in _NULL_SENDERS


def is_delivery_report(split: SplitMessage, envelope_sender: str) -> bool:
    """A DSN or MDN (RFC 3464 / 8098: ``multipart/report``), or anything from a null or MAILER-DAEMON sender."""
    content_type = _header_value(split, "content-type")
    return content_type.startswith("multipart/report") or is_null_sender(envelope_sender)


def read_facts(mail: InboundMail, split: SplitMessage, headers: InboundHeaders, addressing: RelayAddressing,
               codebook: CodeBook, keyring: Keyring) -> MailFacts:
    """Derive ``MailFacts`` from SES's receipt and the header block. Pure; never raises on malformed input."""
    sender, problem = _single_sender(headers)
    verdicts = mail.verdicts
    marker = split.first(TRACE_HEADER.lower())
    open_recipients = set()
    for address in (*headers.to_addresses, *headers.cc_addresses):
        parsed = addressing.parse(address, codebook)
        if parsed is not None:
            open_recipients.add(addressing.address(parsed.kind, parsed.code))
    list_id = split.first("list-id") is not None
    return MailFacts(
        sender=sender,
        from_problem=problem,
        envelope_sender=mail.envelope_sender,
        authenticated="PASS" in (verdicts.spf, verdicts.dkim),
        spf_and_dkim_failed=verdicts.spf == "FAIL" and verdicts.dkim == "FAIL",
        virus=verdicts.virus == "FAIL",
        spam=verdicts.spam == "FAIL",
        dmarc_reject=verdicts.dmarc == "FAIL" and mail.dmarc_policy == "REJECT",
        auto_generated=is_auto_generated(split, mail.envelope_sender),
        delivery_report=is_delivery_report(split, mail.envelope_sender),
        mailing_list=list_id or _header_value(split, "precedence") in _LIST_PRECEDENCE,
        own_marker=marker is not None and is_own_marker(marker.text(), keyring, addressing.domain),
        from_relay_domain=sender is not None and addressing.is_relay_domain(sender),
        received_hops=len(split.all("received")),
        open_recipients=frozenset(open_recipients),
    )


def _single_sender(headers: InboundHeaders) -> tuple[str | None, Reason | None]:
    if not headers.from_addresses:
        return None, Reason.NO_FROM
    if len(headers.from_addresses) > 1:
        return None, Reason.MULTIPLE_FROM
    try:
        sender = normalise_address(headers.from_addresses[0][1])
    except InvalidAddress:
        return None, Reason.INVALID_FROM
    if not sender.isascii():
        # A non-ASCII local part (the domain is punycode by now): SES does not support SMTPUTF8 and sends to 7-bit
        # addresses only, so no answer could ever reach this sender, and no header could name them in ASCII.
        return None, Reason.INVALID_FROM
    return sender, None


def may_notify(facts: MailFacts) -> bool:
    """Whether an error mail may go to the sender: never to unauthenticated, automatic or report mail, never to our
    own domain (no backscatter, no loops)."""
    return (facts.sender is not None and facts.authenticated and not facts.auto_generated
            and not facts.delivery_report and not facts.from_relay_domain)


_RE_SPAM_TAG = re.compile(r"^\[SPAM\]", re.IGNORECASE)


def screen(facts: MailFacts, recipient: str, kind: CodeKind, spam_policy: SpamPolicy) -> Decision:
    """Rules decidable from the message alone, before any database read."""
    if facts.virus:
        return Decision(Disposition.DROP, Reason.VIRUS)
    if facts.dmarc_reject:
        return Decision(Disposition.DROP, Reason.DMARC_REJECT)
    if facts.own_marker or facts.from_relay_domain or facts.received_hops > MAX_RECEIVED_HOPS:
        return Decision(Disposition.DROP, Reason.LOOP)
    if facts.delivery_report:
        return Decision(Disposition.DROP, Reason.BACKSCATTER)
    if facts.from_problem is not None:
        return Decision(Disposition.DROP, facts.from_problem)
    if facts.spam and spam_policy is SpamPolicy.DROP:
        return Decision(Disposition.DROP, Reason.SPAM)
    if kind is CodeKind.SERVICE and facts.mailing_list:
        return Decision(Disposition.DROP, Reason.MAILING_LIST)
    if recipient not in facts.open_recipients:
        return Decision(Disposition.DROP if facts.auto_generated else Disposition.NOTIFY, Reason.BCC)
    tag = "[SPAM]" if facts.spam else None
    return Decision(Disposition.FORWARD, Reason.RELAYED, tag)


def decide_user_mail(facts: MailFacts, service: Service | None) -> Decision | None:
    """Mail to a service code, once the store answered. None: forward (with the screening decision's tag)."""
    if service is None:
        return _notify_or_drop(facts, Reason.UNKNOWN_CODE)
    if not service.active:
        return _notify_or_drop(facts, Reason.SERVICE_DISABLED)
    return None


def decide_service_mail(facts: MailFacts, pair: Pair | None, service: Service | None) -> Decision | None:
    """Mail to a user code, once the store answered. None: forward."""
    if pair is None or service is None:
        return _notify_or_drop(facts, Reason.UNKNOWN_CODE)
    if not service.active:
        return _notify_or_drop(facts, Reason.SERVICE_DISABLED)
    sender = without_subaddress(facts.sender or "")
    if sender not in {without_subaddress(address) for address in service.addresses}:
        return _notify_or_drop(facts, Reason.STRANGER)
    if facts.spf_and_dkim_failed:
        # The From is a registered address, but neither SPF nor DKIM vouches for it: a forgery, not the service.
        return Decision(Disposition.DROP, Reason.SPOOFED)
    return None


def decide_recipient(facts: MailFacts, direction: str, pair: Pair | None, recipient_undeliverable: bool) -> \
        Decision | None:
    """Whether the real recipient may be mailed: not after a complaint about this direction of the conversation
    (dropped: telling the sender would only teach a spammer), not at an address that bounced for good (the sender
    is told at once instead of after another bounce). None: go ahead."""
    if pair is not None and direction in pair.suspended:
        return Decision(Disposition.DROP, Reason.COMPLAINT_SUSPENDED)
    if recipient_undeliverable:
        return _notify_or_drop(facts, Reason.RECIPIENT_UNDELIVERABLE)
    return None


def _notify_or_drop(facts: MailFacts, reason: Reason) -> Decision:
    return Decision(Disposition.DROP if facts.auto_generated else Disposition.NOTIFY, reason)


def tagged_subject(subject: str, tag: str | None) -> str | None:
    """The subject with ``tag`` prefixed once, or None when no tag applies."""
    if tag is None or _RE_SPAM_TAG.match(subject):
        return None
    return f"{tag} {subject}".strip()
