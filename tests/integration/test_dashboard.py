"""The dashboard and alarms read only metrics the code emits, with the namespace and dimensions it emits them with."""

from __future__ import annotations

import json
from typing import Any

from emailflow.local.lambda_context import LocalLambdaContext
from emailflow.local.template import load_template, resources_of_type
from emailflow.observability import METRIC_DIMENSIONS
from infra.dashboard import NAMESPACE, custom_metrics_read, dashboard_body, dashboard_json
from tests.support.feedback import ses_feedback, sns_event
from tests.support.mail import load_eml
from tests.support.relay_stack import RelayHarness


def _template_body() -> str:
    [dashboard] = resources_of_type(load_template(), "AWS::CloudWatch::Dashboard").values()
    body: str = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    return body


def test_dashboard_template_body_is_the_one_infra_builds() -> None:
    # Given the template's dashboard, Then its body is exactly infra/dashboard.py's (run `make dashboard` if not)
    assert _template_body() == dashboard_json()


def test_dashboard_reads_only_emitted_metrics_with_their_dimensions() -> None:
    # Given every custom metric the dashboard reads
    read = custom_metrics_read(dashboard_body())
    assert read

    # Then each is in our namespace, is a metric the code emits, and uses a dimension set it is emitted with
    for namespace, name, dimensions in read:
        assert namespace == NAMESPACE
        assert name in METRIC_DIMENSIONS, name
        assert dimensions in METRIC_DIMENSIONS[name], (name, dimensions)


def test_dashboard_alarms_cover_the_dlqs_errors_and_ses_reputation() -> None:
    # Given the template's alarms
    alarms = resources_of_type(load_template(), "AWS::CloudWatch::Alarm")
    watched = [(alarm["Properties"]["Namespace"], alarm["Properties"]["MetricName"], alarm["Properties"]["Threshold"])
               for alarm in alarms.values()]

    # Then the DLQs, relay errors and SES's review thresholds are all alarmed
    assert ("AWS/SES", "Reputation.BounceRate", 0.05) in watched
    assert ("AWS/SES", "Reputation.ComplaintRate", 0.001) in watched
    assert ("AWS/Lambda", "Errors", 0) in watched
    assert sum(1 for namespace, name, _ in watched if namespace == "AWS/SQS") == 2


def test_dashboard_code_emits_metrics_only_as_declared(relay: RelayHarness, bounces_handler: Any,
                                                       capsys: Any) -> None:
    # Given a conversation, a rejection and a bounce through both handlers
    _, address = relay.register(["owner@holiday-flats.example"], "María García")
    raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address})
    relay.deliver(raw, [address], "jane.doe@real-user.example")
    relay.deliver(raw.replace(b"To: " + address.encode(), b"To: friend@else.example"), [address],
                  "jane.doe@real-user.example")
    bounces_handler(sns_event(ses_feedback("Bounce", relay.sent()[0].ses_message_id, "owner@holiday-flats.example")),
                    LocalLambdaContext())

    # When the EMF lines are read
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    emitted = {(directive["Namespace"], metric["Name"], frozenset(dimensions))
               for line in lines for directive in line["_aws"]["CloudWatchMetrics"]
               for metric in directive["Metrics"] for dimensions in directive["Dimensions"]}

    # Then every emitted metric is declared with exactly that namespace and dimension set
    assert {name for _, name, _ in emitted} >= {"MessagesRelayed", "MessagesRejected", "Bounces", "NoticesSent"}
    for namespace, name, dimensions in emitted:
        assert namespace == NAMESPACE
        assert dimensions in METRIC_DIMENSIONS[name], (name, dimensions)
