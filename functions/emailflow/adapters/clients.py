"""Lazily created, per-container AWS clients, all made by one botocore session.

A client is made on first use and cached: cold start pays only for the clients its path needs, and a test's
``mock_aws()`` is active before any client (or the session) exists (one created earlier would bypass it).
``reset_clients`` drops the cache and the session (tests, local mode).

Why one session: a botocore session's loader lists the service models and reads the endpoint and partition data
once; a session per client paid that again for every client (the relay's first invocation makes four).
Why botocore and not boto3: the handlers use clients only, and ``import boto3`` also loads boto3's resource layer
and s3transfer, which nothing here uses (``benchmarks/bench_coldstart.py`` measures both).
A lock guards creation: a botocore session is not thread-safe, the clients it makes are (local mode may call a
handler from several threads).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import botocore.session
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

_lock = threading.Lock()
_session: botocore.session.Session | None = None
_clients: dict[str, Any] = {}


def _client(service_name: str) -> Any:
    client = _clients.get(service_name)
    if client is not None:
        return client
    global _session  # noqa: PLW0603 - the per-container session, made on first use
    with _lock:
        if service_name not in _clients:
            if _session is None:
                _session = botocore.session.get_session()
            config = _CONFIGS.get(service_name, _CONFIG)
            _clients[service_name] = _session.create_client(service_name, config=config)
        return _clients[service_name]


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
    global _session  # noqa: PLW0603 - see _client
    with _lock:
        _clients.clear()
        _session = None
