"""``emailflow doctor``: is a deployed relay able to receive and send? Each check, evaluated on plain data.

This module imports no AWS SDK and does no I/O of its own. ``diagnose`` reads through two ports: a
``DeploymentProbe`` (the AWS reads, ``emailflow.adapters.deployment``) and a ``Resolver`` (DNS,
``emailflow.adapters.dns``); unit tests pass fakes. A read that fails (no permission, throttled, a DNS time-out) is
reported as a failed check naming what could not be read, never raised.

What is checked, and what "right" means, follows ``template.yaml``: the receipt rule the stack declares (enabled,
recipients, S3 then Lambda, spam scan, TLS), the domain identity (Easy DKIM, custom MAIL FROM), the configuration
set and its SNS event destination, the relay's dead-letter queue, and the DNS records of the stack's outputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar

from emailflow.config import ConfigurationError

PRODUCTION_ACCESS_URL = "https://docs.aws.amazon.com/ses/latest/dg/request-production-access.html"
DKIM_TROUBLESHOOTING_URL = "https://docs.aws.amazon.com/ses/latest/dg/troubleshoot-dkim.html"
EVENT_TYPES = ("BOUNCE", "COMPLAINT", "DELIVERY", "REJECT", "DELIVERY_DELAY")
"""What the template's event destination publishes (SES v2 names). The bounces function needs the first two."""
REQUIRED_EVENT_TYPES = frozenset({"BOUNCE", "COMPLAINT"})
EVENT_DESTINATION_NAME = "delivery-events-to-sns"
"""The template's event destination (``SesEventDestination``), used in the command that re-creates it."""
RELAY_ENVIRONMENT_MARKERS = ("EMAILFLOW_TABLE", "EMAILFLOW_INBOUND_BUCKET")
"""Variables whose values show that a function is this stack's relay (same table, same bucket)."""


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    """Works, but an operator should know (mail still flows): never changes the exit status."""
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: what was checked, what was found and, unless it is ok, exactly what to do."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail, "fix": self.fix}


def failed(checks: Sequence[Check]) -> bool:
    return any(check.status is Status.FAIL for check in checks)


# -- The deployment, from its stack outputs ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DnsRecord:
    """A record as the stack's outputs spell it: ``<name> <type> <value>``."""

    name: str
    type: str
    value: str

    @classmethod
    def parse(cls, text: str) -> DnsRecord:
        parts = text.split(maxsplit=2)
        if len(parts) != 3:
            raise ConfigurationError(f"not a DNS record (<name> <type> <value>): {text!r}")
        name, rtype, value = parts
        return cls(_host(name), rtype.upper(), value.strip())

    def __str__(self) -> str:
        return f"{self.name} {self.type} {self.value}"


@dataclass(frozen=True, slots=True)
class Deployment:
    """What the checks compare against: the stack's outputs (``template.yaml`` ``Outputs``) and its region."""

    stack_name: str
    region: str
    domain: str
    rule_set_name: str
    rule_name: str
    inbound_bucket: str
    inbound_prefix: str
    table_name: str
    configuration_set: str
    events_topic_arn: str = ""
    dead_letter_queue_url: str = ""
    records: Mapping[str, DnsRecord] = field(default_factory=dict)
    """Output key (``MXRecord``, ``MailFromMXRecord``, ``MailFromSPFRecord``) -> the record it asks for."""
    dkim_records: tuple[DnsRecord, ...] = ()
    """``DkimRecord1..3``: used only when the identity's own DKIM tokens cannot be read."""


REQUIRED_OUTPUTS = ("DomainName", "ReceiptRuleSetName", "ReceiptRuleName", "InboundBucketName", "InboundPrefix",
                    "TableName", "ConfigurationSetName")
RECORD_OUTPUTS = ("MXRecord", "MailFromMXRecord", "MailFromSPFRecord")
DKIM_OUTPUTS = ("DkimRecord1", "DkimRecord2", "DkimRecord3")


