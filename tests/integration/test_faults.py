"""Exactly once under faults: each fault is injected on moto through botocore event hooks on the relay's own
clients, then the event is retried the way Lambda retries an asynchronous invocation (the same event, up to three
attempts in all, then parked on the on-failure destination).

Every case ends with exactly one copy at the recipient (none when SES refused the message), the pair's figures
counted once, and - when the event ends parked - the raw mail still in S3 for a redrive. The cases share one stack
(each has its own service, user and message ids) to keep the suite fast; the ledger sums them up for the summary
line at the end of the run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ConnectTimeoutError
from moto import mock_aws

from emailflow import wiring
from emailflow.adapters.clients import dynamodb_client, s3_client, sesv2_client
from emailflow.adapters.sesv2 import SesMailer
from emailflow.codes import CodeKind
from emailflow.config import get_settings
from emailflow.local.lambda_context import LocalLambdaContext
from emailflow.local.moto_ses import install_byte_exact_sesv2
from emailflow.local.stack import deploy_locally
from emailflow.model import Pair
from emailflow.ports import RelayFault, SendFailed, SendOutcomeUnknown
from emailflow.relay import DeliveryInDoubt
from tests.support.faults import (
    LEDGER,
    Injector,
    Invocation,
    dynamodb_http_error,
    error_answer,
    injector,
    lambda_async,
    parked,
    transaction_cancelled,
)
from tests.support.mail import load_eml, new_message_id, ses_receipt_event
from tests.support.relay_stack import RelayHarness

DOMAIN = "relay.example"
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class _Crash(Exception):
    """The Lambda process died (time-out, out of memory) at this point."""


@dataclass
class Conversation:
    """One case's own service and user, so that cases can share the stack."""

    service_code: str
    service_address: str
    owner: str
    user: str


