"""A minimal Lambda context for running handlers in-process (what Powertools' ``inject_lambda_context`` reads)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field


@dataclass
class LocalLambdaContext:
    function_name: str = "emailflow-local"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:emailflow-local"
    aws_request_id: str = field(default_factory=lambda: secrets.token_hex(16))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/emailflow-local"
    log_stream_name: str = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000