def deployment_from_outputs(stack_name: str, region: str, outputs: Mapping[str, str]) -> Deployment:
    missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
    if missing:
        raise ConfigurationError(f"stack {stack_name!r} has no output(s) {', '.join(missing)}: is it an emailflow "
                                 "stack, deployed from the current template.yaml?")
    return Deployment(
        stack_name=stack_name,
        region=region,
        domain=_host(outputs["DomainName"]),
        rule_set_name=outputs["ReceiptRuleSetName"],
        rule_name=outputs["ReceiptRuleName"],
        inbound_bucket=outputs["InboundBucketName"],
        inbound_prefix=outputs["InboundPrefix"],
        table_name=outputs["TableName"],
        configuration_set=outputs["ConfigurationSetName"],
        events_topic_arn=outputs.get("SesEventsTopicArn", ""),
        dead_letter_queue_url=outputs.get("RelayDeadLetterQueueUrl", ""),
        records={key: DnsRecord.parse(outputs[key]) for key in RECORD_OUTPUTS if outputs.get(key)},
        dkim_records=tuple(DnsRecord.parse(outputs[key]) for key in DKIM_OUTPUTS if outputs.get(key)),
    )


# -- What the AWS reads give back (plain data) -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RuleAction:
    """One action of a receipt rule: ``kind`` is the API's key (``S3Action``, ``LambdaAction``, ``StopAction``...)."""

    kind: str
    bucket: str = ""
    prefix: str = ""
    function_arn: str = ""
    invocation_type: str = ""


@dataclass(frozen=True, slots=True)
class ReceiptRule:
    name: str
    enabled: bool
    recipients: tuple[str, ...]
    actions: tuple[RuleAction, ...]
    scan_enabled: bool = False
    tls_policy: str = "Optional"


@dataclass(frozen=True, slots=True)
class RuleSet:
    name: str
    rules: tuple[ReceiptRule, ...] = ()

    def rule(self, name: str) -> ReceiptRule | None:
        return next((rule for rule in self.rules if rule.name == name), None)


@dataclass(frozen=True, slots=True)
class LambdaFunction:
    arn: str
    state: str
    """``Active``, ``Pending``, ``Inactive``, ``Failed``; empty when the API did not say."""
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EmailIdentity:
    name: str
    verified_for_sending: bool
    dkim_signing_enabled: bool
    dkim_status: str
    dkim_tokens: tuple[str, ...] = ()
    mail_from_domain: str = ""
    mail_from_status: str = ""


@dataclass(frozen=True, slots=True)
class SesAccount:
    production_access: bool
    sending_enabled: bool
    enforcement_status: str = ""
    review_status: str = ""
    """Status of a production-access request (``PENDING``, ``DENIED``...), when there is one."""


@dataclass(frozen=True, slots=True)
class EventDestination:
    name: str
    enabled: bool
    event_types: frozenset[str]
    sns_topic_arn: str = ""


@dataclass(frozen=True, slots=True)
class ConfigurationSet:
    name: str
    sending_enabled: bool
    event_destinations: tuple[EventDestination, ...] = ()


@dataclass(frozen=True, slots=True)
class QueueDepth:
    visible: int
    in_flight: int = 0


# -- Ports ---------------------------------------------------------------------------------------------------------

class ProbeError(Exception):
    """A read failed (no permission, throttled, unreachable); the message says what and why."""


class DeploymentProbe(Protocol):
    """The AWS reads. ``None`` means "does not exist"; a failed read raises ``ProbeError``."""

    def active_rule_set(self) -> RuleSet | None: ...
    def rule_set(self, name: str) -> RuleSet | None: ...
    def function(self, arn: str) -> LambdaFunction | None: ...
    def email_identity(self, name: str) -> EmailIdentity | None: ...
    def account(self) -> SesAccount: ...
    def configuration_set(self, name: str) -> ConfigurationSet | None: ...
    def queue_depth(self, url: str) -> QueueDepth | None: ...


class DnsLookupError(Exception):
    """The lookup itself failed (time-out, no answer from any server, SERVFAIL): nothing is known about the name."""


class Resolver(Protocol):
    """DNS as the doctor needs it. ``lookup`` returns the record data as text, ``[]`` when the name or the type does
    not exist (NXDOMAIN, NODATA: that is an answer), and raises ``DnsLookupError`` when there is no answer.

    Data per type: MX ``"<preference> <host>"``, CNAME ``"<host>"``, TXT the character-strings joined (no quotes).
    """

    def lookup(self, name: str, rtype: str) -> list[str]: ...