@dataclass
class FaultStack:
    relay: RelayHarness

    def conversation(self, name: str) -> Conversation:
        owner, user = f"owner-{name}@flats.example", f"guest-{name}@people.example"
        service, address = self.relay.register([owner], f"Flat {name}")
        return Conversation(service.code, address, owner, user)

    @staticmethod
    def store(raw: bytes) -> str:
        settings = get_settings()
        message_id = new_message_id()
        boto3.client("s3").put_object(Bucket=settings.inbound_bucket, Key=f"{settings.inbound_prefix}{message_id}",
                                      Body=raw)
        return message_id

    def user_writes(self, conversation: Conversation, recipients: list[str] | None = None) -> dict[str, Any]:
        """Store a user's message to the service and return its receipt event (not yet invoked)."""
        recipients = recipients or [conversation.service_address]
        raw = load_eml("user_first_message.eml", {"jane.doe@real-user.example": conversation.user,
                                                  "service-placeholder@relay.example": ", ".join(recipients)})
        return ses_receipt_event(self.store(raw), recipients, conversation.user)

    def service_replies(self, conversation: Conversation, user_relay_address: str) -> dict[str, Any]:
        raw = load_eml("service_reply.eml", {"Owner@Holiday-Flats.example": conversation.owner,
                                             "owner@holiday-flats.example": conversation.owner,
                                             "user-placeholder@relay.example": user_relay_address,
                                             "<ses-in-reply-to-placeholder>": "<none@nowhere.example>"})
        return ses_receipt_event(self.store(raw), [user_relay_address], conversation.owner)

    def invoke(self, event: dict[str, Any]) -> list[Invocation]:
        return lambda_async(self.relay.handler, event, LocalLambdaContext())

    def redrive(self, event: dict[str, Any]) -> dict[str, Any]:
        """What an operator's redrive does: invoke the function again with the parked event."""
        return self.relay.handler(event, LocalLambdaContext())

    def copies_to(self, address: str) -> int:
        return sum(1 for mail in self.relay.sent() if mail.destinations[0] == address)

    def user_relay_address(self, conversation: Conversation) -> str:
        replies_to = [mail for mail in self.relay.sent() if mail.destinations[0] == conversation.owner]
        return str(replies_to[0].parsed()["Reply-To"].addresses[0].addr_spec)

    @staticmethod
    def pairs(conversation: Conversation) -> list[Pair]:
        return wiring.directory().list_pairs(conversation.service_code)

    @staticmethod
    def claim_state(event: dict[str, Any], recipient: str) -> str | None:
        message_id = event["Records"][0]["ses"]["mail"]["messageId"]
        item = boto3.client("dynamodb").get_item(
            TableName=get_settings().table_name, ConsistentRead=True,
            Key={"pk": {"S": f"DLV#{message_id}"}, "sk": {"S": f"RCPT#{recipient.lower()}"}}).get("Item")
        return None if item is None else str(item["state"]["S"])

    @staticmethod
    def raw_in_s3(event: dict[str, Any]) -> bool:
        settings = get_settings()
        message_id = event["Records"][0]["ses"]["mail"]["messageId"]
        listed = boto3.client("s3").list_objects_v2(Bucket=settings.inbound_bucket,
                                                    Prefix=f"{settings.inbound_prefix}{message_id}")
        return listed.get("KeyCount", 0) == 1


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[FaultStack]:
    """The template's resources on moto, shared by the cases of this module, and the real relay handler."""
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        install_byte_exact_sesv2()
        created = deploy_locally({"DomainName": DOMAIN, "BrandName": "emailflow"})
        for name, value in created.function_environment("RelayFunction").items():
            patch.setenv(name, value)
        wiring.reset()
        from relay.app import handler

        yield FaultStack(RelayHarness(stack=created, handler=handler))
        wiring.reset()


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Back-off delays asked for (botocore's standard retries and the SES adapter's), recorded, not slept."""
    from botocore.retries import standard

    asked: list[float] = []
    original = standard.ExponentialBackoff.delay_amount

    def record(self: standard.ExponentialBackoff, context: standard.RetryContext) -> float:
        asked.append(original(self, context))
        return 0.0

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", record)
    mailer = wiring.relay_context().mailer
    assert isinstance(mailer, SesMailer)
    monkeypatch.setattr(mailer, "_sleep", asked.append)
    return asked


def _outcomes(invocation: Invocation) -> list[tuple[str, str]]:
    assert invocation.result is not None, invocation.error
    return [(outcome["action"], outcome["reason"]) for outcome in invocation.result["outcomes"]]


def _errors(invocations: list[Invocation]) -> list[type[BaseException] | None]:
    return [None if invocation.error is None else type(invocation.error) for invocation in invocations]


@dataclass
class LedgerCase:
    """What one case expects at its recipients; the ``case`` fixture records what they got, pass or fail."""

    faults: Injector | None = None
    recipients: list[str] = field(default_factory=list)
    expected: int = 1
    """Copies each recipient should get: 1, or 0 when SES refused the message."""
    already: int = 0
    """Copies each recipient had before the case's message (an earlier message of the same conversation)."""

    def track(self, faults: Injector, recipients: list[str], expected: int = 1, already: int = 0) -> None:
        self.faults, self.recipients, self.expected, self.already = faults, recipients, expected, already


@pytest.fixture
def case(fault_stack: FaultStack) -> Iterator[LedgerCase]:
    """Adds the case to the session's ledger after the test, whatever its assertions found."""
    tracked = LedgerCase()
    yield tracked
    delivered = [fault_stack.copies_to(address) - tracked.already for address in tracked.recipients]
    LEDGER.record(faults=tracked.faults.fired if tracked.faults else 0, expected=tracked.expected,
                  delivered=delivered)


def _pk_in_body(marker: bytes) -> Callable[[bytes], bool]:
    return lambda body: marker in body


# -- S3 ---------------------------------------------------------------------------------------------------------


def test_fault_s3_read_error_is_retried_and_relayed_once(fault_stack: FaultStack, case: LedgerCase) -> None:
    # Given a first message, and S3 failing the first read of it
    conversation = fault_stack.conversation("s3-error")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.fail_call(s3_client(), "GetObject", lambda: error_answer("InternalError", 500))

        # When SES invokes the relay and Lambda retries
        invocations = fault_stack.invoke(event)

    # Then the first attempt failed before any claim, the retry relayed it once, and the pair counts it once
    assert _errors(invocations) == [RelayFault, None]
    assert _outcomes(invocations[1]) == [("forwarded", "relayed")]
    [pair] = fault_stack.pairs(conversation)
    assert (fault_stack.copies_to(conversation.owner), pair.user_messages) == (1, 1)


