"""Allowing a new sender for a service: the use case behind the approval link (``emailflow.senders``).

``pending_approval`` answers the link's page (who asks, for which service) without changing anything; a mail
scanner that opens the link learns that and nothing happens. ``approve_sender`` is the confirmation: it registers
the address on the service, runs the held message through the relay again (now from a registered address) and
marks the hold used; messages from the same address that were kept with it are relayed too. The order makes a
failure harmless: until the last step the link still works, and the relay's delivery claims keep a double click
(or a retry after a fault) from sending a message twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from emailflow.events import InboundMail, Verdicts
from emailflow.links import TokenError
from emailflow.model import DeliveryKey, Service
from emailflow.outcomes import Reason, RelayOutcome
from emailflow.ports import ApprovalStore, Directory
from emailflow.relay import RelayContext, relay_inbound
from emailflow.senders import HeldMessage, HoldState, read_approval_token


class ApprovalError(ValueError):
    """The link cannot be used: not ours, edited, expired, or used already. The message says which."""


class ApprovalDirectory(Directory, ApprovalStore, Protocol):
    def update_service(self, service: Service) -> None: ...


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """What the link's page shows: the address asking to answer for the service."""

    sender: str
    service_name: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class Approval:
    sender: str
    service_code: str
    outcome: RelayOutcome | None
    """What the relay did with the held message (None: it was relayed before, by an earlier click)."""
    later_outcomes: tuple[RelayOutcome, ...] = ()
    """What it did with the messages kept with it (from the same address while the approval was pending)."""


def _pending(store: ApprovalDirectory, context: RelayContext, token: str) -> tuple[HeldMessage, Service]:
    now = int(context.clock())
    try:
        hold_id = read_approval_token(context.keyring, token, now)
    except TokenError as exc:
        raise ApprovalError(str(exc)) from exc
    held = store.get_held(hold_id)
    if held is None:
        raise ApprovalError("not an approval link of this relay")
    if held.state is not HoldState.PENDING:
        raise ApprovalError("this approval link was used already")
    if held.expires_at <= now:
        raise ApprovalError("this approval link has expired")
    service = store.get_service(held.service_code)
    if service is None or not service.active:
        raise ApprovalError("the service no longer receives mail")
    return held, service


def pending_approval(store: ApprovalDirectory, context: RelayContext, token: str) -> PendingApproval:
    held, service = _pending(store, context, token)
    return PendingApproval(sender=held.sender, service_name=service.display_name, expires_at=held.expires_at)


def approve_sender(store: ApprovalDirectory, context: RelayContext, token: str) -> Approval:
    """Register the held message's sender on its service and relay the message. Raises ``ApprovalError`` for a
    link that cannot be used, ``RelayFault`` when a retry may help (the link keeps working)."""
    held, service = _pending(store, context, token)
    if held.sender not in service.addresses:
        store.update_service(replace(service, addresses=(*service.addresses, held.sender)))
    outcome = _relay_held(store, context, held)
    # Closed after the address is registered: a message from it that is kept later than this read would wait for
    # an approval that already happened; from now on the relay finds the address registered instead.
    later = [_relay_held(store, context, message) for message in store.close_hold(held)]
    store.approve_held(held.hold_id, int(context.clock()))
    return Approval(sender=held.sender, service_code=service.code, outcome=outcome,
                    later_outcomes=tuple(result for result in later if result is not None))


def _relay_held(store: ApprovalDirectory, context: RelayContext, held: HeldMessage) -> RelayOutcome | None:
    """Run a held message through the relay as SES would; None: it was relayed before (an earlier click)."""
    if not store.reopen_delivery(DeliveryKey(held.inbound_message_id, held.recipient), Reason.STRANGER_HELD.value):
        return None
    mail = InboundMail(message_id=held.inbound_message_id, recipients=(held.recipient,),
                       envelope_sender=held.envelope_sender, timestamp="",
                       verdicts=Verdicts(spf=held.spf, dkim=held.dkim, spam=held.spam, virus="PASS"))
    [outcome] = relay_inbound(mail, context)
    return outcome
