# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``runbook-ops docker-daemon-json``: check a daemon.json before dockerd is restarted onto it.

    runbook-ops docker-daemon-json --config FILE [--target /etc/docker/daemon.json]
        [--log-driver-plugin] [--docker-host HOST] [--dockerd PATH] [--validate] [--json]

Checks the file's log settings against the options of its ``log-driver`` as dockerd and
its containers read them (every engine), the flags of the dockerd that reads ``--target``
against the file, and runs ``dockerd --validate --config-file`` with those flags where the
engine has it (Docker 23+), else the top-level keys against Docker 20.10's. The
docker_cleanup role runs it before daemon.json is written (also in check mode), so a file
dockerd would refuse never lands and the restart handler never runs for it.

Exit status: 0 the file is fine, 2 it is not (one line on stderr naming the problem).
"""

from __future__ import annotations

import os
import sys
import tempfile

from .cli_output import add_config_arguments, emit
from .docker_daemon import validate_daemon_file
from .errors import OpsError

DEFAULT_CONFIG_PATH = "/etc/docker/daemon.json"


def add_parser(subparsers) -> None:
    """Register ``docker-daemon-json``."""
    parser = subparsers.add_parser(
        "docker-daemon-json", help="check a dockerd daemon.json (log driver options, dockerd --validate)")
    add_config_arguments(parser, DEFAULT_CONFIG_PATH, "the daemon.json to check")
    parser.add_argument("--dockerd", metavar="PATH",
                        help="the dockerd binary (default: the one on PATH or in /usr/bin, /usr/sbin)")
    parser.add_argument("--target", metavar="PATH",
                        help="where the file goes, to find the dockerd reading it (default: --config)")
    parser.add_argument("--log-driver-plugin", action="store_true",
                        help="a log-driver that is no built-in one is a plugin the engine must have")
    parser.add_argument("--docker-host", metavar="HOST",
                        help="the engine asked for its plugins (default: DOCKER_HOST, the local socket)")
    parser.set_defaults(func=docker_daemon_json_command)


def docker_daemon_json_command(args, runtime) -> int:
    """Check the file; print ``FILE: ok`` (``--validate``) or what was checked.

    ``--config -`` reads the file from stdin (the role checks what it would write before it
    writes it, in check mode too); messages then name ``--target``.
    """
    if args.config != "-":
        result = validate_daemon_file(args.config, dockerd=args.dockerd, target=args.target,
                                      plugin_driver=args.log_driver_plugin,
                                      docker_host=args.docker_host)
    else:
        args.config = args.target or DEFAULT_CONFIG_PATH
        result = _validate_stdin(args)
    if args.validate and not args.json:
        emit(args, result, "%s: ok" % args.config)
        return 0
    opts = ", ".join("%s=%s" % item for item in sorted(result["log_opts"].items())) or "none"
    emit(args, result, [
        "%s: ok" % args.config,
        "log-driver %s, log-opts %s" % (result["log_driver"], opts),
        "dockerd --validate: %s%s" % (result["dockerd_validate"],
                                      " (%s)" % result["dockerd"] if result["dockerd"] else ""),
        "dockerd flags: %s" % ("; ".join(result["flags"]) or "none found"),
    ])
    return 0


def _validate_stdin(args):
    """Validate the JSON on stdin through a private temporary file (dockerd wants a path)."""
    handle, path = tempfile.mkstemp(prefix="daemon-json-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(sys.stdin.read())
        try:
            result = validate_daemon_file(path, dockerd=args.dockerd, target=args.config,
                                          plugin_driver=args.log_driver_plugin,
                                          docker_host=args.docker_host)
        except OpsError as exc:
            raise OpsError(exc.message.replace(path, args.config), **exc.details)
    finally:
        os.unlink(path)
    result["path"] = args.config
    return result
