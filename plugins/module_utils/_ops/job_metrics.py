# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A scheduled job's last run for node_exporter's textfile collector.

The cron wrapper (``jobs.run_job``), when runtime.json sets ``textfile_dir``, replaces
``<textfile_dir>/runbook_ops_job_<name>.prom`` after each run it records (atomically,
``disk_metrics.write_textfile``). Gauges, label ``runbook_job`` (not ``job``, which
Prometheus gives its scrape target): ``runbook_ops_job_last_run_timestamp_seconds``
(when the last run started), ``runbook_ops_job_last_success_timestamp_seconds`` (when the
last run that exited 0 started: kept through failed runs, absent until one succeeds),
``runbook_ops_job_last_exit_code`` (124 timed out, 128 + N stopped by signal N) and
``runbook_ops_job_duration_seconds``.
"""

from __future__ import annotations

from .disk_metrics import family, write_textfile
from .timestamps import epoch_seconds

PREFIX = "runbook_ops_job_"


def textfile_name(name) -> str:
    """The file of job ``name`` in the textfile directory."""
    return "%s%s.prom" % (PREFIX, name)


def format_job_metrics(record) -> str:
    """The exposition text of one run ``record`` (``jobs.JOB_RECORD_KEYS``)."""
    labels = {"runbook_job": record["job"]}
    lines = family(PREFIX + "last_run_timestamp_seconds", "gauge",
                   "When the last run of the job started (seconds since the epoch).",
                   [(labels, epoch_seconds(record["started"]))])
    success = epoch_seconds(record.get("last_success"))
    if success is not None:
        lines += family(PREFIX + "last_success_timestamp_seconds", "gauge",
                        "When the last run that exited 0 started (seconds since the epoch).",
                        [(labels, success)])
    lines += family(PREFIX + "last_exit_code", "gauge",
                    "Exit status of the last run (124: timed out, 128 + N: stopped by signal N).",
                    [(labels, int(record["rc"]))])
    lines += family(PREFIX + "duration_seconds", "gauge", "How long the last run took.",
                    [(labels, float(record["seconds"]))])
    return "\n".join(lines) + "\n"


def write_job_metrics(directory, record):
    """Replace the job's file in ``directory``; ``None`` or the problem (never raises)."""
    return write_textfile(directory, format_job_metrics(record), textfile_name(record["job"]))
