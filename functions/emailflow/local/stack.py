"""Create the template's resources on an AWS emulator (moto, in-process or as a server) and give back the
environment the functions would get. One piece of code for local mode, the demo and the tests.

It calls boto3 directly: it plays CloudFormation's part for local mode, outside the Lambda code path.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from emailflow.local.template import Resolver, load_template, parameter_defaults, resources_of_type

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
        resolver = Resolver(self.refs, self.attributes)
        return {name: str(resolver.resolve(value)) for name, value in {**globals_env, **own_env}.items()}


def deploy_locally(parameters: Mapping[str, str], *, template: Mapping[str, Any] | None = None,
                   stack_name: str = "emailflow-local", region: str = "us-east-1") -> LocalStack:
    """Create every resource local mode needs, as the template declares it, in the current (emulated) account."""
    document = template if template is not None else load_template()
    values = {**parameter_defaults(document), **parameters}
    refs: dict[str, str] = {**values, "AWS::Region": region, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws",
                            "AWS::StackName": stack_name, "AWS::URLSuffix": "amazonaws.com"}
    attributes: dict[str, str] = {}
    created: list[str] = []
    resolver = Resolver(refs, attributes)
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
    """Create the template's SES configuration sets and identities (moto wants the From domain to exist)."""
    sesv2 = session.client("sesv2")
    created: list[str] = []
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