# -- The checks --------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Unreadable:
    """A read that failed: the checks depending on it fail with this reason."""

    what: str
    reason: str

    def check(self, name: str, fix: str) -> Check:
        return Check(name, Status.FAIL, f"could not read {self.what}: {self.reason}", fix)


_T = TypeVar("_T")


def _read(what: str, read: Callable[[], _T]) -> _T | Unreadable:
    try:
        return read()
    except ProbeError as exc:
        return Unreadable(what, str(exc))


def diagnose(deployment: Deployment, probe: DeploymentProbe, resolver: Resolver) -> list[Check]:
    """Every check, in the order an operator would fix things: receiving, sending, DNS, operations."""
    d = deployment
    active = _read("the active receipt rule set (ses:DescribeActiveReceiptRuleSet)", probe.active_rule_set)
    ours: RuleSet | Unreadable | None = active if isinstance(active, RuleSet) and active.name == d.rule_set_name \
        else _read(f"receipt rule set {d.rule_set_name} (ses:DescribeReceiptRuleSet)",
                   lambda: probe.rule_set(d.rule_set_name))
    rule = ours.rule(d.rule_name) if isinstance(ours, RuleSet) else None
    arn = next((action.function_arn for action in rule.actions if action.kind == "LambdaAction"), "") if rule else ""
    function = _read(f"the relay function (lambda:GetFunctionConfiguration on {arn})",
                     lambda: probe.function(arn)) if arn else None
    identity = _read(f"identity {d.domain} (ses:GetEmailIdentity)", lambda: probe.email_identity(d.domain))
    account = _read("the SES account (ses:GetAccount)", probe.account)
    configuration_set = _read(f"configuration set {d.configuration_set} (ses:GetConfigurationSet, "
                              "ses:GetConfigurationSetEventDestinations)",
                              lambda: probe.configuration_set(d.configuration_set))
    queue = _read("the relay's dead-letter queue (sqs:GetQueueAttributes)",
                  lambda: probe.queue_depth(d.dead_letter_queue_url)) if d.dead_letter_queue_url else None
    return [
        check_active_rule_set(d, active),
        *check_receipt_rule(d, ours, active),
        check_relay_function(d, rule, function),
        check_identity(d, identity),
        check_mail_from(d, identity),
        *check_account(d, account),
        *check_dns(d, identity, resolver),
        *check_configuration_set(d, configuration_set),
        check_dead_letter_queue(d, queue),
    ]


def check_active_rule_set(d: Deployment, active: RuleSet | Unreadable | None) -> Check:
    name = "receipt rule set active"
    activate = f"aws ses set-active-receipt-rule-set --rule-set-name {d.rule_set_name} --region {d.region}"
    if isinstance(active, Unreadable):
        return active.check(name, "allow ses:DescribeActiveReceiptRuleSet to whoever runs emailflow doctor")
    if active is None:
        return Check(name, Status.FAIL, f"no receipt rule set is active in {d.region}: SES receives no mail at all",
                     f"activate the relay's set: {activate}")
    if active.name != d.rule_set_name:
        return Check(name, Status.FAIL, f"{active.name} is the active set, not {d.rule_set_name}: mail for "
                     f"{d.domain} is not handed to the relay",
                     f"if {active.name} serves nothing else: {activate}\n"
                     f"otherwise keep it and redeploy with ExistingReceiptRuleSetName={active.name}: the relay's rule "
                     "is then added to it (docs/deploy.md, step 2)")
    return Check(name, Status.OK, f"{d.rule_set_name} is the active receipt rule set in {d.region}")


def _covers(recipients: Sequence[str], domain: str) -> bool:
    """SES matches a recipient condition as an address, a domain (not its subdomains) or ``.parent`` (every
    subdomain); no condition at all matches every recipient of the account's verified domains.
    https://docs.aws.amazon.com/ses/latest/dg/receiving-email-receipt-rules-console-walkthrough.html"""
    if not recipients:
        return True
    wanted = domain.lower()
    for recipient in (item.lower().rstrip(".") for item in recipients):
        if recipient == wanted or (recipient.startswith(".") and wanted.endswith(recipient)):
            return True
    return False