def test_fault_s3_unavailable_for_every_attempt_parks_event_and_redrive_sends_once(fault_stack: FaultStack,
                                                                                   case: LedgerCase) -> None:
    # Given a first message and S3 failing every read during all of Lambda's attempts
    conversation = fault_stack.conversation("s3-down")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.fail_call(s3_client(), "GetObject", lambda: error_answer("ServiceUnavailable", 503), times=-1)

        # When SES invokes the relay and Lambda retries
        invocations = fault_stack.invoke(event)

    # Then the event is parked with nothing sent, nothing claimed and the raw mail still in S3
    assert parked(invocations)
    assert fault_stack.raw_in_s3(event)
    assert fault_stack.claim_state(event, conversation.service_address) is None
    assert fault_stack.copies_to(conversation.owner) == 0

    # When the operator redrives it once S3 is back, Then it is relayed once
    assert _outcomes(Invocation(fault_stack.redrive(event))) == [("forwarded", "relayed")]
    assert fault_stack.copies_to(conversation.owner) == 1


def test_fault_s3_read_timeouts_are_retried_by_botocore_within_one_attempt(fault_stack: FaultStack,
                                                                           backoffs: list[float],
                                                                           case: LedgerCase) -> None:
    # Given S3 answers lost twice (reads are safe to repeat)
    conversation = fault_stack.conversation("s3-timeout")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.lose_answer(s3_client(), "GetObject", times=2)

        # When SES invokes the relay
        invocations = fault_stack.invoke(event)

    # Then botocore's retries absorbed both and the first attempt relayed the mail once
    assert _errors(invocations) == [None]
    assert faults.fired == 2
    assert len(backoffs) == 2
    assert fault_stack.copies_to(conversation.owner) == 1


# -- DynamoDB ---------------------------------------------------------------------------------------------------


def test_fault_throttled_read_fails_the_attempt_and_retry_relays_once(fault_stack: FaultStack,
                                                                      case: LedgerCase) -> None:
    # Given DynamoDB throttling the relay's first read past botocore's own retries
    conversation = fault_stack.conversation("read-throttled")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.fail_call(dynamodb_client(), "BatchGetItem",
                         lambda: error_answer("ProvisionedThroughputExceededException", 400))

        # When SES invokes the relay and Lambda retries
        invocations = fault_stack.invoke(event)

    # Then the first attempt is a fault with nothing claimed, and the retry relays once
    assert _errors(invocations) == [RelayFault, None]
    [pair] = fault_stack.pairs(conversation)
    assert (fault_stack.copies_to(conversation.owner), pair.user_messages) == (1, 1)


def test_fault_throttled_read_is_absorbed_by_botocore_backoff(fault_stack: FaultStack, backoffs: list[float],
                                                              case: LedgerCase) -> None:
    # Given DynamoDB answering the first two reads with a throttling error (HTTP 400)
    conversation = fault_stack.conversation("read-backoff")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.fail_request(dynamodb_client(), "BatchGetItem",
                            lambda: dynamodb_http_error("ProvisionedThroughputExceededException"), times=2)

        # When SES invokes the relay
        invocations = fault_stack.invoke(event)

    # Then botocore backed off twice (throttling back-off) and the first attempt relayed once
    assert _errors(invocations) == [None]
    assert faults.fired == 2
    assert len(backoffs) == 2
    assert fault_stack.copies_to(conversation.owner) == 1


def test_fault_read_timeouts_past_botocore_retries_are_a_relay_fault(fault_stack: FaultStack, backoffs: list[float],
                                                                     case: LedgerCase) -> None:
    # Given DynamoDB answers lost on every try of the first attempt (1 + 3 botocore retries)
    conversation = fault_stack.conversation("read-timeout")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.lose_answer(dynamodb_client(), "BatchGetItem", times=4)

        # When SES invokes the relay and Lambda retries
        invocations = fault_stack.invoke(event)

    # Then the first attempt ends in the domain's fault (not a botocore error) and the retry relays once
    assert _errors(invocations) == [RelayFault, None]
    assert fault_stack.copies_to(conversation.owner) == 1


