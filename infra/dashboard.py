"""The CloudWatch dashboard of the relay, built here and pasted into template.yaml by ``make dashboard``.

The body uses CloudFormation ``Fn::Sub`` placeholders (``${AWS::Region}``, ``${RelayFunction}``, ...). A test checks
that the template's ``DashboardBody`` is exactly what this module builds, and that every custom metric it reads is
one the code emits (``emailflow.observability.METRIC_DIMENSIONS``), with the same namespace and dimensions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

NAMESPACE = "emailflow"
SERVICE = "emailflow"
"""POWERTOOLS_SERVICE_NAME: the ``service`` dimension Powertools adds to every metric."""
PERIOD = 300
BOUNCE_RATE_LIMIT = 0.05
COMPLAINT_RATE_LIMIT = 0.001
"""SES's own review thresholds (https://docs.aws.amazon.com/ses/latest/dg/reputationdashboard-messages.html): above
5 % bounces or 0.1 % complaints the account is put under review; the alarms fire at these values."""


def _metric(name: str, stat: str = "Sum", label: str | None = None, metric_id: str | None = None,
            visible: bool = True, **dimensions: str) -> list[Any]:
    options: dict[str, Any] = {"stat": stat}
    if label:
        options["label"] = label
    if metric_id:
        options["id"] = metric_id
    if not visible:
        options["visible"] = False
    flat: list[Any] = [NAMESPACE, name]
    for key, value in {**dimensions, "service": SERVICE}.items():
        flat += [key, value]
    return [*flat, options]


def _widget(title: str, metrics: list[list[Any]], x: int, y: int, width: int = 12, height: int = 6,
            **properties: Any) -> dict[str, Any]:
    return {"type": "metric", "x": x, "y": y, "width": width, "height": height,
            "properties": {"title": title, "region": "${AWS::Region}", "period": PERIOD, "view": "timeSeries",
                           "stacked": False, "metrics": metrics, **properties}}


def dashboard_body() -> dict[str, Any]:
    """The dashboard as a dict (placeholders for Fn::Sub left in)."""
    rejected_by_reason = (f"SEARCH('{{{NAMESPACE},Reason,service}} MetricName=\"MessagesRejected\"', 'Sum', "
                          f"{PERIOD})")
    widgets = [
        _widget("Relayed mail", [
            _metric("MessagesRelayed", label="to services", Direction="to_service"),
            _metric("MessagesRelayed", label="to users", Direction="to_user"),
            _metric("AutoReplies", label="auto-replies to users", Direction="to_user"),
        ], 0, 0),
        _widget("Conversations and reply rate", [
            _metric("ConversationsStarted", label="new conversations", metric_id="started"),
            _metric("FirstReplies", label="first replies", metric_id="replied"),
            [{"expression": "IF(started > 0, 100 * replied / started, 0)", "label": "reply rate (%)", "id": "rate",
              "yAxis": "right"}],
        ], 12, 0),
        _widget("Response time (seconds)", [
            _metric("ResponseTime", stat="p50", label="p50"),
            _metric("ResponseTime", stat="p90", label="p90"),
        ], 0, 6),
        _widget("Rejected mail by reason", [[{"expression": rejected_by_reason, "label": "", "id": "rejected"}]],
                12, 6),
        _widget("Bounce and complaint rate (SES reputation)", [
            ["AWS/SES", "Reputation.BounceRate", {"stat": "Maximum", "label": "bounce rate"}],
            ["AWS/SES", "Reputation.ComplaintRate", {"stat": "Maximum", "label": "complaint rate"}],
        ], 0, 12, annotations={"horizontal": [
            {"label": "bounce review (5 %)", "value": BOUNCE_RATE_LIMIT},
            {"label": "complaint review (0.1 %)", "value": COMPLAINT_RATE_LIMIT}]}),
        _widget("Feedback from SES", [
            _metric("Deliveries", label="delivered to services", Direction="to_service"),
            _metric("Deliveries", label="delivered to users", Direction="to_user"),
            _metric("Complaints", label="complaints about mail to services", Direction="to_service"),
            _metric("Complaints", label="complaints about mail to users", Direction="to_user"),
            _metric("AddressesSuppressed", label="addresses suppressed"),
        ], 12, 12),
        _widget("Functions", [
            ["AWS/Lambda", "Errors", "FunctionName", "${RelayFunction}", {"stat": "Sum", "label": "relay errors"}],
            ["AWS/Lambda", "Errors", "FunctionName", "${BouncesFunction}", {"stat": "Sum", "label": "bounces errors"}],
            ["AWS/Lambda", "Duration", "FunctionName", "${RelayFunction}",
             {"stat": "p90", "label": "relay p90 ms", "yAxis": "right"}],
        ], 0, 18),
        _widget("Dead-letter queue (events parked for redrive)", [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${RelayDeadLetterQueue.QueueName}",
             {"stat": "Maximum", "label": "relay DLQ"}],
        ], 12, 18),
    ]
    return {"widgets": widgets}


def dashboard_json() -> str:
    """Compact JSON for ``DashboardBody: !Sub``."""
    return json.dumps(dashboard_body(), separators=(",", ":"), ensure_ascii=True)


def custom_metrics_read(body: dict[str, Any]) -> list[tuple[str, str, frozenset[str]]]:
    """(namespace, metric name, dimension names) of every metric a dashboard body reads outside AWS/*."""
    found = []
    for widget in body["widgets"]:
        for metric in widget["properties"]["metrics"]:
            names = [part for part in metric if isinstance(part, str)]
            if not names or names[0].startswith("AWS/") or len(names) < 2:
                continue
            dimensions = frozenset(names[2::2])
            found.append((names[0], names[1], dimensions))
    return found


TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
BODY_PREFIX = "      DashboardBody: !Sub '"


def write_into_template(path: Path = TEMPLATE) -> bool:
    """Replace the dashboard body line in ``template.yaml``; True if it changed."""
    lines = path.read_text().split("\n")
    [index] = [number for number, line in enumerate(lines) if line.startswith(BODY_PREFIX)]
    quoted = dashboard_json().replace("'", "''")  # a single-quoted YAML scalar doubles its quotes
    new = f"{BODY_PREFIX}{quoted}'"
    changed = lines[index] != new
    lines[index] = new
    path.write_text("\n".join(lines))
    return changed


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-template"]:
        sys.stdout.write("template.yaml updated\n" if write_into_template() else "template.yaml already current\n")
    else:
        sys.stdout.write(dashboard_json() + "\n")
