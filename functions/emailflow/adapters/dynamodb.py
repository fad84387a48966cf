"""DynamoDB: the single table behind ``Directory`` (layout in docs/store.md).

| item             | pk                  | sk                    |
|------------------|---------------------|-----------------------|
| service          | ``SVC#<code>``      | ``SVC``               |
| pair (stats)     | ``SVC#<code>``      | ``PAIR#<user addr>``  |
| user-code alias  | ``USR#<user code>`` | ``USR``               |
| delivery claim   | ``DLV#<inbound id>``| ``RCPT#<recipient>``  |
| ... to a user code, in flight | on the alias item: attribute ``claim#<inbound id>#<recipient>`` |
| sent message     | ``SENT#<ses id>``   | ``SENT``              |
| ... by original  | ``MSGID#<orig id>`` | ``TO#<kind>:<code>``  |
| pair rate        | ``RATE#<svc>#<addr>``| ``<unix minute>``    |
| notice budget    | ``NOTICE#<digest>`` | ``<unix hour>``       |
| sender budget    | ``SENDER#<digest>`` | ``<unix hour>``       |
| address health   | ``ADDR#<address>``  | ``ADDR``              |
| registration key | ``REQ#<key digest>``| ``REQ``               |
| held message     | ``HOLD#<hold id>``  | ``HOLD``              |
| ... pending for  | ``HOLDFOR#<svc>#<digest>`` | ``HOLDFOR``    |

Pairs live under their service's partition, so one Query lists a service's conversations (stats) without a scan.
Every write that must happen once is conditional; TTL (``expires_at``) deletion can lag by days, so reads check
the expiry themselves.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from emailflow.adapters.clients import dynamodb_client
from emailflow.model import (
    DeliveryKey,
    DeliveryState,
    Direction,
    FeedbackState,
    Pair,
    SentMessage,
    Service,
    ServiceStatus,
    Snapshot,
    ThreadRefs,
)
from emailflow.ports import ClaimResult, RelayFault, SenderBudget, UserCodeClaim

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from emailflow.feedback import AddressHealth, SentRecord
    from emailflow.senders import HeldMessage
    from emailflow.services import PriorRegistration, RegistrationRequest

Item = dict[str, Any]
SERVICES_INDEX = "services"
"""The sparse GSI (``listing``, ``created_at``) over service items (template.yaml)."""
_MAX_BATCH_ATTEMPTS = 5


def service_key(code: str) -> Item:
    return {"pk": {"S": f"SVC#{code}"}, "sk": {"S": "SVC"}}


def pair_key(service_code: str, user_address: str) -> Item:
    return {"pk": {"S": f"SVC#{service_code}"}, "sk": {"S": f"PAIR#{user_address}"}}


def alias_key(user_code: str) -> Item:
    return {"pk": {"S": f"USR#{user_code}"}, "sk": {"S": "USR"}}


def delivery_key(delivery: DeliveryKey) -> Item:
    return {"pk": {"S": f"DLV#{delivery.inbound_message_id}"}, "sk": {"S": f"RCPT#{delivery.recipient}"}}


def claim_attribute(delivery: DeliveryKey) -> str:
    """The attribute of an alias item that holds the open claim of one delivery of mail to its user code (a map:
    the claim's ``expires_at`` and its ``attempt`` token). Set by ``claim_for_user_code``, removed when the delivery
    is closed or given back."""
    return f"claim#{delivery.inbound_message_id}#{delivery.recipient}"


def sent_key(ses_message_id: str) -> Item:
    return {"pk": {"S": f"SENT#{ses_message_id}"}, "sk": {"S": "SENT"}}


def rate_key(service_code: str, user_address: str, minute: int) -> Item:
    """Messages relayed in one pair during one minute (both directions): the auto-responder ping-pong brake."""
    return {"pk": {"S": f"RATE#{service_code}#{user_address}"}, "sk": {"S": str(minute)}}


def address_key(address: str) -> Item:
    """Delivery health of one real address: permanent bounce, transient bounce count, last delivery."""
    return {"pk": {"S": f"ADDR#{address}"}, "sk": {"S": "ADDR"}}


def notice_key(sender_key: str, window: int) -> Item:
    return {"pk": {"S": f"NOTICE#{sender_key}"}, "sk": {"S": str(window)}}


def sender_budget_key(sender_digest: str, window: int) -> Item:
    """Messages one sender wrote to services during one hour: the per-sender rate limit."""
    return {"pk": {"S": f"SENDER#{sender_digest}"}, "sk": {"S": str(window)}}


def copy_key(original_message_id: str, recipient_key: str) -> Item:
    """Our copy of an inbound message, by its original id and the relay address it was written to."""
    return {"pk": {"S": f"MSGID#{original_message_id}"}, "sk": {"S": f"TO#{recipient_key}"}}


def request_key(key_digest: str) -> Item:
    """A client's idempotency key for registering a service (the web form's double submit)."""
    return {"pk": {"S": f"REQ#{key_digest}"}, "sk": {"S": "REQ"}}


def hold_key(hold_id: str) -> Item:
    return {"pk": {"S": f"HOLD#{hold_id}"}, "sk": {"S": "HOLD"}}


def hold_guard_key(service_code: str, sender_key: str) -> Item:
    """One approval pending per (service, new sender) at a time."""
    return {"pk": {"S": f"HOLDFOR#{service_code}#{sender_key}"}, "sk": {"S": "HOLDFOR"}}


def _s(item: Item, name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def _n(item: Item, name: str) -> int | None:
    value = item.get(name)
    return None if value is None else int(value["N"])


def _num(value: int) -> dict[str, str]:
    return {"N": str(value)}


_PAIR_UPDATES: Mapping[tuple[Direction, bool], str] = {
    # A person's message to the service starts (or keeps running) the response-time clock.
    (Direction.TO_SERVICE, False): "SET last_user_message_at = :now,"
                                   " awaiting_reply_since = if_not_exists(awaiting_reply_since, :now)"
                                   " ADD user_messages :one",
    # The service's answer is a reply: the first one is recorded, the clock stops.
    (Direction.TO_USER, False): "SET last_service_message_at = :now, first_reply_at = if_not_exists(first_reply_at,"
                                " :now) REMOVE awaiting_reply_since ADD service_messages :one",
    # Auto-replies (out-of-office, "we received your message") are relayed but never count as a reply, never stop
    # the clock and never start it: counted on their own (docs/stats.md).
    (Direction.TO_SERVICE, True): "ADD user_auto_replies :one",
    (Direction.TO_USER, True): "ADD service_auto_replies :one",
}
"""The pair's figures, updated in the transaction that closes a delivery: atomic, never read-modify-write."""


