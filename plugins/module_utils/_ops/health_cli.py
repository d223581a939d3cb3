# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``runbook-ops health-check`` (the cron job) and ``runbook-ops health-report`` (the playbook).

- ``health-check --config /etc/runbook-ops/health-monitor.json [--json]``: request every
  endpoint, judge every container of the configured Compose projects (and its memory
  against its limit), the host's memory, swap and CPU (over a window), run the
  configured commands, check the TLS certificates that are due, count failures in a
  row and alert through ``alerts.notify``. Exit 0 when it ran and its alerts were handled
  (a failing service is reported by its own alert after N failures in a row, not by the
  job wrapper, so one blip does not page); 1 when an alert could not be delivered (the
  wrapper then reports the job as failed); 2 for a bad config.
- ``health-check --validate``: only check the config file (the role's ``validate:``).
- ``health-report [--config FILE] [--json]``: the morning check of this host (containers,
  endpoints, memory, swap, error lines in container logs, newest backup, jobs' last
  results, and the monitor's last CPU, command and certificate results);
  exit 0 nothing critical, 1 something critical, 2 bad config. A missing config file is
  fine here: the report then requests no endpoints.
"""

from __future__ import annotations

import os

from . import health
from .cli_output import add_config_arguments, emit
from .units import plural

EXIT_OK = 0
EXIT_PROBLEM = 1


def add_parser(subparsers) -> None:
    """Register ``health-check`` and ``health-report``."""
    check = subparsers.add_parser(
        "health-check", help="check endpoints and Compose services; alert after N failures",
        description="Request each endpoint and judge each Compose container once; alert "
                    "when a check has failed N runs in a row, repeat after the cooldown, "
                    "announce the recovery with the downtime.")
    add_config_arguments(check, health.DEFAULT_CONFIG_PATH, "health monitor settings")
    check.set_defaults(func=health_check_command)

    report = subparsers.add_parser(
        "health-report", help="the morning check of this host as a table or JSON",
        description="Containers, endpoints, memory, error lines in container logs, the "
                    "newest backup and every job's last result, each with a level.")
    report.add_argument("--config", default=health.DEFAULT_CONFIG_PATH, metavar="FILE",
                        help="health monitor settings for the endpoints (optional)")
    report.add_argument("--since-hours", type=float, default=24.0, metavar="HOURS",
                        help="how far back to count error lines in logs (default: 24)")
    report.add_argument("--log-lines", type=int, default=5, metavar="N",
                        help="error lines to keep per container (default: 5)")
    report.add_argument("--memory-warning-percent", type=float, default=None, metavar="P",
                        help="memory row's warning threshold (default: the monitor's, 80)")
    report.add_argument("--memory-critical-percent", type=float, default=None, metavar="P",
                        help="memory row's critical threshold (default: the monitor's, 90)")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.set_defaults(func=health_report_command)


def health_check_command(args, runtime) -> int:
    """``health-check``: run the checks once, print them, exit as documented above."""
    config = health.load_config(args.config)
    if args.validate:
        emit(args, {"valid": True, "config": args.config},
             ["health monitor config %s is valid: %s, %s" % (
                 args.config, plural(len(config["endpoints"]), "endpoint"),
                 plural(len(config["compose_projects"]), "compose project"))])
        return EXIT_OK
    summary = health.run_health_check(config, runtime)
    emit(args, summary, health.format_check_lines(summary))
    undelivered = [a for a in summary["alerts"]
                   if isinstance(a.get("outcome"), dict) and a["outcome"].get("error")]
    return EXIT_PROBLEM if undelivered else EXIT_OK


def health_report_command(args, runtime) -> int:
    """``health-report``: build the report, print it, exit 1 when anything is critical."""
    if os.path.exists(args.config):
        config = health.load_config(args.config)
    else:
        config = health.validate_config({})
    report = health.build_report(
        config, runtime, since_hours=args.since_hours, log_lines=args.log_lines,
        memory_warning_percent=args.memory_warning_percent,
        memory_critical_percent=args.memory_critical_percent)
    emit(args, report, health.format_report_table(report))
    return EXIT_PROBLEM if report["level"] == "critical" else EXIT_OK
