"""Least privilege, proven: each function's role allows exactly the AWS calls its code path makes, on the resources
the code is configured with. The calls are read from the source (tests/support/aws_calls.py), not listed by hand."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.aws_calls import code_path, iam_actions
from tests.support.cfn import ACCOUNT_ID, REGION, Stack, get_att, ref
from tests.support.sam import ROOT, code_directory, translated_template

PARAMETERS = {"DomainName": "relay.example.com", "ActivateReceiptRuleSet": "true",
              "MarketplaceEventBusName": "marketplace"}
"""Every optional feature on, so that every call the code can make must be allowed."""
BASIC_EXECUTION_ROLE = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
UNSCOPED_ACTIONS = frozenset({"ses:DescribeActiveReceiptRuleSet", "ses:SetActiveReceiptRuleSet"})
"""Actions IAM cannot scope to a resource (the Service Authorization Reference lists no resource type for them)."""


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack(translated_template(), PARAMETERS)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_of(stack: Stack, function: dict[str, Any]) -> dict[str, Any]:
    role_id = function["Properties"]["Role"].strip("{}").removesuffix(".Arn")
    role: dict[str, Any] = stack.resource(role_id)["Properties"]
    return role


def _on_failure_destinations(stack: Stack, function_id: str) -> list[str]:
    return [config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
            for config in stack.resources("AWS::Lambda::EventInvokeConfig").values()
            if config["Properties"]["FunctionName"] == ref(function_id)]


def granted(stack: Stack, function_id: str) -> dict[str, list[str]]:
    """IAM action -> resources the function's role allows, from its inline policies.

    Left out, after checking them: the basic execution role (CloudWatch Logs, used by the Lambda service for the
    function) and the SQS SendMessage that SAM adds for the on-failure destination (Lambda sends there with the
    function's role, the code never does).
    """
    function = stack.resource(function_id)
    role = _role_of(stack, function)
    assert role["ManagedPolicyArns"] == [BASIC_EXECUTION_ROLE], function_id
    destinations = _on_failure_destinations(stack, function_id)
    actions: dict[str, list[str]] = {}
    for policy in role["Policies"]:
        statements = policy["PolicyDocument"]["Statement"]
        if policy["PolicyName"].endswith("EventInvokeConfigOnFailureSQSPolicy"):
            assert [(s["Action"], s["Resource"]) for s in statements] == [("sqs:SendMessage", destinations[0])]
            continue
        for statement in statements:
            assert statement["Effect"] == "Allow", statement
            assert "Condition" not in statement, statement
            for action in _as_list(statement["Action"]):
                assert "*" not in action, f"wildcard action {action} in {function_id}"
                actions.setdefault(action, []).extend(_as_list(statement["Resource"]))
    return actions


def _function_ids(stack: Stack) -> list[str]:
    return sorted(stack.resources("AWS::Lambda::Function"))


def test_aws_calls_map_operations_to_iam_actions() -> None:
    # Given botocore's service models, Then the mapping follows the IAM names, transactions item by item
    assert iam_actions("sesv2", "SendEmail") == {"ses:SendEmail"}
    assert iam_actions("s3", "GetObject") == {"s3:GetObject"}
    assert iam_actions("dynamodb", "TransactWriteItems", {"Put", "Update", "Key", "TableName"}) == {
        "dynamodb:PutItem", "dynamodb:UpdateItem"}


def test_aws_calls_relay_path_excludes_operator_only_calls() -> None:
    # Given the relay handler's code path
    path = code_path(ROOT / "functions", "relay.app.handler")

    # Then registering services (a PutItem of its own) and listing them (Scan/Query) are not on it
    assert "dynamodb:Scan" not in path.actions
    assert "dynamodb:Query" not in path.actions
    assert not [where for where in path.actions.get("dynamodb:PutItem", set()) if where.endswith("put_service")]
    # nor is any function of the registration use case. (Its module is in the import closure, which follows the
    # deferred import in DynamoDirectory.put_service_once like every other; that the relay never loads it at run
    # time is tests/unit/test_import_path.py's check.)
    assert not [function.qualname for function in path.functions if function.module.name == "emailflow.services"]


def test_template_iam_every_function_is_allowed_exactly_the_calls_its_code_makes(stack: Stack) -> None:
    for function_id in _function_ids(stack):
        # Given a function, its code path's AWS calls, and its role
        function = stack.resource(function_id)
        needed = code_path(code_directory(function), function["Properties"]["Handler"]).actions
        allowed = granted(stack, function_id)

        # Then nothing is missing and nothing is extra
        missing = {action: sorted(where) for action, where in needed.items() if action not in allowed}
        extra = sorted(set(allowed) - set(needed))
        assert not missing, f"{function_id}: the code calls, the role does not allow: {missing}"
        assert not extra, f"{function_id}: the role allows, the code never calls: {extra}"


def test_template_iam_only_unscoped_actions_use_a_wildcard_resource(stack: Stack) -> None:
    # Given every function's allowed actions
    for function_id in _function_ids(stack):
        for action, resources in granted(stack, function_id).items():
            # Then "*" appears only for actions IAM cannot scope
            assert "*" not in resources or action in UNSCOPED_ACTIONS, (function_id, action)


def test_template_iam_relay_resources_are_the_configured_ones(stack: Stack) -> None:
    # Given the relay's environment (what the code will address) and its role
    env = stack.resource("RelayFunction")["Properties"]["Environment"]["Variables"]
    prefix = env["EMAILFLOW_INBOUND_PREFIX"]
    bucket_arn = get_att("InboundBucket", "Arn")
    table_arn = get_att(str(env["EMAILFLOW_TABLE"]).strip("{}"), "Arn")

    # When its grants are read
    allowed = {action: sorted(resources) for action, resources in granted(stack, "RelayFunction").items()}

    # Then each action is limited to the resources the code is configured with: raw mail under the prefix, copies
    # under <prefix>copies/, the table by ARN, the secret, and sending from the domain with our configuration set
    assert allowed == {
        "s3:GetObject": [f"{bucket_arn}/{prefix}*"],
        "s3:PutObject": [f"{bucket_arn}/{prefix}copies/*"],
        "dynamodb:BatchGetItem": [table_arn],
        "dynamodb:PutItem": [table_arn],
        "dynamodb:UpdateItem": [table_arn],
        "dynamodb:DeleteItem": [table_arn],
        "secretsmanager:GetSecretValue": [env["EMAILFLOW_CODE_SECRET_ARN"]],
        "ses:SendEmail": sorted([
            f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:identity/{env['EMAILFLOW_DOMAIN']}",
            f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:configuration-set/{env['EMAILFLOW_CONFIGURATION_SET']}"]),
        "events:PutEvents": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/marketplace"],
    }
