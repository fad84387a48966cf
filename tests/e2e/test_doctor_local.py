"""``emailflow doctor`` pointed at local mode: it says what it checks instead of failing on missing outputs."""

from __future__ import annotations

from click.testing import CliRunner

from emailflow.cli.main import cli
from emailflow.local.server import LocalRelay


def test_doctor_against_local_mode_explains_it_checks_deployed_stacks(local_relay: LocalRelay) -> None:
    # Given a running local relay (AWS_ENDPOINT_URL points at it), When the doctor runs against its stack
    result = CliRunner().invoke(cli, ["--stack", local_relay.options.stack_name, "doctor",
                                      "--nameserver", "127.0.0.1:9"])

    # Then one line says why there is nothing to check, exit status 1, no traceback
    assert result.exit_code == 1
    assert result.stderr == ("Error: emailflow doctor checks a deployed stack: local mode has no receipt rule, domain "
                             "verification or DNS records to check (see docs/local.md)\n")
