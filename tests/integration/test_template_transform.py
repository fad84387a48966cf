"""template.yaml through the SAM transform (offline): the CloudFormation that would be deployed is wired to the code.

Each test reads the transform's output (tests/support/sam.py), evaluated for one set of parameters
(tests/support/cfn.py), so conditions, ``Fn::If`` and ``Fn::Sub`` are taken into account.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from emailflow.config import (
    _REQUIRED,
    ENVIRONMENT_VARIABLES,
    LOCAL_PROCESS_VARIABLES,
    OPERATOR_VARIABLES,
    RUNTIME_VARIABLES,
    Settings,
    settings_from_environment,
)
from tests.support.aws_calls import import_closure
from tests.support.cfn import ACCOUNT_ID, REGION, STACK_NAME, Stack, get_att, ref
from tests.support.sam import ROOT, code_directory, import_handler, sam_template, translated_template

DOMAIN = "relay.example.com"
RELAY_HANDLER = "relay.app.handler"
OWN_RULE_SET = {"DomainName": DOMAIN}
EXISTING_RULE_SET = {"DomainName": DOMAIN, "ExistingReceiptRuleSetName": "legacy-rules",
                     "ActivateReceiptRuleSet": "true"}
SCENARIOS = pytest.mark.parametrize("parameters", [OWN_RULE_SET, EXISTING_RULE_SET], ids=["own-set", "existing-set"])


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return translated_template()


def _functions(stack: Stack) -> dict[str, dict[str, Any]]:
    return stack.resources("AWS::Lambda::Function")


def _relay(stack: Stack) -> tuple[str, dict[str, Any]]:
    (name, function), = ((name, function) for name, function in _functions(stack).items()
                         if function["Properties"]["Handler"] == RELAY_HANDLER)
    return name, function


def _uses_emailflow(function: dict[str, Any]) -> bool:
    return (code_directory(function) / "emailflow" / "config.py").is_file()


def _rule_arn(stack: Stack) -> str:
    rule = stack.resource("ReceiptRule")["Properties"]
    return (f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:receipt-rule-set/{rule['RuleSetName']}"
            f":receipt-rule/{rule['Rule']['Name']}")


# --- the transform ------------------------------------------------------------------------------------------------

def test_template_transform_leaves_plain_cloudformation(template: dict[str, Any]) -> None:
    # Given the transform's output, Then no SAM resource type or transform is left in it
    assert "Transform" not in template
    assert not [name for name, resource in template["Resources"].items()
                if resource["Type"].startswith("AWS::Serverless::")]
    assert {"RelayFunction", "RelayFunctionRole", "RelayFunctionEventInvokeConfig"} <= set(template["Resources"])


def test_template_has_no_cfn_lint_suppressions() -> None:
    # Given the SAM template as written, Then no cfn-lint rule is switched off anywhere (make test lints it whole)
    document = sam_template()
    assert "cfn-lint" not in document.get("Metadata", {})
    assert not [name for name, resource in document["Resources"].items() if "cfn-lint" in resource.get("Metadata", {})]
    assert not list(ROOT.glob(".cfnlintrc*"))


# --- functions ----------------------------------------------------------------------------------------------------

def test_template_every_handler_resolves_to_a_callable(template: dict[str, Any]) -> None:
    # Given every function the stack can create (all optional ones switched on)
    stack = Stack(template, {**OWN_RULE_SET, "ActivateReceiptRuleSet": "true"})
    functions = _functions(stack)
    assert {"RelayFunction", "RuleSetActivatorFunction"} <= set(functions)

    for name, function in functions.items():
        # When its Handler is imported as Lambda would, with its code folder first on the path
        entry_point = import_handler(code_directory(function), function["Properties"]["Handler"])

        # Then it is a callable taking (event, context)
        assert callable(entry_point), name
        assert len(inspect.signature(entry_point).parameters) == 2, name


def test_template_functions_run_python313_on_arm64_with_logs_kept(template: dict[str, Any]) -> None:
    # Given every function
    stack = Stack(template, {**OWN_RULE_SET, "ActivateReceiptRuleSet": "true", "LogRetentionDays": "14"})
    log_groups = stack.resources("AWS::Logs::LogGroup")
    for name, function in _functions(stack).items():
        properties = function["Properties"]

        # Then it runs python3.13 on arm64 and logs to its own log group, whose retention is the parameter
        assert (properties["Runtime"], properties["Architectures"]) == ("python3.13", ["arm64"]), name
        log_group = properties["LoggingConfig"]["LogGroup"].strip("{}")
        assert log_groups[log_group]["Properties"]["RetentionInDays"] == "14", name


def test_template_relay_sets_exactly_the_variables_config_reads(template: dict[str, Any]) -> None:
    # Given every function built from the emailflow package
    stack = Stack(template, OWN_RULE_SET)
    package_functions = {name: function for name, function in _functions(stack).items() if _uses_emailflow(function)}
    assert package_functions

    for name, function in package_functions.items():
        names = set(function["Properties"]["Environment"]["Variables"])
        own = {variable for variable in names if not variable.startswith("POWERTOOLS_")}

        # Then every variable config.py reads, required and optional, is set, and nothing it ignores
        assert own == set(ENVIRONMENT_VARIABLES), name
        assert set(_REQUIRED) <= own


def test_template_other_functions_get_no_emailflow_settings(template: dict[str, Any]) -> None:
    # Given the functions not built from the emailflow package (the rule-set activator)
    stack = Stack(template, {**OWN_RULE_SET, "ActivateReceiptRuleSet": "true"})
    others = {name: function for name, function in _functions(stack).items() if not _uses_emailflow(function)}
    assert others

    # Then they get no EMAILFLOW_* variable (they read none)
    for name, function in others.items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert not [variable for variable in variables if not variable.startswith("POWERTOOLS_")], name


def test_config_reads_only_the_variables_it_declares() -> None:
    # Given config.py's source
    tree = ast.parse((ROOT / "functions" / "emailflow" / "config.py").read_text())
    literals = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
                and re.fullmatch(r"[A-Z][A-Z0-9_]+", node.value)}

    # Then the variable names it mentions are exactly the declared table plus the runtime's own variables
    assert {name for name in literals if name.startswith("EMAILFLOW_")} == set(ENVIRONMENT_VARIABLES) | set(
        OPERATOR_VARIABLES)
    assert {name for name in literals if name.startswith("AWS_")} == set(RUNTIME_VARIABLES) | set(
        LOCAL_PROCESS_VARIABLES)


def test_config_is_the_only_environment_reader_on_the_relay_path() -> None:
    # Given every module the relay handler loads
    modules = import_closure("relay.app", [ROOT / "functions"])

    # Then only emailflow.config touches os.environ or getenv
    def attributes(tree: ast.Module) -> set[str]:
        return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}

    readers = {name for name, module in modules.items() if {"environ", "getenv"} & attributes(module.tree)}
    assert readers == {"emailflow.config"}


def test_template_parameter_defaults_match_the_settings_defaults(template: dict[str, Any]) -> None:
    # Given the parameters behind the relay's variables, and Settings' own defaults
    _, relay = _relay(Stack(template, OWN_RULE_SET))
    raw_variables = template["Resources"]["RelayFunction"]["Properties"]["Environment"]["Variables"]
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)
                if field.default is not dataclasses.MISSING}
    checked = 0
    for variable, setting in ENVIRONMENT_VARIABLES.items():
        parameter = raw_variables[variable].get("Ref") if isinstance(raw_variables[variable], dict) else None
        if setting not in defaults or parameter not in template["Parameters"]:
            continue

        # Then a deploy that leaves the parameter alone behaves as the code's documented default (read the way the
        # function reads it: through settings_from_environment)
        required = dict.fromkeys(_REQUIRED, "x") | {"EMAILFLOW_DOMAIN": DOMAIN}
        read = settings_from_environment({**required, variable: str(template["Parameters"][parameter]["Default"])})
        assert getattr(read, setting) == defaults[setting], variable
        checked += 1
    assert checked >= 8
    assert relay["Properties"]["Environment"]["Variables"]["EMAILFLOW_DOMAIN"] == DOMAIN


def test_template_relay_memory_and_timeout_fit_a_40_mb_message(template: dict[str, Any]) -> None:
    # Given the relay function
    _, relay = _relay(Stack(template, OWN_RULE_SET))

    # Then it has room for ~350 MB at peak (see the comment in template.yaml) and time for a 40 MB send
    assert relay["Properties"]["MemorySize"] >= 1024
    assert relay["Properties"]["Timeout"] >= 60


def test_template_reserved_concurrency_only_when_asked(template: dict[str, Any]) -> None:
    # Given the default, and a deploy that reserves 20
    default = _relay(Stack(template, OWN_RULE_SET))[1]["Properties"]
    reserved = _relay(Stack(template, {**OWN_RULE_SET, "RelayReservedConcurrency": "20"}))[1]["Properties"]

    # Then only the second reserves concurrency
    assert "ReservedConcurrentExecutions" not in default
    assert reserved["ReservedConcurrentExecutions"] == "20"


def test_template_relay_failures_are_parked_in_the_dlq_and_alarmed(template: dict[str, Any]) -> None:
    # Given the relay's async invoke configuration and the alarms
    stack = Stack(template, OWN_RULE_SET)
    name, _ = _relay(stack)
    (config,) = (resource["Properties"] for resource in stack.resources("AWS::Lambda::EventInvokeConfig").values()
                 if resource["Properties"]["FunctionName"] == ref(name))
    alarms = stack.resources("AWS::CloudWatch::Alarm").values()

    # Then events that failed their retries go to the DLQ, and a visible message there raises the alarm
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == get_att("RelayDeadLetterQueue", "Arn")
    assert config["MaximumRetryAttempts"] == 2
    assert [alarm for alarm in alarms if alarm["Properties"].get("Dimensions") == [
        {"Name": "QueueName", "Value": get_att("RelayDeadLetterQueue", "QueueName")}]
        and alarm["Properties"]["AlarmActions"] == [ref("AlarmTopic")]]


# --- receiving ----------------------------------------------------------------------------------------------------

@SCENARIOS
def test_template_receipt_rule_stores_where_the_relay_reads_then_invokes_it(
        template: dict[str, Any], parameters: dict[str, str]) -> None:
    # Given the receipt rule and the relay function of one deployment
    stack = Stack(template, parameters)
    name, relay = _relay(stack)
    env = relay["Properties"]["Environment"]["Variables"]
    rule = stack.resource("ReceiptRule")["Properties"]["Rule"]

    # Then: the relay domain, TLS required, scanning on; S3 first, into the bucket and prefix the function reads;
    # then the relay function, asynchronously
    assert rule["Recipients"] == [env["EMAILFLOW_DOMAIN"]]
    assert (rule["TlsPolicy"], rule["ScanEnabled"], rule["Enabled"]) == ("Require", True, True)
    s3_action, lambda_action = rule["Actions"]
    assert s3_action["S3Action"] == {"BucketName": env["EMAILFLOW_INBOUND_BUCKET"],
                                     "ObjectKeyPrefix": env["EMAILFLOW_INBOUND_PREFIX"]}
    assert lambda_action["LambdaAction"] == {"FunctionArn": get_att(name, "Arn"), "InvocationType": "Event"}


@SCENARIOS
def test_template_receipt_rule_goes_into_our_set_or_the_named_one(
        template: dict[str, Any], parameters: dict[str, str]) -> None:
    # Given one deployment
    stack = Stack(template, parameters)
    existing = parameters.get("ExistingReceiptRuleSetName")

    # When its rule and rule-set resources are read
    rule_set_name = stack.resource("ReceiptRule")["Properties"]["RuleSetName"]

    # Then the rule is in the named existing set (and no set or activation of ours exists), or in ours
    if existing:
        assert rule_set_name == existing
        assert not {"ReceiptRuleSet", "ActiveReceiptRuleSet", "RuleSetActivatorFunction"} & set(stack.resources())
    else:
        assert rule_set_name == ref("ReceiptRuleSet")
    assert stack.output("ReceiptRuleSetName") == rule_set_name


@SCENARIOS
def test_template_only_our_receipt_rule_may_write_mail_and_invoke_the_relay(
        template: dict[str, Any], parameters: dict[str, str]) -> None:
    # Given the bucket policy and the Lambda permission of one deployment
    stack = Stack(template, parameters)
    name, relay = _relay(stack)
    env = relay["Properties"]["Environment"]["Variables"]
    statements = stack.resource("InboundBucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    (allow,) = (statement for statement in statements if statement["Effect"] == "Allow")
    permission = stack.resource("RelayFunctionSESPermission")["Properties"]

    # Then SES may only put objects under the prefix, for this account and this very receipt rule
    assert allow["Principal"] == {"Service": "ses.amazonaws.com"}
    assert allow["Action"] == "s3:PutObject"
    assert allow["Resource"] == f"{get_att('InboundBucket', 'Arn')}/{env['EMAILFLOW_INBOUND_PREFIX']}*"
    assert allow["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID, "aws:SourceArn": _rule_arn(stack)}}
    # And only that rule may invoke the relay
    assert permission == {"Action": "lambda:InvokeFunction", "FunctionName": ref(name),
                          "Principal": "ses.amazonaws.com", "SourceAccount": ACCOUNT_ID, "SourceArn": _rule_arn(stack)}


def test_template_receipt_rule_waits_for_its_permissions(template: dict[str, Any]) -> None:
    # Given the rule, Then it is created only after SES may write to the bucket and invoke the function
    depends_on = set(template["Resources"]["ReceiptRule"]["DependsOn"])
    assert {"InboundBucketPolicy", "RelayFunctionSESPermission"} <= depends_on


def test_template_receipt_rule_name_fits_the_ses_limit(template: dict[str, Any]) -> None:
    # Given a stack name as long as the template allows for, Then the rule name SES gets stays within 64 characters
    rule_name = Stack(template, OWN_RULE_SET).resource("ReceiptRule")["Properties"]["Rule"]["Name"]
    assert rule_name == f"{STACK_NAME}-relay"
    assert len(rule_name.replace(STACK_NAME, "x" * 58)) <= 64


def test_template_rule_set_activation_is_opt_in(template: dict[str, Any]) -> None:
    # Given a default deployment and one that asks for activation
    default = Stack(template, OWN_RULE_SET)
    activated = Stack(template, {**OWN_RULE_SET, "ActivateReceiptRuleSet": "true"})

    # Then only the second activates, our own set, after the rule exists, through the activator function
    assert "ActiveReceiptRuleSet" not in default.resources()
    resource = activated.resource("ActiveReceiptRuleSet")
    assert resource["Properties"]["RuleSetName"] == ref("ReceiptRuleSet")
    assert resource["Properties"]["ServiceToken"] == get_att("RuleSetActivatorFunction", "Arn")
    assert "ReceiptRule" in resource["DependsOn"]


# --- inbound storage and state ------------------------------------------------------------------------------------

def test_template_inbound_bucket_is_private_encrypted_and_expires_raw_mail(template: dict[str, Any]) -> None:
    # Given the inbound bucket and its policy
    stack = Stack(template, {**OWN_RULE_SET, "RawMailRetentionDays": "7"})
    bucket = stack.resource("InboundBucket")
    statements = stack.resource("InboundBucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    (deny,) = (statement for statement in statements if statement["Effect"] == "Deny")

    # Then it is encrypted, closed to the public, TLS-only, and raw mail under the prefix expires
    properties = bucket["Properties"]
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (rule,) = properties["LifecycleConfiguration"]["Rules"]
    assert (rule["Prefix"], rule["ExpirationInDays"], rule["Status"]) == ("inbound/", "7", "Enabled")


def test_template_table_is_on_demand_recoverable_expiring_and_retained(template: dict[str, Any]) -> None:
    # Given the table
    table = Stack(template, OWN_RULE_SET).resource("RelayTable")
    properties = table["Properties"]

    # Then it is on demand, with point-in-time recovery, TTL on expires_at, and kept when the stack goes
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")


# --- sending ------------------------------------------------------------------------------------------------------

def test_template_domain_identity_has_easy_dkim_and_a_mail_from_domain(template: dict[str, Any]) -> None:
    # Given the SES identity
    stack = Stack(template, OWN_RULE_SET)
    identity = stack.resource("DomainIdentity")["Properties"]
    _, relay = _relay(stack)

    # Then it is the relay's domain, signs with Easy DKIM, uses bounce.<domain> as MAIL FROM and our configuration set
    assert identity["EmailIdentity"] == relay["Properties"]["Environment"]["Variables"]["EMAILFLOW_DOMAIN"]
    assert identity["DkimAttributes"] == {"SigningEnabled": True}
    assert identity["MailFromAttributes"]["MailFromDomain"] == f"bounce.{DOMAIN}"
    assert identity["ConfigurationSetAttributes"] == {"ConfigurationSetName": ref("ConfigurationSet")}


def test_template_configuration_set_publishes_delivery_events_to_the_topic(template: dict[str, Any]) -> None:
    # Given the event destination of the configuration set the relay sends with
    stack = Stack(template, OWN_RULE_SET)
    _, relay = _relay(stack)
    (destination,) = stack.resources("AWS::SES::ConfigurationSetEventDestination").values()
    properties = destination["Properties"]

    # Then bounces, complaints, deliveries, rejects and delays of that set go to the SES events topic
    assert properties["ConfigurationSetName"] == relay["Properties"]["Environment"]["Variables"][
        "EMAILFLOW_CONFIGURATION_SET"]
    event_destination = properties["EventDestination"]
    assert set(event_destination["MatchingEventTypes"]) == {"bounce", "complaint", "delivery", "reject",
                                                            "deliveryDelay"}
    assert event_destination["SnsDestination"] == {"TopicARN": ref("SesEventsTopic")}
    assert event_destination["Enabled"] is True


def test_template_only_our_configuration_set_may_publish_to_the_topic(template: dict[str, Any]) -> None:
    # Given the events topic's policy
    stack = Stack(template, OWN_RULE_SET)
    policy = stack.resource("SesEventsTopicPolicy")["Properties"]

    # Then SES of this account may publish, for our configuration set only
    assert policy["Topics"] == [ref("SesEventsTopic")]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert (statement["Principal"], statement["Action"]) == ({"Service": "ses.amazonaws.com"}, "sns:Publish")
    assert statement["Condition"] == {"StringEquals": {
        "aws:SourceAccount": ACCOUNT_ID,
        "aws:SourceArn": f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:configuration-set/{ref('ConfigurationSet')}"}}


# --- DNS and outputs ----------------------------------------------------------------------------------------------

def test_template_dns_records_only_with_a_hosted_zone(template: dict[str, Any]) -> None:
    # Given a deployment without and one with a hosted zone
    without = Stack(template, OWN_RULE_SET).resources("AWS::Route53::RecordSet")
    records = Stack(template, {**OWN_RULE_SET, "HostedZoneId": "Z0123456789ABC"}).resources("AWS::Route53::RecordSet")

    # Then only the second creates the inbound MX, three DKIM CNAMEs and the MAIL FROM MX and SPF records
    assert without == {}
    kinds = sorted((record["Properties"]["Type"], str(record["Properties"]["Name"])) for record in records.values())
    assert kinds == sorted([
        ("MX", DOMAIN), ("MX", f"bounce.{DOMAIN}"), ("TXT", f"bounce.{DOMAIN}"),
        *(("CNAME", get_att("DomainIdentity", f"DkimDNSTokenName{n}")) for n in (1, 2, 3))])
    assert {record["Properties"]["HostedZoneId"] for record in records.values()} == {"Z0123456789ABC"}


def test_template_dns_outputs_match_the_records_it_creates(template: dict[str, Any]) -> None:
    # Given the records a hosted-zone deployment creates, and the outputs an operator without one copies
    stack = Stack(template, {**OWN_RULE_SET, "HostedZoneId": "Z0123456789ABC"})
    outputs = {"MXRecord": "InboundMXRecord", "DkimRecord1": "DkimRecord1", "DkimRecord2": "DkimRecord2",
               "DkimRecord3": "DkimRecord3", "MailFromMXRecord": "MailFromMXRecord",
               "MailFromSPFRecord": "MailFromSPFRecord"}

    for output, record_id in outputs.items():
        record = stack.resource(record_id)["Properties"]
        (value,) = record["ResourceRecords"]

        # Then each output reads "<name> <type> <value>" of exactly that record
        assert stack.output(output) == f"{record['Name']} {record['Type']} {value}", output


def test_template_outputs_are_described_and_keep_their_keys(template: dict[str, Any]) -> None:
    # Given the outputs, Then each has a Description, and the keys other code reads are there
    outputs = template["Outputs"]
    assert not [name for name, output in outputs.items() if not output.get("Description")]
    assert {"TableName", "InboundBucketName", "CodeSecretArn", "DomainName", "BrandName", "SesEventsTopicArn",
            "RelayDeadLetterQueueUrl", "ReceiptRuleSetName", "MXRecord", "DkimRecord1", "DkimRecord2", "DkimRecord3",
            "MailFromMXRecord", "MailFromSPFRecord"} <= set(outputs)


def test_template_parameters_are_described() -> None:
    # Given the SAM template's parameters, Then each has a Description
    parameters = sam_template()["Parameters"]
    assert not [name for name, parameter in parameters.items() if not parameter.get("Description")]


def test_template_code_folders_exist(template: dict[str, Any]) -> None:
    # Given every function, Then its code folder is a real folder of the project
    stack = Stack(template, {**OWN_RULE_SET, "ActivateReceiptRuleSet": "true"})
    folders = {code_directory(function) for function in _functions(stack).values()}
    assert {ROOT / "functions", ROOT / "infra" / "rule_set_activator"} <= folders
    assert all(Path(folder).is_dir() for folder in folders)
