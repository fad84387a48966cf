"""Secrets Manager: the HMAC key(s) behind codes, loop markers and log digests. Read once per cold start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from emailflow.adapters.clients import secretsmanager_client
from emailflow.codes import Keyring
from emailflow.config import ConfigurationError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


def load_keyring(secret_arn: str, client: SecretsManagerClient | None = None) -> Keyring:
    """The keyring stored in ``secret_arn``. Errors never carry the secret's value."""
    try:
        response = (client or secretsmanager_client()).get_secret_value(SecretId=secret_arn)
    except (ClientError, BotoCoreError) as exc:
        raise ConfigurationError("could not read the code secret from Secrets Manager") from exc
    secret = response.get("SecretString")
    if not secret:
        raise ConfigurationError("the code secret has no SecretString")
    try:
        return Keyring.from_secret_string(secret)
    except (ValueError, KeyError):
        # ``from None``: a JSON error message would quote the secret's text.
        raise ConfigurationError("the code secret is malformed (see docs/operations.md)") from None
