"""Prometheus beyond the textfile: the shipped alerting rules pass ``promtool check rules``
and their unit tests, and Debian's node_exporter reads the textfiles the disk check and the
cron wrapper write (scraped on loopback, ``node_textfile_scrape_error`` 0, every family parsed).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from collection_build import run_tool
from host_layout import install_host_cli
from tmpfs import mounted_tmpfs

RULES = os.path.join("examples", "prometheus", "runbook-ops.rules.yml")
RULE_TESTS = os.path.join("examples", "prometheus", "runbook-ops.rules.test.yml")


def test_shipped_rules_pass_promtool_check(installed_collection):
    out = run_tool(["promtool", "check", "rules", RULES], cwd=installed_collection)
    assert "SUCCESS: 13 rules found" in out


def test_shipped_rules_pass_their_unit_tests(installed_collection):
    out = run_tool(["promtool", "test", "rules", RULE_TESTS], cwd=installed_collection)
    assert "SUCCESS" in out


def test_the_unit_tests_notice_a_changed_threshold(installed_collection, tmp_path):
    """A week turned into four days: the days-to-critical test no longer holds."""
    for path in (RULES, RULE_TESTS):
        shutil.copy(installed_collection / path, tmp_path)
    rules = tmp_path / os.path.basename(RULES)
    text = rules.read_text()
    assert text.count("> 0 < 7") == 1
    rules.write_text(text.replace("> 0 < 7", "> 0 < 4"))
    proc = run_tool(["promtool", "test", "rules", os.path.basename(RULE_TESTS)], cwd=tmp_path, expect_rc=None)
    assert proc.returncode != 0 and "RunbookOpsDiskCriticalWithinAWeek" in proc.stdout + proc.stderr


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(textfile_dir):
    """Start node_exporter with only the textfile collector on ``textfile_dir``; /metrics text."""
    port = _free_port()
    proc = subprocess.Popen(["prometheus-node-exporter", "--collector.disable-defaults", "--collector.textfile",
                             "--collector.textfile.directory=%s" % textfile_dir,
                             "--web.listen-address=127.0.0.1:%d" % port],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as response:
                    return response.read().decode("utf-8")
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("node_exporter did not answer: %s" % proc.stderr.read())
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def samples(text, family):
    """``{labels_text: value}`` of one family in an exposition text."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^%s(\{.*\})? (\S+)$" % re.escape(family), line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


@pytest.fixture
def filled(tmp_path):
    """A 1 MiB tmpfs at 69% whose directories have names that need escaping in labels."""
    with mounted_tmpfs(tmp_path / "fs") as mount:
        for name in ('quote"back\\slash', "new\nline", "latin1-\udce9"):
            os.mkdir(os.path.join(str(mount), name))
        with open(os.path.join(str(mount), 'quote"back\\slash', "photo"), "wb") as handle:
            handle.write(b"\0" * 700 * 1024)
        yield mount


