# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``runbook-ops docker-daemon-json``: check a daemon.json before dockerd is restarted onto it.

    runbook-ops docker-daemon-json --config /etc/docker/daemon.json [--validate] [--json] [--dockerd PATH]

Checks the file's log settings against the options of its ``log-driver`` (every engine)
and runs ``dockerd --validate --config-file`` where the engine has it (Docker 23+). The
docker_cleanup role uses it as the ``validate:`` command of daemon.json, so a file dockerd
would refuse never lands and the restart handler never runs for it.

Exit status: 0 the file is fine, 2 it is not (one line on stderr naming the problem).
"""

from __future__ import annotations

from .cli_output import add_config_arguments, emit
from .docker_daemon import validate_daemon_file

DEFAULT_CONFIG_PATH = "/etc/docker/daemon.json"


def add_parser(subparsers) -> None:
    """Register ``docker-daemon-json``."""
    parser = subparsers.add_parser(
        "docker-daemon-json", help="check a dockerd daemon.json (log driver options, dockerd --validate)")
    add_config_arguments(parser, DEFAULT_CONFIG_PATH, "the daemon.json to check")
    parser.add_argument("--dockerd", metavar="PATH",
                        help="the dockerd binary (default: the one on PATH or in /usr/bin, /usr/sbin)")
    parser.set_defaults(func=docker_daemon_json_command)


def docker_daemon_json_command(args, runtime) -> int:
    """Check the file; print ``FILE: ok`` (``--validate``) or what was checked."""
    result = validate_daemon_file(args.config, dockerd=args.dockerd)
    if args.validate and not args.json:
        emit(args, result, "%s: ok" % args.config)
        return 0
    opts = ", ".join("%s=%s" % item for item in sorted(result["log_opts"].items())) or "none"
    emit(args, result, [
        "%s: ok" % args.config,
        "log-driver %s, log-opts %s" % (result["log_driver"], opts),
        "dockerd --validate: %s%s" % (result["dockerd_validate"],
                                      " (%s)" % result["dockerd"] if result["dockerd"] else ""),
    ])
    return 0
