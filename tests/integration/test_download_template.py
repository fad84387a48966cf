"""Oversize mail downloads in template.yaml, through the SAM transform (offline): a separate public API with exactly
its one route, invoking only the downloads function, whose role reads the kept copies and nothing else of the
bucket; every function that may relay links to it; nothing of it exists when oversize links are off. (Its
environment and the exact IAM of its code path are checked with every function's by test_template_transform.py and
test_template_iam.py.)"""

from __future__ import annotations

from typing import Any

from emailflow.downloads import ROUTE
from tests.support.cfn import ACCOUNT_ID, REGION, Stack, get_att, ref
from tests.support.sam import translated_template

PARAMETERS = {"DomainName": "relay.example.com"}
DOWNLOAD_URL = f"https://{ref('DownloadsApi')}.execute-api.{REGION}.amazonaws.com/mail"
_RELAYING = ("RelayFunction", "BouncesFunction", "ApprovalFunction", "ApiFunction")


def _download_variable(stack: Stack, function: str = "RelayFunction") -> Any:
    return stack.resource(function)["Properties"]["Environment"]["Variables"]["EMAILFLOW_DOWNLOAD_URL"]


def test_downloads_are_a_public_api_with_exactly_one_route_to_the_downloads_function() -> None:
    # Given the default stack (oversize links on, 24 hours)
    stack = Stack(translated_template(), PARAMETERS)
    operations = stack.api_operations("DownloadsApi")

    # Then the downloads API serves exactly GET /mail/{token}, without authorizer (the token authenticates), as a
    # proxy integration of the downloads function
    assert set(operations) == {ROUTE}
    function_arn = get_att("DownloadFunction", "Arn")
    uri = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    operation = operations[ROUTE]
    assert "security" not in operation
    assert (operation["x-amazon-apigateway-integration"]["uri"],
            operation["x-amazon-apigateway-integration"]["payloadFormatVersion"]) == (uri, "2.0")

    # And only that route may invoke the function
    permissions = [permission["Properties"] for permission in stack.resources("AWS::Lambda::Permission").values()
                   if permission["Properties"]["FunctionName"] == ref("DownloadFunction")]
    assert [permission["SourceArn"] for permission in permissions] == [
        f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{ref('DownloadsApi')}/*/GET/mail/*"]


def test_downloads_role_reads_the_kept_copies_only() -> None:
    stack = Stack(translated_template(), PARAMETERS)
    statements = [statement for policy in stack.resource("DownloadFunctionRole")["Properties"]["Policies"]
                  for statement in policy["PolicyDocument"]["Statement"]]
    reads = [statement["Resource"] for statement in statements if statement["Action"] == "s3:GetObject"]
    assert len(reads) == 1
    assert reads[0].endswith("/inbound/copies/*")


def test_every_relaying_function_links_to_the_stacks_downloads() -> None:
    stack = Stack(translated_template(), PARAMETERS)
    assert stack.output("OversizeDownloadUrl") == DOWNLOAD_URL
    for function in _RELAYING:
        assert _download_variable(stack, function) == DOWNLOAD_URL, function
    # The downloads function is not given its own URL (a cycle: the API's route points at it); it sends nothing.
    assert _download_variable(stack, "DownloadFunction") == ""


def test_oversize_links_off_remove_the_downloads_and_a_front_url_is_linked_instead() -> None:
    # Given oversize links turned off, Then no downloads API or function exists and nothing links to one
    off = Stack(translated_template(), {**PARAMETERS, "OversizeLinkHours": "0"})
    assert not off.exists("DownloadsApi")
    assert not off.exists("DownloadFunction")
    assert _download_variable(off) == ""

    # Given the operator's own front (a custom domain before the downloads API), Then the relay links there
    fronted = Stack(translated_template(), {**PARAMETERS, "DownloadUrl": "https://files.market.example/mail"})
    assert fronted.exists("DownloadFunction")
    assert _download_variable(fronted) == "https://files.market.example/mail"
    assert fronted.output("OversizeDownloadUrl") == "https://files.market.example/mail"