def expected_rule(d: Deployment, function_arn: str) -> dict[str, object]:
    """The rule as ``template.yaml`` declares it (``ReceiptRule``), in the shape ``aws ses update-receipt-rule``
    takes."""
    return {"Name": d.rule_name, "Enabled": True, "ScanEnabled": True, "TlsPolicy": "Require",
            "Recipients": [d.domain],
            "Actions": [{"S3Action": {"BucketName": d.inbound_bucket, "ObjectKeyPrefix": d.inbound_prefix}},
                        {"LambdaAction": {"FunctionArn": function_arn, "InvocationType": "Event"}}]}


def _relay_arn_hint(d: Deployment) -> str:
    # The function's physical id in the stack is its name; the rule needs its ARN.
    return (f"<relay function ARN: aws lambda get-function-configuration --region {d.region} --query FunctionArn "
            f"--output text --function-name $(aws cloudformation describe-stack-resource --stack-name {d.stack_name} "
            "--logical-resource-id RelayFunction --query StackResourceDetail.PhysicalResourceId --output text)>")


def _update_rule_command(d: Deployment, function_arn: str) -> str:
    rule = json.dumps(expected_rule(d, function_arn), separators=(",", ":"))
    return f"aws ses update-receipt-rule --rule-set-name {d.rule_set_name} --region {d.region} --rule '{rule}'"


def _rule_problems(d: Deployment, rule: ReceiptRule) -> list[str]:
    """How ``rule`` differs from the template's ``ReceiptRule`` in ways that lose or misroute mail."""
    problems: list[str] = []
    if not rule.enabled:
        problems.append("it is disabled")
    if not _covers(rule.recipients, d.domain):
        problems.append(f"its recipients ({', '.join(rule.recipients)}) do not cover {d.domain}")
    kinds = [action.kind for action in rule.actions]
    s3 = next((action for action in rule.actions if action.kind == "S3Action"), None)
    invoke = next((action for action in rule.actions if action.kind == "LambdaAction"), None)
    if s3 is None:
        problems.append("it has no S3 action: raw mail is not stored where the relay reads it")
    elif (s3.bucket, s3.prefix) != (d.inbound_bucket, d.inbound_prefix):
        problems.append(f"its S3 action writes to s3://{s3.bucket}/{s3.prefix}, the relay reads "
                        f"s3://{d.inbound_bucket}/{d.inbound_prefix}")
    if invoke is None:
        problems.append("it has no Lambda action: the relay is never invoked")
    else:
        if s3 is not None and kinds.index("LambdaAction") < kinds.index("S3Action"):
            problems.append("it invokes the relay before storing the mail in S3")
        if invoke.invocation_type != "Event":
            problems.append(f"it invokes the relay with InvocationType {invoke.invocation_type or 'RequestResponse'}, "
                            "not Event (retries and the dead-letter queue work only for asynchronous invocation)")
    if "StopAction" in kinds and (invoke is None or kinds.index("StopAction") < kinds.index("LambdaAction")):
        problems.append("a stop action ends the rule before the relay is invoked")
    if not rule.scan_enabled:
        problems.append("spam and virus scanning is off (the relay's policy reads SES's verdicts)")
    if rule.tls_policy != "Require":
        problems.append(f"TlsPolicy is {rule.tls_policy}, the template requires TLS")
    return problems


def check_receipt_rule(d: Deployment, ours: RuleSet | Unreadable | None,
                       active: RuleSet | Unreadable | None) -> list[Check]:
    name = "receipt rule"
    redeploy = f"redeploy the stack (sam deploy --stack-name {d.stack_name}): it creates the rule and its set"
    if isinstance(ours, Unreadable):
        return [ours.check(name, "allow ses:DescribeReceiptRuleSet to whoever runs emailflow doctor")]
    if ours is None:
        return [Check(name, Status.FAIL, f"receipt rule set {d.rule_set_name} does not exist", redeploy)]
    rule = ours.rule(d.rule_name)
    if rule is None:
        return [Check(name, Status.FAIL, f"{d.rule_set_name} has no rule {d.rule_name}", redeploy)]
    problems = _rule_problems(d, rule)
    invoke = next((action for action in rule.actions if action.kind == "LambdaAction"), None)
    checks: list[Check] = []
    if problems:
        fix = ("the rule differs from template.yaml (aws cloudformation detect-stack-drift --stack-name "
               f"{d.stack_name} shows it); put it back:\n"
               + _update_rule_command(d, invoke.function_arn if invoke else _relay_arn_hint(d)))
        checks.append(Check(name, Status.FAIL, f"{d.rule_name}: " + "; ".join(problems), fix))
    else:
        checks.append(Check(name, Status.OK, f"{d.rule_name} in {d.rule_set_name}: enabled, covers {d.domain}, "
                            f"stores in s3://{d.inbound_bucket}/{d.inbound_prefix}, then invokes the relay"))
    if isinstance(active, RuleSet) and active.name == ours.name:
        checks.extend(_earlier_rules(d, active))
    return checks


