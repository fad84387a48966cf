"""New-sender approval page Lambda: ``GET``/``POST /senders/allow`` on the public approvals API.

Thin by design: the request goes to ``emailflow.approval_pages.handle_approval`` (which answers every request with
a page, never an exception), backed by the Python client on the function's own deployment. The token in the
request is the credential; see that module's docstring for why these routes carry no IAM authorizer.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from emailflow.approval_pages import handle_approval
from emailflow.client import Relay
from emailflow.config import get_settings
from emailflow.observability import logger


@cache
def relay_client() -> Relay:
    """The client on the function's own deployment, built on the first request (the code secret is read once)."""
    return Relay.from_settings(get_settings())


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = handle_approval(event, relay_client).as_proxy_result()
    logger.info("approval page", route=str(event.get("routeKey")), status=result["statusCode"])
    return result
