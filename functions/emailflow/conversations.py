"""Conversations (pairs) and address suppressions as an operator sees and changes them. Pure: a store port in.

An operator looks a conversation up by its user-code relay address (the address the service writes to, which
names exactly one pair) and sees its figures and state, never the messages: the relay keeps no contents.

``clear_address`` lifts what the bounces function set on one real address: the undeliverable mark of a permanent
bounce (on the address and mirrored on services that list it) and the complaint suspensions of the conversations
that mail that address. Finding those conversations reads every service's pairs (one Query per service, no scan):
an operator's command, never on the mail path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from emailflow.addresses import InvalidAddress, RelayAddressing, normalise_address
from emailflow.codes import CodeBook, CodeKind
from emailflow.model import Direction, Pair, Service

if TYPE_CHECKING:
    from emailflow.feedback import AddressHealth


class ConversationError(ValueError):
    """Not a conversation address of this relay, or no such conversation."""


class ConversationStore(Protocol):
    def get_service(self, code: str) -> Service | None: ...

    def list_services(self) -> list[Service]: ...

    def list_pairs(self, service_code: str) -> list[Pair]: ...

    def find_pair(self, user_code: str) -> Pair | None:
        """The pair a user code belongs to (through its alias item)."""
        ...

    def address_health(self, address: str) -> AddressHealth: ...

    def forget_address_health(self, address: str) -> None:
        """Delete what bounces recorded about ``address`` (undeliverable, transient bounce count)."""
        ...

    def clear_service_undeliverable(self, service_code: str, address: str) -> None: ...

    def resume_pair(self, service_code: str, user_address: str, direction: Direction) -> None:
        """Lift a complaint suspension of one direction of a pair."""
        ...


@dataclass(frozen=True, slots=True)
class Conversation:
    """One pair's figures and state. Times are Unix seconds; ``None``: not happened yet."""

    user_code_address: str
    service_address: str
    service_name: str
    started_at: int
    user_messages: int
    service_messages: int
    first_reply_at: int | None
    awaiting_reply_since: int | None
    last_user_message_at: int | None
    last_service_message_at: int | None
    user_auto_replies: int
    service_auto_replies: int
    delivered_to_service: int
    delivered_to_user: int
    suspended: dict[str, str] = field(default_factory=dict)
    """Direction -> why mail that way stopped (a complaint)."""
    user_undeliverable: str | None = None
    """Why mail to the user's real address stopped (a permanent bounce), or None."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_conversation(store: ConversationStore, addressing: RelayAddressing, codebook: CodeBook,
                      reference: str) -> Conversation:
    """The conversation of a user code, given as ``user-<code>@domain`` or the bare code.

    The code goes through the keyed check first: a mistyped one costs no read.
    """
    code = addressing.code_of(CodeKind.USER, reference, codebook)
    if code is None:
        raise ConversationError("not a user code or user address of this relay")
    pair = store.find_pair(code)
    if pair is None:
        raise ConversationError("no conversation has this user code")
    service = store.get_service(pair.service_code)
    health = store.address_health(pair.user_address)
    return Conversation(
        user_code_address=addressing.address(CodeKind.USER, pair.user_code),
        service_address=addressing.address(CodeKind.SERVICE, pair.service_code),
        service_name=service.display_name if service is not None else "",
        started_at=pair.started_at, user_messages=pair.user_messages, service_messages=pair.service_messages,
        first_reply_at=pair.first_reply_at, awaiting_reply_since=pair.awaiting_reply_since,
        last_user_message_at=pair.last_user_message_at, last_service_message_at=pair.last_service_message_at,
        user_auto_replies=pair.user_auto_replies, service_auto_replies=pair.service_auto_replies,
        delivered_to_service=pair.delivered_to_service, delivered_to_user=pair.delivered_to_user,
        suspended=dict(pair.suspended), user_undeliverable=health.undeliverable_reason,
    )


def _suspensions_for(address: str, services: Iterable[Service],
                     pairs_of: Callable[[str], list[Pair]]) -> list[tuple[Pair, Direction]]:
    lifted: list[tuple[Pair, Direction]] = []
    for service in services:
        for pair in pairs_of(service.code):
            if Direction.TO_USER.value in pair.suspended and pair.user_address == address:
                lifted.append((pair, Direction.TO_USER))
            if Direction.TO_SERVICE.value in pair.suspended and address in service.addresses:
                lifted.append((pair, Direction.TO_SERVICE))
    return lifted


def clear_address(store: ConversationStore, address: str) -> list[str]:
    """Lift every suppression of ``address``; returns one line per thing lifted (empty: there was nothing).

    Safe to repeat: each step removes state that may already be gone.
    """
    try:
        normalised = normalise_address(address)
    except InvalidAddress as exc:
        raise ConversationError(f"not a usable e-mail address: {exc}") from exc
    lifted: list[str] = []
    health = store.address_health(normalised)
    if health.undeliverable_reason is not None or health.transient_bounces:
        store.forget_address_health(normalised)
        lifted.append(f"address: {health.undeliverable_reason or f'{health.transient_bounces} transient bounces'}")
    services = store.list_services()
    for service in services:
        if normalised in service.undeliverable:
            store.clear_service_undeliverable(service.code, normalised)
            lifted.append(f"service {service.code}: {service.undeliverable[normalised]}")
    for pair, direction in _suspensions_for(normalised, services, store.list_pairs):
        store.resume_pair(pair.service_code, pair.user_address, direction)
        lifted.append(f"conversation {pair.user_code} {direction.value}: {pair.suspended[direction.value]}")
    return lifted