def _earlier_rules(d: Deployment, active: RuleSet) -> list[Check]:
    """SES applies a set's rules in order; an earlier enabled rule for our domain that stops or bounces means the
    relay's rule never runs (an existing set shared with other mail: ExistingReceiptRuleSetName)."""
    blocking = [rule.name for rule in active.rules[:[rule.name for rule in active.rules].index(d.rule_name)]
                if rule.enabled and _covers(rule.recipients, d.domain)
                and any(action.kind in ("StopAction", "BounceAction") for action in rule.actions)]
    if not blocking:
        return []
    return [Check("receipt rule order", Status.FAIL,
                  f"rule(s) {', '.join(blocking)} come first in {active.name}, match {d.domain} and stop or bounce "
                  "the mail before the relay's rule",
                  "\n".join(f"aws ses set-receipt-rule-position --rule-set-name {active.name} --rule-name {name} "
                            f"--after {d.rule_name} --region {d.region}" for name in blocking))]


def check_relay_function(d: Deployment, rule: ReceiptRule | None,
                         function: LambdaFunction | Unreadable | None) -> Check:
    name = "relay function"
    invoke = next((action for action in rule.actions if action.kind == "LambdaAction"), None) if rule else None
    if invoke is None:
        return Check(name, Status.FAIL, "the receipt rule invokes no function (see the receipt rule check)",
                     "fix the receipt rule first")
    if isinstance(function, Unreadable):
        return function.check(name, "allow lambda:GetFunctionConfiguration to whoever runs emailflow doctor")
    if function is None:
        return Check(name, Status.FAIL, f"the rule invokes {invoke.function_arn}, which does not exist",
                     f"point the rule at the stack's relay:\n{_update_rule_command(d, _relay_arn_hint(d))}")
    environment = function.environment
    expected = {"EMAILFLOW_TABLE": d.table_name, "EMAILFLOW_INBOUND_BUCKET": d.inbound_bucket}
    foreign = {key: environment.get(key, "") for key, value in expected.items() if environment.get(key) != value}
    if foreign:
        found = ", ".join(f"{key}={value or '(unset)'}" for key, value in foreign.items())
        return Check(name, Status.FAIL, f"{function.arn} is not this stack's relay ({found})",
                     f"point the rule at the stack's relay:\n{_update_rule_command(d, _relay_arn_hint(d))}")
    if function.state not in ("", "Active"):
        return Check(name, Status.FAIL, f"{function.arn} is {function.state}",
                     f"aws lambda get-function --function-name {function.arn} --region {d.region} "
                     "(StateReason says why); an Inactive function wakes on its next invocation")
    return Check(name, Status.OK, f"the rule invokes {function.arn} (this stack's relay)")


def check_identity(d: Deployment, identity: EmailIdentity | Unreadable | None) -> Check:
    name = "domain identity"
    if isinstance(identity, Unreadable):
        return identity.check(name, "allow ses:GetEmailIdentity to whoever runs emailflow doctor")
    if identity is None:
        return Check(name, Status.FAIL, f"SES has no identity {d.domain} in {d.region}",
                     f"redeploy the stack (sam deploy --stack-name {d.stack_name}): it creates the identity")
    problems: list[str] = []
    if not identity.verified_for_sending:
        problems.append("not verified for sending")
    if not identity.dkim_signing_enabled:
        problems.append("DKIM signing is off")
    if identity.dkim_status != "SUCCESS":
        problems.append(f"DKIM status {identity.dkim_status or 'unknown'}")
    if not problems:
        return Check(name, Status.OK, f"{d.domain} is verified for sending, DKIM SUCCESS")
    fixes = []
    if identity.dkim_status in ("PENDING", "NOT_STARTED", "FAILED", "TEMPORARY_FAILURE", ""):
        fixes.append("create the DKIM CNAME records of the dns checks below; SES verifies the domain once it finds "
                     "them (minutes, at most 72 hours)")
    if identity.dkim_status == "FAILED":
        fixes.append(f"SES gave up looking after 72 hours: {DKIM_TROUBLESHOOTING_URL}")
    if not identity.dkim_signing_enabled:
        fixes.append(f"aws sesv2 put-email-identity-dkim-attributes --email-identity {d.domain} --signing-enabled "
                     f"--region {d.region}")
    return Check(name, Status.FAIL, f"{d.domain}: " + ", ".join(problems), "\n".join(fixes))


