"""A small fake of the Lambda context object (what Powertools' ``inject_lambda_context`` reads)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field


@dataclass
class FakeLambdaContext:
    function_name: str = "emailflow-RelayFunction"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:emailflow-RelayFunction"
    aws_request_id: str = field(default_factory=lambda: secrets.token_hex(16))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/emailflow-RelayFunction"
    log_stream_name: str = "2026/11/25/[$LATEST]0123456789abcdef"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000
