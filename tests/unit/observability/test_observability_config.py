"""infra/observability/: the alert rules are well-formed, carry the thresholds the integration
plans ask for, and every metric an alert or a dashboard panel names is one the code exports —
collected from the real registries (workers, API, projector), not from a list kept here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from api.metrics import new_metrics
from infra.metrics import Metrics
from projections.metrics import ProjectorMetrics

HERE = Path(__file__).resolve().parents[3] / "infra" / "observability"

# alert -> a fragment of its expression that holds the threshold asked for
REQUIRED = {
    "PaymentFailureRateHigh": "> 0.05",
    "WebhookDelayHigh": "> 300",
    "IntegrationSuccessLow": "< 0.95",
    "BreakerOpenTooLong": "== 2",
    "FallbackUsageHigh": "> 0.10",
    "DeadLettersGrowing": "> 0",
    "ApiErrorRateHigh": "> 0.05",
    "ApiLatencyP95High": "> 1",
}
REQUIRED_FOR = {"BreakerOpenTooLong": "5m"}

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions,
    aggregations, keywords, label names (inside {} or by/without/on (...)) or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", text):
        name, call = match.group(1), match.group(2)
        if call is None and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def exported() -> set[str]:
    """Every series name the code's registries expose, by each family's type."""
    registries = [Metrics().registry, new_metrics().registry]
    projector = CollectorRegistry()
    ProjectorMetrics(projector)
    registries.append(projector)
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
    }
    names = set()
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + s for s in suffixes[family.type])
    return names


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((HERE / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def panel_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads((HERE / "grafana-dashboard.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_the_extractor_finds_metrics_and_only_metrics() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, provider) (rate(a_seconds_bucket{x="y"}[10m])))'
        " / on (job) group_left sum(rate(b_total[5m] offset 1h)) > 0.5 and c"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c"}
    assert "no_such_metric_total" not in exported()  # so an unknown name would be caught


def test_the_config_files_exist_and_prometheus_loads_the_rules() -> None:
    config = yaml.safe_load((HERE / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    assert (HERE / config["rule_files"][0]).is_file()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"saga-workers", "saga-api"} <= set(jobs)
    assert all(job["static_configs"][0]["targets"] for job in jobs.values())


def test_every_alert_rule_is_well_formed() -> None:
    document = yaml.safe_load((HERE / "alerts.yml").read_text())
    assert document["groups"], "no rule groups"
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", rule["alert"])
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in {"page", "warning"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            assert rule["expr"].count("(") == rule["expr"].count(")")
    names = [r["alert"] for r in alert_rules()]
    assert len(names) == len(set(names)), "duplicate alert names"


@pytest.mark.parametrize(("alert", "threshold"), sorted(REQUIRED.items()))
def test_the_alerts_the_integration_plans_ask_for_are_there(alert: str, threshold: str) -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    assert alert in rules
    assert threshold in " ".join(rules[alert]["expr"].split())
    if alert in REQUIRED_FOR:
        assert rules[alert]["for"] == REQUIRED_FOR[alert]


def test_every_alert_names_only_exported_metrics() -> None:
    known = exported()
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']} selects no metric"
        assert names <= known, f"{rule['alert']}: {sorted(names - known)} not exported"


def test_every_dashboard_panel_names_only_exported_metrics() -> None:
    known = exported()
    exprs = panel_exprs()
    assert exprs, "the dashboard has no queries"
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, f"panel {title!r} selects no metric"
        assert names <= known, f"panel {title!r}: {sorted(names - known)} not exported"


def test_the_dashboard_shows_what_each_alert_watches() -> None:
    shown = set().union(*(metric_names(e) for _, e in panel_exprs()))
    for rule in alert_rules():
        assert metric_names(rule["expr"]) <= shown, f"no panel for {rule['alert']}"
