"""template.yaml is the one source of truth: the test resources come from it and run with its settings.

The wiring of the deployed template (handlers, environment, receipt rule, IAM) is checked on the SAM transform's
output: test_template_transform.py and test_template_iam.py."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest

from emailflow.config import STACK_OUTPUTS, get_settings, settings_from_stack_outputs
from emailflow.local.stack import LocalStack
from emailflow.local.template import load_template, resources_of_type


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_template_powertools_settings_match_the_tests(template: dict[str, Any]) -> None:
    # Given the Powertools variables the template sets, Then the test session runs with the same values
    global_env = template["Globals"]["Function"]["Environment"]["Variables"]
    for name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
        assert os.environ[name] == global_env[name]


def test_template_table_created_with_the_template_keys(stack: LocalStack, template: dict[str, Any]) -> None:
    # Given the table local mode created from the template
    props = template["Resources"]["RelayTable"]["Properties"]
    client = boto3.client("dynamodb")

    # When it is described on the emulator
    table = client.describe_table(TableName=get_settings().table_name)["Table"]
    ttl = client.describe_time_to_live(TableName=get_settings().table_name)["TimeToLiveDescription"]

    # Then keys and TTL are the template's, and the relay function's environment names this table
    assert table["KeySchema"] == props["KeySchema"]
    assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]
    assert stack.refs["RelayTable"] == get_settings().table_name


def test_template_topics_created_locally(stack: LocalStack, template: dict[str, Any]) -> None:
    # Given the SNS topics of the template (the SES events topic among them)
    topics = resources_of_type(template, "AWS::SNS::Topic")

    # When local mode has created the stack, Then each exists on the emulator under the ARN its Ref resolves to
    existing = {topic["TopicArn"] for topic in boto3.client("sns").list_topics()["Topics"]}
    assert "SesEventsTopic" in topics
    assert {stack.refs[name] for name in topics} <= existing


def test_template_declares_every_output_the_cli_reads(template: dict[str, Any]) -> None:
    # Given the stack outputs the operator CLI builds its settings from, Then the template declares each one
    assert set(STACK_OUTPUTS) <= set(template["Outputs"])


def test_template_outputs_give_the_cli_the_settings_the_function_has(stack: LocalStack) -> None:
    # Given the template's outputs, resolved against the resources local mode created
    outputs = stack.outputs()

    # When the CLI's settings are built from them, Then they are the relay function's own settings
    assert set(outputs) <= set(load_template()["Outputs"])
    assert settings_from_stack_outputs(outputs, stack.region) == get_settings()
