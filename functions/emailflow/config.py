"""Configuration: one ``Settings`` value read from the environment, once per cold start.

``os.environ`` is read here and nowhere else. Names of AWS resources have no defaults: a function that was deployed
without them must fail at cold start with a message that names the variable, not send mail to a guessed table.
Every variable read here is set by ``template.yaml`` (a test checks both directions).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,15}$")


class ConfigurationError(RuntimeError):
    """A required setting is missing or malformed; raised at cold start."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the relay needs to know about its deployment."""

    domain: str
    brand: str
    table_name: str
    inbound_bucket: str
    inbound_prefix: str
    configuration_set: str
    code_secret_arn: str
    service_prefix: str = "service"
    user_prefix: str = "user"
    sent_record_days: int = 90
    """How long a sent-message record (bounce and threading lookups) is kept."""
    delivery_record_days: int = 14
    """How long the idempotency record of one (inbound message, recipient) is kept: longer than any retry."""
    spam_policy: str = "drop"
    """``drop`` mail SES judged spam, or ``tag`` it (forward with ``[SPAM]`` in the subject)."""
    notices_per_sender_per_hour: int = 5
    pair_messages_per_minute: int = 10
    sender_messages_per_hour: int = 60
    """Messages one sender may write to services per hour (all services together); 0 turns the limit off."""
    noreply_local_part: str = "no-reply"
    event_bus: str = ""
    """EventBridge bus for marketplace events; empty: no events published."""
    transient_bounce_limit: int = 3
    """Transient bounces in a row after which an address is treated as gone for good."""
    oversize_link_hours: int = 24
    """Lifetime of the download link sent instead of a message too large to send; 0 turns the link off."""
    region: str = "us-east-1"
    """The function's own region (``AWS_REGION``, set by the Lambda runtime, not by the template)."""

    @property
    def ses_message_id_domain(self) -> str:
        """SES sets Message-ID to ``<id>@email.amazonses.com`` in us-east-1 and ``<id>@<region>.amazonses.com``
        elsewhere (https://docs.aws.amazon.com/ses/latest/dg/header-fields.html: SES overrides Message-ID)."""
        return "email.amazonses.com" if self.region == "us-east-1" else f"{self.region}.amazonses.com"


#: Environment variable -> Settings field. The template test reads this table to prove the wiring both ways.
ENVIRONMENT_VARIABLES: Mapping[str, str] = {
    "EMAILFLOW_DOMAIN": "domain",
    "EMAILFLOW_BRAND": "brand",
    "EMAILFLOW_TABLE": "table_name",
    "EMAILFLOW_INBOUND_BUCKET": "inbound_bucket",
    "EMAILFLOW_INBOUND_PREFIX": "inbound_prefix",
    "EMAILFLOW_CONFIGURATION_SET": "configuration_set",
    "EMAILFLOW_CODE_SECRET_ARN": "code_secret_arn",
    "EMAILFLOW_SERVICE_PREFIX": "service_prefix",
    "EMAILFLOW_USER_PREFIX": "user_prefix",
    "EMAILFLOW_SENT_RECORD_DAYS": "sent_record_days",
    "EMAILFLOW_DELIVERY_RECORD_DAYS": "delivery_record_days",
    "EMAILFLOW_SPAM_POLICY": "spam_policy",
    "EMAILFLOW_NOTICES_PER_SENDER_PER_HOUR": "notices_per_sender_per_hour",
    "EMAILFLOW_PAIR_MESSAGES_PER_MINUTE": "pair_messages_per_minute",
    "EMAILFLOW_SENDER_MESSAGES_PER_HOUR": "sender_messages_per_hour",
    "EMAILFLOW_NOREPLY_LOCAL_PART": "noreply_local_part",
    "EMAILFLOW_OVERSIZE_LINK_HOURS": "oversize_link_hours",
    "EMAILFLOW_TRANSIENT_BOUNCE_LIMIT": "transient_bounce_limit",
    "EMAILFLOW_EVENT_BUS": "event_bus",
}
RUNTIME_VARIABLES = frozenset({"AWS_REGION", "AWS_DEFAULT_REGION"})
"""Read here but set by the Lambda runtime itself, not by the template."""
_REQUIRED = ("EMAILFLOW_DOMAIN", "EMAILFLOW_TABLE", "EMAILFLOW_INBOUND_BUCKET", "EMAILFLOW_CONFIGURATION_SET",
             "EMAILFLOW_CODE_SECRET_ARN")


