"""The rule-set activator custom resource on moto (SES v1 stores rule sets and the active set), answering a local
HTTP server that stands in for CloudFormation's presigned response URL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from infra.rule_set_activator import activator

if TYPE_CHECKING:
    from mypy_boto3_ses import SESClient

OURS = "emailflow-ReceiptRuleSet-ABC123"
THEIRS = "legacy-rules"


@dataclass
class ResponseCatcher:
    """The answers CloudFormation would receive: method, headers and JSON body of every request."""

    url: str
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)

    @property
    def only(self) -> dict[str, Any]:
        assert len(self.requests) == 1
        return self.requests[0][2]


@pytest.fixture
def cloudformation() -> Iterator[ResponseCatcher]:
    catcher = ResponseCatcher(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            catcher.requests.append(("PUT", dict(self.headers), json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    catcher.url = f"http://127.0.0.1:{server.server_address[1]}/response?X-Amz-Signature=abc"
    yield catcher
    server.shutdown()
    server.server_close()


@pytest.fixture
def ses() -> Iterator[SESClient]:
    with mock_aws():
        client: SESClient = boto3.client("ses", region_name="us-east-1")
        for name in (OURS, THEIRS):
            client.create_receipt_rule_set(RuleSetName=name)
        yield client


def _event(request_type: str, url: str, name: str = OURS, physical_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/emailflow/guid",
        "RequestId": "request-1",
        "LogicalResourceId": "ActiveReceiptRuleSet",
        "ResourceType": "Custom::ActiveReceiptRuleSet",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:x",
                               "RuleSetName": name},
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    return event


def _active(client: SESClient) -> str | None:
    return activator.active_rule_set(client)


class _Context:
    log_stream_name = "2026/11/25/[$LATEST]abc"


def test_activator_create_activates_our_rule_set(ses: SESClient, cloudformation: ResponseCatcher) -> None:
    # Given another rule set is active
    ses.set_active_receipt_rule_set(RuleSetName=THEIRS)

    # When CloudFormation creates the resource
    activator.handler(_event("Create", cloudformation.url), _Context())

    # Then ours is active, and CloudFormation hears success with the previous set's name
    assert _active(ses) == OURS
    answer = cloudformation.only
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == activator.PHYSICAL_ID_PREFIX + OURS
    assert answer["Data"] == {"RuleSetName": OURS, "PreviousActiveRuleSet": THEIRS}
    assert (answer["RequestId"], answer["LogicalResourceId"]) == ("request-1", "ActiveReceiptRuleSet")


def test_activator_response_is_a_put_with_empty_content_type(ses: SESClient, cloudformation: ResponseCatcher) -> None:
    # Given a create request, When handled
    activator.handler(_event("Create", cloudformation.url), _Context())

    # Then the answer is a PUT whose Content-Type is empty (the presigned URL was signed without one)
    method, headers, _ = cloudformation.requests[0]
    assert method == "PUT"
    assert headers.get("Content-Type", "") == ""


def test_activator_delete_deactivates_when_ours_is_active(ses: SESClient, cloudformation: ResponseCatcher) -> None:
    # Given our set is the active one
    ses.set_active_receipt_rule_set(RuleSetName=OURS)

    # When the stack deletes the resource
    activator.handler(_event("Delete", cloudformation.url, physical_id=activator.PHYSICAL_ID_PREFIX + OURS),
                      _Context())

    # Then no set is active (so ours can be deleted), and CloudFormation hears success
    assert _active(ses) is None
    assert cloudformation.only["Status"] == "SUCCESS"


def test_activator_delete_leaves_another_active_set_alone(ses: SESClient, cloudformation: ResponseCatcher) -> None:
    # Given someone activated another set after our stack did
    ses.set_active_receipt_rule_set(RuleSetName=THEIRS)

    # When the stack deletes the resource
    activator.handler(_event("Delete", cloudformation.url, physical_id=activator.PHYSICAL_ID_PREFIX + OURS),
                      _Context())

    # Then their set stays active
    assert _active(ses) == THEIRS
    assert cloudformation.only["Status"] == "SUCCESS"


def test_activator_update_to_a_new_name_activates_it_and_old_delete_is_a_no_op(
        ses: SESClient, cloudformation: ResponseCatcher) -> None:
    # Given our old set is active and the stack replaced it with a new one
    ses.create_receipt_rule_set(RuleSetName="emailflow-new")
    ses.set_active_receipt_rule_set(RuleSetName=OURS)

    # When CloudFormation updates the resource, then deletes the old physical resource
    activator.handler(_event("Update", cloudformation.url, name="emailflow-new",
                             physical_id=activator.PHYSICAL_ID_PREFIX + OURS), _Context())
    activator.handler(_event("Delete", cloudformation.url, physical_id=activator.PHYSICAL_ID_PREFIX + OURS),
                      _Context())

    # Then the new set is active, with a new physical id, and the old one's delete did not deactivate it
    assert _active(ses) == "emailflow-new"
    update, delete = (body for _, _, body in cloudformation.requests)
    assert update["PhysicalResourceId"] == activator.PHYSICAL_ID_PREFIX + "emailflow-new"
    assert (update["Status"], delete["Status"]) == ("SUCCESS", "SUCCESS")


def test_activator_missing_rule_set_fails_with_a_reason(ses: SESClient, cloudformation: ResponseCatcher) -> None:
    # Given a rule set name SES does not know
    # When CloudFormation creates the resource
    activator.handler(_event("Create", cloudformation.url, name="no-such-set"), _Context())

    # Then CloudFormation hears FAILED with SES's reason and where the log is, and nothing changed
    answer = cloudformation.only
    assert answer["Status"] == "FAILED"
    assert "RuleSetDoesNotExist" in answer["Reason"]
    assert _Context.log_stream_name in answer["Reason"]
    assert _active(ses) is None


def test_activator_delete_after_a_failed_create_is_a_no_op(ses: SESClient, cloudformation: ResponseCatcher) -> None:
    # Given a failed create (its physical id names a set that never became active) and another active set
    ses.set_active_receipt_rule_set(RuleSetName=THEIRS)

    # When the rollback deletes it
    activator.handler(_event("Delete", cloudformation.url, name="no-such-set",
                             physical_id=activator.PHYSICAL_ID_PREFIX + "no-such-set"), _Context())

    # Then nothing changes and the rollback can go on
    assert _active(ses) == THEIRS
    assert cloudformation.only["Status"] == "SUCCESS"


def test_activator_create_without_rule_set_name_fails(ses: SESClient, cloudformation: ResponseCatcher) -> None:
    # Given a resource declared without RuleSetName, When created
    activator.handler(_event("Create", cloudformation.url, name=""), _Context())

    # Then CloudFormation hears FAILED, naming the property
    answer = cloudformation.only
    assert answer["Status"] == "FAILED"
    assert "RuleSetName" in answer["Reason"]