def test_fault_throttled_pair_creation_creates_one_pair_on_retry(fault_stack: FaultStack, case: LedgerCase) -> None:
    # Given the transaction that creates the pair and claims the delivery is cancelled by throttling
    conversation = fault_stack.conversation("pair-throttled")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.fail_call(dynamodb_client(), "TransactWriteItems", lambda: transaction_cancelled("ThrottlingError", 3),
                         matches=_pk_in_body(b'"USR#'))

        # When SES invokes the relay and Lambda retries
        invocations = fault_stack.invoke(event)

    # Then nothing was written by the failed attempt, and the retry created one pair and relayed once
    assert _errors(invocations) == [RelayFault, None]
    [pair] = fault_stack.pairs(conversation)
    assert (fault_stack.copies_to(conversation.owner), pair.user_messages) == (1, 1)


def test_fault_pair_transaction_applied_but_answer_lost_relays_once(fault_stack: FaultStack, backoffs: list[float],
                                                                    case: LedgerCase) -> None:
    # Given the pair-creating transaction is applied, then its answer is lost (botocore repeats it)
    conversation = fault_stack.conversation("pair-lost-answer")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.lose_answer(dynamodb_client(), "TransactWriteItems", matches=_pk_in_body(b'"USR#'))
        sent = faults.watch(dynamodb_client(), "TransactWriteItems")

        # When SES invokes the relay
        invocations = fault_stack.invoke(event)

    # Then botocore repeated the transaction with the same ClientRequestToken (DynamoDB answers such a repeat as
    # a success; moto does not, so the adapter's own check is what passes here), and the repeat recognised its own
    # claim: one pair, one copy, in the first attempt
    creating = [json.loads(body) for body in sent if b'"USR#' in body]
    assert len(creating) == 2
    assert creating[0]["ClientRequestToken"] == creating[1]["ClientRequestToken"]
    assert _outcomes(invocations[0]) == [("forwarded", "relayed")]
    [pair] = fault_stack.pairs(conversation)
    assert (fault_stack.copies_to(conversation.owner), pair.user_messages) == (1, 1)


def test_fault_claim_applied_but_answer_lost_relays_once(fault_stack: FaultStack, backoffs: list[float],
                                                         case: LedgerCase) -> None:
    # Given a known pair, and the claim of its second message written, then its answer lost (botocore repeats it)
    conversation = fault_stack.conversation("claim-lost-answer")
    fault_stack.invoke(fault_stack.user_writes(conversation))
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner], expected=1, already=1)
        faults.lose_answer(dynamodb_client(), "PutItem", matches=_pk_in_body(b'"DLV#'))

        # When SES invokes the relay
        invocations = fault_stack.invoke(event)

    # Then the repeat is not mistaken for a duplicate: the message is relayed once, not lost
    assert _outcomes(invocations[0]) == [("forwarded", "relayed")]
    [pair] = fault_stack.pairs(conversation)
    assert (fault_stack.copies_to(conversation.owner), pair.user_messages) == (2, 2)


def test_fault_throttled_claim_of_a_reply_is_retried_and_counted_once(fault_stack: FaultStack,
                                                                      case: LedgerCase) -> None:
    # Given a conversation, and the claim of the service's reply (on the user code's alias item) throttled
    conversation = fault_stack.conversation("reply-claim")
    fault_stack.invoke(fault_stack.user_writes(conversation))
    user_relay_address = fault_stack.user_relay_address(conversation)
    event = fault_stack.service_replies(conversation, user_relay_address)
    with injector() as faults:
        case.track(faults, [conversation.user])
        faults.fail_call(dynamodb_client(), "UpdateItem", lambda: error_answer("ThrottlingException", 400),
                         matches=_pk_in_body(b'"USR#'))

        # When SES invokes the relay and Lambda retries
        invocations = fault_stack.invoke(event)

    # Then the reply reaches the user once and counts once
    assert _errors(invocations) == [RelayFault, None]
    [pair] = fault_stack.pairs(conversation)
    assert (fault_stack.copies_to(conversation.user), pair.service_messages) == (1, 1)