def settings_from_environment(environ: Mapping[str, str]) -> Settings:
    """Build and validate ``Settings`` from an environment mapping (``os.environ`` in production)."""
    missing = [name for name in _REQUIRED if not environ.get(name)]
    if missing:
        raise ConfigurationError(f"missing required environment variable(s): {', '.join(missing)}")
    domain = environ["EMAILFLOW_DOMAIN"].strip().lower().rstrip(".")
    if not _DOMAIN.match(domain):
        raise ConfigurationError("EMAILFLOW_DOMAIN must be a DNS domain name such as relay.example.com")
    service_prefix = environ.get("EMAILFLOW_SERVICE_PREFIX", "service").lower()
    user_prefix = environ.get("EMAILFLOW_USER_PREFIX", "user").lower()
    for name, prefix in (("EMAILFLOW_SERVICE_PREFIX", service_prefix), ("EMAILFLOW_USER_PREFIX", user_prefix)):
        if not _PREFIX.match(prefix):
            raise ConfigurationError(f"{name} must be 1-16 lower-case letters or digits, starting with a letter")
    if service_prefix == user_prefix:
        raise ConfigurationError("EMAILFLOW_SERVICE_PREFIX and EMAILFLOW_USER_PREFIX must differ")
    prefix = environ.get("EMAILFLOW_INBOUND_PREFIX", "inbound/")
    spam_policy = environ.get("EMAILFLOW_SPAM_POLICY", "drop").strip().lower() or "drop"
    if spam_policy not in ("drop", "tag"):
        raise ConfigurationError("EMAILFLOW_SPAM_POLICY must be drop or tag")
    noreply = environ.get("EMAILFLOW_NOREPLY_LOCAL_PART", "no-reply").strip().lower() or "no-reply"
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", noreply) or noreply.startswith((service_prefix + "-",
                                                                                       user_prefix + "-")):
        raise ConfigurationError("EMAILFLOW_NOREPLY_LOCAL_PART must be a plain local part, not a relay address")
    return Settings(
        domain=domain,
        brand=environ.get("EMAILFLOW_BRAND", "").strip() or domain,
        table_name=environ["EMAILFLOW_TABLE"],
        inbound_bucket=environ["EMAILFLOW_INBOUND_BUCKET"],
        inbound_prefix=prefix,
        configuration_set=environ["EMAILFLOW_CONFIGURATION_SET"],
        code_secret_arn=environ["EMAILFLOW_CODE_SECRET_ARN"],
        service_prefix=service_prefix,
        user_prefix=user_prefix,
        sent_record_days=_positive_int(environ, "EMAILFLOW_SENT_RECORD_DAYS", 90),
        delivery_record_days=_positive_int(environ, "EMAILFLOW_DELIVERY_RECORD_DAYS", 14),
        spam_policy=spam_policy,
        notices_per_sender_per_hour=_positive_int(environ, "EMAILFLOW_NOTICES_PER_SENDER_PER_HOUR", 5),
        pair_messages_per_minute=_positive_int(environ, "EMAILFLOW_PAIR_MESSAGES_PER_MINUTE", 10),
        sender_messages_per_hour=_non_negative_int(environ, "EMAILFLOW_SENDER_MESSAGES_PER_HOUR", 60),
        noreply_local_part=noreply,
        oversize_link_hours=_non_negative_int(environ, "EMAILFLOW_OVERSIZE_LINK_HOURS", 24),
        transient_bounce_limit=_positive_int(environ, "EMAILFLOW_TRANSIENT_BOUNCE_LIMIT", 3),
        event_bus=environ.get("EMAILFLOW_EVENT_BUS", "").strip(),
        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = _non_negative_int(environ, name, default)
    if value == 0:
        raise ConfigurationError(f"{name} must be positive")
    return value


def _non_negative_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 0:
        raise ConfigurationError(f"{name} must not be negative")
    return value


@cache
def get_settings() -> Settings:
    """The process-wide settings, read from ``os.environ`` on first use (cold start) and cached."""
    return settings_from_environment(os.environ)
