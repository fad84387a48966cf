"""CloudFormation custom resource ``Custom::ActiveReceiptRuleSet``: makes the stack's SES receipt rule set the
region's active one.

CloudFormation has no resource type that calls ``SetActiveReceiptRuleSet``, and SES has one active rule set per
region, so activating replaces whatever set is active now. That is why the template creates this resource only on
request (``ActivateReceiptRuleSet=true``) and never when the relay's rule went into an existing set.

- Create / Update: activate ``RuleSetName``; the previously active set's name is logged and returned as the
  ``PreviousActiveRuleSet`` attribute, so an operator can switch back.
- Delete: deactivate, but only if *our* set is still the active one (an active set cannot be deleted, so the stack
  delete would otherwise fail; a set someone activated since is none of our business).

The function runs with the Lambda runtime's own boto3 (no dependencies are packaged) and answers CloudFormation on
every path, errors included: a custom resource that never answers blocks the stack until it times out.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from mypy_boto3_ses import SESClient

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

SUCCESS = "SUCCESS"
FAILED = "FAILED"
PHYSICAL_ID_PREFIX = "active-receipt-rule-set:"
"""Physical id = prefix + rule set name: a Delete (or the Delete CloudFormation sends for the old resource after an
Update that changed the name) knows which set it was about from the id alone."""
_INVALID_ID = PHYSICAL_ID_PREFIX.rstrip(":")
_RESPONSE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Result:
    """What to tell CloudFormation."""

    status: str
    physical_id: str
    reason: str = ""
    data: Mapping[str, str] = field(default_factory=dict)


def ses_client() -> SESClient:
    client: SESClient = boto3.client("ses")
    return client


def active_rule_set(client: SESClient) -> str | None:
    """The name of the region's active receipt rule set, or None when receiving is off."""
    metadata = client.describe_active_receipt_rule_set().get("Metadata")
    return None if metadata is None else metadata.get("Name")


def handle(event: Mapping[str, Any], client: SESClient) -> Result:
    """Carry out one custom-resource request against SES (no response sent here)."""
    request_type = event["RequestType"]
    if request_type == "Delete":
        physical_id = str(event.get("PhysicalResourceId", ""))
        if not physical_id.startswith(PHYSICAL_ID_PREFIX):
            # A Create that failed before activating anything: nothing to undo.
            return Result(SUCCESS, physical_id or _INVALID_ID)
        ours = physical_id.removeprefix(PHYSICAL_ID_PREFIX)
        active = active_rule_set(client)
        if active == ours:
            client.set_active_receipt_rule_set()  # no name: receiving is switched off in this region
            logger.info("receipt rule set deactivated", extra={"rule_set": ours})
        else:
            logger.info("receipt rule set left alone: not the active one", extra={"rule_set": ours, "active": active})
        return Result(SUCCESS, physical_id)
    if request_type not in ("Create", "Update"):
        return Result(FAILED, str(event.get("PhysicalResourceId") or _INVALID_ID),
                      reason=f"unknown request type {request_type!r}")
    name = str(event.get("ResourceProperties", {}).get("RuleSetName") or "")
    if not name:
        return Result(FAILED, str(event.get("PhysicalResourceId") or _INVALID_ID),
                      reason="the RuleSetName property is required")
    previous = active_rule_set(client)
    client.set_active_receipt_rule_set(RuleSetName=name)
    logger.info("receipt rule set activated", extra={"rule_set": name, "previous": previous})
    return Result(SUCCESS, PHYSICAL_ID_PREFIX + name,
                  data={"RuleSetName": name, "PreviousActiveRuleSet": previous or ""})


def handler(event: dict[str, Any], context: Any) -> None:
    """Lambda entry point: handle the request, then always answer CloudFormation."""
    try:
        result = handle(event, ses_client())
    except Exception as exc:
        # Whatever went wrong, CloudFormation must hear it now rather than wait for the resource's timeout.
        logger.exception("custom resource request failed", extra={"request_type": event.get("RequestType")})
        fallback = event.get("PhysicalResourceId") or PHYSICAL_ID_PREFIX + str(
            event.get("ResourceProperties", {}).get("RuleSetName") or "")
        result = Result(FAILED, str(fallback), reason=f"{type(exc).__name__}: {exc}")
    send_response(event, context, result)


def response_body(event: Mapping[str, Any], context: Any, result: Result) -> bytes:
    log_stream = getattr(context, "log_stream_name", "")
    reason = result.reason or "see the function's log"
    if log_stream:
        reason = f"{reason} (log stream {log_stream})"
    return json.dumps({
        "Status": result.status,
        "Reason": reason[:1000],
        "PhysicalResourceId": result.physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": dict(result.data),
    }).encode("utf-8")


def send_response(event: Mapping[str, Any], context: Any, result: Result) -> None:
    """PUT the result to the presigned S3 URL CloudFormation gave (an empty Content-Type, as the URL was signed)."""
    url = str(event["ResponseURL"])
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        raise ValueError("ResponseURL must be an http(s) URL")
    body = response_body(event, context, result)
    request = urllib.request.Request(url, data=body, method="PUT",  # noqa: S310 - scheme checked above
                                     headers={"Content-Type": "", "Content-Length": str(len(body))})
    for attempt in range(1, _RESPONSE_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - scheme checked above
                logger.info("response sent", extra={"status": result.status, "http_status": response.status})
                return
        except OSError:
            if attempt == _RESPONSE_ATTEMPTS:
                raise
            logger.warning("response not sent, retrying", extra={"attempt": attempt})
            time.sleep(attempt)
