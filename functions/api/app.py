"""HTTP API Lambda: the marketplace backend's calls through API Gateway (HTTP API, payload format 2.0, IAM auth).

Thin by design: the event goes to ``emailflow.api.handle``, which checks that API Gateway authenticated it, routes it
to one ``emailflow.client.Relay`` call and answers JSON (docs/api.md, docs/openapi.yaml). Every answer, errors
included, is a response: nothing is raised to Lambda, so API Gateway never replaces our error body with its own.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from emailflow.api import account_of, handle
from emailflow.client import function_relay
from emailflow.observability import logger


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, account_of(context.invoked_function_arn), function_relay).as_proxy_result()
