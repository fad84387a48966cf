"""Oversize mail download Lambda: ``GET /mail/{token}`` on the public downloads API.

Thin by design: the request goes to ``emailflow.downloads.handle_download``, which answers every request (a
redirect to a fresh, short-lived presigned URL of the kept copy, or a page), never an exception for what a browser
can send. The token in the path is the credential; see that module's docstring for why this route has no IAM
authorizer and why the mail does not carry a presigned URL itself.
"""

from __future__ import annotations

import time
from functools import cache
from typing import TYPE_CHECKING, Any

from emailflow.adapters.s3 import S3MailStore
from emailflow.adapters.secrets import load_keyring
from emailflow.codes import Keyring
from emailflow.config import get_settings
from emailflow.downloads import handle_download
from emailflow.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@cache
def keyring() -> Keyring:
    """The code secret, read once per container (not through ``wiring``: this function needs no relay)."""
    return load_keyring(get_settings().code_secret_arn)


@cache
def copy_store() -> S3MailStore:
    settings = get_settings()
    return S3MailStore(settings.inbound_bucket, settings.inbound_prefix)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = handle_download(event, keyring, copy_store, int(time.time())).as_proxy_result()
    logger.info("download", status=result["statusCode"])
    return result
