"""template.yaml is the one source of truth: the code's wiring and the test resources both come from it."""

from __future__ import annotations

import importlib
import os
from typing import Any

import boto3
import pytest

from emailflow.config import _REQUIRED, ENVIRONMENT_VARIABLES, STACK_OUTPUTS, get_settings, settings_from_stack_outputs
from emailflow.local.stack import LocalStack
from emailflow.local.template import load_template, resources_of_type

POWERTOOLS_VARIABLES = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of_type(template, "AWS::Serverless::Function")


def test_template_every_handler_resolves_to_a_callable(template: dict[str, Any]) -> None:
    # Given every function of the template
    for name, function in _functions(template).items():
        # When its Handler is imported as Lambda would (module path under CodeUri functions/)
        module_name, _, attribute = function["Properties"]["Handler"].rpartition(".")
        handler = getattr(importlib.import_module(module_name), attribute)

        # Then it is a callable
        assert callable(handler), name


def test_template_sets_every_required_variable_and_nothing_unknown(template: dict[str, Any]) -> None:
    # Given the relay function's environment (Globals merged)
    global_env = template["Globals"]["Function"]["Environment"]["Variables"]
    own_env = template["Resources"]["RelayFunction"]["Properties"]["Environment"]["Variables"]
    names = set(global_env) | set(own_env)

    # Then every required setting is there, and every variable set is one the code reads
    assert set(_REQUIRED) <= names
    assert names <= set(ENVIRONMENT_VARIABLES) | POWERTOOLS_VARIABLES


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


def test_template_receipt_rule_stores_under_the_prefix_the_code_reads(template: dict[str, Any]) -> None:
    # Given the receipt rule's actions
    rule = template["Resources"]["ReceiptRule"]["Properties"]["Rule"]
    s3_action, lambda_action = (action for action in rule["Actions"])
    env = template["Resources"]["RelayFunction"]["Properties"]["Environment"]["Variables"]

    # Then S3 comes first, into the bucket and prefix the function reads, and the Lambda action is asynchronous
    assert s3_action["S3Action"]["BucketName"] == env["EMAILFLOW_INBOUND_BUCKET"] == {"Ref": "InboundBucket"}
    assert s3_action["S3Action"]["ObjectKeyPrefix"] == env["EMAILFLOW_INBOUND_PREFIX"]
    assert lambda_action["LambdaAction"]["FunctionArn"] == {"Fn::GetAtt": ["RelayFunction", "Arn"]}
    assert lambda_action["LambdaAction"]["InvocationType"] == "Event"


def test_template_declares_every_output_the_cli_reads(template: dict[str, Any]) -> None:
    # Given the stack outputs the operator CLI builds its settings from, Then the template declares each one
    assert set(STACK_OUTPUTS) <= set(template["Outputs"])


def test_template_outputs_give_the_cli_the_settings_the_function_has(stack: LocalStack) -> None:
    # Given the template's outputs, resolved against the resources local mode created
    outputs = stack.outputs()

    # When the CLI's settings are built from them, Then they are the relay function's own settings
    assert set(outputs) == set(load_template()["Outputs"])
    assert settings_from_stack_outputs(outputs, stack.region) == get_settings()
