"""The doctor's checks on plain data: a fake probe (the AWS reads) and an in-memory resolver, no network."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from emailflow.config import ConfigurationError
from emailflow.doctor import (
    PRODUCTION_ACCESS_URL,
    Check,
    ConfigurationSet,
    Deployment,
    DnsRecord,
    EmailIdentity,
    EventDestination,
    LambdaFunction,
    ProbeError,
    QueueDepth,
    ReceiptRule,
    RuleAction,
    RuleSet,
    SesAccount,
    Status,
    deployment_from_outputs,
    diagnose,
    failed,
)
from tests.support.dns import FakeResolver, good_zone

DOMAIN = "relay.example.com"
REGION = "eu-west-1"
STACK = "emailflow"
RULE_SET = "emailflow-ReceiptRuleSet-1AB2"
RULE = "emailflow-relay"
BUCKET = "emailflow-inboundbucket-9z8y"
TABLE = "emailflow-RelayTable-77QQ"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:emailflow-RelayFunction-XYZ"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:emailflow-SesEventsTopic-1"
QUEUE = f"https://sqs.{REGION}.amazonaws.com/123456789012/emailflow-RelayDeadLetterQueue-1"
TOKENS = ("abcdefghijklmnop", "qrstuvwxyz012345", "6789abcdefghijkl")
OUTPUTS = {
    "DomainName": DOMAIN, "ReceiptRuleSetName": RULE_SET, "ReceiptRuleName": RULE, "InboundBucketName": BUCKET,
    "InboundPrefix": "inbound/", "TableName": TABLE, "ConfigurationSetName": "emailflow-cs",
    "SesEventsTopicArn": TOPIC, "RelayDeadLetterQueueUrl": QUEUE,
    "MXRecord": f"{DOMAIN} MX 10 inbound-smtp.{REGION}.amazonaws.com",
    "MailFromMXRecord": f"bounce.{DOMAIN} MX 10 feedback-smtp.{REGION}.amazonses.com",
    "MailFromSPFRecord": f'bounce.{DOMAIN} TXT "v=spf1 include:amazonses.com ~all"',
    **{f"DkimRecord{index}": f"{token}._domainkey.{DOMAIN} CNAME {token}.dkim.amazonses.com"
       for index, token in enumerate(TOKENS, 1)},
}
OUR_RULE = ReceiptRule(name=RULE, enabled=True, recipients=(DOMAIN,), scan_enabled=True, tls_policy="Require",
                       actions=(RuleAction("S3Action", bucket=BUCKET, prefix="inbound/"),
                                RuleAction("LambdaAction", function_arn=FUNCTION_ARN, invocation_type="Event")))


@dataclass
class FakeProbe:
    """``DeploymentProbe`` with a healthy deployment; a test replaces what it breaks. ``errors``: read -> message."""

    rule_sets: dict[str, RuleSet] = field(default_factory=lambda: {RULE_SET: RuleSet(RULE_SET, (OUR_RULE,))})
    active: str | None = RULE_SET
    functions: dict[str, LambdaFunction] = field(default_factory=lambda: {FUNCTION_ARN: LambdaFunction(
        FUNCTION_ARN, "Active", {"EMAILFLOW_TABLE": TABLE, "EMAILFLOW_INBOUND_BUCKET": BUCKET})})
    identity: EmailIdentity | None = field(default_factory=lambda: EmailIdentity(
        DOMAIN, verified_for_sending=True, dkim_signing_enabled=True, dkim_status="SUCCESS", dkim_tokens=TOKENS,
        mail_from_domain=f"bounce.{DOMAIN}", mail_from_status="SUCCESS"))
    ses_account: SesAccount = field(default_factory=lambda: SesAccount(True, True, "HEALTHY"))
    configuration: ConfigurationSet | None = field(default_factory=lambda: ConfigurationSet(
        "emailflow-cs", True, (EventDestination("delivery-events-to-sns", True, frozenset(
            {"BOUNCE", "COMPLAINT", "DELIVERY", "REJECT", "DELIVERY_DELAY"}), TOPIC),)))
    depth: QueueDepth | None = field(default_factory=lambda: QueueDepth(0))
    errors: dict[str, str] = field(default_factory=dict)

    def _maybe_fail(self, read: str) -> None:
        if read in self.errors:
            raise ProbeError(self.errors[read])

    def active_rule_set(self) -> RuleSet | None:
        self._maybe_fail("active_rule_set")
        return self.rule_sets.get(self.active) if self.active else None

    def rule_set(self, name: str) -> RuleSet | None:
        self._maybe_fail("rule_set")
        return self.rule_sets.get(name)

    def function(self, arn: str) -> LambdaFunction | None:
        self._maybe_fail("function")
        return self.functions.get(arn)

    def email_identity(self, name: str) -> EmailIdentity | None:
        self._maybe_fail("email_identity")
        return self.identity if self.identity and self.identity.name == name else None

    def account(self) -> SesAccount:
        self._maybe_fail("account")
        return self.ses_account

    def configuration_set(self, name: str) -> ConfigurationSet | None:
        self._maybe_fail("configuration_set")
        return self.configuration if self.configuration and self.configuration.name == name else None

    def queue_depth(self, url: str) -> QueueDepth | None:
        self._maybe_fail("queue_depth")
        return self.depth if url == QUEUE else None


def _deployment() -> Deployment:
    return deployment_from_outputs(STACK, REGION, OUTPUTS)


def _resolver() -> FakeResolver:
    return FakeResolver(good_zone(DOMAIN, REGION, TOKENS))


def _run(probe: FakeProbe | None = None, resolver: FakeResolver | None = None) -> dict[str, Check]:
    checks = diagnose(_deployment(), probe or FakeProbe(), resolver or _resolver())
    by_name = {check.name: check for check in checks}
    assert len(by_name) == len(checks), "check names are unique"
    return by_name


def _not_ok(checks: dict[str, Check]) -> dict[str, Status]:
    return {name: check.status for name, check in checks.items() if check.status is not Status.OK}


def test_doctor_healthy_deployment_passes_every_check() -> None:
    # Given a deployment as the template makes it, with DNS in place, When diagnosed
    checks = _run()

    # Then every check is ok and none proposes a fix
    assert _not_ok(checks) == {}
    assert not failed(list(checks.values()))
    assert all(check.fix == "" for check in checks.values())
    assert set(checks) >= {"receipt rule set active", "receipt rule", "relay function", "domain identity",
                           "MAIL FROM domain", "SES production access", "SES sending", "dns receiving",
                           "dns MAIL FROM", "dns SPF", "dns DKIM 1", "dns DKIM 2", "dns DKIM 3", "dns DMARC",
                           "configuration set", "SES events to SNS", "relay dead-letter queue"}


def test_doctor_deployment_from_outputs_names_missing_outputs() -> None:
    # Given outputs without the receipt rule's, Then the error names them (not an emailflow stack, or an old one)
    outputs = {key: value for key, value in OUTPUTS.items() if key not in ("ReceiptRuleName", "TableName")}
    with pytest.raises(ConfigurationError, match="ReceiptRuleName, TableName"):
        deployment_from_outputs(STACK, REGION, outputs)


def test_doctor_dns_record_parses_output_text() -> None:
    record = DnsRecord.parse(f'bounce.{DOMAIN.upper()}. TXT "v=spf1 include:amazonses.com ~all"')
    assert record == DnsRecord(f"bounce.{DOMAIN}", "TXT", '"v=spf1 include:amazonses.com ~all"')
    assert str(DnsRecord.parse(OUTPUTS["MXRecord"])) == OUTPUTS["MXRecord"]


def test_doctor_no_active_rule_set_fails_with_the_activation_command() -> None:
    # Given no receipt rule set active in the region, When diagnosed
    checks = _run(FakeProbe(active=None))

    # Then that check fails and gives the exact command; the rule itself is still checked (and fine)
    check = checks["receipt rule set active"]
    assert check.status is Status.FAIL
    assert check.fix == (f"activate the relay's set: aws ses set-active-receipt-rule-set --rule-set-name {RULE_SET} "
                         f"--region {REGION}")
    assert checks["receipt rule"].status is Status.OK
    assert _not_ok(checks) == {"receipt rule set active": Status.FAIL}


def test_doctor_another_active_rule_set_offers_both_ways_out() -> None:
    # Given another set active (serving other mail, perhaps)
    probe = FakeProbe(active="corporate-mail")
    probe.rule_sets["corporate-mail"] = RuleSet("corporate-mail", ())

    # When diagnosed, Then the fix names activating ours and adding our rule to theirs instead
    check = _run(probe)["receipt rule set active"]
    assert check.status is Status.FAIL
    assert "corporate-mail is the active set" in check.detail
    assert f"aws ses set-active-receipt-rule-set --rule-set-name {RULE_SET}" in check.fix
    assert "ExistingReceiptRuleSetName=corporate-mail" in check.fix


@pytest.mark.parametrize(("broken", "problem"), [
    ({"enabled": False}, "it is disabled"),
    ({"recipients": ("someone@relay.example.com",)}, "do not cover relay.example.com"),
    ({"scan_enabled": False}, "spam and virus scanning is off"),
    ({"tls_policy": "Optional"}, "TlsPolicy is Optional"),
    ({"actions": (RuleAction("S3Action", bucket="other-bucket", prefix="inbound/"), OUR_RULE.actions[1])},
     "writes to s3://other-bucket/inbound/"),
    ({"actions": (OUR_RULE.actions[1], OUR_RULE.actions[0])}, "invokes the relay before storing the mail"),
    ({"actions": (OUR_RULE.actions[0],)}, "no Lambda action"),
    ({"actions": (OUR_RULE.actions[0], RuleAction("StopAction"), OUR_RULE.actions[1])}, "a stop action ends"),
    ({"actions": (OUR_RULE.actions[0], replace(OUR_RULE.actions[1], invocation_type="RequestResponse"))},
     "InvocationType RequestResponse"),
])
def test_doctor_receipt_rule_drift_fails_with_the_rule_as_the_template_declares_it(
        broken: dict[str, object], problem: str) -> None:
    # Given our rule changed behind the stack's back
    probe = FakeProbe(rule_sets={RULE_SET: RuleSet(RULE_SET, (replace(OUR_RULE, **broken),))})  # type: ignore[arg-type]

    # When diagnosed
    check = _run(probe)["receipt rule"]

    # Then the check names the problem and the fix is the update command with the template's rule
    assert check.status is Status.FAIL
    assert problem in check.detail
    command = check.fix.splitlines()[-1]
    assert command.startswith(f"aws ses update-receipt-rule --rule-set-name {RULE_SET} --region {REGION} --rule '")
    assert '"Recipients":["relay.example.com"]' in command
    assert f'{{"S3Action":{{"BucketName":"{BUCKET}","ObjectKeyPrefix":"inbound/"}}}}' in command
    assert '"ScanEnabled":true,"TlsPolicy":"Require"' in command


@pytest.mark.parametrize("recipients", [(), ("RELAY.example.com",), (".example.com",)])
def test_doctor_receipt_rule_recipients_that_cover_the_domain(recipients: tuple[str, ...]) -> None:
    # Given recipients SES matches to every address of the domain (none at all, another case, a parent with a dot)
    probe = FakeProbe(rule_sets={RULE_SET: RuleSet(RULE_SET, (replace(OUR_RULE, recipients=recipients),))})

    # Then the rule is fine
    assert _run(probe)["receipt rule"].status is Status.OK


def test_doctor_missing_rule_and_missing_set_say_redeploy() -> None:
    # Given the set without our rule, When diagnosed, Then the rule check and the function check fail
    checks = _run(FakeProbe(rule_sets={RULE_SET: RuleSet(RULE_SET, ())}))
    assert checks["receipt rule"].detail == f"{RULE_SET} has no rule {RULE}"
    assert "sam deploy --stack-name emailflow" in checks["receipt rule"].fix
    assert checks["relay function"].status is Status.FAIL

    # Given no set at all (and nothing active)
    checks = _run(FakeProbe(rule_sets={}, active=None))
    assert checks["receipt rule"].detail == f"receipt rule set {RULE_SET} does not exist"


def test_doctor_earlier_rule_that_stops_our_domain_fails() -> None:
    # Given our rule added to an existing active set, behind a rule that stops all mail of the account's domains
    blocker = ReceiptRule("catch-all-stop", True, (), (RuleAction("StopAction"),))
    unrelated = ReceiptRule("other-domain", True, ("shop.example.org",), (RuleAction("BounceAction"),))
    probe = FakeProbe(rule_sets={RULE_SET: RuleSet(RULE_SET, (unrelated, blocker, OUR_RULE))})

    # When diagnosed, Then the order check names the blocker only and moves it after ours
    check = _run(probe)["receipt rule order"]
    assert check.status is Status.FAIL
    assert "catch-all-stop" in check.detail
    assert "other-domain" not in check.detail
    assert check.fix == (f"aws ses set-receipt-rule-position --rule-set-name {RULE_SET} --rule-name catch-all-stop "
                         f"--after {RULE} --region {REGION}")


def test_doctor_relay_function_missing_or_foreign() -> None:
    # Given the rule invokes a function that is gone
    checks = _run(FakeProbe(functions={}))
    assert checks["relay function"].status is Status.FAIL
    assert "does not exist" in checks["relay function"].detail
    assert "--logical-resource-id RelayFunction" in checks["relay function"].fix

    # Given it invokes another deployment's relay (another table)
    other = LambdaFunction(FUNCTION_ARN, "Active", {"EMAILFLOW_TABLE": "staging-table",
                                                    "EMAILFLOW_INBOUND_BUCKET": BUCKET})
    check = _run(FakeProbe(functions={FUNCTION_ARN: other}))["relay function"]
    assert check.status is Status.FAIL
    assert "is not this stack's relay (EMAILFLOW_TABLE=staging-table)" in check.detail


def test_doctor_unverified_identity_points_at_the_dkim_records() -> None:
    # Given the domain still waiting for its DKIM records
    identity = EmailIdentity(DOMAIN, verified_for_sending=False, dkim_signing_enabled=True, dkim_status="PENDING",
                             dkim_tokens=TOKENS, mail_from_domain=f"bounce.{DOMAIN}", mail_from_status="PENDING")

    # When diagnosed
    checks = _run(FakeProbe(identity=identity), FakeResolver({}))

    # Then the identity fails, MAIL FROM only warns, and each DKIM record check names the CNAME to create
    assert checks["domain identity"].status is Status.FAIL
    assert checks["domain identity"].detail == f"{DOMAIN}: not verified for sending, DKIM status PENDING"
    assert "create the DKIM CNAME records" in checks["domain identity"].fix
    assert checks["MAIL FROM domain"].status is Status.WARN
    for index, token in enumerate(TOKENS, 1):
        check = checks[f"dns DKIM {index}"]
        assert check.status is Status.FAIL
        assert check.fix == f"create: {token}._domainkey.{DOMAIN} CNAME {token}.dkim.amazonses.com"


def test_doctor_missing_identity_and_failed_dkim() -> None:
    checks = _run(FakeProbe(identity=None))
    assert checks["domain identity"].detail == f"SES has no identity {DOMAIN} in {REGION}"
    # the DKIM records still come from the stack's outputs
    assert checks["dns DKIM 1"].status is Status.OK

    failed_dkim = EmailIdentity(DOMAIN, False, True, "FAILED", TOKENS)
    check = _run(FakeProbe(identity=failed_dkim))["domain identity"]
    assert "troubleshoot-dkim" in check.fix


def test_doctor_sandbox_account_links_the_production_access_request() -> None:
    # Given an account still in the sandbox with a request pending
    checks = _run(FakeProbe(ses_account=SesAccount(False, True, "HEALTHY", review_status="PENDING")))

    # Then production access fails with the link and the CLI request; sending is fine
    check = checks["SES production access"]
    assert check.status is Status.FAIL
    assert "(request PENDING)" in check.detail
    assert check.fix.splitlines()[0] == f"request production access: {PRODUCTION_ACCESS_URL}"
    assert "aws sesv2 put-account-details --region eu-west-1 --production-access-enabled" in check.fix
    assert checks["SES sending"].status is Status.OK


def test_doctor_paused_sending_fails_and_probation_warns() -> None:
    paused = _run(FakeProbe(ses_account=SesAccount(True, False, "SHUTDOWN")))["SES sending"]
    assert paused.status is Status.FAIL
    assert "put-account-sending-attributes --sending-enabled" in paused.fix
    probation = _run(FakeProbe(ses_account=SesAccount(True, True, "PROBATION")))["SES sending"]
    assert probation.status is Status.WARN


@pytest.mark.parametrize(("name", "rtype", "values", "detail", "fix"), [
    (DOMAIN, "MX", [], f"{DOMAIN} has no MX record", f"create: {OUTPUTS['MXRecord']}"),
    (DOMAIN, "MX", ["10 mx.old-provider.example"], "not inbound-smtp.eu-west-1.amazonaws.com",
     f"create: {OUTPUTS['MXRecord']}\nand remove the MX record(s) of mx.old-provider.example"),
    (DOMAIN, "MX", [f"10 inbound-smtp.{REGION}.amazonaws.com", "20 backup.example"], "also names backup.example",
     f"remove the MX record(s) of backup.example; keep: {OUTPUTS['MXRecord']}"),
    (f"bounce.{DOMAIN}", "TXT", ["v=spf1 -all"], "it does not allow SES",
     f'replace it: bounce.{DOMAIN} TXT "v=spf1 include:amazonses.com ~all"'),
    (f"bounce.{DOMAIN}", "TXT", ["v=spf1 include:amazonses.com ~all", "v=spf1 mx -all"], "2 SPF records",
     f"keep one: {OUTPUTS['MailFromSPFRecord']}"),
    (f"{TOKENS[0]}._domainkey.{DOMAIN}", "CNAME", ["wrong.dkim.amazonses.com"], "is wrong.dkim.amazonses.com",
     f"replace it: {OUTPUTS['DkimRecord1']}"),
])
def test_doctor_wrong_dns_record_names_the_exact_record(name: str, rtype: str, values: list[str], detail: str,
                                                        fix: str) -> None:
    # Given one record wrong in DNS
    resolver = _resolver()
    resolver.zone[(name, rtype)] = values

    # When diagnosed, Then exactly that record's check fails, with the record to create or keep
    checks = _run(resolver=resolver)
    [(check_name, status)] = _not_ok(checks).items()
    assert status is Status.FAIL
    assert detail in checks[check_name].detail
    assert checks[check_name].fix == fix


def test_doctor_spf_with_more_mechanisms_is_accepted() -> None:
    resolver = _resolver()
    resolver.zone[(f"bounce.{DOMAIN}", "TXT")] = ["v=spf1 ip4:192.0.2.0/24 include:amazonses.com -all", "other"]
    assert _run(resolver=resolver)["dns SPF"].status is Status.OK


def test_doctor_dns_lookup_failure_is_a_failed_check_never_a_crash() -> None:
    # Given a resolver that times out on the domain's MX and on DMARC
    resolver = _resolver()
    resolver.failing |= {DOMAIN, f"_dmarc.{DOMAIN}"}

    # When diagnosed
    checks = _run(resolver=resolver)

    # Then the MX check fails with the reason and the record to create; DMARC (optional) only warns
    assert checks["dns receiving"].status is Status.FAIL
    assert checks["dns receiving"].detail == f"{DOMAIN} MX: lookup failed (The DNS operation timed out.)"
    assert checks["dns receiving"].fix.splitlines()[0] == f"create: {OUTPUTS['MXRecord']}"
    assert checks["dns DMARC"].status is Status.WARN


def test_doctor_missing_dmarc_only_warns() -> None:
    resolver = _resolver()
    del resolver.zone[(f"_dmarc.{DOMAIN}", "TXT")]
    checks = _run(resolver=resolver)
    assert _not_ok(checks) == {"dns DMARC": Status.WARN}
    assert not failed(list(checks.values()))
    assert f'_dmarc.{DOMAIN} TXT "v=DMARC1; p=none;' in checks["dns DMARC"].fix


def test_doctor_dkim_tokens_come_from_the_identity() -> None:
    # Given SES issued new tokens (the stack's DkimRecord outputs are stale)
    identity = replace(FakeProbe().identity, dkim_tokens=("newtoken1", "newtoken2", "newtoken3"))  # type: ignore[type-var]
    resolver = FakeResolver(good_zone(DOMAIN, REGION, ("newtoken1", "newtoken2", "newtoken3")))

    # Then the identity's tokens are what is looked up
    checks = _run(FakeProbe(identity=identity), resolver)
    assert _not_ok(checks) == {}
    assert (f"newtoken1._domainkey.{DOMAIN}", "CNAME") in resolver.asked


def test_doctor_event_destination_missing_or_without_bounces() -> None:
    # Given the configuration set without any event destination
    bare = ConfigurationSet("emailflow-cs", True, ())
    check = _run(FakeProbe(configuration=bare))["SES events to SNS"]
    assert check.status is Status.FAIL
    assert check.fix.startswith("aws sesv2 create-configuration-set-event-destination --configuration-set-name "
                                "emailflow-cs --event-destination-name delivery-events-to-sns")
    assert f'"SnsDestination":{{"TopicArn":"{TOPIC}"}}' in check.fix

    # Given one to the topic that lost the complaint events
    partial = ConfigurationSet("emailflow-cs", True, (EventDestination("d", True, frozenset({"BOUNCE"}), TOPIC),))
    check = _run(FakeProbe(configuration=partial))["SES events to SNS"]
    assert check.detail == f"d sends to {TOPIC} but is without COMPLAINT events"
    assert check.fix.startswith("aws sesv2 update-configuration-set-event-destination")


def test_doctor_configuration_set_paused_or_missing() -> None:
    paused = replace(FakeProbe().configuration, sending_enabled=False)  # type: ignore[type-var]
    check = _run(FakeProbe(configuration=paused))["configuration set"]
    assert check.status is Status.FAIL
    assert "put-configuration-set-sending-options --configuration-set-name emailflow-cs --sending-enabled" in check.fix
    assert _run(FakeProbe(configuration=None))["configuration set"].status is Status.FAIL


def test_doctor_parked_events_point_to_redrive() -> None:
    # Given three events parked and one being received by someone right now
    check = _run(FakeProbe(depth=QueueDepth(visible=3, in_flight=1)))["relay dead-letter queue"]

    # Then the check fails with the count and the command that re-runs them
    assert check.status is Status.FAIL
    assert check.detail == "4 event(s) parked (1 being received now): their mail was not relayed"
    assert check.fix.startswith("emailflow redrive")


def test_doctor_unreadable_parts_fail_with_the_missing_permission() -> None:
    # Given an operator allowed nothing in SES v1 and no GetAccount
    probe = FakeProbe(errors={"active_rule_set": "AccessDenied: not authorized", "rule_set": "AccessDenied: no",
                              "account": "AccessDenied: not authorized"})

    # When diagnosed, Then those checks fail saying what could not be read; the rest still ran
    checks = _run(probe)
    assert checks["receipt rule set active"].detail == ("could not read the active receipt rule set "
                                                        "(ses:DescribeActiveReceiptRuleSet): AccessDenied: not "
                                                        "authorized")
    assert "ses:DescribeReceiptRuleSet" in checks["receipt rule"].fix
    assert checks["SES production access"].status is Status.FAIL
    assert checks["SES sending"].status is Status.FAIL
    assert checks["domain identity"].status is Status.OK
    assert checks["dns receiving"].status is Status.OK
