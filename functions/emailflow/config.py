"""Configuration: one ``Settings`` value read from the environment, once per cold start.

``os.environ`` is read here and nowhere else. Names of AWS resources have no defaults: a function that was deployed
without them must fail at cold start with a message that names the variable, not send mail to a guessed table.
Every variable read here is set by ``template.yaml`` (a test checks both directions).

The operator CLI builds the same ``Settings`` from a CloudFormation stack's outputs (``settings_from_stack_outputs``),
and local mode sets up its process environment as the Lambda runtime would (``set_process_environment``): both live
here so that the process environment stays in one module.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

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
    off_platform_signal: bool = False
    """Count messages whose text shows an e-mail address or phone number (docs/stats.md); never blocks them."""
    event_bus: str = ""
    """EventBridge bus for marketplace events; empty: no events published."""
    transient_bounce_limit: int = 3
    """Transient bounces in a row after which an address is treated as gone for good."""
    oversize_link_hours: int = 24
    approval_url: str = ""
    """The page where services allow new senders (template parameter ``ApprovalUrl``; it calls
    ``Relay.pending_approval`` and ``Relay.allow_sender``). Empty: strangers are only told."""
    approval_hours: int = 72
    download_page_url: str = ""
    """The downloads API's ``/mail`` (``emailflow.downloads``): oversize links point there. Empty: they are
    presigned S3 URLs, which die with the signing role's session (a deployment without the template)."""
    """Lifetime of a new-sender approval link."""
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
    "EMAILFLOW_OFF_PLATFORM_SIGNAL": "off_platform_signal",
    "EMAILFLOW_APPROVAL_URL": "approval_url",
    "EMAILFLOW_APPROVAL_HOURS": "approval_hours",
    "EMAILFLOW_DOWNLOAD_URL": "download_page_url",
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
    approval_url = _page_url(environ, "EMAILFLOW_APPROVAL_URL")
    download_page_url = _page_url(environ, "EMAILFLOW_DOWNLOAD_URL")
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
        off_platform_signal=_flag(environ, "EMAILFLOW_OFF_PLATFORM_SIGNAL"),
        approval_url=approval_url,
        approval_hours=_positive_int(environ, "EMAILFLOW_APPROVAL_HOURS", 72),
        download_page_url=download_page_url,
        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )


def _page_url(environ: Mapping[str, str], name: str) -> str:
    """A public page that mails link to: https, or loopback for local mode; empty when not set."""
    url = environ.get(name, "").strip()
    if url and not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise ConfigurationError(f"{name} must be an https:// URL (or a loopback one, locally)")
    return url


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in ("", "false", "0", "no", "off"):
        return False
    if raw in ("true", "1", "yes", "on"):
        return True
    raise ConfigurationError(f"{name} must be true or false, not {raw!r}")


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


# -- Settings from a stack's outputs (the operator CLI) ----------------------------------------------------------

#: CloudFormation output key -> the environment variable it stands for. ``template.yaml`` declares every one of these
#: outputs (a test checks), so the CLI reads a real deployment and a local-mode stack the same way. The policy
#: settings are outputs too: `emailflow redrive` and `replay` run the relay with the function's own settings.
STACK_OUTPUTS: Mapping[str, str] = {
    "DomainName": "EMAILFLOW_DOMAIN",
    "BrandName": "EMAILFLOW_BRAND",
    "TableName": "EMAILFLOW_TABLE",
    "InboundBucketName": "EMAILFLOW_INBOUND_BUCKET",
    "InboundPrefix": "EMAILFLOW_INBOUND_PREFIX",
    "ConfigurationSetName": "EMAILFLOW_CONFIGURATION_SET",
    "CodeSecretArn": "EMAILFLOW_CODE_SECRET_ARN",
    "ServicePrefix": "EMAILFLOW_SERVICE_PREFIX",
    "UserPrefix": "EMAILFLOW_USER_PREFIX",
    "SentRecordDays": "EMAILFLOW_SENT_RECORD_DAYS",
    "DeliveryRecordDays": "EMAILFLOW_DELIVERY_RECORD_DAYS",
    "SpamPolicy": "EMAILFLOW_SPAM_POLICY",
    "NoticesPerSenderPerHour": "EMAILFLOW_NOTICES_PER_SENDER_PER_HOUR",
    "PairMessagesPerMinute": "EMAILFLOW_PAIR_MESSAGES_PER_MINUTE",
    "SenderMessagesPerHour": "EMAILFLOW_SENDER_MESSAGES_PER_HOUR",
    "NoReplyLocalPart": "EMAILFLOW_NOREPLY_LOCAL_PART",
    "OversizeLinkHours": "EMAILFLOW_OVERSIZE_LINK_HOURS",
    "TransientBounceLimit": "EMAILFLOW_TRANSIENT_BOUNCE_LIMIT",
    "OffPlatformSignal": "EMAILFLOW_OFF_PLATFORM_SIGNAL",
    "OversizeDownloadUrl": "EMAILFLOW_DOWNLOAD_URL",
}
STACK_VARIABLE = "EMAILFLOW_STACK"
"""Names the stack the CLI reads its settings from (``--stack`` overrides it)."""
OPERATOR_VARIABLES = frozenset({STACK_VARIABLE})
"""Read by the operator CLI only, never by a function: the template sets none of these."""
DEFAULT_STACK = "emailflow-local"
"""The stack ``emailflow local`` registers in its emulator: the CLI's default."""