def _is_attempt(item: object, attempt: str) -> bool:
    """Whether a claim item (as returned with a failed condition) was written by the claim call ``attempt``."""
    value = item.get("attempt") if isinstance(item, Mapping) else None
    return isinstance(value, Mapping) and value.get("S") == attempt


def _feedback_state(item: Item, name: str) -> FeedbackState | None:
    value = _s(item, name)
    return None if value is None else FeedbackState(value)


def _service_from(item: Item) -> Service:
    return Service(
        code=str(item["pk"]["S"]).removeprefix("SVC#"),
        addresses=tuple(str(value["S"]) for value in item["addresses"]["L"]),
        display_name=str(item["display_name"]["S"]),
        status=ServiceStatus(item["status"]["S"]),
        context={key: str(value["S"]) for key, value in item.get("context", {}).get("M", {}).items()},
        created_at=_n(item, "created_at") or 0,
        undeliverable={key: str(value["S"]) for key, value in item.get("undeliverable", {}).get("M", {}).items()},
    )


def _service_item(service: Service) -> Item:
    return {
        **service_key(service.code),
        "kind": {"S": "service"},
        "listing": {"S": "service"},
        "addresses": {"L": [{"S": address} for address in service.addresses]},
        "display_name": {"S": service.display_name},
        "status": {"S": service.status.value},
        "context": {"M": {key: {"S": value} for key, value in service.context.items()}},
        "created_at": _num(service.created_at),
        "undeliverable": {"M": {key: {"S": value} for key, value in service.undeliverable.items()}},
    }


def _pair_from(item: Item, service_code: str) -> Pair:
    return Pair(
        service_code=service_code,
        user_address=str(item["sk"]["S"]).removeprefix("PAIR#"),
        user_code=str(item["user_code"]["S"]),
        started_at=_n(item, "started_at") or 0,
        user_messages=_n(item, "user_messages") or 0,
        service_messages=_n(item, "service_messages") or 0,
        awaiting_reply_since=_n(item, "awaiting_reply_since"),
        first_reply_at=_n(item, "first_reply_at"),
        last_user_message_at=_n(item, "last_user_message_at"),
        last_service_message_at=_n(item, "last_service_message_at"),
        user_auto_replies=_n(item, "user_auto_replies") or 0,
        contact_details_messages=_n(item, "contact_details_messages") or 0,
        service_auto_replies=_n(item, "service_auto_replies") or 0,
        delivered_to_service=_n(item, "delivered_to_service") or 0,
        delivered_to_user=_n(item, "delivered_to_user") or 0,
        suspended={key: str(value["S"]) for key, value in item.get("suspended", {}).get("M", {}).items()},
    )


def _sent_from(item: Item) -> SentMessage:
    return SentMessage(
        ses_message_id=str(item["ses_message_id"]["S"]),
        direction=Direction(item["direction"]["S"]),
        service_code=str(item["service_code"]["S"]),
        user_code=str(item["user_code"]["S"]),
        original_sender=str(item["original_sender"]["S"]),
        original_message_id=_s(item, "original_message_id"),
        inbound_message_id=str(item["inbound_message_id"]["S"]),
        sent_at=_n(item, "sent_at") or 0,
        recipient_address=_s(item, "recipient_address") or "",
        sender_automatic=bool(item.get("sender_automatic", {}).get("BOOL", False)),
        user_address=_s(item, "user_address") or "",
        recipient_name=_s(item, "recipient_name") or "",
    )


class _Once:
    """Runs a transaction whose first item carries the once-only condition: ``applied`` is False when exactly that
    condition failed (the effect was applied before); any other failure becomes a ``RelayFault``.

    ``any_item``: every item's condition is a once-only one (False when any of them failed). A single conditional
    write (not a transaction) whose condition failed is not applied either.
    """

    def __init__(self, any_item: bool = False) -> None:
        self.applied = False
        self._any_item = any_item

    def __enter__(self) -> _Once:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> bool:
        if error is None:
            self.applied = True
            return False
        if isinstance(error, ClientError):
            reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            code = error.response["Error"]["Code"]
            if code == "ConditionalCheckFailedException":
                return True
            if code == "TransactionCanceledException" and (reasons[:1] == ["ConditionalCheckFailed"] or (
                    self._any_item and "ConditionalCheckFailed" in reasons
                    and set(reasons) <= {"ConditionalCheckFailed", "None", None})):
                return True
            raise RelayFault(f"DynamoDB transaction failed: {reasons or error.response['Error']['Code']}") from error
        if isinstance(error, BotoCoreError):
            raise RelayFault("DynamoDB transaction failed") from error
        return False


