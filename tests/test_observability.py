"""What operators watch: /metrics names follow Prometheus' rules, the dashboard and alert rules
in docs/ reference only exported metrics and are valid, JSON logs carry the request id."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import missing
from tests.inproc import PASSWORD, operator_headers, register, running_service
from tradercoin.exchange import errors as exchange_errors
from tradercoin.logs import (
    JsonFormatter,
    RequestScope,
    configure_logging,
    request_scope,
    set_log_user,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"
RULES = DOCS / "prometheus-alerts.yml"
DASHBOARD = DOCS / "grafana-dashboard.json"
METRIC = re.compile(r"\btradercoin_[a-z0-9_]+")
DURATION = re.compile(r"^\d+[smhdwy]$")


def _expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return exprs


async def _scrape(tmp_path: Path) -> tuple[str, httpx.Response]:
    async with (
        running_service(tmp_path) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        await register(http, "alice")
        response = await http.get("/healthz", headers={"X-Request-ID": "probe-1"})
        root = await operator_headers(service, http)
        return (await http.get("/metrics", headers=root)).text, response


async def test_exported_names_follow_the_rules_and_cover_the_docs(tmp_path: Path) -> None:
    text, probe = await _scrape(tmp_path)
    assert probe.headers["X-Request-ID"] == "probe-1"
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.M))
    samples = set(re.findall(r"^(tradercoin_[a-z0-9_]+)", text, re.M))
    exported = samples | set(types) | set(helps)
    for name, kind in types.items():
        assert name.startswith("tradercoin_")
        assert not re.search(r"[A-Z]|__|_by_path", name), name  # no values inside names
        assert (kind == "counter") == name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name
        assert len(helps[name]) > 20 and "statistics:" not in helps[name], name
    cumulative = re.compile(r"_(sent|created|hits|misses|restarts|spent|committed|opened|fills)")
    assert not [n for n, k in types.items() if k == "gauge" and cumulative.search(n)]
    referenced = {m for expr in _expressions() for m in METRIC.findall(expr)}
    assert referenced - exported == set()
    for name in ("fill_detection", "event_delivery", "poll_cycle_duration",
                 "store_batch_commit_duration", "http_request_duration"):  # fmt: skip
        assert types[f"tradercoin_{name}_seconds"] == "histogram"


def test_error_kinds_in_the_rules_are_real_error_classes() -> None:
    kinds = {k for expr in _expressions() for k in re.findall(r'kind=~?"([^"]+)"', expr)}
    for alternative in "|".join(kinds).split("|"):
        assert issubclass(getattr(exchange_errors, alternative), exchange_errors.ExchangeError)


def test_alert_rules_are_valid() -> None:
    rules = yaml.safe_load(RULES.read_text())
    names = set()
    for group in rules["groups"]:
        assert isinstance(group["name"], str) and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert isinstance(rule["alert"], str) and rule["alert"] not in names
            names.add(rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert DURATION.match(str(rule.get("for", "0s")))
            for key in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in rule.get(key, {}).values())
            assert rule["annotations"]["summary"]
    promtool = os.environ.get("TRADERCOIN_PROMTOOL") or shutil.which("promtool")
    if promtool is None:
        missing("promtool not found (Debian's prometheus package; .ci/run extracts it)")
    assert promtool is not None
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboard_is_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] and dashboard["title"]
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["targets"]


def test_json_log_lines() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    try:
        log = logging.getLogger("tradercoin.test")
        scope = RequestScope("r-1")
        token = request_scope.set(scope)
        set_log_user(7)
        try:
            log.warning("login failed\nfor %s", "bob", extra={"event": "login_failed",
                                                           "address": "127.0.0.1"})  # fmt: skip
            scope.open = False  # the request ended; tasks that inherited it log no ids
            log.info("later")
        finally:
            request_scope.reset(token)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("crashed", extra={"user_id": 9})
    finally:
        configure_logging("INFO", "text")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    first, later, second = (json.loads(line) for line in lines)
    assert "request_id" not in later and "user_id" not in later
    assert first["message"] == "login failed\nfor bob" and first["level"] == "WARNING"
    assert first["logger"] == "tradercoin.test" and first["time"].endswith("+00:00")
    assert (first["request_id"], first["user_id"]) == ("r-1", 7)
    assert (first["event"], first["address"]) == ("login_failed", "127.0.0.1")
    assert second["user_id"] == 9 and "request_id" not in second
    assert "ValueError: boom" in second["error"]
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)


@pytest.mark.slow
async def test_served_request_ids_reach_the_json_log(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    try:
        async with (
            running_service(tmp_path) as service,
            httpx.AsyncClient(base_url=service.url) as http,
        ):
            made = await http.post(
                "/api/auth/register", json={"username": "carol", "password": PASSWORD}
            )
            bad = await http.post(
                "/api/auth/login",
                json={"username": "carol", "password": "wrong pass"},
                headers={"X-Request-ID": "mine-42"},
            )
    finally:
        configure_logging("INFO", "text")
    assert bad.headers["X-Request-ID"] == "mine-42"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    registered = [r for r in records if r.get("event") == "registered"]
    assert registered and registered[0]["request_id"] == made.headers["X-Request-ID"]