def settings_from_stack_outputs(outputs: Mapping[str, str], region: str | None = None) -> Settings:
    """``Settings`` of a deployment, from its stack outputs, validated exactly as the functions validate theirs."""
    required = [key for key, variable in STACK_OUTPUTS.items() if variable in _REQUIRED and not outputs.get(key)]
    if required:
        raise ConfigurationError(f"the stack has no output(s) {', '.join(required)}: is it an emailflow stack?")
    environ = {variable: outputs[key] for key, variable in STACK_OUTPUTS.items() if outputs.get(key)}
    if region:
        environ["AWS_REGION"] = region
    return settings_from_environment(environ)


# -- The process environment of local mode and the CLI -----------------------------------------------------------

LOCAL_REGION = "us-east-1"
"""Region of a local-mode emulator when the environment names none (moto's default)."""
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
LOCAL_PROCESS_VARIABLES = frozenset({"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})
"""Read or set for local mode and the CLI against a local emulator only, never by a function."""
_LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


def local_region() -> str:
    """The region local mode and the CLI use for an emulator: the environment's, else ``LOCAL_REGION``.

    Configuration files are left out on purpose: ``emailflow local`` and a CLI command run in the same shell must
    agree on the region, and only the environment is certain to be shared.
    """
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or LOCAL_REGION


def local_endpoint() -> str | None:
    """``AWS_ENDPOINT_URL`` when it points at this machine (an ``emailflow local`` emulator), else None."""
    url = os.environ.get("AWS_ENDPOINT_URL", "")
    return url if url and urlsplit(url).hostname in _LOCAL_HOSTS else None


def use_local_emulator_defaults() -> None:
    """When ``AWS_ENDPOINT_URL`` points at a local emulator: dummy credentials and the local region, unless the
    environment sets its own. The emulator accepts any credentials, and a developer's real ones (from
    ``~/.aws``) have no business being sent to it."""
    if local_endpoint() is None:
        return
    for name, value in {**_LOCAL_CREDENTIALS, "AWS_DEFAULT_REGION": local_region()}.items():
        os.environ.setdefault(name, value)


def set_process_environment(values: Mapping[str, str], *, keep_existing: Iterable[str] = (),
                            remove: Iterable[str] = ()) -> Callable[[], None]:
    """Set ``values`` in this process's environment (as the Lambda runtime sets a function's) and return a function
    that puts back exactly what was there before.

    ``keep_existing``: names whose value already in the environment wins (a developer's ``POWERTOOLS_LOG_LEVEL``);
    ``remove``: names to take out (``AWS_PROFILE``, which must not redirect local mode to a real account).
    """
    kept = set(keep_existing)
    changes = {name: value for name, value in values.items() if not (name in kept and name in os.environ)}
    removed = [name for name in remove if name in os.environ and name not in changes]
    previous = {name: os.environ.get(name) for name in (*changes, *removed)}
    os.environ.update(changes)
    for name in removed:
        del os.environ[name]

    def restore() -> None:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    return restore