class DynamoDirectory:
    """``Directory`` on one DynamoDB table with string keys ``pk``/``sk`` and TTL attribute ``expires_at``."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._table = table_name
        self._injected = client
        self._clock = clock

    @property
    def _client(self) -> DynamoDBClient:
        return self._injected or dynamodb_client()

    # -- services ---------------------------------------------------------------------------------------------

    def put_service(self, service: Service) -> bool:
        try:
            self._client.put_item(TableName=self._table, Item=_service_item(service),
                                  ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise RelayFault("could not store the service") from exc
        return True

    def put_service_once(self, service: Service, request: RegistrationRequest) -> PriorRegistration | bool:
        """Store a new service and the client's key for the request, in one transaction.

        True: stored. False: the code is taken (draw another). A ``PriorRegistration``: the key was used before
        (and has not expired): nothing was written, the caller answers with that service.
        """
        from emailflow.services import PriorRegistration  # noqa: PLC0415 - registration is no handler's (services)

        now = int(self._clock())
        try:
            self._client.transact_write_items(TransactItems=[
                {"Put": {"TableName": self._table, "Item": _service_item(service),
                         "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": self._table,
                         "Item": {**request_key(request.key_digest), "kind": {"S": "registration"},
                                  "service_code": {"S": service.code}, "fingerprint": {"S": request.fingerprint},
                                  "expires_at": _num(request.expires_at)},
                         "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                         "ExpressionAttributeValues": {":now": _num(now)},
                         "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
            ])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise RelayFault("could not store the service") from exc
            reasons = exc.response.get("CancellationReasons") or []
            codes = [reason.get("Code") for reason in reasons]
            if len(codes) == 2 and codes[1] == "ConditionalCheckFailed":
                key = request_key(request.key_digest)
                old: Item = dict(reasons[1].get("Item") or {}) or self._batch_get([key]).get(self._key_of(key), {})
                if old:
                    return PriorRegistration(service_code=str(old["service_code"]["S"]),
                                             fingerprint=str(old["fingerprint"]["S"]))
            if codes and codes[0] == "ConditionalCheckFailed":
                return False
            raise RelayFault("could not store the service") from exc
        except BotoCoreError as exc:
            raise RelayFault("could not store the service") from exc
        return True

    def update_service(self, service: Service) -> None:
        """Replace what an operator may change (addresses, name, context); status and bounce state stay."""
        self._call(self._client.update_item, TableName=self._table, Key=service_key(service.code),
                   UpdateExpression="SET addresses = :addresses, display_name = :name, #context = :context",
                   ConditionExpression="attribute_exists(pk)",
                   ExpressionAttributeNames={"#context": "context"},
                   ExpressionAttributeValues={
                       ":addresses": {"L": [{"S": address} for address in service.addresses]},
                       ":name": {"S": service.display_name},
                       ":context": {"M": {key: {"S": value} for key, value in service.context.items()}}})

    def get_service(self, code: str) -> Service | None:
        items = self._batch_get([service_key(code)])
        item = items.get(self._key_of(service_key(code)))
        return None if item is None else _service_from(item)

    def set_service_status(self, service: Service) -> None:
        self._call(self._client.update_item, TableName=self._table, Key=service_key(service.code),
                   UpdateExpression="SET #status = :status", ConditionExpression="attribute_exists(pk)",
                   ExpressionAttributeNames={"#status": "status"},
                   ExpressionAttributeValues={":status": {"S": service.status.value}})

    def list_services(self) -> list[Service]:
        """Every service, oldest first: one Query on the sparse ``services`` index (only service items carry
        ``listing``), never a scan of the table."""
        services: list[Service] = []
        paginator = self._client.get_paginator("query")
        try:
            for page in paginator.paginate(TableName=self._table, IndexName=SERVICES_INDEX,
                                           KeyConditionExpression="listing = :service",
                                           ExpressionAttributeValues={":service": {"S": "service"}}):
                services.extend(_service_from(item) for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise RelayFault("could not list the services") from exc
        return sorted(services, key=lambda service: (service.created_at, service.code))

    def list_pairs(self, service_code: str) -> list[Pair]:
        """Every conversation of one service: one Query on the service's partition."""
        pairs: list[Pair] = []
        paginator = self._client.get_paginator("query")
        try:
            for page in paginator.paginate(TableName=self._table,
                                           KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                                           ExpressionAttributeValues={":pk": {"S": f"SVC#{service_code}"},
                                                                      ":p": {"S": "PAIR#"}}):
                pairs.extend(_pair_from(item, service_code) for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise RelayFault("could not read the service's conversations") from exc
        return pairs

    # -- relay reads ----------------------------------------------------------------------------------------

    def load_for_user_mail(self, service_code: str, user_address: str, delivery: DeliveryKey,
                           refs: ThreadRefs) -> Snapshot:
        keys = [service_key(service_code), pair_key(service_code, user_address), delivery_key(delivery),
                rate_key(service_code, user_address, self._minute())]
        items = self._batch_get([*keys, *self._thread_keys(refs)])
        service_item = items.get(self._key_of(keys[0]))
        pair_item = items.get(self._key_of(keys[1]))
        return Snapshot(
            service=None if service_item is None else _service_from(service_item),
            pair=None if pair_item is None else _pair_from(pair_item, service_code),
            delivery=self._delivery_state(items.get(self._key_of(keys[2]))),
            recent_messages=_n(items.get(self._key_of(keys[3])) or {}, "count") or 0,
            **self._thread_records(items, refs),
        )

    def claim_for_user_code(self, user_code: str, delivery: DeliveryKey, expires_at: int) -> UserCodeClaim:
        """One UpdateItem on the alias: claims the delivery (an attribute of the alias item) and returns the alias.

        Mail to a user code needs the alias before it can read anything else (the pair's keys are in it). Claiming
        there first and reading it back with ``ReturnValues`` makes the claim and that first read one call, where a
        read of the alias, a read of the rest and a claim were three (docs/store.md).
        """
        now = int(self._clock())
        # A token per claim call, as in ``claim_delivery``: when botocore repeats this write after its answer was
        # lost, the repeat fails its condition on the claim the first try wrote, and the token shows it is ours.
        attempt = secrets.token_hex(8)
        claim = claim_attribute(delivery)
        try:
            response = self._client.update_item(
                TableName=self._table, Key=alias_key(user_code), UpdateExpression="SET #claim = :claim",
                # Only on an existing alias: an unknown code creates nothing. An expired claim (TTL does not apply
                # to attributes) is as good as none, as for delivery items.
                ConditionExpression="attribute_exists(pk) AND "
                                    "(attribute_not_exists(#claim) OR #claim.#expires <= :now)",
                ExpressionAttributeNames={"#claim": claim, "#expires": "expires_at"},
                ExpressionAttributeValues={":claim": {"M": {"expires_at": _num(expires_at), "attempt": {"S": attempt}}},
                                           ":now": _num(now)},
                ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise RelayFault("could not claim the delivery") from exc
            old: Item | None = exc.response.get("Item")  # type: ignore[assignment]
            if old is None:
                return UserCodeClaim(None)
            result = ClaimResult.CLAIMED if _is_attempt(old.get(claim, {}).get("M"), attempt) else \
                ClaimResult.DUPLICATE
            return UserCodeClaim(result, str(old["service_code"]["S"]), str(old["user_address"]["S"]))
        except BotoCoreError as exc:
            raise RelayFault("could not claim the delivery") from exc
        alias = response["Attributes"]
        return UserCodeClaim(ClaimResult.CLAIMED, str(alias["service_code"]["S"]), str(alias["user_address"]["S"]))

    def load_for_service_mail(self, user_code: str, service_code: str, user_address: str, delivery: DeliveryKey,
                              refs: ThreadRefs) -> Snapshot:
        keys = [service_key(service_code), pair_key(service_code, user_address), delivery_key(delivery),
                rate_key(service_code, user_address, self._minute()), address_key(user_address)]
        items = self._batch_get([*keys, *self._thread_keys(refs)])
        service_item, pair_item, health_item = (items.get(self._key_of(keys[index])) for index in (0, 1, 4))
        return Snapshot(
            service=None if service_item is None else _service_from(service_item),
            pair=None if pair_item is None else _pair_from(pair_item, service_code),
            delivery=self._delivery_state(items.get(self._key_of(keys[2]))),
            recent_messages=_n(items.get(self._key_of(keys[3])) or {}, "count") or 0,
            user_undeliverable=None if health_item is None else _s(health_item, "undeliverable_reason"),
            **self._thread_records(items, refs),
        )

    def _minute(self) -> int:
        return int(self._clock()) // 60

    @staticmethod
    def _thread_keys(refs: ThreadRefs) -> list[Item]:
        return [*(sent_key(ses_id) for ses_id in refs.ses_ids.values()),
                *(copy_key(message_id, refs.recipient_key) for message_id in refs.foreign_ids)]

    def _thread_records(self, items: Mapping[tuple[str, str], Item], refs: ThreadRefs) -> dict[str, Any]:
        sent: dict[str, SentMessage] = {}
        for ses_id in refs.ses_ids.values():
            item = items.get(self._key_of(sent_key(ses_id)))
            if item is not None and not self._expired(item):
                sent[ses_id] = _sent_from(item)
        copies: dict[str, SentMessage] = {}
        for message_id in refs.foreign_ids:
            item = items.get(self._key_of(copy_key(message_id, refs.recipient_key)))
            if item is not None and not self._expired(item):
                copies[message_id] = _sent_from(item)
        return {"sent": sent, "copies": copies}

    def _delivery_state(self, item: Item | None) -> DeliveryState | None:
        if item is None or self._expired(item):
            return None
        return DeliveryState(item["state"]["S"])

    def _expired(self, item: Item) -> bool:
        expires_at = _n(item, "expires_at")
        return expires_at is not None and expires_at <= self._clock()

    # -- relay writes ---------------------------------------------------------------------------------------

    def claim_delivery(self, delivery: DeliveryKey, new_pair: Pair | None, expires_at: int,
                       budget: SenderBudget | None = None) -> ClaimResult:
        # Each claim carries a token of its own: when botocore repeats the write after an answer was lost, the
        # repeat fails its condition on the item the first try wrote, and the token shows that item is ours
        # (without it the repeat reads as a duplicate, nothing is sent, and the message is lost).
        attempt = secrets.token_hex(8)
        claim: dict[str, Any] = {
            "TableName": self._table,
            "Item": {**delivery_key(delivery), "state": {"S": DeliveryState.IN_PROGRESS.value},
                     "claimed_at": _num(int(self._clock())), "expires_at": _num(expires_at),
                     "attempt": {"S": attempt}},
            # An expired claim (TTL not yet applied) is as good as none.
            "ConditionExpression": "attribute_not_exists(pk) OR expires_at <= :now",
            "ExpressionAttributeValues": {":now": _num(int(self._clock()))},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if new_pair is None and budget is None:
            try:
                self._client.put_item(**claim)
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    return ClaimResult.CLAIMED if _is_attempt(exc.response.get("Item"), attempt) else \
                        ClaimResult.DUPLICATE
                raise RelayFault("could not claim the delivery") from exc
            except BotoCoreError as exc:
                raise RelayFault("could not claim the delivery") from exc
            return ClaimResult.CLAIMED
        # One transaction: pair + alias (a first message), the claim, the sender budget's count; all or nothing.
        writes: list[Any] = [] if new_pair is None else self._new_pair_puts(new_pair)
        claim_at = len(writes)
        writes.append({"Put": claim})
        if budget is not None:
            writes.append({"Update": self._counter_update(sender_budget_key(budget.sender_key, budget.window),
                                                          budget.limit, budget.expires_at)})
        try:
            self._client.transact_write_items(TransactItems=writes)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise RelayFault("could not claim the delivery") from exc
            cancelled = exc.response.get("CancellationReasons", [])
            reasons = [reason.get("Code") for reason in cancelled]
            if len(reasons) != len(writes):
                raise RelayFault(f"claim cancelled: {reasons}") from exc
            if reasons[claim_at] == "ConditionalCheckFailed":
                # A claim with our token means this very transaction was applied before (DynamoDB replays a repeat
                # with the same ClientRequestToken as a success; this covers a store that does not).
                return ClaimResult.CLAIMED if _is_attempt(cancelled[claim_at].get("Item"), attempt) else \
                    ClaimResult.DUPLICATE
            if new_pair is not None and reasons[0] == "ConditionalCheckFailed":
                return ClaimResult.PAIR_EXISTS
            if budget is not None and reasons[-1] == "ConditionalCheckFailed":
                return ClaimResult.BUDGET_SPENT
            raise RelayFault(f"claim cancelled: {reasons}") from exc
        except BotoCoreError as exc:
            raise RelayFault("could not claim the delivery") from exc
        return ClaimResult.CLAIMED

    def _new_pair_puts(self, new_pair: Pair) -> list[Any]:
        """The transaction items that create a conversation: the pair and its user code's alias, both new."""
        pair_item = {
            **pair_key(new_pair.service_code, new_pair.user_address),
            "kind": {"S": "pair"},
            "user_code": {"S": new_pair.user_code},
            "started_at": _num(new_pair.started_at),
            "user_messages": _num(0),
            "service_messages": _num(0),
            "suspended": {"M": {}},
        }
        alias_item = {**alias_key(new_pair.user_code), "kind": {"S": "alias"},
                      "service_code": {"S": new_pair.service_code}, "user_address": {"S": new_pair.user_address}}
        new_only = "attribute_not_exists(pk)"
        return [{"Put": {"TableName": self._table, "Item": pair_item, "ConditionExpression": new_only}},
                {"Put": {"TableName": self._table, "Item": alias_item, "ConditionExpression": new_only}}]

    def release_delivery(self, delivery: DeliveryKey, alias: str | None = None) -> None:
        try:
            if alias is not None:
                self._client.update_item(TableName=self._table, Key=alias_key(alias), UpdateExpression="REMOVE #claim",
                                         ConditionExpression="attribute_exists(#claim)",
                                         ExpressionAttributeNames={"#claim": claim_attribute(delivery)})
                return
            self._client.delete_item(TableName=self._table, Key=delivery_key(delivery),
                                     ConditionExpression="#state = :open", ExpressionAttributeNames={"#state": "state"},
                                     ExpressionAttributeValues={":open": {"S": DeliveryState.IN_PROGRESS.value}})
        except (ClientError, BotoCoreError) as exc:
            raise RelayFault("could not release the delivery claim") from exc

    def reject_delivery(self, delivery: DeliveryKey, reason: str, alias: str | None = None,
                        expires_at: int | None = None) -> None:
        values: Item = {":state": {"S": DeliveryState.REJECTED.value}, ":reason": {"S": reason}}
        expression = "SET #state = :state, reason = :reason"
        if expires_at is not None:
            expression += ", expires_at = if_not_exists(expires_at, :expires)"
            values[":expires"] = _num(expires_at)
        close = {"TableName": self._table, "Key": delivery_key(delivery), "UpdateExpression": expression,
                 "ExpressionAttributeNames": {"#state": "state"}, "ExpressionAttributeValues": values}
        if alias is None:
            self._call(self._client.update_item, **close)
            return
        self._call(self._client.transact_write_items, TransactItems=[{"Update": close}, self._claim_removal(delivery,
                                                                                                            alias)])

    def _claim_removal(self, delivery: DeliveryKey, alias: str) -> Any:
        """The transaction item that removes the claim of ``delivery`` from the alias item of ``alias``."""
        return {"Update": {"TableName": self._table, "Key": alias_key(alias), "UpdateExpression": "REMOVE #claim",
                           "ConditionExpression": "attribute_exists(pk)",
                           "ExpressionAttributeNames": {"#claim": claim_attribute(delivery)}}}

    def record_sent(self, delivery: DeliveryKey, sent: SentMessage, pair: Pair, recipient_key: str,
                    sent_expires_at: int, delivery_expires_at: int | None = None) -> None:
        sent_item: Item = {
            **sent_key(sent.ses_message_id),
            "kind": {"S": "sent"},
            "ses_message_id": {"S": sent.ses_message_id},
            "direction": {"S": sent.direction.value},
            "service_code": {"S": sent.service_code},
            "user_code": {"S": sent.user_code},
            "original_sender": {"S": sent.original_sender},
            "inbound_message_id": {"S": sent.inbound_message_id},
            "sent_at": _num(sent.sent_at),
            "expires_at": _num(sent_expires_at),
            "recipient_address": {"S": sent.recipient_address},
            "sender_automatic": {"BOOL": sent.sender_automatic},
            "user_address": {"S": sent.user_address},
            "recipient_name": {"S": sent.recipient_name},
        }
        writes: list[Any] = [{"Put": {"TableName": self._table, "Item": sent_item}}]
        if sent.original_message_id:
            sent_item["original_message_id"] = {"S": sent.original_message_id}
            copy_item = {**sent_item, **copy_key(sent.original_message_id, recipient_key), "kind": {"S": "copy"}}
            writes.append({"Put": {"TableName": self._table, "Item": copy_item}})
        update = _PAIR_UPDATES[(sent.direction, sent.sender_automatic)]
        close: Item = {"TableName": self._table, "Key": delivery_key(delivery),
                       "UpdateExpression": "SET #state = :sent, ses_message_id = :ses",
                       "ExpressionAttributeNames": {"#state": "state"},
                       "ExpressionAttributeValues": {":sent": {"S": DeliveryState.SENT.value},
                                                     ":ses": {"S": sent.ses_message_id}}}
        if delivery_expires_at is not None:  # an alias claim: this write creates the delivery record
            close["UpdateExpression"] += ", expires_at = if_not_exists(expires_at, :expires)"
            close["ExpressionAttributeValues"][":expires"] = _num(delivery_expires_at)
        if sent.direction is Direction.TO_USER:  # mail to a user code was claimed on the pair's alias item
            writes.append(self._claim_removal(delivery, pair.user_code))
        if sent.contact_details:  # every expression above ends in its ADD clause
            update += ", contact_details_messages :one"
        self._call(self._client.transact_write_items, TransactItems=[
            {"Update": close},
            *writes,
            {"Update": {"TableName": self._table, "Key": pair_key(pair.service_code, pair.user_address),
                        "UpdateExpression": update, "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": {":now": _num(sent.sent_at), ":one": _num(1)}}},
            {"Update": {"TableName": self._table,
                        "Key": rate_key(pair.service_code, pair.user_address, sent.sent_at // 60),
                        "UpdateExpression": "ADD #count :one SET expires_at = :expires",
                        "ExpressionAttributeNames": {"#count": "count"},
                        "ExpressionAttributeValues": {":one": _num(1), ":expires": _num(sent.sent_at + 120)}}},
        ])

    def allow_notice(self, sender_key: str, window: int, limit: int, expires_at: int) -> bool:
        """One conditional ADD: counts the notice and refuses it once ``limit`` notices went out in ``window``."""
        return self._count_within(notice_key(sender_key, window), limit, expires_at, "notice")

    def _count_within(self, key: Item, limit: int, expires_at: int, what: str) -> bool:
        try:
            self._client.update_item(**self._counter_update(key, limit, expires_at))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise RelayFault(f"could not count the {what}") from exc
        except BotoCoreError as exc:
            raise RelayFault(f"could not count the {what}") from exc
        return True

    def _counter_update(self, key: Item, limit: int, expires_at: int) -> Any:
        """Count one in a windowed counter item, refused (condition) once ``limit`` were counted."""
        return {"TableName": self._table, "Key": key, "UpdateExpression": "ADD #count :one SET expires_at = :expires",
                "ConditionExpression": "attribute_not_exists(#count) OR #count < :limit",
                "ExpressionAttributeNames": {"#count": "count"},
                "ExpressionAttributeValues": {":one": _num(1), ":limit": _num(limit), ":expires": _num(expires_at)}}

    # -- feedback (bounces handler) --------------------------------------------------------------------------

    def feedback_context(self, ses_message_id: str, address: str | None) -> tuple[SentRecord | None, AddressHealth]:
        """The sent record of ``ses_message_id`` and the health of ``address``: one BatchGetItem.

        The bounces function's read (and an operator's, through ``address_health``), never the relay's: their types
        come with ``feedback``, which the bounces function imports anyway and the relay never does."""
        from emailflow.feedback import AddressHealth, SentRecord  # noqa: PLC0415 - deferred, see the docstring

        keys = [sent_key(ses_message_id)] + ([address_key(address)] if address else [])
        items = self._batch_get(keys)
        sent_item = items.get(self._key_of(keys[0]))
        record = None
        if sent_item is not None:
            record = SentRecord(
                message=_sent_from(sent_item),
                bounce=_feedback_state(sent_item, "bounce"),
                complaint=_feedback_state(sent_item, "complaint"),
                delivered="delivered_at" in sent_item,
            )
        health_item = items.get(self._key_of(keys[1])) if address else None
        health = AddressHealth(address or "")
        if health_item is not None:
            health = AddressHealth(address or "", _s(health_item, "undeliverable_reason"),
                                   _n(health_item, "transient_bounces") or 0)
        return record, health

    def record_bounce(self, sent: SentMessage, address: str, undeliverable_reason: str | None, now: int) -> bool:
        """Apply one bounce once: count a transient one, or mark the address undeliverable (and, for a service's
        address, mirror that onto the service item). False if this bounce was recorded before."""
        state = FeedbackState.DONE
        writes: list[Any] = [
            {"Update": {"TableName": self._table, "Key": sent_key(sent.ses_message_id),
                        "UpdateExpression": "SET bounce = :state",
                        "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(bounce)",
                        "ExpressionAttributeValues": {":state": {"S": state.value}}}},
        ]
        if undeliverable_reason is None:
            writes.append({"Update": {"TableName": self._table, "Key": address_key(address),
                                      "UpdateExpression": "ADD transient_bounces :one SET last_bounce_at = :now",
                                      "ExpressionAttributeValues": {":one": _num(1), ":now": _num(now)}}})
        else:
            writes.append({"Update": {
                "TableName": self._table, "Key": address_key(address),
                "UpdateExpression": "SET undeliverable_reason = :reason, undeliverable_at = :now, "
                                    "last_bounce_at = :now ADD transient_bounces :one",
                "ExpressionAttributeValues": {":reason": {"S": undeliverable_reason}, ":now": _num(now),
                                              ":one": _num(1)}}})
            if sent.direction is Direction.TO_SERVICE:
                writes.append({"Update": {
                    "TableName": self._table, "Key": service_key(sent.service_code),
                    "UpdateExpression": "SET undeliverable.#address = :reason",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeNames": {"#address": address},
                    "ExpressionAttributeValues": {":reason": {"S": undeliverable_reason}}}})
        with _Once() as once:
            self._client.transact_write_items(TransactItems=writes)
        return once.applied

    def set_bounce_state(self, ses_message_id: str, state: FeedbackState) -> None:
        self._call(self._client.update_item, TableName=self._table, Key=sent_key(ses_message_id),
                   UpdateExpression="SET bounce = :state", ExpressionAttributeValues={":state": {"S": state.value}})

    def record_complaint(self, sent: SentMessage, reason: str, now: int) -> bool:
        """Suspend the pair in the direction the complaint was about, once. False if recorded before."""
        with _Once() as once:
            self._client.transact_write_items(TransactItems=[
                {"Update": {"TableName": self._table, "Key": sent_key(sent.ses_message_id),
                            "UpdateExpression": "SET complaint = :done, complaint_at = :now",
                            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(complaint)",
                            "ExpressionAttributeValues": {":done": {"S": FeedbackState.DONE.value},
                                                          ":now": _num(now)}}},
                {"Update": {"TableName": self._table, "Key": pair_key(sent.service_code, sent.user_address),
                            "UpdateExpression": "SET suspended.#direction = :reason",
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeNames": {"#direction": sent.direction.value},
                            "ExpressionAttributeValues": {":reason": {"S": reason}}}},
            ])
        return once.applied

    def record_delivery(self, sent: SentMessage, address: str, now: int) -> bool:
        """Count a delivery once, on the pair and the address (which also ends a run of transient bounces)."""
        counter = "delivered_to_service" if sent.direction is Direction.TO_SERVICE else "delivered_to_user"
        with _Once() as once:
            self._client.transact_write_items(TransactItems=[
                {"Update": {"TableName": self._table, "Key": sent_key(sent.ses_message_id),
                            "UpdateExpression": "SET delivered_at = :now",
                            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(delivered_at)",
                            "ExpressionAttributeValues": {":now": _num(now)}}},
                {"Update": {"TableName": self._table, "Key": pair_key(sent.service_code, sent.user_address),
                            "UpdateExpression": f"ADD {counter} :one", "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeValues": {":one": _num(1)}}},
                {"Update": {"TableName": self._table, "Key": address_key(address),
                            "UpdateExpression": "SET transient_bounces = :zero, last_delivered_at = :now",
                            "ExpressionAttributeValues": {":zero": _num(0), ":now": _num(now)}}},
            ])
        return once.applied

    # -- new senders held for approval ------------------------------------------------------------------------

    def hold_message(self, held: HeldMessage, sender_key: str) -> bool:
        """Both items or neither. A retry of the same hold (same id, still pending) succeeds again and keeps the
        messages kept with it; another pending, unexpired hold for the same (service, sender) makes it fail. One
        transaction; a second only where the guard of another hold is found (replaced once it has expired)."""
        from emailflow.senders import HoldState  # noqa: PLC0415 - senders imports email.policy: not on every cold start

        now = int(self._clock())
        item = {**hold_key(held.hold_id), "kind": {"S": "held"}, "service_code": {"S": held.service_code},
                "sender": {"S": held.sender}, "inbound_message_id": {"S": held.inbound_message_id},
                "recipient": {"S": held.recipient}, "envelope_sender": {"S": held.envelope_sender},
                "spf": {"S": held.spf}, "dkim": {"S": held.dkim}, "spam": {"S": held.spam},
                "created_at": _num(held.created_at), "sender_key": {"S": sender_key},
                "expires_at": _num(held.expires_at), "state": {"S": held.state.value}}
        hold: Any = {"Put": {"TableName": self._table, "Item": item,
                             "ConditionExpression": "attribute_not_exists(pk) OR #state = :pending",
                             "ExpressionAttributeNames": {"#state": "state"},
                             "ExpressionAttributeValues": {":pending": {"S": HoldState.PENDING.value}}}}
        guard_key = hold_guard_key(held.service_code, sender_key)
        # A new guard, or this hold's own on a retry: updated in place, so that messages kept with it stay.
        with _Once(any_item=True) as once:
            self._client.transact_write_items(TransactItems=[hold, {"Update": {
                "TableName": self._table, "Key": guard_key,
                "UpdateExpression": "SET hold_id = :id, expires_at = :expires",
                "ConditionExpression": "attribute_not_exists(pk) OR hold_id = :id",
                "ExpressionAttributeValues": {":id": {"S": held.hold_id}, ":expires": _num(held.expires_at)}}}])
        if once.applied:
            return True
        # The guard of another hold: replaced whole (what was kept with it goes) only once it has expired.
        with _Once(any_item=True) as once:
            self._client.transact_write_items(TransactItems=[hold, {"Put": {
                "TableName": self._table,
                "Item": {**guard_key, "hold_id": {"S": held.hold_id}, "expires_at": _num(held.expires_at)},
                "ConditionExpression": "expires_at <= :now", "ExpressionAttributeValues": {":now": _num(now)}}}])
        return once.applied

    def get_held(self, hold_id: str) -> HeldMessage | None:
        from emailflow.senders import HeldMessage, HoldState  # noqa: PLC0415 - see hold_message

        item = self._batch_get([hold_key(hold_id)]).get(self._key_of(hold_key(hold_id)))
        if item is None:
            return None
        text = {name: str(item[name]["S"]) for name in ("service_code", "sender", "inbound_message_id", "recipient",
                                                        "envelope_sender", "spf", "dkim", "spam")}
        return HeldMessage(hold_id=hold_id, **text, created_at=_n(item, "created_at") or 0,
                           expires_at=_n(item, "expires_at") or 0, state=HoldState(item["state"]["S"]),
                           sender_key=_s(item, "sender_key") or "")

    def hold_later(self, held: HeldMessage, sender_key: str, limit: int) -> bool:
        """One conditional ``UpdateItem`` that appends to the list on the pending-approval guard: no read. A repeat
        after a lost answer may append the same message twice; allowing relays it once (its delivery claim)."""
        from emailflow.senders import held_mail  # noqa: PLC0415 - see hold_message

        entry = {"M": {name: {"S": value} for name, value in held_mail(held).items()}}
        with _Once() as once:
            self._client.update_item(
                TableName=self._table, Key=hold_guard_key(held.service_code, sender_key),
                UpdateExpression="SET later = list_append(if_not_exists(later, :none), :entry)",
                ConditionExpression="attribute_exists(pk) AND expires_at > :now AND hold_id <> :own AND "
                                    "attribute_not_exists(closed) AND (attribute_not_exists(later) OR "
                                    "size(later) < :limit)",
                ExpressionAttributeValues={":none": {"L": []}, ":entry": {"L": [entry]}, ":own": {"S": held.hold_id},
                                           ":now": _num(int(self._clock())), ":limit": _num(limit)})
        return once.applied

    def close_hold(self, held: HeldMessage) -> list[HeldMessage]:
        from emailflow.senders import kept_with  # noqa: PLC0415 - see hold_message

        if not held.sender_key:
            return []
        try:
            answer = self._client.update_item(
                TableName=self._table, Key=hold_guard_key(held.service_code, held.sender_key),
                UpdateExpression="SET closed = :yes", ConditionExpression="hold_id = :id",
                ExpressionAttributeValues={":yes": {"BOOL": True}, ":id": {"S": held.hold_id}},
                ReturnValues="ALL_NEW")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return []  # the guard expired (or belongs to a later hold): nothing was kept with this one
            raise RelayFault("could not close the pending approval") from exc
        except BotoCoreError as exc:
            raise RelayFault("could not close the pending approval") from exc
        return [kept_with(held, {name: str(value["S"]) for name, value in entry["M"].items()})
                for entry in answer["Attributes"].get("later", {}).get("L", [])]

    def approve_held(self, hold_id: str, now: int) -> bool:
        from emailflow.senders import HoldState  # noqa: PLC0415 - see hold_message

        with _Once() as once:
            self._client.update_item(
                TableName=self._table, Key=hold_key(hold_id),
                UpdateExpression="SET #state = :approved, approved_at = :now",
                ConditionExpression="#state = :pending AND expires_at > :now",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":approved": {"S": HoldState.APPROVED.value},
                                           ":pending": {"S": HoldState.PENDING.value}, ":now": _num(now)})
        return once.applied

    def reopen_delivery(self, delivery: DeliveryKey, reason: str) -> bool:
        with _Once() as once:
            self._client.delete_item(
                TableName=self._table, Key=delivery_key(delivery),
                ConditionExpression="attribute_not_exists(pk) OR (#state = :rejected AND reason = :reason)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":rejected": {"S": DeliveryState.REJECTED.value},
                                           ":reason": {"S": reason}})
        return once.applied

    # -- operator reads and repairs ---------------------------------------------------------------------------

    def get_alias(self, user_code: str) -> tuple[str, str] | None:
        """(service code, user address) of a user code: one read, never on the mail path (replay, operators)."""
        alias = self._batch_get([alias_key(user_code)]).get(self._key_of(alias_key(user_code)))
        return None if alias is None else (str(alias["service_code"]["S"]), str(alias["user_address"]["S"]))

    def find_pair(self, user_code: str) -> Pair | None:
        """The pair of a user code: its alias item, then the pair (two reads; never on the mail path)."""
        alias = self.get_alias(user_code)
        if alias is None:
            return None
        service_code, user_address = alias
        key = pair_key(service_code, user_address)
        item = self._batch_get([key]).get(self._key_of(key))
        return None if item is None else _pair_from(item, service_code)

    def address_health(self, address: str) -> AddressHealth:
        return self.feedback_context("-", address)[1]

    def forget_address_health(self, address: str) -> None:
        self._call(self._client.delete_item, TableName=self._table, Key=address_key(address))

    def clear_service_undeliverable(self, service_code: str, address: str) -> None:
        self._call(self._client.update_item, TableName=self._table, Key=service_key(service_code),
                   UpdateExpression="REMOVE undeliverable.#address", ConditionExpression="attribute_exists(pk)",
                   ExpressionAttributeNames={"#address": address})

    def resume_pair(self, service_code: str, user_address: str, direction: Direction) -> None:
        self._call(self._client.update_item, TableName=self._table, Key=pair_key(service_code, user_address),
                   UpdateExpression="REMOVE suspended.#direction", ConditionExpression="attribute_exists(pk)",
                   ExpressionAttributeNames={"#direction": direction.value})

    # -- plumbing -------------------------------------------------------------------------------------------

    @staticmethod
    def _key_of(key: Item) -> tuple[str, str]:
        return str(key["pk"]["S"]), str(key["sk"]["S"])

    def _batch_get(self, keys: list[Item]) -> dict[tuple[str, str], Item]:
        """Strongly consistent BatchGetItem, retrying unprocessed keys with back-off."""
        found: dict[tuple[str, str], Item] = {}
        pending: list[Item] = list({self._key_of(key): key for key in keys}.values())
        for attempt in range(_MAX_BATCH_ATTEMPTS):
            try:
                response = self._client.batch_get_item(
                    RequestItems={self._table: {"Keys": pending, "ConsistentRead": True}})
            except (ClientError, BotoCoreError) as exc:
                raise RelayFault("could not read from DynamoDB") from exc
            for item in response.get("Responses", {}).get(self._table, []):
                found[self._key_of(item)] = item
            unprocessed: dict[str, Any] = dict(response.get("UnprocessedKeys") or {})
            pending = list(unprocessed.get(self._table, {}).get("Keys", []))
            if not pending:
                return found
            time.sleep(0.05 * 2**attempt)
        raise RelayFault("DynamoDB left keys unprocessed")

    @staticmethod
    def _call(operation: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return operation(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise RelayFault(f"DynamoDB {getattr(operation, '__name__', 'call')} failed") from exc
