"""Create the template's resources on an AWS emulator (moto, in-process or as a server) and give back the
environment the functions would get. One piece of code for local mode, the demo and the tests.

It calls boto3 directly: it plays CloudFormation's part for local mode, outside the Lambda code path. The stack's
outputs are the template's own ``Outputs``, resolved against what was created, and can be registered in the
emulator's CloudFormation (``register_stack``) so that the operator CLI finds them as it finds a real stack's.
"""

from __future__ import annotations

import importlib
import json
import secrets
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from emailflow.local.template import (
    Resolver,
    default_template_path,
    load_template,
    parameter_defaults,
    resources_of_type,
)
from emailflow.observability import logger

ACCOUNT_ID = "123456789012"
"""moto's default account."""


@dataclass(frozen=True)
class LocalStack:
    """What was created: logical id -> physical name (Ref) and the resolver for everything else."""

    template: Mapping[str, Any]
    refs: Mapping[str, str]
    attributes: Mapping[str, str]
    region: str
    created: list[str] = field(default_factory=list)

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The environment variables the template gives one function (Globals merged), resolved."""
        globals_env = self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        function = self.template["Resources"][logical_id]["Properties"]
        own_env = function.get("Environment", {}).get("Variables", {})
        resolver = Resolver(self.refs, self.attributes, self.template.get("Conditions"))
        return {name: str(resolver.resolve(value)) for name, value in {**globals_env, **own_env}.items()}

    def outputs(self) -> dict[str, str]:
        """The template's ``Outputs``, resolved. An output that refers to something local mode does not create is
        left out with a warning (the CLI names any output it needs and misses)."""
        resolver = Resolver(self.refs, self.attributes, self.template.get("Conditions"))
        resolved: dict[str, str] = {}
        for key, output in self.template.get("Outputs", {}).items():
            try:
                resolved[key] = str(resolver.resolve(output["Value"]))
            except KeyError as exc:
                logger.warning("stack output not available locally", output=key, missing=str(exc))
        return resolved

    def function_setting(self, logical_id: str, *path: str) -> Any:
        """A property of a function (``"EventInvokeConfig", "MaximumRetryAttempts"``), Globals as fallback;
        None when neither sets it."""
        for scope in (self.template["Resources"][logical_id].get("Properties", {}),
                      self.template.get("Globals", {}).get("Function", {})):
            value: Any = scope
            for key in path:
                value = value.get(key) if isinstance(value, Mapping) else None
            if value is not None:
                return value
        return None

    def function_handler(self, logical_id: str, template_path: Path | None = None) -> Callable[..., Any]:
        """Import a function's handler the way Lambda does: ``CodeUri`` is the root of the import path and
        ``Handler`` names ``module.attribute``."""
        code_uri = self.function_setting(logical_id, "CodeUri") or "."
        root = str(((template_path or default_template_path()).parent / str(code_uri)).resolve())
        if root not in sys.path:
            sys.path.append(root)  # appended: a checkout already on the path (tests, make) keeps precedence
        module_name, _, attribute = str(self.function_setting(logical_id, "Handler")).rpartition(".")
        handler: Callable[..., Any] = getattr(importlib.import_module(module_name), attribute)
        return handler


LOCAL_DOWNLOAD_URL = "http://127.0.0.1/mail"
"""Where oversize links point in a local stack whose caller names no downloads page: nothing listens there (tests
follow such a link by handing its token to ``emailflow.downloads``); `emailflow local` serves one on loopback."""
LOCAL_PARAMETER_DEFAULTS = {"NewSenderApprovals": "false", "DownloadUrl": LOCAL_DOWNLOAD_URL}
"""There is no API Gateway here: new-sender approvals are on only when the caller names a page (``ApprovalUrl``
and ``NewSenderApprovals=true``: `emailflow local` serves one on loopback), and oversize links name the caller's
``DownloadUrl``."""


def deploy_locally(parameters: Mapping[str, str], *, template: Mapping[str, Any] | None = None,
                   stack_name: str = "emailflow-local", region: str = "us-east-1") -> LocalStack:
    """Create every resource local mode needs, as the template declares it, in the current (emulated) account."""
    document = template if template is not None else load_template()
    values = {**parameter_defaults(document), **LOCAL_PARAMETER_DEFAULTS, **parameters}
    refs: dict[str, str] = {**values, "AWS::Region": region, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws",
                            "AWS::StackName": stack_name, "AWS::URLSuffix": "amazonaws.com"}
    attributes: dict[str, str] = {}
    created: list[str] = []
    resolver = Resolver(refs, attributes, document.get("Conditions"))
    session = boto3.session.Session(region_name=region)
    suffix = secrets.token_hex(4)

    def physical(logical_id: str) -> str:
        return f"{stack_name}-{logical_id}-{suffix}".lower()

    dynamodb = session.client("dynamodb")
    for logical_id, resource in resources_of_type(document, "AWS::DynamoDB::Table").items():
        props = resource["Properties"]
        name = physical(logical_id)
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if "GlobalSecondaryIndexes" in props:
            request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        dynamodb.create_table(**request)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "AttributeName": ttl["AttributeName"], "Enabled": True})
        refs[logical_id] = name
        attributes[f"{logical_id}.Arn"] = f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"
        created.append(logical_id)

    s3 = session.client("s3")
    for logical_id in resources_of_type(document, "AWS::S3::Bucket"):
        name = physical(logical_id)
        s3.create_bucket(Bucket=name)
        refs[logical_id] = name
        attributes[f"{logical_id}.Arn"] = f"arn:aws:s3:::{name}"
        created.append(logical_id)

    secretsmanager = session.client("secretsmanager")
    for logical_id in resources_of_type(document, "AWS::SecretsManager::Secret"):
        response = secretsmanager.create_secret(Name=physical(logical_id), SecretString=secrets.token_urlsafe(36))
        refs[logical_id] = response["ARN"]
        attributes[f"{logical_id}.Arn"] = response["ARN"]
        created.append(logical_id)

    sqs = session.client("sqs")
    for logical_id in resources_of_type(document, "AWS::SQS::Queue"):
        name = physical(logical_id)
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        refs[logical_id] = url
        attributes[f"{logical_id}.Arn"] = f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}"
        attributes[f"{logical_id}.QueueName"] = name
        created.append(logical_id)

    created.extend(_create_topics(session, document, physical, refs, attributes))

    created.extend(_create_ses(session, document, physical, resolver, refs))

    return LocalStack(template=document, refs=refs, attributes=attributes, region=region, created=created)


def _create_topics(session: boto3.session.Session, document: Mapping[str, Any], physical: Callable[[str], str],
                   refs: dict[str, str], attributes: dict[str, str]) -> list[str]:
    """Create the template's SNS topics (SES events, alarms); returns their logical ids. Local mode publishes SES
    events itself, but a function that names a topic in its environment resolves it through ``refs``."""
    sns = session.client("sns")
    created: list[str] = []
    for logical_id in resources_of_type(document, "AWS::SNS::Topic"):
        name = physical(logical_id)
        arn = sns.create_topic(Name=name)["TopicArn"]
        refs[logical_id] = arn
        attributes[f"{logical_id}.TopicArn"] = arn
        attributes[f"{logical_id}.TopicName"] = name
        created.append(logical_id)
    return created


def _create_ses(session: boto3.session.Session, document: Mapping[str, Any], physical: Callable[[str], str],
                resolver: Resolver, refs: dict[str, str]) -> list[str]:
    """SES: the receipt rule set (stored, never executed: local mode's SMTP server receives), the configuration
    sets and the domain identity (moto sends only From a known identity)."""
    created: list[str] = []
    ses = session.client("ses")
    for logical_id in resources_of_type(document, "AWS::SES::ReceiptRuleSet"):
        name = physical(logical_id)
        ses.create_receipt_rule_set(RuleSetName=name)
        refs[logical_id] = name
        created.append(logical_id)
    sesv2 = session.client("sesv2")
    for logical_id in resources_of_type(document, "AWS::SES::ConfigurationSet"):
        name = physical(logical_id)
        sesv2.create_configuration_set(ConfigurationSetName=name)
        refs[logical_id] = name
        created.append(logical_id)
    for logical_id, resource in resources_of_type(document, "AWS::SES::EmailIdentity").items():
        identity = str(resolver.resolve(resource["Properties"]["EmailIdentity"]))
        sesv2.create_email_identity(EmailIdentity=identity)
        refs[logical_id] = identity
        created.append(logical_id)
    return created


_PLACEHOLDER = "LocalMode"


def register_stack(stack: LocalStack, stack_name: str, description: str = "emailflow local mode") -> dict[str, str]:
    """Create a stack named ``stack_name`` in the emulator's CloudFormation whose outputs are ``stack``'s: the
    operator CLI reads settings from stack outputs, here as on AWS. Its only resource is a no-op placeholder (moto's
    CloudFormation cannot stand in for the real deploy, TOOLING.md). Returns the outputs."""
    outputs = stack.outputs()
    declared = stack.template.get("Outputs", {})
    descriptions = {key: str(output.get("Description", "")) for key, output in declared.items()}
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description,
        "Resources": {_PLACEHOLDER: {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {key: {"Description": descriptions.get(key, ""), "Value": value} for key, value in outputs.items()},
    }
    client = boto3.session.Session(region_name=stack.region).client("cloudformation")
    with warnings.catch_warnings():  # moto warns that it does not model the placeholder's type: that is the point
        warnings.filterwarnings("ignore", message=".*WaitConditionHandle.*")
        client.create_stack(StackName=stack_name, TemplateBody=json.dumps(body))
    return outputs