def test_node_exporter_reads_every_family_the_disk_check_writes(tmp_path, filled):
    launcher = install_host_cli(tmp_path / "host")
    textfile = tmp_path / "textfile"
    history = tmp_path / "disk-history.jsonl"
    today = datetime.date.today()
    history.write_text("".join(json.dumps({
        "ts": (today - datetime.timedelta(days=d)).isoformat() + "T09:00:00Z", "mount": str(filled),
        "used_bytes": 700 * 1024 - d * 10240, "total_bytes": 1024 * 1024}) + "\n" for d in range(10, 0, -1)))
    config = tmp_path / "disk-monitor.json"
    config.write_text(json.dumps({"paths": [str(filled)], "largest_under": [str(filled)], "alert": False,
                                  "docker_usage": False, "history_file": str(history),
                                  "textfile_dir": str(textfile)}))
    runtime = tmp_path / "runtime.json"
    runtime.write_text(json.dumps({"host_label": "web1", "state_dir": str(tmp_path / "state"),
                                   "log_dir": str(tmp_path / "log")}))
    out = run_tool([launcher, "--runtime", runtime, "disk-check", "--config", config], cwd=tmp_path)
    assert "metrics: written to %s/runbook_ops_disk.prom" % textfile in out
    with open(textfile / "runbook_ops_disk.prom", "rb") as handle:
        checked = subprocess.run(["promtool", "check", "metrics"], stdin=handle, capture_output=True, text=True,
                                 check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    metrics = scrape(textfile)
    assert samples(metrics, "node_textfile_scrape_error") == {"": 0.0}
    mount_label = '{mount="%s"}' % filled
    assert samples(metrics, "runbook_ops_disk_used_percent") == {mount_label: 69.0}
    assert samples(metrics, "runbook_ops_disk_status") == {mount_label: 0.0}
    assert samples(metrics, "runbook_ops_disk_growth_bytes_per_day")[mount_label] > 0
    assert samples(metrics, "runbook_ops_disk_threshold_percent") == {'{level="critical"}': 85.0,
                                                                      '{level="warning"}': 70.0}
    largest = samples(metrics, "runbook_ops_disk_largest_dir_bytes")
    assert '{path="%s/quote\\"back\\\\slash"}' % filled in largest
    assert '{path="%s/new\\nline"}' % filled in largest
    assert '{path="%s/latin1-\ufffd"}' % filled in largest
    for family in ("used_bytes", "free_bytes", "size_bytes", "inodes_used_percent", "scan_partial",
                   "last_run_timestamp_seconds"):
        assert samples(metrics, "runbook_ops_disk_" + family), family


def test_node_exporter_flags_a_textfile_it_cannot_parse(tmp_path):
    """The scrape check can fail: a malformed file sets node_textfile_scrape_error to 1."""
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    (textfile / "runbook_ops_disk.prom").write_text('runbook_ops_disk_used_percent{mount="/"} 69 x y\n')
    assert samples(scrape(textfile), "node_textfile_scrape_error") == {"": 1.0}


def test_node_exporter_reads_the_job_metrics_the_wrapper_writes(tmp_path):
    """Real runs through `runbook-ops run` with runtime.json's textfile_dir: a backup that
    succeeds and then fails (its last success is kept), and a disk-monitor run."""
    launcher = install_host_cli(tmp_path / "host")
    textfile = tmp_path / "textfile"
    runtime = tmp_path / "runtime.json"
    runtime.write_text(json.dumps({"host_label": "web1", "state_dir": str(tmp_path / "state"),
                                   "log_dir": str(tmp_path / "log"), "lock_dir": str(tmp_path / "locks"),
                                   "fallback_state_dir": str(tmp_path / "fallback"),
                                   "textfile_dir": str(textfile)}))

    def run(job, *command):
        return subprocess.run([launcher, "--runtime", runtime, "run", "--job", job, "--timeout", "60", "--"]
                              + list(command), capture_output=True, text=True, timeout=120, check=False)

    before = time.time()
    assert run("backup", "sh", "-c", "sleep 1.1").returncode == 0  # the next run starts a second later
    assert run("backup", "sh", "-c", "echo restic: boom; exit 3").returncode == 1
    assert run("disk-monitor", "true").returncode == 0
    assert sorted(os.listdir(str(textfile))) == ["runbook_ops_job_backup.prom", "runbook_ops_job_disk-monitor.prom"]
    for name in os.listdir(str(textfile)):
        with open(textfile / name, "rb") as handle:
            checked = subprocess.run(["promtool", "check", "metrics"], stdin=handle, capture_output=True, text=True,
                                     check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr

    metrics = scrape(textfile)
    assert samples(metrics, "node_textfile_scrape_error") == {"": 0.0}
    backup, disk = '{runbook_job="backup"}', '{runbook_job="disk-monitor"}'
    assert samples(metrics, "runbook_ops_job_last_exit_code") == {backup: 3.0, disk: 0.0}
    success = samples(metrics, "runbook_ops_job_last_success_timestamp_seconds")
    last_run = samples(metrics, "runbook_ops_job_last_run_timestamp_seconds")
    assert set(success) == set(last_run) == {backup, disk}
    assert int(before) <= success[backup] < last_run[backup] <= time.time()  # kept from the first run
    assert samples(metrics, "runbook_ops_job_duration_seconds")[disk] < 60