def test_fault_alias_claim_applied_but_answer_lost_relays_once(fault_stack: FaultStack, backoffs: list[float],
                                                               case: LedgerCase) -> None:
    # Given a conversation, and the claim of the service's reply written on the alias item, then its answer lost
    # (botocore repeats the UpdateItem, which then fails its condition on the claim the first try wrote)
    conversation = fault_stack.conversation("alias-claim-lost-answer")
    fault_stack.invoke(fault_stack.user_writes(conversation))
    user_relay_address = fault_stack.user_relay_address(conversation)
    event = fault_stack.service_replies(conversation, user_relay_address)
    with injector() as faults:
        case.track(faults, [conversation.user])
        faults.lose_answer(dynamodb_client(), "UpdateItem", matches=_pk_in_body(b'"USR#'))
        sent = faults.watch(dynamodb_client(), "UpdateItem")

        # When SES invokes the relay
        invocations = fault_stack.invoke(event)

    # Then the repeat recognised its own claim: not in doubt, relayed once in the first attempt, counted once
    assert len([body for body in sent if b'"USR#' in body and b'"SET #claim' in body]) == 2
    assert _outcomes(invocations[0]) == [("forwarded", "relayed")]
    [pair] = fault_stack.pairs(conversation)
    assert (fault_stack.copies_to(conversation.user), pair.service_messages) == (1, 1)


def test_fault_close_fails_after_send_parks_event_without_second_copy(fault_stack: FaultStack, case: LedgerCase,
                                                                      log_lines: io.StringIO) -> None:
    # Given the transaction that closes the delivery fails (every time) after SES took the mail
    conversation = fault_stack.conversation("close-fails")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.fail_call(dynamodb_client(), "TransactWriteItems", lambda: transaction_cancelled("ThrottlingError", 5),
                         times=-1, matches=_pk_in_body(b'"SENT#'))

        # When SES invokes the relay and Lambda retries
        invocations = fault_stack.invoke(event)

    # Then the mail went out once; the retries found the claim open and refused to send again; the event is
    # parked with the claim in progress and the raw mail in S3 (docs/operations.md: in-doubt deliveries)
    assert _errors(invocations) == [RelayFault, DeliveryInDoubt, DeliveryInDoubt]
    assert fault_stack.copies_to(conversation.owner) == 1
    assert fault_stack.claim_state(event, conversation.service_address) == "in_progress"
    assert fault_stack.raw_in_s3(event)
    # And the log says it went out (the operator closes the claim instead of redriving)
    message_id = event["Records"][0]["ses"]["mail"]["messageId"]
    sent = [line for line in map(json.loads, log_lines.getvalue().splitlines())
            if line["message"] == "sent" and line["inbound_message_id"] == message_id]
    assert [line["recipient"] for line in sent] == [conversation.service_address.lower()]


def test_fault_crash_between_claim_and_send_parks_event_and_checked_redrive_sends_once(fault_stack: FaultStack,
                                                                                       case: LedgerCase,
                                                                                       log_lines: io.StringIO) -> None:
    # Given the process dies after the claim, before SES is called
    conversation = fault_stack.conversation("crash")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.fail_call(sesv2_client(), "SendEmail", _Crash("Lambda timed out"))

        # When SES invokes the relay and Lambda retries
        invocations = fault_stack.invoke(event)

    # Then nothing was sent and nothing is sent by the retries: parked, claim open, raw mail in S3
    assert _errors(invocations) == [_Crash, DeliveryInDoubt, DeliveryInDoubt]
    assert fault_stack.copies_to(conversation.owner) == 0
    assert fault_stack.claim_state(event, conversation.service_address) == "in_progress"
    assert fault_stack.raw_in_s3(event)

    # When the operator finds no "sent" line for it (docs/operations.md), deletes the open claim and redrives
    message_id = event["Records"][0]["ses"]["mail"]["messageId"]
    assert not [line for line in map(json.loads, log_lines.getvalue().splitlines())
                if line["message"] == "sent" and line.get("inbound_message_id") == message_id]
    boto3.client("dynamodb").delete_item(TableName=get_settings().table_name, Key={
        "pk": {"S": f"DLV#{message_id}"}, "sk": {"S": f"RCPT#{conversation.service_address.lower()}"}})
    fault_stack.redrive(event)

    # Then it is relayed once
    assert fault_stack.copies_to(conversation.owner) == 1


