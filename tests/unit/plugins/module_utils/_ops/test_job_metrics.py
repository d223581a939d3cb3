# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""job_metrics.py: a job's last run in the exposition format, checked against a small model."""

from __future__ import annotations

import datetime
import os
import re
import sys

from hypothesis import given, strategies as st

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import job_metrics  # noqa: E402

# A sample line with the one label the wrapper writes; the value as Python prints numbers.
_SAMPLE = re.compile(r'^(runbook_ops_job_[a-z_]+)\{runbook_job="([A-Za-z0-9_-]+)"\} (-?[0-9.e+]+)$')
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _iso(seconds):
    return (_EPOCH + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def model(job, started, success, rc, seconds):
    """What the file must say: {family: value}, every family a gauge of job ``job``."""
    expected = {"runbook_ops_job_last_run_timestamp_seconds": float(started),
                "runbook_ops_job_last_exit_code": float(rc),
                "runbook_ops_job_duration_seconds": seconds}
    if success is not None:
        expected["runbook_ops_job_last_success_timestamp_seconds"] = float(success)
    return expected


def read_back(text, job):
    """{family: value} of ``text``, asserting HELP and TYPE gauge right before each sample."""
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) % 3 == 0
    found = {}
    for at in range(0, len(lines), 3):
        help_line, type_line, sample = lines[at:at + 3]
        match = _SAMPLE.match(sample)
        assert match, sample
        name = match.group(1)
        assert help_line.startswith("# HELP %s " % name) and type_line == "# TYPE %s gauge" % name
        assert match.group(2) == job and name not in found
        found[name] = float(match.group(3))
    return found


JOB_NAMES = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,99}", fullmatch=True)
TIMES = st.integers(min_value=0, max_value=4102444800)  # 1970 .. 2100


@given(JOB_NAMES, TIMES, st.one_of(st.none(), TIMES), st.integers(0, 255),
       st.floats(min_value=0, max_value=10 ** 7, allow_nan=False).map(lambda s: round(s, 3)))
def test_the_text_says_what_the_model_says(job, started, success, rc, seconds):
    record = {"job": job, "started": _iso(started), "finished": _iso(started + seconds), "rc": rc,
              "seconds": seconds, "timed_out": False}
    if success is not None:
        record["last_success"] = _iso(success)
    text = job_metrics.format_job_metrics(record)
    assert read_back(text, job) == model(job, started, success, rc, seconds)
    assert 'job="' not in text.replace('runbook_job="', "")  # never Prometheus' own label


def test_a_failed_run_after_a_success_reads_as_the_rules_expect():
    record = {"job": "backup", "started": "2026-01-16T03:00:00Z", "finished": "2026-01-16T03:02:05Z",
              "rc": 3, "seconds": 125.25, "timed_out": False, "last_success": "2026-01-15T03:00:00Z"}
    assert job_metrics.format_job_metrics(record).splitlines()[2::3] == [
        'runbook_ops_job_last_run_timestamp_seconds{runbook_job="backup"} 1768532400.0',
        'runbook_ops_job_last_success_timestamp_seconds{runbook_job="backup"} 1768446000.0',
        'runbook_ops_job_last_exit_code{runbook_job="backup"} 3',
        'runbook_ops_job_duration_seconds{runbook_job="backup"} 125.25']


def test_write_job_metrics_names_the_file_after_the_job(tmp_path):
    record = {"job": "disk-monitor", "started": "2026-01-16T09:00:00Z", "rc": 0, "seconds": 1.5,
              "last_success": "2026-01-16T09:00:00Z"}
    assert job_metrics.write_job_metrics(str(tmp_path), record) is None
    assert os.listdir(str(tmp_path)) == ["runbook_ops_job_disk-monitor.prom"]
    text = (tmp_path / "runbook_ops_job_disk-monitor.prom").read_text()
    assert text == job_metrics.format_job_metrics(record)


def test_a_write_that_fails_is_returned_not_raised(tmp_path):
    (tmp_path / "file").write_text("")
    problem = job_metrics.write_job_metrics(str(tmp_path / "file"), {
        "job": "x", "started": "2026-01-16T09:00:00Z", "rc": 0, "seconds": 1})
    assert problem.startswith("cannot write %s/file/runbook_ops_job_x.prom: " % tmp_path)
