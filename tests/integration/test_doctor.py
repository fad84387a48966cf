"""``emailflow doctor`` through click's runner, against a deployment on moto (resources from template.yaml) and a
DNS server on 127.0.0.1 (``--nameserver``): what an operator sees, and the exit status a script sees."""

from __future__ import annotations

import json
import re

import boto3
import pytest
from click.testing import CliRunner, Result

from emailflow.cli.main import cli
from emailflow.local.stack import LocalStack
from tests.support.dns import Zone, good_zone, loopback_dns
from tests.support.doctor_stack import DoctorStack, complete_for_doctor
from tests.support.moto_ses_gaps import SesGaps

STATUS_LINE = re.compile(r"^(ok|WARN|FAIL) +(.+?)  +(.*)$")


@pytest.fixture
def gaps(monkeypatch: pytest.MonkeyPatch) -> SesGaps:
    filled = SesGaps()
    filled.install(monkeypatch)
    return filled


@pytest.fixture
def deployed(stack: LocalStack, gaps: SesGaps) -> DoctorStack:
    return complete_for_doctor(stack)


def _healthy(deployed: DoctorStack, gaps: SesGaps) -> Zone:
    """The operator's steps after sam deploy: activate the set, SES verifies the domain; returns the DNS zone."""
    boto3.client("ses", region_name=deployed.region).set_active_receipt_rule_set(RuleSetName=deployed.rule_set_name)
    gaps.verify(deployed.domain, deployed.dkim_tokens, f"bounce.{deployed.domain}")
    return good_zone(deployed.domain, deployed.region, deployed.dkim_tokens)


def _doctor(deployed: DoctorStack, zone: Zone, *options: str) -> Result:
    with loopback_dns(zone) as server:
        host, port = server.address
        return CliRunner().invoke(cli, ["--stack", deployed.name, "doctor", "--nameserver", f"{host}:{port}",
                                        *options])


def _statuses(output: str) -> dict[str, str]:
    return {match[2].strip(): match[1] for line in output.splitlines() if (match := STATUS_LINE.match(line))}


def _fix_of(output: str, check: str) -> list[str]:
    """The fix lines printed under ``check`` (without the ``fix:`` label and the indentation)."""
    lines = output.splitlines()
    start = next(index for index, line in enumerate(lines) if (match := STATUS_LINE.match(line))
                 and match[2].strip() == check)
    fixes = []
    for line in lines[start + 1:]:
        if STATUS_LINE.match(line) or not line.startswith(" "):
            break
        fixes.append(line.strip().removeprefix("fix: "))
    return fixes


def test_doctor_cli_healthy_deployment_is_all_ok_and_exits_0(deployed: DoctorStack, gaps: SesGaps) -> None:
    # Given the stack deployed, its rule set active, the domain verified and every DNS record in place
    zone = _healthy(deployed, gaps)

    # When the operator runs the doctor
    result = _doctor(deployed, zone)

    # Then every check is ok, nothing is to fix, and the exit status is 0
    assert result.exit_code == 0, result.output
    statuses = _statuses(result.stdout)
    assert set(statuses.values()) == {"ok"}, result.stdout
    assert len(statuses) == 17
    assert "fix:" not in result.stdout
    assert result.stdout.startswith(f"emailflow doctor: stack {deployed.name}, relay.example in us-east-1\n")
    assert result.stdout.endswith("\n17 ok, 0 warning(s), 0 failed\n")