def check_mail_from(d: Deployment, identity: EmailIdentity | Unreadable | None) -> Check:
    """A warning only: with ``BehaviorOnMxFailure: USE_DEFAULT_VALUE`` SES sends with its own MAIL FROM until the
    custom one works, and DKIM alone aligns for DMARC (docs/deploy.md, step 5)."""
    name = "MAIL FROM domain"
    if not isinstance(identity, EmailIdentity):
        return Check(name, Status.WARN, "unknown (see the domain identity check)")
    if identity.mail_from_status == "SUCCESS":
        return Check(name, Status.OK, f"{identity.mail_from_domain} is in use (SPF aligns with {d.domain})")
    mail_from = identity.mail_from_domain or "(none)"
    return Check(name, Status.WARN, f"{mail_from}: status {identity.mail_from_status or 'unknown'}; SES sends "
                 "with its own MAIL FROM meanwhile, so SPF does not align (DKIM still does)",
                 "create the MAIL FROM MX and SPF records of the dns checks below")


def check_account(d: Deployment, account: SesAccount | Unreadable) -> list[Check]:
    if isinstance(account, Unreadable):
        fix = "allow ses:GetAccount to whoever runs emailflow doctor"
        return [account.check("SES production access", fix), account.check("SES sending", fix)]
    if account.production_access:
        production = Check("SES production access", Status.OK, f"the account is out of the SES sandbox in {d.region}")
    else:
        review = f" (request {account.review_status})" if account.review_status else ""
        production = Check(
            "SES production access", Status.FAIL,
            f"the account is in the SES sandbox in {d.region}{review}: mail goes only to verified addresses, "
            "200 a day",
            f"request production access: {PRODUCTION_ACCESS_URL}\n"
            f"or: aws sesv2 put-account-details --region {d.region} --production-access-enabled --mail-type "
            "TRANSACTIONAL --website-url <your site> --use-case-description <...> (docs/deploy.md, step 1)")
    enforcement = f" (enforcement status {account.enforcement_status})" if account.enforcement_status else ""
    if account.sending_enabled:
        status = Status.WARN if account.enforcement_status == "PROBATION" else Status.OK
        sending = Check("SES sending", status, f"sending is enabled{enforcement}",
                        "on probation: bring the bounce and complaint rates down (docs/operations.md, section 2)"
                        if status is Status.WARN else "")
    else:
        sending = Check("SES sending", Status.FAIL, f"SES has paused sending for the account{enforcement}: every "
                        "relayed mail fails and is parked",
                        "docs/operations.md, section 2 (SES paused sending); once the cause is fixed: aws sesv2 "
                        f"put-account-sending-attributes --sending-enabled --region {d.region}, then emailflow "
                        "redrive")
    return [production, sending]


# -- DNS ---------------------------------------------------------------------------------------------------------

def _host(name: str) -> str:
    return name.strip().lower().rstrip(".")


def dkim_records(d: Deployment, identity: EmailIdentity | Unreadable | None) -> tuple[DnsRecord, ...]:
    """Easy DKIM's three CNAMEs from the identity's tokens, else the stack's ``DkimRecord`` outputs.
    https://docs.aws.amazon.com/ses/latest/dg/send-email-authentication-dkim-easy.html"""
    if isinstance(identity, EmailIdentity) and identity.dkim_tokens:
        return tuple(DnsRecord(f"{token}._domainkey.{d.domain}", "CNAME", f"{token}.dkim.amazonses.com")
                     for token in identity.dkim_tokens)
    return d.dkim_records


