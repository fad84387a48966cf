"""The operator CLI against a running local relay, through click's runner: what a script or an operator sees."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner, Result

from emailflow.cli.main import cli
from emailflow.local.server import LocalRelay
from tests.support.local import compose, mailbox, parsed, send, unique_address

SERVICE_LINE = re.compile(r"service-[0-9a-hjkmnp-tv-z]{16}@relay\.example\n")


def _run(relay: LocalRelay, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--stack", relay.options.stack_name, *args])


def test_cli_service_add_prints_the_new_address_alone_on_its_line(local_relay: LocalRelay) -> None:
    # Given a running local relay (AWS_ENDPOINT_URL points at it)
    owner = unique_address("owner", "holiday-flats.example")

    # When a service is added
    result = _run(local_relay, "service", "add", owner, "--name", "Holiday Flats", "--context", "listing=4711")

    # Then stdout is exactly the relay address and its line ending: a script can capture it
    assert result.exit_code == 0, result.output
    assert SERVICE_LINE.fullmatch(result.stdout)


def test_cli_service_list_show_disable_enable(local_relay: LocalRelay, maildirs: Path) -> None:
    # Given a service added through the CLI
    owner = unique_address("owner", "holiday-flats.example")
    address = _run(local_relay, "service", "add", owner, "--name", "Holiday Flats", "--context",
                   "listing=4711").stdout.strip()
    code = address.split("@")[0].removeprefix("service-")

    # When services are listed and this one shown (by code)
    listed = _run(local_relay, "service", "list")
    shown = _run(local_relay, "service", "show", code)

    # Then both name it, with its status and context
    assert listed.exit_code == 0, listed.output
    [line] = [line for line in listed.stdout.splitlines() if line.startswith(address)]
    assert line.split() == [address, "active", "Holiday", "Flats", "listing=4711"]
    assert shown.exit_code == 0, shown.output
    fields = dict(line.split(":", 1) for line in shown.stdout.splitlines())
    assert {key: value.strip() for key, value in fields.items()} | {"created": ""} == {
        "address": address, "code": code, "name": "Holiday Flats", "status": "active", "real addresses": owner,
        "context": "listing=4711", "created": "", "conversations": "0", "undeliverable": "-"}

    # When it is disabled (by address, in upper case) and a user writes to it
    disabled = _run(local_relay, "service", "disable", address.upper())
    user = unique_address("jane", "real-user.example")
    send(local_relay.smtp_host, local_relay.smtp_port, user, [address], compose(("Jane", user), address, "Hi", "x\n"))

    # Then the CLI says so, the owner receives nothing, and the user gets the relay's error mail
    assert (disabled.exit_code, disabled.stdout) == (0, f"{address} disabled\n")
    assert mailbox(maildirs, owner) == []
    [notice] = mailbox(maildirs, user)
    assert parsed(notice)["From"].addresses[0].addr_spec == "no-reply@relay.example"

    # When it is enabled again, Then mail reaches the owner
    enabled = _run(local_relay, "service", "enable", f"service-{code}")
    send(local_relay.smtp_host, local_relay.smtp_port, user, [address], compose(("Jane", user), address, "Hi", "y\n"))
    assert (enabled.exit_code, enabled.stdout) == (0, f"{address} active\n")
    assert len(mailbox(maildirs, owner)) == 1


def test_cli_reports_an_unknown_service_in_one_line(local_relay: LocalRelay) -> None:
    # Given a code that fails the keyed check, When shown, Then the CLI exits 1 with a message and no traceback
    result = _run(local_relay, "service", "show", "service-0000000000000000")
    assert result.exit_code == 1
    assert result.stderr == "Error: not a service code or service address of this relay\n"


def test_cli_names_a_missing_stack(local_relay: LocalRelay) -> None:
    # Given a stack name nothing was deployed under, When a command runs, Then the error names it
    result = CliRunner().invoke(cli, ["--stack", "no-such-stack", "service", "list"])
    assert result.exit_code == 1
    assert "no stack named 'no-such-stack'" in result.stderr


def test_cli_stats_reports_reply_rate_as_table_json_and_plot(local_relay: LocalRelay, maildirs: Path,
                                                             tmp_path: Path) -> None:
    # Given a service with one answered conversation and one unanswered, started over SMTP
    import json

    owner = unique_address("owner", "holiday-flats.example")
    address = _run(local_relay, "service", "add", owner, "--name", "Stats Flat").stdout.strip()
    answered, waiting = unique_address("ann", "real-user.example"), unique_address("bob", "real-user.example")
    for user in (answered, waiting):
        send(local_relay.smtp_host, local_relay.smtp_port, user, [address],
             compose(("User", user), address, "Free in July?", "Hello\n"))
    first = parsed(mailbox(maildirs, owner)[0])
    user_code = first["Reply-To"].addresses[0].addr_spec
    send(local_relay.smtp_host, local_relay.smtp_port, owner, [user_code],
         compose(("Owner", owner), user_code, "Re: Free in July?", "Yes\n", in_reply_to=first["Message-ID"]))

    # When the stats are asked for, as JSON and with a plot
    plot = tmp_path / "stats.png"
    result = _run(local_relay, "stats", address, "--json", "--plot", str(plot))

    # Then the figures are exact and the plot is a PNG
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["address"], row["conversations"], row["replied"], row["pending"]) == (address, 2, 1, 1)
    assert row["reply_rate"] == 0.5
    assert plot.read_bytes().startswith(b"\x89PNG")

    # And the table names the service with its rate
    table = _run(local_relay, "stats", address).stdout
    assert "Stats Flat" in table
    assert "50%" in table