# -- SES --------------------------------------------------------------------------------------------------------


def test_fault_ses_throttled_twice_backs_off_and_sends_once(fault_stack: FaultStack, backoffs: list[float],
                                                            case: LedgerCase) -> None:
    # Given SES answering the first two sends with TooManyRequestsException (sending rate exceeded)
    conversation = fault_stack.conversation("ses-throttled")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.fail_call(sesv2_client(), "SendEmail", lambda: error_answer("TooManyRequestsException", 429), times=2)

        # When SES invokes the relay
        invocations = fault_stack.invoke(event)

    # Then the adapter backed off twice and the first attempt sent the mail once
    assert _outcomes(invocations[0]) == [("forwarded", "relayed")]
    assert faults.fired == 2
    assert len(backoffs) == 2
    assert fault_stack.copies_to(conversation.owner) == 1


def test_fault_ses_unreachable_twice_is_retried_and_sends_once(fault_stack: FaultStack, backoffs: list[float],
                                                                case: LedgerCase) -> None:
    # Given no connection to SES could be made for the first two sends (nothing reached SES)
    conversation = fault_stack.conversation("ses-unreachable")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.fail_call(sesv2_client(), "SendEmail", ConnectTimeoutError(endpoint_url="https://email.invalid"),
                         times=2)

        # When SES invokes the relay
        invocations = fault_stack.invoke(event)

    # Then the adapter tried again and the first attempt sent once
    assert _outcomes(invocations[0]) == [("forwarded", "relayed")]
    assert len(backoffs) == 2
    assert fault_stack.copies_to(conversation.owner) == 1


def test_fault_ses_throttled_past_backoff_releases_claim_and_retry_sends_once(fault_stack: FaultStack,
                                                                              backoffs: list[float],
                                                                              case: LedgerCase) -> None:
    # Given SES throttling every send of the first attempt (all of the adapter's tries)
    conversation = fault_stack.conversation("ses-throttled-long")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.fail_call(sesv2_client(), "SendEmail", lambda: error_answer("TooManyRequestsException", 429), times=4)

        # When SES invokes the relay and Lambda retries
        invocations = fault_stack.invoke(event)

    # Then the first attempt released its claim (SendFailed) and the retry sent once; the pair counts one
    assert _errors(invocations) == [SendFailed, None]
    [pair] = fault_stack.pairs(conversation)
    assert (fault_stack.copies_to(conversation.owner), pair.user_messages) == (1, 1)


def test_fault_ses_paused_for_every_attempt_parks_event_and_redrive_sends_once(fault_stack: FaultStack,
                                                                               case: LedgerCase) -> None:
    # Given SES sending paused for the account during all of Lambda's attempts
    conversation = fault_stack.conversation("ses-paused")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.fail_call(sesv2_client(), "SendEmail", lambda: error_answer("SendingPausedException", 400), times=-1)

        # When SES invokes the relay and Lambda retries
        invocations = fault_stack.invoke(event)

    # Then every attempt released its claim: parked with no claim left and the raw mail in S3
    assert _errors(invocations) == [SendFailed, SendFailed, SendFailed]
    assert fault_stack.claim_state(event, conversation.service_address) is None
    assert fault_stack.raw_in_s3(event)

    # When the operator redrives it after sending resumed, Then it is sent once
    fault_stack.redrive(event)
    assert fault_stack.copies_to(conversation.owner) == 1


def test_fault_ses_rejection_is_an_outcome_and_not_retried(fault_stack: FaultStack, case: LedgerCase) -> None:
    # Given SES refusing the message for good
    conversation = fault_stack.conversation("ses-rejected")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner], expected=0)
        faults.fail_call(sesv2_client(), "SendEmail", lambda: error_answer("MessageRejected", 400))

        # When SES invokes the relay, and delivers the same event once more
        invocations = fault_stack.invoke(event)
        again = fault_stack.redrive(event)

    # Then the outcome is send_rejected, the claim closed as rejected, nothing sent and nothing counted
    assert _outcomes(invocations[0]) == [("rejected", "send_rejected")]
    assert [(outcome["action"], outcome["reason"]) for outcome in again["outcomes"]] == [("duplicate", "duplicate")]
    assert fault_stack.claim_state(event, conversation.service_address) == "rejected"
    [pair] = fault_stack.pairs(conversation)
    assert (fault_stack.copies_to(conversation.owner), pair.user_messages) == (0, 0)


