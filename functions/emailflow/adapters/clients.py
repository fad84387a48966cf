"""Lazily created, per-container boto3 clients.

A client is made on first use and cached: cold start pays only for the clients its path needs, and a test's
``mock_aws()`` is active before any client exists (a client created earlier would bypass it). ``reset_clients``
drops the cache (tests, local mode).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sqs import SQSClient

# Standard retry mode: exponential back-off with jitter on throttling, 5xx and transient network errors. botocore's
# ``max_attempts`` counts retries: 3 retries, up to 4 attempts in all.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)
# SendEmail is not idempotent: botocore would repeat it after a read time-out, when SES may already have sent the
# mail. The SES adapter retries only what is safe to repeat (``adapters.sesv2``).
_NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
_CONFIGS = {"sesv2": _NO_RETRIES}


@cache
def _client(service_name: str) -> Any:
    config = _CONFIGS.get(service_name, _CONFIG)
    return boto3.session.Session().client(service_name, config=config)  # type: ignore[call-overload]


def s3_client() -> S3Client:
    client: S3Client = _client("s3")
    return client


def dynamodb_client() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


def sesv2_client() -> SESV2Client:
    client: SESV2Client = _client("sesv2")
    return client


def secretsmanager_client() -> SecretsManagerClient:
    client: SecretsManagerClient = _client("secretsmanager")
    return client


def events_client() -> EventBridgeClient:
    client: EventBridgeClient = _client("events")
    return client


def cloudformation_client() -> CloudFormationClient:
    client: CloudFormationClient = _client("cloudformation")
    return client


def sqs_client() -> SQSClient:
    client: SQSClient = _client("sqs")
    return client


def reset_clients() -> None:
    _client.cache_clear()
