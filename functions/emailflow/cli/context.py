"""What every command shares: the stack to read settings from, and the operator wiring built from it once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from emailflow.config import (
    ConfigurationError,
    local_endpoint,
    local_region,
    settings_from_stack_outputs,
    use_local_emulator_defaults,
)
from emailflow.conversations import ConversationError
from emailflow.ports import EventError, RelayFault
from emailflow.services import ServiceError

if TYPE_CHECKING:
    from emailflow.client import Relay
    from emailflow.operations import Operations


@dataclass
class CliContext:
    stack_name: str
    _operations: Operations | None = field(default=None, repr=False)
    _outputs: dict[str, str] = field(default_factory=dict, repr=False)

    def operations(self) -> Operations:
        """Settings from the stack's outputs, then the adapters; resolved on first use."""
        if self._operations is None:
            # boto3 and the adapters load only for a command that needs them: ``--help`` stays quick.
            from emailflow.operations import operations

            with reported_errors():
                outputs = self.outputs()
                region = local_region() if local_endpoint() else None
                self._operations = operations(settings_from_stack_outputs(outputs, region))
        return self._operations

    def outputs(self) -> Mapping[str, str]:
        """The stack's outputs (read once)."""
        if not self._outputs:
            from emailflow.adapters.cloudformation import stack_outputs

            use_local_emulator_defaults()
            with reported_errors():
                self._outputs = stack_outputs(self.stack_name)
        return self._outputs

    def relay(self) -> Relay:
        """The Python client on this stack: every service, conversation and address command goes through it."""
        from emailflow.client import Relay

        ops = self.operations()
        return Relay(ops.directory, ops.codebook, ops.addressing)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn the package's errors into a one-line message and exit status 1 (no traceback for an operator's typo)."""
    try:
        yield
    except (ConfigurationError, ServiceError, ConversationError, EventError, RelayFault) as exc:
        raise click.ClickException(str(exc)) from exc
