"""``emailflow doctor``'s own arguments, checked before anything is contacted."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from emailflow.cli.doctor import NameServer
from emailflow.cli.main import cli


def test_cli_doctor_has_help() -> None:
    result = CliRunner().invoke(cli, ["doctor", "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")
    assert "--nameserver ADDRESS[:PORT]" in result.stdout


@pytest.mark.parametrize(("value", "expected"), [
    ("192.0.2.53", ("192.0.2.53", 53)), ("192.0.2.53:5353", ("192.0.2.53", 5353)),
    ("2001:db8::53", ("2001:db8::53", 53)), ("[::1]:5353", ("::1", 5353)), ("[::1]", ("::1", 53)),
])
def test_cli_doctor_nameserver_accepts_addresses_with_optional_port(value: str, expected: tuple[str, int]) -> None:
    assert NameServer().convert(value, None, None) == expected


@pytest.mark.parametrize("value", ["ns.example.com", "192.0.2.1:0", "192.0.2.1:70000", "[::1]:x", "192.0.2.1:"])
def test_cli_doctor_rejects_a_nameserver_that_is_not_an_address(value: str) -> None:
    # Given a host name or a bad port, When the doctor is run, Then click refuses it before any AWS call
    result = CliRunner().invoke(cli, ["doctor", "--nameserver", value])
    assert result.exit_code == 2
    assert "--nameserver" in result.stderr
