"""New-sender approval page Lambda: ``GET``/``POST /senders/allow`` on the public approvals API.

Thin by design: the request goes to ``emailflow.approval_pages.handle_approval`` (which answers every request with
a page, never an exception), backed by the Python client on the function's own deployment. The token in the
request is the credential; see that module's docstring for why these routes carry no IAM authorizer.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from emailflow.approval_pages import handle_approval
from emailflow.client import function_relay
from emailflow.observability import logger


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = handle_approval(event, function_relay).as_proxy_result()
    logger.info("approval page", route=str(event.get("routeKey")), status=result["statusCode"])
    return result