def check_dns(d: Deployment, identity: EmailIdentity | Unreadable | None, resolver: Resolver) -> list[Check]:
    checks: list[Check] = []
    for key, label in (("MXRecord", "receiving"), ("MailFromMXRecord", "MAIL FROM"), ("MailFromSPFRecord", "SPF")):
        record = d.records.get(key)
        if record is None:
            checks.append(Check(f"dns {label}", Status.FAIL, f"the stack has no output {key}",
                                "redeploy the stack from the current template.yaml"))
        else:
            checks.append(check_record(f"dns {label}", record, resolver))
    dkim = dkim_records(d, identity)
    if not dkim:
        checks.append(Check("dns DKIM", Status.FAIL, "no DKIM tokens: neither the identity nor the stack's outputs "
                            "name them", "see the domain identity check"))
    checks.extend(check_record(f"dns DKIM {index}", record, resolver) for index, record in enumerate(dkim, 1))
    checks.append(check_dmarc(d, resolver))
    return checks


def _lookup(resolver: Resolver, name: str, rtype: str) -> list[str] | DnsLookupError:
    try:
        return resolver.lookup(name, rtype)
    except DnsLookupError as exc:
        return exc


def check_record(name: str, record: DnsRecord, resolver: Resolver) -> Check:
    """Does ``record`` resolve as the stack asks? The fix always names the exact record to create."""
    create = f"create: {record}"
    found = _lookup(resolver, record.name, record.type)
    if isinstance(found, DnsLookupError):
        return Check(name, Status.FAIL, f"{record.name} {record.type}: lookup failed ({found})",
                     f"{create}\n(if it exists: check the domain's name servers answer for it)")
    if not found:
        return Check(name, Status.FAIL, f"{record.name} has no {record.type} record", create)
    if record.type == "MX":
        return _mx(name, record, found)
    if record.type == "TXT":
        return _spf(name, record, found)
    targets = sorted({_host(value) for value in found})
    if _host(record.value) in targets:
        return Check(name, Status.OK, f"{record.name} {record.type} {_host(record.value)}")
    return Check(name, Status.FAIL, f"{record.name} {record.type} is {', '.join(targets)}", f"replace it: {record}")


def _mx_host(value: str) -> str:
    return _host(value.rsplit(maxsplit=1)[-1]) if value.split() else ""


def _mx(name: str, record: DnsRecord, found: Sequence[str]) -> Check:
    wanted = _mx_host(record.value)
    hosts = sorted({_mx_host(value) for value in found})
    others = [host for host in hosts if host != wanted]
    if wanted not in hosts:
        return Check(name, Status.FAIL, f"{record.name} MX is {', '.join(hosts)}, not {wanted}",
                     f"create: {record}\nand remove the MX record(s) of {', '.join(others)}")
    if others:
        return Check(name, Status.FAIL, f"{record.name} MX also names {', '.join(others)}: part of the mail goes "
                     "there instead of SES", f"remove the MX record(s) of {', '.join(others)}; keep: {record}")
    return Check(name, Status.OK, f"{record.name} MX {wanted}")


def _spf(name: str, record: DnsRecord, found: Sequence[str]) -> Check:
    expected = record.value.strip('"')
    spf = [value for value in found if value.lower().startswith("v=spf1")]
    if not spf:
        return Check(name, Status.FAIL, f"{record.name} has no SPF record", f"create: {record}")
    if len(spf) > 1:
        return Check(name, Status.FAIL, f"{record.name} has {len(spf)} SPF records (an SPF error for receivers)",
                     f"keep one: {record}")
    if "include:amazonses.com" not in spf[0].lower().split():
        return Check(name, Status.FAIL, f'{record.name} SPF is "{spf[0]}": it does not allow SES',
                     f'replace it: {record.name} TXT "{expected}"')
    return Check(name, Status.OK, f'{record.name} TXT "{spf[0]}"')


