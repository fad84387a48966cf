"""The new-sender approval page in template.yaml, through the SAM transform (offline): a separate public API with
exactly its two routes, invoking only the approval function; the relay links to it; the page goes away when
approvals are off or the marketplace hosts its own. (Its environment and IAM are checked with every function's by
test_template_transform.py and test_template_iam.py.)"""

from __future__ import annotations

from typing import Any

from emailflow.approval_pages import ROUTES
from tests.support.cfn import ACCOUNT_ID, REGION, Stack, get_att, ref
from tests.support.sam import translated_template

PARAMETERS = {"DomainName": "relay.example.com"}
PAGE_URL = f"https://{ref('ApprovalsApi')}.execute-api.{REGION}.amazonaws.com/senders/allow"


def _relay_variable(stack: Stack, function: str = "RelayFunction") -> Any:
    return stack.resource(function)["Properties"]["Environment"]["Variables"]["EMAILFLOW_APPROVAL_URL"]


def test_approval_page_is_a_public_api_with_exactly_its_two_routes() -> None:
    # Given the default stack
    stack = Stack(translated_template(), PARAMETERS)
    operations = stack.api_operations("ApprovalsApi")

    # Then the approval API serves exactly the page's routes, without authorizer (the token authenticates), each a
    # proxy integration of the approval function
    assert set(operations) == set(ROUTES)
    function_arn = get_att("ApprovalFunction", "Arn")
    uri = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    for route, operation in operations.items():
        assert "security" not in operation, route
        assert (operation["x-amazon-apigateway-integration"]["uri"],
                operation["x-amazon-apigateway-integration"]["payloadFormatVersion"]) == (uri, "2.0"), route
    assert "securitySchemes" not in stack.resource("ApprovalsApi")["Properties"]["Body"].get("components", {})

    # And only those routes may invoke the function
    permissions = [permission["Properties"] for permission in stack.resources("AWS::Lambda::Permission").values()
                   if permission["Properties"]["FunctionName"] == ref("ApprovalFunction")]
    assert {permission["SourceArn"] for permission in permissions} == {
        f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{ref('ApprovalsApi')}/*/{route.replace(' ', '', 1)}"
        for route in ROUTES}


def test_relay_bounces_and_api_link_to_the_stacks_own_page() -> None:
    stack = Stack(translated_template(), PARAMETERS)
    assert stack.output("ApprovalPageUrl") == PAGE_URL
    for function in ("RelayFunction", "BouncesFunction"):
        assert _relay_variable(stack, function) == PAGE_URL, function
    # The page's own function is not given its URL (a cycle: the API's routes point at it); it never holds mail.
    assert _relay_variable(stack, "ApprovalFunction") == ""


def test_approvals_off_or_hosted_by_the_marketplace_remove_the_page() -> None:
    # Given approvals turned off, Then no public API exists and the relay only tells strangers
    off = Stack(translated_template(), {**PARAMETERS, "NewSenderApprovals": "false"})
    assert not off.exists("ApprovalsApi")
    assert not off.exists("ApprovalFunction")
    assert _relay_variable(off) == ""

    # Given the marketplace's own page, Then the relay links there and the stack serves none
    hosted = Stack(translated_template(), {**PARAMETERS, "ApprovalUrl": "https://market.example/allow"})
    assert not hosted.exists("ApprovalsApi")
    assert _relay_variable(hosted) == "https://market.example/allow"
