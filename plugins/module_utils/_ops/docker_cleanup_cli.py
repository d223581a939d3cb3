# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``runbook-ops docker-cleanup``: the runbook's weekly Docker cleanup (cron, Sunday 03:00).

    runbook-ops docker-cleanup --config /etc/runbook-ops/docker-cleanup.json [--validate] [--check] [--json]

The config holds the options of the ``runbook.ops.docker_cleanup`` module as JSON
(``builder_cache``, ``images``, ``until``, ``containers``, ``containers_until``,
``volumes``, ``networks``, ``keep_label``, ``target_percent``, ``docker_host``,
``state_dir``); keys starting with ``_`` are comments. Without ``state_dir`` the
runtime's state directory records the volumes of removed containers. The run plans and removes through ``docker_cleanup.run_docker_cleanup`` and
prints one line per step and per removed item (the job's log).

Exit status: 0 ran (whatever it found to remove), 1 the engine refused some removals
(listed), 2 bad config or an unreachable daemon (message on stderr, nothing removed).
"""

from __future__ import annotations

from .docker_cleanup import normalize_options, run_docker_cleanup
from .cli_output import add_config_arguments, emit, read_config
from .errors import OpsError
from .units import format_bytes

DEFAULT_CONFIG_PATH = "/etc/runbook-ops/docker-cleanup.json"
EXIT_OK = 0
EXIT_PROBLEM = 1


def add_parser(subparsers) -> None:
    """Register ``docker-cleanup``."""
    parser = subparsers.add_parser(
        "docker-cleanup", help="remove unused Docker build cache, images, volumes, ...",
        description="Remove Docker build cache, stopped containers, unused images, volumes "
                    "and networks as configured, never anything a container uses or that "
                    "carries the keep label; print what went and how much was freed.")
    add_config_arguments(parser, DEFAULT_CONFIG_PATH, "cleanup settings")
    parser.add_argument("--check", action="store_true",
                        help="show what would be removed, remove nothing")
    parser.set_defaults(func=docker_cleanup_command)


def load_config(path) -> dict:
    """The options in the JSON file at ``path`` (comments too), checked (``OpsError`` when unusable)."""
    data = read_config(path)
    if not isinstance(data, dict):
        raise OpsError("config %s must hold a JSON object of docker_cleanup options" % path)
    try:
        normalize_options(data)  # keys starting with "_" (comments) are left out there
    except OpsError as exc:
        raise OpsError("config %s: %s" % (path, exc.message))
    return data


def _percent(value):
    """``87%`` for df's whole percents, ``71.2%`` for a fraction."""
    return "%d%%" % value if float(value).is_integer() else "%.1f%%" % value


def format_result(result) -> list:
    """Human lines for the job's log."""
    pct = ""
    if result["usage_before_percent"] is not None:
        pct = ", disk %s -> %s" % (_percent(result["usage_before_percent"]),
                                   _percent(result["usage_after_percent"]))
    lines = ["docker cleanup%s on %s: %s %s%s" % (
        " (check mode)" if result["check_mode"] else "", result["docker_host"],
        "would free" if result["check_mode"] else "freed",
        format_bytes(result["reclaimed_bytes"]), pct)]
    for step in result["steps"]:
        if step["skipped"]:
            lines.append("  %-13s skipped (%s)" % (step["name"], step["skipped"]))
            continue
        younger = ", %d younger than %s left" % (step["younger"], result.get("until")) if step.get("younger") else ""
        lines.append("  %-13s %d removed, %s%s" % (
            step["name"], len(step["removed"]), format_bytes(step["reclaimed_bytes"]), younger))
        removed = set(step["removed"])
        for item in step["planned"]:
            if item["id"] in removed or item["name"] in removed:
                lines.append("    - %s%s" % (item["name"] or item["id"], (
                    "" if item["size_bytes"] is None else " " + format_bytes(item["size_bytes"]))))
    lines += ["  kept %s %s: %s" % (kept["kind"], kept["name"], kept["reason"]) for kept in result.get("kept") or []]
    lines += ["  tag %s moved to %s since the plan: left alone" % (moved["tag"], (moved["image"] or "no image")[:19])
              for moved in result.get("moved_tags") or []]
    lines += ["  not removed: %s" % error for error in result["errors"]]
    lines += ["  warning: %s" % warning for warning in result["warnings"]]
    return lines


def docker_cleanup_command(args, runtime) -> int:
    """``docker-cleanup``: run once, print, exit as documented in the module docstring."""
    options = load_config(args.config)
    if args.validate:
        emit(args, {"valid": True, "config": args.config},
             ["docker cleanup config %s is valid" % args.config])
        return EXIT_OK
    if runtime.get("state_dir"):
        options.setdefault("state_dir", runtime["state_dir"])
    result = run_docker_cleanup(options, check_mode=args.check)
    emit(args, result, format_result(result))
    return EXIT_PROBLEM if result["errors"] else EXIT_OK
