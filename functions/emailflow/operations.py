"""The operator's side of one deployment: what operator commands (the CLI, local mode, the demo) and the client
need to manage its services, wired from settings of their own (a stack's outputs, not the environment).

Apart from ``wiring`` because no Lambda handler needs it: every module a handler imports is paid for on every cold
start (benchmarks/bench_coldstart.py), and this one would add a dataclass to each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from emailflow.adapters.dynamodb import DynamoDirectory
from emailflow.adapters.s3 import S3MailStore
from emailflow.adapters.secrets import load_keyring
from emailflow.codes import CodeBook, Keyring
from emailflow.wiring import addressing, relay_context_for

if TYPE_CHECKING:
    from emailflow.addresses import RelayAddressing
    from emailflow.config import Settings
    from emailflow.relay import RelayContext


@dataclass(frozen=True, slots=True)
class Operations:
    """What operator commands (the CLI, local mode, the demo) need to manage services of one deployment."""

    settings: Settings
    addressing: RelayAddressing
    directory: DynamoDirectory
    codebook: CodeBook
    keyring: Keyring

    def relay(self) -> RelayContext:
        """The deployment's relay, run in this process (redrive, replay)."""
        return relay_context_for(self.settings, self.keyring, self.directory)

    def mail_store(self) -> S3MailStore:
        return S3MailStore(self.settings.inbound_bucket, self.settings.inbound_prefix)


def operations(settings: Settings) -> Operations:
    """Adapters for ``settings``' deployment. Not cached: a command builds it once; it reads the code secret."""
    ring = load_keyring(settings.code_secret_arn)
    return Operations(settings=settings, addressing=addressing(settings),
                      directory=DynamoDirectory(settings.table_name), codebook=CodeBook(ring), keyring=ring)