def check_dmarc(d: Deployment, resolver: Resolver) -> Check:
    """Recommended, not created by the stack (docs/deploy.md, step 4): a warning, never a failure."""
    name = f"_dmarc.{d.domain}"
    suggestion = f'{name} TXT "v=DMARC1; p=none; rua=mailto:<a mailbox of yours>"'
    found = _lookup(resolver, name, "TXT")
    if isinstance(found, DnsLookupError):
        return Check("dns DMARC", Status.WARN, f"{name} TXT: lookup failed ({found})", f"recommended: {suggestion}")
    policies = [value for value in found if value.lower().startswith("v=dmarc1")]
    if not policies:
        return Check("dns DMARC", Status.WARN, f"{name} has no DMARC record (recommended)",
                     f"create, monitoring only to start with: {suggestion}")
    return Check("dns DMARC", Status.OK, f'{name} TXT "{policies[0]}"')


# -- Operations --------------------------------------------------------------------------------------------------

def check_configuration_set(d: Deployment, found: ConfigurationSet | Unreadable | None) -> list[Check]:
    if isinstance(found, Unreadable):
        return [found.check("configuration set", "allow ses:GetConfigurationSet and "
                            "ses:GetConfigurationSetEventDestinations to whoever runs emailflow doctor")]
    if found is None:
        return [Check("configuration set", Status.FAIL, f"{d.configuration_set} does not exist: every send fails",
                      f"redeploy the stack (sam deploy --stack-name {d.stack_name})")]
    if found.sending_enabled:
        sending = Check("configuration set", Status.OK, f"{found.name} exists, sending enabled")
    else:
        sending = Check("configuration set", Status.FAIL, f"sending is disabled for {found.name}: every send fails",
                        f"aws sesv2 put-configuration-set-sending-options --configuration-set-name {found.name} "
                        f"--sending-enabled --region {d.region}")
    return [sending, _event_destination(d, found)]


def _event_destination(d: Deployment, found: ConfigurationSet) -> Check:
    name = "SES events to SNS"
    topic = d.events_topic_arn
    if not topic:
        return Check(name, Status.FAIL, "the stack has no output SesEventsTopicArn",
                     "redeploy the stack from the current template.yaml")
    spec = json.dumps({"Enabled": True, "MatchingEventTypes": list(EVENT_TYPES), "SnsDestination": {"TopicArn": topic}},
                      separators=(",", ":"))
    to_topic = [item for item in found.event_destinations if item.sns_topic_arn == topic]
    if not to_topic:
        return Check(name, Status.FAIL, f"{found.name} publishes no events to {topic}: bounces and complaints are "
                     "never acted on",
                     f"aws sesv2 create-configuration-set-event-destination --configuration-set-name {found.name} "
                     f"--event-destination-name {EVENT_DESTINATION_NAME} --region {d.region} "
                     f"--event-destination '{spec}'")
    working = [item for item in to_topic if item.enabled and item.event_types >= REQUIRED_EVENT_TYPES]
    if not working:
        item = to_topic[0]
        state = "disabled" if not item.enabled else \
            f"without {', '.join(sorted(REQUIRED_EVENT_TYPES - item.event_types))} events"
        return Check(name, Status.FAIL, f"{item.name} sends to {topic} but is {state}",
                     f"aws sesv2 update-configuration-set-event-destination --configuration-set-name {found.name} "
                     f"--event-destination-name {item.name} --region {d.region} --event-destination '{spec}'")
    return Check(name, Status.OK, f"{working[0].name}: {', '.join(sorted(working[0].event_types))} -> {topic}")


def check_dead_letter_queue(d: Deployment, depth: QueueDepth | Unreadable | None) -> Check:
    name = "relay dead-letter queue"
    if not d.dead_letter_queue_url:
        return Check(name, Status.FAIL, "the stack has no output RelayDeadLetterQueueUrl",
                     "redeploy the stack from the current template.yaml")
    if isinstance(depth, Unreadable):
        return depth.check(name, "allow sqs:GetQueueAttributes to whoever runs emailflow doctor")
    if depth is None:
        return Check(name, Status.FAIL, f"{d.dead_letter_queue_url} does not exist: a failed event is lost",
                     f"redeploy the stack (sam deploy --stack-name {d.stack_name})")
    parked = depth.visible + depth.in_flight
    if parked:
        in_flight = f" ({depth.in_flight} being received now)" if depth.in_flight else ""
        return Check(name, Status.FAIL, f"{parked} event(s) parked{in_flight}: their mail was not relayed",
                     "emailflow redrive re-runs them (raw mail stays in S3 for RawMailRetentionDays; "
                     "docs/operations.md, drill 1)")
    return Check(name, Status.OK, "empty")
