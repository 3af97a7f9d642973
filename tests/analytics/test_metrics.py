"""The /metrics endpoint, the Grafana dashboard and the Prometheus rules against the registry."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import socket
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from analytics.metrics import VARIANT_SUCCESS_RATE, WEBHOOK_DELIVERIES
from api.settings import ListenerLimits
from outdial.config import MetricsSettings
from outdial.errors import UserError
from outdial.metrics import METRICS_MODULES, MetricsServer, import_metrics_modules
from store.metrics import TURNS_WRITTEN

# The team contract: module -> {family: type}. Counter families are named without _total here,
# as prometheus_client reports them.
CONTRACT: dict[str, dict[str, str]] = {
    "dialer.metrics": {
        "outdial_calls": "counter",
        "outdial_originates": "counter",
        "outdial_answered": "counter",
        "outdial_answer_rate": "gauge",
        "outdial_abandoned_rate": "gauge",
        "outdial_ami_connected": "gauge",
        "outdial_ami_up": "gauge",
        "outdial_dialer_blocked": "counter",
    },
    "agi.metrics": {
        "outdial_active_calls": "gauge",
        "outdial_greeting_latency_seconds": "histogram",
        "outdial_reply_latency_seconds": "histogram",
        "outdial_processing_latency_seconds": "histogram",
        "outdial_asr_rtf": "histogram",
        "outdial_tts_seconds": "histogram",
        "outdial_transfers": "counter",
        "outdial_compliance_hits": "counter",
        "outdial_agitation_score": "histogram",
        "outdial_audiosocket_rejected": "counter",
        "outdial_fastagi_refused": "counter",
        "outdial_fastagi_connections": "gauge",
        "outdial_late_frames": "counter",
        "outdial_call_failures": "counter",
        "outdial_optional_signal_failures": "counter",
        "outdial_word_times_clamped": "counter",
        "outdial_call_grades": "counter",
    },
    "store.metrics": {
        "outdial_spool_depth_rows": "gauge",
        "outdial_turns_written": "counter",
        "outdial_privacy_rows_purged": "counter",
    },
    "api.metrics": {"outdial_http_refused": "counter"},
    "outdial.health": {"outdial_db_up": "gauge", "outdial_asyncio_tasks": "gauge"},
    "analytics.metrics": {
        "outdial_variant_success_rate": "gauge",
        "outdial_variant_retirements": "counter",
        "outdial_outbox_pending": "gauge",
        "outdial_webhook_deliveries": "counter",
        "outdial_follow_ups": "counter",
    },
}
ALLOWED_LABELS = {
    "campaign",
    "script",
    "variant",
    "disposition",
    "reason",
    "category",
    "direction",
    "listener",
    "grade",
    "channel",
}
# Small fixed sets too: where a call failed (agi.session stages), which optional signal,
# which retention rule purged which table, and the installed language packs.
ALLOWED_LABELS |= {"stage", "signal", "rule", "table", "pack", "language"}
# A trunk is a configured name (a handful per daemon), never a number.
ALLOWED_LABELS |= {"trunk"}
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "outdial.json"
PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
METRIC_NAME = re.compile(r"\boutdial_[a-z0-9_]+")


def present_modules() -> list[str]:
    return [m for m in CONTRACT if importlib.util.find_spec(m.split(".")[0]) is not None
            and importlib.util.find_spec(m) is not None]  # fmt: skip


def registry_families() -> dict[str, str]:
    import_metrics_modules()
    return {f.name: f.type for f in REGISTRY.collect() if f.name.startswith("outdial_")}


def sample_names(families: dict[str, str]) -> set[str]:
    return {name + suffix for name, kind in families.items() for suffix in SUFFIXES[kind]}


def known_series() -> set[str]:
    """Series names PromQL may use: the registry's, plus the contract's for modules not written
    yet (the check covers those from the registry as soon as the module exists)."""
    families = registry_families()
    missing = [m for m in CONTRACT if m not in present_modules()]
    for module in missing:
        families.update(CONTRACT[module])
    return sample_names(families)


def test_registry_matches_the_contract_for_every_module_present() -> None:
    loaded = import_metrics_modules()
    assert set(loaded) == set(present_modules())
    assert {"store.metrics", "analytics.metrics"} <= set(loaded)
    assert set(METRICS_MODULES) == set(CONTRACT)
    families = registry_families()
    for module in loaded:
        for name, kind in CONTRACT[module].items():
            assert families.get(name) == kind, f"{module}: {name} should be a {kind}"


async def test_endpoint_parses_and_has_no_per_call_labels() -> None:
    # Give the labelled families children so their label names show up in the exposition.
    VARIANT_SUCCESS_RATE.labels(script="metrics-test", variant="a").set(0.4)
    WEBHOOK_DELIVERIES.labels(reason="delivered").inc()
    TURNS_WRITTEN.inc(3)
    server = MetricsServer(MetricsSettings(host="127.0.0.1", port=0))
    port = await server.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert response.status == 200
            text = await response.text()
    finally:
        await server.stop()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    ours = {name: f for name, f in families.items() if name.startswith("outdial_")}
    expected = {n for m in present_modules() for n in CONTRACT[m]}
    assert expected <= set(ours)
    for family in ours.values():
        for sample in family.samples:
            extra = set(sample.labels) - ALLOWED_LABELS - {"le"}
            assert not extra, f"{sample.name} has labels {extra}"
    [rate] = [
        s
        for s in ours["outdial_variant_success_rate"].samples
        if s.labels == {"script": "metrics-test", "variant": "a"}
    ]
    assert rate.value == pytest.approx(0.4)
    assert ours["outdial_turns_written"].samples[0].value >= 3


async def test_endpoint_drops_idle_clients_and_answers_bad_requests_with_problems(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The endpoint has no authentication: an idle client is closed, one past the cap gets
    503, and a malformed request gets problem+json (issue 23)."""
    limits = ListenerLimits(
        header_timeout_s=0.3, keepalive_timeout_s=0.3, keepalive_requests=10, max_connections=2
    )
    monkeypatch.setattr("outdial.metrics.LIMITS", limits)
    server = MetricsServer(MetricsSettings(host="127.0.0.1", port=0))
    port = await server.start()
    try:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        over = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(10):
            assert (await over[0].read()).startswith(b"HTTP/1.1 503")
            for reader, _ in idle:
                assert await reader.read() == b""  # closed after header_timeout_s
        bad = await asyncio.open_connection("127.0.0.1", port)
        bad[1].write(b"GET /metrics HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
        async with asyncio.timeout(10):
            answer = await bad[0].read()
        assert answer.startswith(b"HTTP/1.0 400") and b"application/problem+json" in answer
        for _, writer in (*idle, over, bad):
            writer.close()
    finally:
        await server.stop()
    refused = REGISTRY.get_sample_value(
        "outdial_http_refused_total", {"listener": "metrics", "reason": "capacity"}
    )
    assert refused is not None and refused >= 1


async def test_endpoint_reports_a_busy_port_clearly() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MetricsServer(MetricsSettings(host="127.0.0.1", port=port))
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}"):
            await server.start()


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels_of(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_dashboard_has_the_grafana_10_structure() -> None:
    dashboard = load_dashboard()
    for key in ("title", "uid", "panels", "schemaVersion", "time", "templating", "annotations"):
        assert key in dashboard, key
    assert dashboard["schemaVersion"] >= 36  # Grafana 10 writes 37-39
    assert dashboard["id"] is None  # importable into any instance
    inputs = {i["name"]: i["pluginId"] for i in dashboard["__inputs"]}
    assert inputs == {"DS_PROMETHEUS": "prometheus", "DS_POSTGRES": "postgres"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
    for panel in panels_of(dashboard):
        assert panel["type"] in {"timeseries", "stat", "table"}
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        uid = panel["datasource"]["uid"]
        assert uid in {"${DS_PROMETHEUS}", "${DS_POSTGRES}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            assert ("expr" in target) == (uid == "${DS_PROMETHEUS}")
            assert ("rawSql" in target) == (uid == "${DS_POSTGRES}")


def test_dashboard_expressions_use_only_registered_metrics() -> None:
    dashboard = load_dashboard()
    known = known_series()
    expressions = [t["expr"] for p in panels_of(dashboard) for t in p["targets"] if "expr" in t] + [
        v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"
    ]
    used: set[str] = set()
    for expr in expressions:
        names = set(METRIC_NAME.findall(expr))
        assert names, expr
        assert names <= known, f"unknown metrics {names - known} in {expr}"
        used |= names
    # Every contract family has a panel.
    for families in CONTRACT.values():
        for name, kind in families.items():
            assert used & sample_names({name: kind}), f"no panel shows {name}"


async def test_dashboard_sql_runs_against_the_views(db_pool: asyncpg.Pool) -> None:
    dashboard = load_dashboard()
    queries = [t["rawSql"] for p in panels_of(dashboard) for t in p["targets"] if "rawSql" in t]
    assert len(queries) >= 2
    for sql in queries:
        # Grafana expands $__timeFilter(col) to a range test on col before sending the query.
        concrete = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 > now() - interval '7 days'", sql)
        assert "$" not in concrete, sql
        await db_pool.fetch(concrete)


def test_prometheus_config_and_rules() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "outdial.yml").read_text(encoding="utf-8"))
    [job] = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9108"]
    assert job["metrics_path"] == "/metrics"
    rules_files = [PROMETHEUS_DIR / name for name in config["rule_files"]]
    rules = [
        rule
        for path in rules_files
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]
    by_name = {r["alert"]: r for r in rules}
    for name in (
        "OutdialAmiDown",
        "OutdialAbandonedRateHigh",
        "OutdialSpoolGrowing",
        "OutdialGreetingLatencyHigh",
        "OutdialProcessingLatencyHigh",
        "OutdialCallsFailing",
        "OutdialCallFailureRateHigh",
        "OutdialDatabaseDown",
        "OutdialTrunkDown",
    ):
        assert name in by_name, name
    assert "outdial_call_failures_total" in by_name["OutdialCallsFailing"]["expr"]
    assert "outdial_abandoned_rate >= 0.03" in by_name["OutdialAbandonedRateHigh"]["expr"]
    assert "outdial_ami_connected == 0" in by_name["OutdialAmiDown"]["expr"]
    assert "outdial_db_up == 0" in by_name["OutdialDatabaseDown"]["expr"]
    assert "outdial_ami_up == 0" in by_name["OutdialTrunkDown"]["expr"]
    known = known_series()
    for rule in rules:
        assert set(METRIC_NAME.findall(rule["expr"])) <= known, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
