"""A deployment for ``emailflow doctor`` on moto: ``deploy_locally`` (tables, bucket, queues, topics, rule set,
configuration set, identity) plus what local mode has no use for and the doctor reads, each built from its
``template.yaml`` resource: the relay function, the receipt rule and the configuration set's event destination.
The stack's outputs are registered in moto's CloudFormation, where the CLI reads them as on AWS.

Left to the test, as they are left to the operator after ``sam deploy``: activating the rule set, SES verifying the
domain (``SesGaps.verify``), production access (``SesGaps``), and DNS (``tests.support.dns``).
"""

from __future__ import annotations

import io
import json
import re
import secrets
import string
import zipfile
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import boto3

from emailflow.local.stack import LocalStack, register_stack
from emailflow.local.template import Resolver

if TYPE_CHECKING:
    from mypy_boto3_lambda.literals import RuntimeType
    from mypy_boto3_sesv2.literals import EventTypeType

_TOKEN_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class DoctorStack:
    name: str
    region: str
    domain: str
    outputs: dict[str, str]
    dkim_tokens: list[str]

    @property
    def rule_set_name(self) -> str:
        return self.outputs["ReceiptRuleSetName"]


def _booleans(value: Any) -> Any:
    """The template resolver renders YAML booleans as CloudFormation does ("true"); the SES API wants booleans."""
    if isinstance(value, dict):
        return {key: _booleans(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_booleans(item) for item in value]
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


def _relay_function(session: boto3.session.Session, stack: LocalStack, name: str) -> str:
    """The relay as a Lambda function with the template's environment (moto stores it; no code runs)."""
    role = session.client("iam").create_role(
        RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("relay/app.py", "def handler(event, context):\n    return None\n")
    created = session.client("lambda").create_function(
        FunctionName=name, Role=role["Role"]["Arn"], Code={"ZipFile": code.getvalue()},
        Runtime=cast("RuntimeType", str(stack.function_setting("RelayFunction", "Runtime"))),
        Handler=str(stack.function_setting("RelayFunction", "Handler")),
        Environment={"Variables": stack.function_environment("RelayFunction")})
    return created["FunctionArn"]


def complete_for_doctor(stack: LocalStack) -> DoctorStack:
    """Create the rest of the deployment and register the stack's outputs under the stack's name."""
    session = boto3.session.Session(region_name=stack.region)
    refs = dict(stack.refs)
    attributes = dict(stack.attributes)
    name = refs["AWS::StackName"]
    resources = stack.template["Resources"]

    attributes["RelayFunction.Arn"] = _relay_function(session, stack, f"{name}-RelayFunction-{secrets.token_hex(4)}")

    # Easy DKIM: SES issues three tokens when the identity is created; the outputs name their CNAMEs.
    tokens = ["".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(32)) for _ in range(3)]
    domain = refs["DomainName"]
    for index, token in enumerate(tokens, 1):
        attributes[f"DomainIdentity.DkimDNSTokenName{index}"] = f"{token}._domainkey.{domain}"
        attributes[f"DomainIdentity.DkimDNSTokenValue{index}"] = f"{token}.dkim.amazonses.com"

    resolver = Resolver(refs, attributes)
    # The rule's RuleSetName (and the ReceiptRuleSetName output) is `!If [UseExistingRuleSet, ...]`, which local
    # mode's resolver does not evaluate; with ExistingReceiptRuleSetName empty (the default) it is our own set.
    rule_set = refs["ReceiptRuleSet"]
    rule = _booleans(resolver.resolve(resources["ReceiptRule"]["Properties"]["Rule"]))
    session.client("ses").create_receipt_rule(RuleSetName=rule_set, Rule=rule)
    refs["ReceiptRule"] = rule["Name"]  # Ref of AWS::SES::ReceiptRule is the rule's name

    # AWS::SES::ConfigurationSetEventDestination spells event types as SES v1 does (deliveryDelay); v2 DELIVERY_DELAY.
    destination = _booleans(resolver.resolve(resources["SesEventDestination"]["Properties"]))
    spec = destination["EventDestination"]
    session.client("sesv2").create_configuration_set_event_destination(
        ConfigurationSetName=destination["ConfigurationSetName"], EventDestinationName=spec["Name"],
        EventDestination={"Enabled": spec["Enabled"],
                          "MatchingEventTypes": [cast("EventTypeType", re.sub(r"(?<!^)(?=[A-Z])", "_", kind).upper())
                                                 for kind in spec["MatchingEventTypes"]],
                          "SnsDestination": {"TopicArn": spec["SnsDestination"]["TopicARN"]}})

    template = json.loads(json.dumps(stack.template))
    template["Outputs"]["ReceiptRuleSetName"]["Value"] = {"Ref": "ReceiptRuleSet"}
    outputs = register_stack(replace(stack, template=template, refs=refs, attributes=attributes), name)
    return DoctorStack(name=name, region=stack.region, domain=domain, outputs=outputs, dkim_tokens=tokens)
