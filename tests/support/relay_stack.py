"""The relay on in-process moto: resources from template.yaml, the real handler, and what SES recorded."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import boto3

from emailflow import wiring
from emailflow.addresses import RelayAddressing
from emailflow.config import get_settings
from emailflow.local.lambda_context import LocalLambdaContext
from emailflow.local.moto_ses import sent_bytes, sent_messages
from emailflow.local.stack import LocalStack
from emailflow.model import Service
from emailflow.services import register_service, service_address
from tests.support.mail import new_message_id, ses_receipt_event


@dataclass(frozen=True)
class SentMail:
    """One message the relay handed to SES: envelope recipients and the exact bytes."""

    ses_message_id: str
    destinations: list[str]
    raw: bytes

    @property
    def header_block(self) -> bytes:
        end = self.raw.find(b"\r\n\r\n")
        return self.raw[:end] if end != -1 else self.raw[: self.raw.find(b"\n\n")]

    def parsed(self) -> EmailMessage:
        message: EmailMessage = email.message_from_bytes(self.raw, policy=email.policy.default)
        return message

    def ses_header_message_id(self, region: str = "us-east-1") -> str:
        """The Message-ID SES gives this mail on the wire (SES overrides ours)."""
        domain = "email.amazonses.com" if region == "us-east-1" else f"{region}.amazonses.com"
        return f"<{self.ses_message_id}@{domain}>"


@dataclass
class RelayHarness:
    """Drives the real relay handler as SES would: store the raw mail in S3, then invoke with the receipt event."""

    stack: LocalStack
    handler: Callable[[dict[str, Any], Any], dict[str, Any]]

    def register(self, addresses: Sequence[str], name: str, context: dict[str, str] | None = None) -> tuple[
            Service, str]:
        relay = wiring.relay_context()
        service = register_service(relay.directory, relay.codebook, addresses, name, context,
                                   relay_domain=relay.addressing.domain)
        return service, service_address(self.addressing, service)

    @property
    def addressing(self) -> RelayAddressing:
        return wiring.addressing(get_settings())

    def deliver(self, raw: bytes, recipients: Sequence[str], source: str, *, message_id: str | None = None,
                store: bool = True, verdicts: Mapping[str, str] | None = None,
                dmarc_policy: str | None = None) -> dict[str, Any]:
        settings = get_settings()
        message_id = message_id or new_message_id()
        if store:
            boto3.client("s3").put_object(Bucket=settings.inbound_bucket,
                                          Key=f"{settings.inbound_prefix}{message_id}", Body=raw)
        event = ses_receipt_event(message_id, recipients, source, verdicts, dmarc_policy)
        return self.handler(event, LocalLambdaContext())

    @staticmethod
    def sent() -> list[SentMail]:
        return [SentMail(message.id, list(message.destinations), sent_bytes(message.raw_data))
                for message in sent_messages()]