def test_fault_ses_answer_lost_after_send_is_never_sent_twice(fault_stack: FaultStack, case: LedgerCase) -> None:
    # Given SES takes the mail and its answer is lost (a read time-out after the request left)
    conversation = fault_stack.conversation("ses-lost-answer")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        faults.lose_answer(sesv2_client(), "SendEmail")

        # When SES invokes the relay and Lambda retries
        invocations = fault_stack.invoke(event)

    # Then neither botocore nor Lambda sent it again: one copy, the claim left open, the event parked with the raw
    # mail in S3
    assert _errors(invocations) == [SendOutcomeUnknown, DeliveryInDoubt, DeliveryInDoubt]
    assert fault_stack.copies_to(conversation.owner) == 1
    assert fault_stack.claim_state(event, conversation.service_address) == "in_progress"
    assert fault_stack.raw_in_s3(event)


def test_fault_second_recipient_throttled_retry_does_not_resend_the_first(fault_stack: FaultStack,
                                                                          backoffs: list[float],
                                                                          case: LedgerCase) -> None:
    # Given one message to two services, and SES throttling every send to the second one in the first attempt
    first = fault_stack.conversation("two-a")
    second = fault_stack.conversation("two-b")
    event = fault_stack.user_writes(first, [first.service_address, second.service_address])
    with injector() as faults:
        case.track(faults, [first.owner, second.owner])
        faults.fail_call(sesv2_client(), "SendEmail", lambda: error_answer("TooManyRequestsException", 429), times=4,
                         matches=_pk_in_body(second.owner.encode()))

        # When SES invokes the relay and Lambda retries
        invocations = fault_stack.invoke(event)

    # Then the retry skips the first recipient (duplicate) and sends to the second: one copy each
    assert _errors(invocations) == [SendFailed, None]
    assert _outcomes(invocations[1]) == [("duplicate", "duplicate"), ("forwarded", "relayed")]
    assert (fault_stack.copies_to(first.owner), fault_stack.copies_to(second.owner)) == (1, 1)


def test_fault_throttled_notice_is_retried_and_sent_once(fault_stack: FaultStack, backoffs: list[float],
                                                         case: LedgerCase) -> None:
    # Given an authenticated user writing to a genuine but unknown code, and SES throttling the notice's sends
    conversation = fault_stack.conversation("notice")
    unknown = f"service-{wiring.relay_context().codebook.new_code(CodeKind.SERVICE)}@{DOMAIN}"
    event = fault_stack.user_writes(conversation, [unknown])
    with injector() as faults:
        case.track(faults, [conversation.user])
        faults.fail_call(sesv2_client(), "SendEmail", lambda: error_answer("TooManyRequestsException", 429), times=4)

        # When SES invokes the relay and Lambda retries
        invocations = fault_stack.invoke(event)

    # Then the user gets exactly one "not in use" notice
    assert _errors(invocations) == [SendFailed, None]
    assert _outcomes(invocations[1]) == [("rejected", "unknown_code")]
    assert fault_stack.copies_to(conversation.user) == 1


def test_fault_event_delivered_again_after_success_sends_nothing(fault_stack: FaultStack, case: LedgerCase) -> None:
    # Given a message relayed once
    conversation = fault_stack.conversation("redelivered")
    event = fault_stack.user_writes(conversation)
    with injector() as faults:
        case.track(faults, [conversation.owner])
        fault_stack.invoke(event)

        # When SES (or an operator's redrive) delivers the same event again
        again = fault_stack.redrive(event)

    # Then it is a duplicate: still one copy, counted once
    assert [(outcome["action"], outcome["reason"]) for outcome in again["outcomes"]] == [("duplicate", "duplicate")]
    [pair] = fault_stack.pairs(conversation)
    assert (fault_stack.copies_to(conversation.owner), pair.user_messages) == (1, 1)
