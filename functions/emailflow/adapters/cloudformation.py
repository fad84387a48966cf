"""CloudFormation: the outputs of a deployed stack, where operator commands find the relay's settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from emailflow.adapters.clients import cloudformation_client
from emailflow.config import ConfigurationError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient


def stack_outputs(stack_name: str, client: CloudFormationClient | None = None) -> dict[str, str]:
    """``OutputKey -> OutputValue`` of ``stack_name``. Errors name the stack and what to check, never a secret."""
    try:
        stacks = (client or cloudformation_client()).describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        if "does not exist" in message:
            raise ConfigurationError(f"no stack named {stack_name!r} (is `emailflow local` running and "
                                     "AWS_ENDPOINT_URL exported, or is --stack the deployed stack's name?)") from exc
        raise ConfigurationError(f"could not read stack {stack_name!r}: {message or exc}") from exc
    except BotoCoreError as exc:
        raise ConfigurationError(f"could not reach CloudFormation to read stack {stack_name!r}: {exc}") from exc
    if not stacks:
        raise ConfigurationError(f"no stack named {stack_name!r}")
    return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])
            if "OutputKey" in output and "OutputValue" in output}
