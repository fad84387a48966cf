"""The HTTP API in template.yaml, through the SAM transform (offline): its routes are docs/openapi.yaml's and the
handler's, every one requires IAM, nothing else can invoke the API function, and the API function's code path reads
its settings from emailflow.config only. (Environment and IAM of every function, this one included, are checked by
test_template_transform.py and test_template_iam.py.)"""

from __future__ import annotations

import ast
from typing import Any

import pytest

from emailflow.api import ROUTES
from tests.support.api import contract
from tests.support.aws_calls import import_closure
from tests.support.cfn import ACCOUNT_ID, REGION, Stack, get_att, ref
from tests.support.sam import ROOT, code_directory, translated_template

PARAMETERS = {"DomainName": "relay.example.com", "ActivateReceiptRuleSet": "true",
              "MarketplaceEventBusName": "marketplace"}
API_HANDLER = "api.app.handler"


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack(translated_template(), PARAMETERS)


def _api_function(stack: Stack) -> tuple[str, dict[str, Any]]:
    (found,) = ((name, function) for name, function in stack.resources("AWS::Lambda::Function").items()
                if function["Properties"]["Handler"] == API_HANDLER)
    return found


def _body(stack: Stack) -> dict[str, Any]:
    api = stack.resource("HttpApi")  # the marketplace API (ApprovalsApi is the public approval page's)
    body: dict[str, Any] = api["Properties"]["Body"]
    return body


def test_api_template_routes_are_the_documents_and_the_handlers(stack: Stack) -> None:
    # Given the routes of the HTTP API the stack creates
    routes = set(stack.api_operations("HttpApi"))

    # Then they are exactly docs/openapi.yaml's operations and the handler's route table: no catch-all, no ANY
    assert routes == contract().routes() == set(ROUTES)


def test_api_template_every_route_requires_iam(stack: Stack) -> None:
    # Given the HTTP API's OpenAPI body
    body = _body(stack)

    # Then the only authorizer is SigV4 (AWS_IAM), and every route uses it
    assert body["components"]["securitySchemes"] == {"AWS_IAM": {
        "type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"}}
    for route, operation in stack.api_operations("HttpApi").items():
        assert operation["security"] == [{"AWS_IAM": []}], route
    assert "security" not in body or body["security"] == [{"AWS_IAM": []}]

    # And no other way in exists: no routes or authorizers outside the body, no function URL, no REST API
    for kind in ("AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Authorizer", "AWS::Lambda::Url",
                 "AWS::ApiGateway::RestApi"):
        assert stack.resources(kind) == {}, kind


def test_api_template_routes_invoke_the_api_function_with_payload_2(stack: Stack) -> None:
    # Given the API function
    name, _ = _api_function(stack)
    uri = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{get_att(name, 'Arn')}/invocations"

    # Then every route is a proxy integration of that function, payload format 2.0
    for route, operation in stack.api_operations("HttpApi").items():
        integration = operation["x-amazon-apigateway-integration"]
        assert (integration["type"], integration["uri"], integration["payloadFormatVersion"]) == (
            "aws_proxy", uri, "2.0"), route


def test_api_template_only_the_api_routes_may_invoke_the_function(stack: Stack) -> None:
    # Given the Lambda permissions of the API function
    name, _ = _api_function(stack)
    permissions = [permission["Properties"] for permission in stack.resources("AWS::Lambda::Permission").values()
                   if permission["Properties"]["FunctionName"] == ref(name)]

    # Then there is one per route, for API Gateway, on exactly that route of this API (a path parameter is "*")
    expected = {f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{ref('HttpApi')}/*/"
                f"{route.replace(' ', '', 1).replace('{service}', '*')}" for route in ROUTES}
    assert {permission["SourceArn"] for permission in permissions} == expected
    assert {(permission["Principal"], permission["Action"]) for permission in permissions} == {
        ("apigateway.amazonaws.com", "lambda:InvokeFunction")}


def test_api_template_invoke_policy_covers_this_api_only(stack: Stack) -> None:
    # Given the managed policy for the marketplace backend's role
    policy = stack.resource("ApiInvokePolicy")["Properties"]["PolicyDocument"]

    # Then it allows calling this API, and nothing else
    (statement,) = policy["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "execute-api:Invoke")
    assert statement["Resource"] == f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{ref('HttpApi')}/*"
    assert stack.output("ApiInvokePolicyArn") == ref("ApiInvokePolicy")
    assert stack.output("ApiUrl") == f"https://{ref('HttpApi')}.execute-api.{REGION}.amazonaws.com"


def test_api_template_stage_throttles_and_logs_without_personal_data(stack: Stack) -> None:
    # Given the API's stage
    (stage,) = (stage for stage in stack.resources("AWS::ApiGatewayV2::Stage").values()
                if stage["Properties"]["ApiId"] == ref("HttpApi"))
    properties = stage["Properties"]
    log_groups = stack.resources("AWS::Logs::LogGroup")

    # Then it is the auto-deployed default stage, rate-limited, with access logs kept as long as the functions'
    assert (properties["StageName"], properties["AutoDeploy"]) == ("$default", True)
    assert properties["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    log_group = properties["AccessLogSettings"]["DestinationArn"].strip("{}").removesuffix(".Arn")
    assert log_groups[log_group]["Properties"]["RetentionInDays"] == PARAMETERS.get("LogRetentionDays", "30")

    # And the access log names the caller's account, never its ARN (a session name can be an e-mail address),
    # nor any part of a request's body or query
    log_format = properties["AccessLogSettings"]["Format"]
    assert "$context.identity.accountId" in log_format
    for leak in ("userArn", "caller}", "$context.identity.user", "requestBody", "querystring", "$input"):
        assert leak not in log_format, leak


def test_api_template_function_is_small_and_quick(stack: Stack) -> None:
    # Given the API function, Then it answers within API Gateway's 30 s integration limit, on little memory
    _, function = _api_function(stack)
    assert function["Properties"]["Timeout"] <= 29
    assert function["Properties"]["MemorySize"] <= 512


def test_api_template_function_shares_the_package(stack: Stack) -> None:
    # Given the API function, Then it is built from functions/ like the relay (the package goes with it)
    _, function = _api_function(stack)
    assert code_directory(function) == ROOT / "functions"


def test_config_is_the_only_environment_reader_on_the_api_path() -> None:
    # Given every module the API handler loads
    modules = import_closure("api.app", [ROOT / "functions"])

    # Then only emailflow.config touches os.environ, and no operator module (CLI, local mode) is among them
    def attributes(tree: ast.Module) -> set[str]:
        return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}

    readers = {name for name, module in modules.items() if {"environ", "getenv"} & attributes(module.tree)}
    assert readers == {"emailflow.config"}
    assert not [name for name in modules if name.split(".")[:2] in (["emailflow", "cli"], ["emailflow", "local"])]

