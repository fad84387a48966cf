"""The command line's own behaviour: help everywhere, and arguments checked before anything is contacted."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from emailflow.cli.main import cli

COMMANDS = [[], ["local"], ["service"], ["service", "add"], ["service", "list"], ["service", "show"],
            ["service", "update"], ["service", "disable"], ["service", "enable"], ["conversation"],
            ["conversation", "show"], ["address"], ["address", "clear"], ["stats"], ["redrive"], ["replay"], ["doctor"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: " ".join(command) or "emailflow")
def test_cli_every_command_has_help(command: list[str]) -> None:
    # Given any command, When asked for help, Then it explains itself and exits 0
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")


def test_cli_service_add_rejects_context_that_is_not_key_value() -> None:
    # Given a --context without "=", When a service is added, Then click refuses it before any AWS call
    result = CliRunner().invoke(cli, ["service", "add", "owner@flats.example", "--name", "Flats",
                                      "--context", "listing"])
    assert result.exit_code == 2
    assert "is not KEY=VALUE" in result.stderr


@pytest.mark.parametrize(("option", "value"), [
    ("--smarthost", "mail.example"), ("--smarthost", "mail.example:99999"), ("--verdict", "spam"),
    ("--verdict", "spam=MAYBE"), ("--verdict", "tls=PASS"), ("--smtp-port", "70000"),
])
def test_cli_local_rejects_malformed_options(option: str, value: str) -> None:
    # Given a malformed option, When local mode is started, Then it is refused before anything starts
    result = CliRunner().invoke(cli, ["local", option, value])
    assert result.exit_code == 2, result.output


def test_cli_host_port_accepts_ipv6_in_brackets() -> None:
    from emailflow.cli.local import HostPort

    assert HostPort().convert("[::1]:2525", None, None) == ("::1", 2525)
    assert HostPort().convert("mail.example:25", None, None) == ("mail.example", 25)


@pytest.mark.parametrize("args", [["redrive", "abc", "--since", "2h"], ["replay", "--dry-run"],
                                  ["replay", "--dry-run", "--since", "yesterday"], ["replay", "abc"]])
def test_cli_redrive_and_replay_check_their_selection_before_any_aws_call(args: list[str]) -> None:
    # Given ids and a range together, no selection, an unreadable time, or a replay that is not dry
    result = CliRunner().invoke(cli, ["--stack", "no-such-stack", *args])

    # Then click refuses it (exit 2) before the stack is even looked up
    assert result.exit_code == 2, result.output
    assert "no stack named" not in result.stderr


def test_cli_when_reads_iso_times_and_ages() -> None:
    from datetime import UTC, datetime, timedelta

    from emailflow.cli.redrive import When

    assert When().convert("2026-11-25T10:00", None, None) == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert When().convert("2026-11-25T10:00+01:00", None, None) == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    before = datetime.now(UTC)
    six_hours_ago = When().convert("6h", None, None)
    after = datetime.now(UTC)
    assert before - timedelta(hours=6) <= six_hours_ago <= after - timedelta(hours=6)
