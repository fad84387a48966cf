"""Wires the adapters to the use cases, once per container (cold start), from ``Settings``.

Handlers call ``relay_context()``; tests call ``reset()`` between cases so each builds its own under moto. Operator
commands call ``emailflow.operations.operations(settings)`` with settings of their own (from a stack's outputs, not
the environment), which builds on ``addressing`` and ``relay_context_for`` here.

The relay and the bounces function share this module, so what only one of them needs is imported where it is
wired: the relay use case (policy, masking, the rewrite) in ``relay_context``, the bounces use case (SES feedback
parsing; its notices only once a bounce writes one) in ``bounces_context``, the EventBridge publisher in
``marketplace_publisher``, which most deployments never configure. Every module imported at the top of a handler is
paid for on every cold start (benchmarks/bench_coldstart.py).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from emailflow.adapters.clients import reset_clients
from emailflow.adapters.dynamodb import DynamoDirectory
from emailflow.adapters.s3 import S3MailStore
from emailflow.adapters.secrets import load_keyring
from emailflow.adapters.sesv2 import SesMailer
from emailflow.addresses import RelayAddressing
from emailflow.codes import CodeBook, Keyring
from emailflow.config import Settings, get_settings

if TYPE_CHECKING:
    from emailflow.adapters.eventbridge import EventBridgePublisher
    from emailflow.bounces import BouncesContext
    from emailflow.ports import Directory
    from emailflow.relay import RelayContext

_DAY = 86_400


@cache
def keyring() -> Keyring:
    return load_keyring(get_settings().code_secret_arn)


def addressing(settings: Settings) -> RelayAddressing:
    return RelayAddressing(settings.domain, settings.service_prefix, settings.user_prefix)


@cache
def directory() -> DynamoDirectory:
    return DynamoDirectory(get_settings().table_name)


@cache
def relay_context() -> RelayContext:
    settings = get_settings()
    return relay_context_for(settings, keyring(), directory())


def relay_context_for(settings: Settings, ring: Keyring, store: Directory) -> RelayContext:
    """The relay of ``settings``' deployment: the function's (above), or an operator's redrive or replay."""
    from emailflow.policy import SpamPolicy  # noqa: PLC0415 - the relay function's only (module docstring)
    from emailflow.relay import RelayContext  # noqa: PLC0415 - the relay function's only (module docstring)

    return RelayContext(
        addressing=addressing(settings),
        brand=settings.brand,
        codebook=CodeBook(ring),
        keyring=ring,
        directory=store,
        mailer=SesMailer(settings.configuration_set),
        mail_store=S3MailStore(settings.inbound_bucket, settings.inbound_prefix),
        sent_record_seconds=settings.sent_record_days * _DAY,
        delivery_record_seconds=settings.delivery_record_days * _DAY,
        ses_message_id_domain=settings.ses_message_id_domain,
        spam_policy=SpamPolicy(settings.spam_policy),
        notices_per_sender_per_hour=settings.notices_per_sender_per_hour,
        pair_messages_per_minute=settings.pair_messages_per_minute,
        sender_messages_per_hour=settings.sender_messages_per_hour,
        noreply_local_part=settings.noreply_local_part,
        oversize_link_seconds=settings.oversize_link_hours * 3600,
        off_platform_signal=settings.off_platform_signal,
        approval_url=settings.approval_url,
        approval_seconds=settings.approval_hours * 3600,
        download_page_url=settings.download_page_url,
    )


@cache
def bounces_context() -> BouncesContext:
    from emailflow.bounces import BouncesContext  # noqa: PLC0415 - the bounces function's only (module docstring)

    settings = get_settings()
    ring = keyring()
    return BouncesContext(
        store=directory(),
        mailer=SesMailer(settings.configuration_set),
        addressing=addressing(settings),
        brand=settings.brand,
        keyring=ring,
        noreply_local_part=settings.noreply_local_part,
        transient_limit=settings.transient_bounce_limit,
    )


@cache
def marketplace_publisher() -> EventBridgePublisher | None:
    """The events publisher, or None when no bus is configured (the default)."""
    bus = get_settings().event_bus
    if not bus:
        return None
    from emailflow.adapters.eventbridge import EventBridgePublisher  # noqa: PLC0415 - only with a bus (docstring)

    return EventBridgePublisher(bus)


def reset() -> None:
    """Forget settings, clients and wiring (tests and local mode, after changing the environment)."""
    for cached in (get_settings, keyring, directory, relay_context, bounces_context, marketplace_publisher):
        cached.cache_clear()
    reset_clients()