def test_doctor_cli_broken_deployment_says_what_to_fix_and_exits_1(deployed: DoctorStack, gaps: SesGaps) -> None:
    # Given a fresh deployment: rule set not activated, domain not verified yet, account in the sandbox, the MX
    # record still at the old provider, no DKIM records, and two events parked in the dead-letter queue
    gaps.production_access = False
    gaps.pending(deployed.domain, deployed.dkim_tokens, f"bounce.{deployed.domain}")
    zone = good_zone(deployed.domain, deployed.region, [])
    zone[(deployed.domain, "MX")] = ["10 mx.old-provider.example"]
    sqs = boto3.client("sqs", region_name=deployed.region)
    for body in ("{}", "{}"):
        sqs.send_message(QueueUrl=deployed.outputs["RelayDeadLetterQueueUrl"], MessageBody=body)

    # When the operator runs the doctor
    result = _doctor(deployed, zone)

    # Then it exits 1 and each broken part is a FAIL line with its exact fix
    assert result.exit_code == 1, result.output
    statuses = _statuses(result.stdout)
    assert {name for name, status in statuses.items() if status == "FAIL"} == {
        "receipt rule set active", "domain identity", "SES production access", "dns receiving", "dns DKIM 1",
        "dns DKIM 2", "dns DKIM 3", "relay dead-letter queue"}
    assert statuses["MAIL FROM domain"] == "WARN"
    assert statuses["receipt rule"] == statuses["relay function"] == statuses["SES events to SNS"] == "ok"
    assert _fix_of(result.stdout, "receipt rule set active") == [
        f"activate the relay's set: aws ses set-active-receipt-rule-set --rule-set-name {deployed.rule_set_name} "
        "--region us-east-1"]
    assert _fix_of(result.stdout, "dns receiving") == [
        "create: relay.example MX 10 inbound-smtp.us-east-1.amazonaws.com",
        "and remove the MX record(s) of mx.old-provider.example"]
    for index in (1, 2, 3):
        assert _fix_of(result.stdout, f"dns DKIM {index}") == [f"create: {deployed.outputs[f'DkimRecord{index}']}"]
    assert _fix_of(result.stdout, "domain identity") == [
        "create the DKIM CNAME records of the dns checks below; SES verifies the domain once it finds them (minutes, "
        "at most 72 hours)"]
    assert _fix_of(result.stdout, "SES production access")[0] == (
        "request production access: https://docs.aws.amazon.com/ses/latest/dg/request-production-access.html")
    assert "2 event(s) parked" in result.stdout
    assert _fix_of(result.stdout, "relay dead-letter queue")[0].startswith("emailflow redrive")
    assert result.stdout.endswith("\n8 ok, 1 warning(s), 8 failed\n")


def test_doctor_cli_drifted_rule_and_lost_event_destination(deployed: DoctorStack, gaps: SesGaps) -> None:
    # Given a healthy deployment whose rule someone disabled by hand and whose configuration set lost its event
    # destination
    zone = _healthy(deployed, gaps)
    ses = boto3.client("ses", region_name=deployed.region)
    [rule] = ses.describe_receipt_rule_set(RuleSetName=deployed.rule_set_name)["Rules"]
    ses.update_receipt_rule(RuleSetName=deployed.rule_set_name, Rule={**rule, "Enabled": False})
    gaps.event_destinations.clear()

    # When diagnosed
    result = _doctor(deployed, zone)

    # Then both fail; the rule's fix puts back exactly the rule the template declares, our relay included
    assert result.exit_code == 1, result.output
    assert {name for name, status in _statuses(result.stdout).items() if status != "ok"} == {
        "receipt rule", "SES events to SNS"}
    command = _fix_of(result.stdout, "receipt rule")[-1]
    rule_json = json.loads(command.split("--rule ", 1)[1].strip("'"))
    assert rule_json == {**rule, "Enabled": True}
    assert _fix_of(result.stdout, "SES events to SNS")[0].startswith(
        "aws sesv2 create-configuration-set-event-destination --configuration-set-name "
        f"{deployed.outputs['ConfigurationSetName']} --event-destination-name delivery-events-to-sns")


def test_doctor_cli_json(deployed: DoctorStack, gaps: SesGaps) -> None:
    # Given a healthy deployment except for a missing DMARC record (a warning only)
    zone = _healthy(deployed, gaps)
    del zone[(f"_dmarc.{deployed.domain}", "TXT")]

    # When asked for JSON
    result = _doctor(deployed, zone, "--json")

    # Then it is one JSON document, healthy, with the warning and its suggestion; warnings keep exit status 0
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["stack"], report["region"], report["domain"], report["healthy"]) == (
        deployed.name, "us-east-1", "relay.example", True)
    assert [check["name"] for check in report["checks"] if check["status"] != "ok"] == ["dns DMARC"]
    [dmarc] = [check for check in report["checks"] if check["name"] == "dns DMARC"]
    assert dmarc["fix"].startswith('create, monitoring only to start with: _dmarc.relay.example TXT "v=DMARC1;')


def test_doctor_cli_names_a_missing_stack(stack: LocalStack) -> None:
    # Given no stack registered under the name, When the doctor runs, Then one line and exit status 1
    result = CliRunner().invoke(cli, ["--stack", "no-such-stack", "doctor", "--nameserver", "127.0.0.1:9"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no stack named 'no-such-stack'")

