# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""health.py against real HTTP servers on loopback, real state files and the fake Bot API."""

from __future__ import annotations

import json
import os
import socket
import sys

import pytest

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))
sys.path.insert(0, os.path.join(_REPO, "tests", "fakes"))

from fake_app import FakeApp  # noqa: E402
from fake_telegram import FakeTelegram  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import health  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import (  # noqa: E402
    merge_runtime)

TOKEN = "123456789:AAH-health_Token_0123456789abcdef"
MIN = 60


@pytest.fixture(autouse=True)
def _no_resource_checks(monkeypatch):
    """These tests count the alerts of endpoints and containers; the machine's own memory
    and CPU (2 shared cores) must not add any. The resource checks have their own tests
    (test_health_resources.py), on real /proc readings and kernel-format files."""
    monkeypatch.setitem(health.OPTIONS["resource_checks"], "default", False)


@pytest.fixture
def app_server():
    """``/health/``: 200 ``{"status": "healthy"}`` for Host app.example, else 404;
    ``/slow``: the same after 300 ms; ``/redirect``: 302 (tests/fakes/fake_app.py)."""
    with FakeApp(slow_ms=300) as app:
        yield app.url


@pytest.fixture
def refused_url():
    """A loopback port nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return "http://127.0.0.1:%d/health/" % port


def _endpoint(url, **extra):
    raw = {"name": "api", "url": url}
    raw.update(extra)
    return health.validate_endpoint(raw, 0)


# --------------------------------------------------------------------------- endpoints

@pytest.mark.parametrize("path, extra, level, problem", [
    ("/health/", {"host_header": "app.example", "expected_text": "healthy"}, "ok", ""),
    ("/health/", {"host_header": "wrong.example"}, "critical",
     "HTTP 404, expected 200 (Host: wrong.example)"),
    ("/health/", {}, "critical", "HTTP 404, expected 200"),
    ("/health/", {"host_header": "app.example", "expected_status": 404}, "critical",
     "HTTP 200, expected 404 (Host: app.example)"),
    ("/health/", {"host_header": "app.example", "expected_text": "ready"}, "critical",
     "answer does not contain 'ready'"),
    ("/slow", {"host_header": "app.example", "latency_limit_ms": 100}, "warning",
     "slow: "),
    ("/slow", {"host_header": "app.example", "timeout_seconds": 0.1}, "critical",
     "no answer within 0.1 s"),
    ("/redirect", {}, "critical", "HTTP 302, expected 200"),
], ids=["healthy", "wrong-host-header", "no-host-header", "wrong-status", "text-missing",
        "slow", "timeout", "redirect-not-followed"])
def test_check_endpoint_judges_the_answer(app_server, path, extra, level, problem):
    result = health.check_endpoint(_endpoint(app_server + path, **extra))
    assert result["level"] == level
    assert result["problem"].startswith(problem)
    assert result["key"] == "endpoint:api"
    assert result["latency_ms"] is not None


def test_check_endpoint_reports_slow_answer_with_its_latency(app_server):
    result = health.check_endpoint(_endpoint(app_server + "/slow", host_header="app.example",
                                             latency_limit_ms=100))
    assert result["status"] == 200
    assert result["latency_ms"] >= 300
    assert "(limit 100 ms)" in result["problem"]


def test_check_endpoint_reports_refused_connection(refused_url):
    result = health.check_endpoint(_endpoint(refused_url))
    assert result["level"] == "critical"
    assert result["problem"] == "connection refused"
    assert result["status"] is None


def test_check_endpoint_never_shows_credentials_or_query():
    result = health.check_endpoint(_endpoint(
        "http://user:s3cret@127.0.0.1:1/health?token=s3cret", timeout_seconds=1))
    assert "s3cret" not in json.dumps(result)
    assert result["target"] == "http://127.0.0.1:1/health"


# --------------------------------------------------------------------------- config

@pytest.mark.parametrize("data, message", [
    ({"endpoints": [{"name": "a"}]}, "endpoints[0].url must start with http://"),
    ({"endpoints": [{"name": "a b", "url": "http://x/"}]}, "endpoints[0].name"),
    ({"endpoints": [{"name": "a", "url": "http://x/", "expected_status": 99}]},
     "expected_status must be an HTTP status"),
    ({"endpoints": [{"name": "a", "url": "http://x/", "latency_limit_ms": 0}]},
     "latency_limit_ms must be a positive number"),
    ({"endpoints": [{"name": "a", "url": "http://x/", "hots_header": "x"}]},
     "unknown keys hots_header"),
    ({"endpoints": [{"name": "a", "url": "http://x/"}, {"name": "a", "url": "http://y/"}]},
     "endpoint names must be unique; repeated: a"),
    ({"failures_before_alert": 0}, "failures_before_alert must be a positive number"),
    ({"compose_projects": [{"name": "app", "services": "web"}]}, "services must be a list"),
    ({"cooldwn_seconds": 5}, "unknown keys in the health monitor config: cooldwn_seconds"),
], ids=["no-url", "bad-name", "bad-status", "zero-latency", "typo-key", "duplicate",
        "zero-failures", "services-not-list", "typo-top-key"])
def test_validate_config_names_the_bad_key(data, message):
    with pytest.raises(OpsError) as caught:
        health.validate_config(data)
    assert message in caught.value.message


def test_validate_config_fills_defaults_and_accepts_comment_keys():
    config = health.validate_config({
        "_comment": "Ansible managed",
        "endpoints": [{"name": "api", "url": "http://127.0.0.1/health/"}],
        "compose_projects": ["shop", {"name": "blog", "services": ["web"]}]})
    assert config["failures_before_alert"] == 2
    assert config["endpoints"][0]["latency_limit_ms"] == 500
    assert config["endpoints"][0]["expected_status"] == 200
    assert config["compose_projects"] == [{"name": "shop", "services": []},
                                          {"name": "blog", "services": ["web"]}]


def test_load_config_explains_a_missing_file(tmp_path):
    with pytest.raises(OpsError) as caught:
        health.load_config(str(tmp_path / "nope.json"))
    assert "does not exist" in caught.value.message


# --------------------------------------------------------------------------- containers

def _attrs(service, status="running", health_status=None, restarts=0, exit_code=0,
           oom=False, cid="c1", project="shop"):
    state = {"Status": status, "ExitCode": exit_code, "OOMKilled": oom}
    if health_status:
        state["Health"] = {"Status": health_status}
    return {"Id": cid * 8, "Name": "/%s-%s-1" % (project, service), "RestartCount": restarts,
            "State": state,
            "Config": {"Labels": {"com.docker.compose.project": project,
                                  "com.docker.compose.service": service,
                                  "com.docker.compose.container-number": "1"}}}


@pytest.mark.parametrize("attrs, level, problem", [
    (_attrs("web", health_status="healthy"), "ok", ""),
    (_attrs("web", health_status="starting"), "ok", ""),
    (_attrs("web", health_status="unhealthy"), "critical",
     "unhealthy (healthcheck failing)"),
    (_attrs("web", status="exited", exit_code=1), "critical",
     "exited, exit code 1: application error"),
    (_attrs("web", status="exited", exit_code=137), "critical",
     "exited, exit code 137: killed (SIGKILL, often out of memory)"),
    (_attrs("web", status="exited", exit_code=137, oom=True), "critical",
     "exited, exit code 137: killed, out of memory (OOM)"),
    (_attrs("web", status="restarting", restarts=7, exit_code=137, oom=True), "critical",
     "restart loop (7 restarts, last exit code 137: killed, out of memory (OOM))"),
    (_attrs("web", status="paused"), "critical", "paused"),
], ids=["healthy", "starting", "unhealthy", "exited", "exit-137", "oom", "restart-loop",
        "paused"])
def test_judge_container_calls_out_restart_loops_and_oom(attrs, level, problem):
    got_level, got_problem = health.judge_container(health.describe_container(attrs))
    assert (got_level, got_problem) == (level, problem)


@pytest.mark.parametrize("exit_code, oom, words", [
    (137, False, "exit code 137: killed (SIGKILL, often out of memory)"),
    (137, True, "exit code 137: killed, out of memory (OOM)"),
    (139, False, "exit code 139: segfault (SIGSEGV)"),
    (143, False, "exit code 143: stopped (SIGTERM)"),
    (134, False, "exit code 134: aborted (SIGABRT)"),
    (129, False, "exit code 129: killed by signal 1"),
    (1, False, "exit code 1: application error"),
    (3, False, "exit code 3"),
], ids=["sigkill", "oom", "segfault", "sigterm", "abort", "other-signal", "error", "plain"])
def test_explain_exit_names_signals_and_the_oom_killer(exit_code, oom, words):
    assert health.explain_exit(exit_code, oom) == words


def _checks(lister_by_minute, minutes, threshold=2, window=3600):
    """check_compose_projects at each minute (time injected), carrying the baseline."""
    projects = [{"name": "shop", "services": []}]
    baseline, seen = {}, []
    for minute in minutes:
        results, baseline = health.check_compose_projects(
            projects, baseline, client=object(), now=1_700_000_000 + minute * MIN,
            lister=lambda client, name, m=minute: lister_by_minute(m),
            window_seconds=window, threshold=threshold)
        seen.append(results[0])
    return seen, baseline


def test_restarts_are_judged_over_a_sliding_window():
    counts = {0: 2, 5: 4, 60: 4, 65: 4}
    seen, baseline = _checks(lambda m: [_attrs("web", restarts=counts[m], exit_code=137)],
                             [0, 5, 60, 65])
    assert [r["level"] for r in seen] == ["ok", "warning", "warning", "ok"]
    assert seen[1]["problem"] == ("restarted 2 times in the last 1 h (last exit code 137: "
                                  "killed (SIGKILL, often out of memory))")
    assert baseline["compose:shop/web"] == {"id": "c1" * 6, "restart_count": 4, "restarts": []}


def test_a_worker_oom_killed_every_10_minutes_alerts_with_the_exit_code():
    """Checks every 5 minutes see it running each time; the window still catches it."""
    def lister(minute):
        return [_attrs("worker", restarts=minute // 10, exit_code=137, oom=True)]
    seen, _baseline = _checks(lister, range(0, 65, 5))
    previous, alerts = {}, []
    for minute, result in zip(range(0, 65, 5), seen):
        previous, actions = health.track_failures(previous, [result],
                                                  1_700_000_000 + minute * MIN, 2)
        alerts += [(minute, a["level"], a["text"]) for a in actions]
    assert alerts[0] == (25, "warning", "health check degraded (shop/worker: restarted 2 times "
                         "in the last 1 h (last exit code 137: killed, out of memory (OOM))), "
                         "for 5 min")
    assert all(level == "warning" for _minute, level, _text in alerts)


def test_an_exit_seen_while_restarting_is_kept_with_its_restart_and_named_later():
    """A run that catches the container between two starts reads its exit code from the
    inspect data; once it runs again (exit code 0 there, and no engine events here) the
    restart history still knows it."""
    states = {0: _attrs("worker", restarts=0),
              5: dict(_attrs("worker", status="restarting", restarts=1, exit_code=139),
                      State={"Status": "restarting", "ExitCode": 139, "OOMKilled": False,
                             "FinishedAt": "2026-01-16T03:04:59.123456789Z"}),
              10: _attrs("worker", restarts=2),
              15: _attrs("worker", restarts=2)}
    seen, baseline = _checks(lambda m: [states[m]], [0, 5, 10, 15])
    assert baseline["compose:shop/worker"]["restarts"] == [
        [1_700_000_000 + 5 * MIN, 1, 139, False, "2026-01-16T03:04:59.123456789Z"],
        [1_700_000_000 + 10 * MIN, 1]]
    assert seen[3]["problem"] == ("restarted 2 times in the last 1 h (last exit code unknown; "
                                  "earlier exit code 139: segfault (SIGSEGV))")


@pytest.mark.parametrize("restarts, words", [
    ([[1, 1, 137, True, ""]], "last exit code 137: killed, out of memory (OOM)"),
    ([[1, 1, 139, False, ""], [2, 1, 143, False, ""]], "last exit code 143: stopped (SIGTERM)"),
    ([[1, 1, 139, False, ""], [2, 1]], "last exit code unknown; earlier exit code 139: "
                                       "segfault (SIGSEGV)"),
    ([[1, 2], [2, 1]], "last exit code unknown"),
    ([], "last exit code unknown"),
], ids=["oom", "latest-known", "latest-unknown", "none-known", "empty"])
def test_explain_restarts_names_the_latest_exit_or_says_it_is_unknown(restarts, words):
    assert health.explain_restarts(restarts) == words


def test_check_compose_projects_new_container_starts_a_new_baseline():
    projects = [{"name": "shop", "services": []}]
    baseline = {"compose:shop/web": {"id": "old", "restart_count": 0}}
    results, _unused = health.check_compose_projects(
        projects, baseline, client=object(),
        lister=lambda client, name: [_attrs("web", restarts=3, cid="c2")])
    assert results[0]["level"] == "ok"


def test_check_compose_projects_reports_missing_project_and_service():
    projects = [{"name": "shop", "services": ["web", "worker"]}, {"name": "blog",
                                                                  "services": []}]
    listing = {"shop": [_attrs("web")], "blog": []}
    results, _unused = health.check_compose_projects(
        projects, client=object(), lister=lambda client, name: listing[name])
    by_key = {r["key"]: r for r in results}
    assert by_key["compose:shop/web"]["level"] == "ok"
    assert by_key["compose:shop/worker"]["problem"] == "no container for service worker"
    assert by_key["compose:blog"]["problem"] == "no containers: project blog is not up"


def test_check_compose_projects_reports_an_engine_that_does_not_answer():
    def lister(client, name):
        raise ConnectionError("socket gone")
    results, _unused = health.check_compose_projects([{"name": "shop", "services": []}],
                                                     client=object(), lister=lister)
    assert [(r["key"], r["level"]) for r in results] == [("compose:docker", "critical")]
    assert "socket gone" in results[0]["problem"]


# --------------------------------------------------------------------------- failures

def _bad(key="endpoint:api", level="critical", problem="connection refused"):
    return {"key": key, "name": key.split(":", 1)[1], "level": level, "problem": problem}


def _good(key="endpoint:api"):
    return {"key": key, "name": key.split(":", 1)[1], "level": "ok", "problem": ""}


def test_track_failures_alerts_from_the_nth_failure_in_a_row():
    checks, actions = health.track_failures({}, [_bad()], 1000, 2)
    assert actions == []
    assert checks["endpoint:api"]["failures"] == 1
    checks, actions = health.track_failures(checks, [_bad()], 1300, 2)
    assert [(a["key"], a["level"]) for a in actions] == [("endpoint:api", "critical")]
    assert actions[0]["text"] == ("health check failed (api: connection refused), "
                                  "for 5 min")
    checks, actions = health.track_failures(checks, [_bad()], 1600, 2)
    assert len(actions) == 1  # notify decides about the cooldown


def test_track_failures_one_blip_stays_silent():
    checks, actions = health.track_failures({}, [_bad()], 1000, 2)
    checks, actions = health.track_failures(checks, [_good()], 1300, 2)
    assert actions == [] and checks == {}


def test_track_failures_recovery_carries_the_downtime():
    checks = {}
    for now in (1000, 1300, 1600):
        checks, _unused = health.track_failures(checks, [_bad()], now, 2)
    checks, actions = health.track_failures(checks, [_good()], 1000 + 12 * MIN, 2)
    assert actions == [{"key": "endpoint:api", "level": "ok",
                        "text": "api is back after 12 min"}]
    assert checks == {}


def test_track_failures_recovers_checks_that_left_the_config():
    checks = {}
    for now in (0, 300):
        checks, _unused = health.track_failures(checks, [_bad()], now, 2)
    checks, actions = health.track_failures(checks, [], 600, 2)
    assert [a["level"] for a in actions] == ["ok"]


@pytest.mark.parametrize("seconds, text", [
    (45, "45 s"), (12 * MIN, "12 min"), (125 * MIN, "2 h 5 min"), (3 * 3600, "3 h"),
    (26 * 3600, "1 d 2 h")])
def test_format_duration(seconds, text):
    assert health.format_duration(seconds) == text


# --------------------------------------------------------------------------- the job

def _runtime(tmp_path, api_url):
    token_file = tmp_path / "telegram.token"
    token_file.write_text(TOKEN + "\n")
    return merge_runtime({"host_label": "web1", "state_dir": str(tmp_path / "state"),
                          "log_dir": str(tmp_path),
                          "alert": {"telegram_api_url": api_url, "telegram_chat_id": "-1001",
                                    "telegram_token_file": str(token_file),
                                    "cooldown_seconds": 86400}})


def test_run_health_check_alerts_once_holds_back_in_cooldown_then_recovers(
        tmp_path, app_server, refused_url):
    good = health.validate_config({"cooldown_seconds": 3600, "endpoints": [
        {"name": "api", "url": app_server + "/health/", "host_header": "app.example"}]})
    down = health.validate_config({"cooldown_seconds": 3600, "endpoints": [
        {"name": "api", "url": refused_url}]})
    with FakeTelegram(token=TOKEN) as fake:
        runtime = _runtime(tmp_path, fake.url)
        start = 1_700_000_000
        runs = [(good, 0), (down, 5), (down, 10), (down, 15), (down, 20), (good, 25)]
        counts = []
        for config, minute in runs:
            health.run_health_check(config, runtime, now=start + minute * MIN)
            counts.append(fake.message_count())
        texts = [m["text"] for m in fake.messages]
    assert counts == [0, 0, 1, 1, 1, 2]
    assert texts[0] == ("🚨 web1 CRITICAL: health check failed (api: connection refused), "
                        "for 5 min")
    assert texts[1] == "✅ web1 recovered: api is back after 20 min"
    saved = json.loads((tmp_path / "state" / "health.json").read_text())
    assert saved["checks"] == {}


def test_run_health_check_repeats_after_the_cooldown(tmp_path, refused_url):
    down = health.validate_config({"cooldown_seconds": 600, "endpoints": [
        {"name": "api", "url": refused_url}]})
    with FakeTelegram(token=TOKEN) as fake:
        runtime = _runtime(tmp_path, fake.url)
        for minute in (0, 5, 10, 15, 20):
            health.run_health_check(down, runtime, now=1_700_000_000 + minute * MIN)
        texts = [m["text"] for m in fake.messages]
    assert len(texts) == 2  # minute 5, then minute 15 when the 10 min cooldown passed
    assert texts[1].endswith("for 15 min")


def test_run_health_check_a_check_flapping_10_times_pages_once_and_recovers_once(
        tmp_path, app_server, refused_url):
    good = health.validate_config({"failures_before_alert": 1, "endpoints": [
        {"name": "api", "url": app_server + "/health/", "host_header": "app.example"}]})
    down = health.validate_config({"failures_before_alert": 1, "endpoints": [
        {"name": "api", "url": refused_url}]})
    with FakeTelegram(token=TOKEN) as fake:
        runtime = _runtime(tmp_path, fake.url)
        for flap in range(10):  # down, up, down, up... every 5 minutes for 100 minutes
            for offset, config in ((0, down), (5, good)):
                health.run_health_check(config, runtime,
                                        now=1_700_000_000 + (flap * 10 + offset) * MIN)
        texts = [m["text"] for m in fake.messages]
    # the cooldown is 1 h: one alert and one recovery in the first hour, one of each after
    assert [t.split()[0] for t in texts] == ["🚨", "✅", "🚨", "✅"]
    assert texts[1] == "✅ web1 recovered: api is back after 5 min"


def test_run_health_check_escalates_from_slow_to_down_at_once(tmp_path, app_server,
                                                              refused_url):
    slow = health.validate_config({"endpoints": [
        {"name": "api", "url": app_server + "/slow", "host_header": "app.example",
         "latency_limit_ms": 100}]})
    down = health.validate_config({"endpoints": [{"name": "api", "url": refused_url}]})
    with FakeTelegram(token=TOKEN) as fake:
        runtime = _runtime(tmp_path, fake.url)
        for minute, config in ((0, slow), (5, slow), (10, down)):
            health.run_health_check(config, runtime, now=1_700_000_000 + minute * MIN)
        texts = [m["text"] for m in fake.messages]
    assert texts[0].startswith("⚠️ web1 WARNING: health check degraded (api: slow: ")
    assert texts[1].startswith("🚨 web1 CRITICAL: health check failed (api: connection")


def test_run_health_check_alert_goes_out_when_state_cannot_be_saved(tmp_path, refused_url,
                                                                    monkeypatch):
    down = health.validate_config({"failures_before_alert": 1, "endpoints": [
        {"name": "api", "url": refused_url}]})
    monkeypatch.setattr(health, "write_json_atomic", lambda path, data: False)
    calls = []

    def notify(runtime, key, level, text, now=None):
        calls.append((key, level, runtime["alert"]["cooldown_seconds"]))
        return {"sent": True}

    runtime = merge_runtime({"host_label": "web1", "state_dir": str(tmp_path)})
    summary = health.run_health_check(down, runtime, notify=notify, now=1000)
    assert calls == [("health:endpoint:api", "critical", 3600)]
    assert summary["state_saved"] is False
    assert any("could not save health state" in line
               for line in health.format_check_lines(summary))


# --------------------------------------------------------------------------- report

def test_count_log_errors_counts_and_keeps_the_last_lines():
    text = "\n".join(["ok", "ERROR one", "Traceback (most recent call last):", "fine",
                      "ValueError exception", "CRITICAL db", "error six", "error seven"])
    got = health.count_log_errors(text, last=3)
    assert got == {"count": 6, "last": ["CRITICAL db", "error six", "error seven"]}


def test_read_memory_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        2000000 kB\nMemFree:          100000 kB\n"
                       "MemAvailable:     300000 kB\nSwapTotal:             0 kB\n"
                       "SwapFree:              0 kB\n")
    memory = health.read_memory(str(meminfo))
    assert memory["used_percent"] == 85.0
    assert memory["total_bytes"] == 2000000 * 1024


def test_read_jobs_reports_each_jobs_last_result(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "backup.json").write_text(json.dumps(
        {"job": "backup", "started": "2026-01-01T03:00:00Z", "finished": "2026-01-01T03:02:00Z",
         "rc": 0, "seconds": 120, "timed_out": False}))
    (jobs / "docker-cleanup.json").write_text(json.dumps(
        {"job": "docker-cleanup", "finished": "2026-01-01T03:00:00Z", "rc": 1,
         "timed_out": False}))
    (jobs / "disk-monitor.json").write_text("{torn")
    got = {j["name"]: (j["result"], j["level"]) for j in health.read_jobs(str(tmp_path))}
    assert got == {"backup": ("ok", "ok"), "docker-cleanup": ("failed", "critical"),
                   "disk-monitor": ("unknown", "warning")}


class _FakeContainer:
    def __init__(self, attrs, logs):
        self.attrs = attrs
        self.name = attrs["Name"].lstrip("/")
        self._logs = logs

    def logs(self, **kwargs):
        assert kwargs["since"] > 0
        return self._logs


class _FakeDocker:
    def __init__(self, containers):
        self.containers = self
        self._containers = containers

    def list(self, all=False):  # noqa: A002 - the SDK's name
        assert all
        return self._containers


def test_build_report_rows_and_level(tmp_path, app_server):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 1000 kB\nMemAvailable: 500 kB\n")
    docker = _FakeDocker([
        _FakeContainer(_attrs("web", health_status="healthy"), b"GET / 200\nERROR boom\n"),
        _FakeContainer(_attrs("worker", status="exited", exit_code=137, oom=True), b""),
    ])
    config = health.validate_config({"compose_projects": ["shop"], "endpoints": [
        {"name": "api", "url": app_server + "/health/", "host_header": "app.example"}]})
    runtime = merge_runtime({"host_label": "web1", "state_dir": str(tmp_path)})
    report = health.build_report(config, runtime, docker=docker, meminfo_path=str(meminfo),
                                 backup={"available": False, "age_hours": None,
                                         "level": "warning", "detail": "unknown"})
    rows = {(r["section"], r["name"]): r for r in report["rows"]}
    assert rows[("container", "shop-web-1")]["level"] == "ok"
    assert rows[("container", "shop-worker-1")]["detail"] == (
        "exited, exit code 137: killed, out of memory (OOM)")
    assert rows[("logs", "shop-web-1")]["status"] == "1 error"
    assert rows[("endpoint", "api")]["status"] == "HTTP 200"
    assert rows[("memory", "ram")]["status"] == "50% used"
    assert rows[("backup", "newest")]["status"] == "age unknown"
    assert report["level"] == "critical"
    assert report["counts"]["critical"] == 1
    table = health.format_report_table(report)
    assert table[0] == "web1  morning check: CRITICAL (1 critical, 2 warning)"
