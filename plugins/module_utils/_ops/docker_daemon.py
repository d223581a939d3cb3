# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check a dockerd configuration file (daemon.json) before it lands and dockerd restarts.

dockerd refuses to start on a daemon.json whose ``log-opts`` hold a key its
``log-driver`` does not take (``unknown log opt 'max-size' for journald log driver``) or
a value it cannot parse (a number instead of a string, ``syslog-address`` without a
protocol). ``dockerd --validate`` (Docker 23+) catches the number but not the rest: it
only loads the file. So ``check_daemon_config`` checks the log settings against the
options each built-in driver takes and the values dockerd parses, on every engine, and
``validate_daemon_file`` adds ``dockerd --validate --config-file`` where the engine has it.

The option table is the one Docker 20.10 (the oldest engine we support) accepts, probed
on a real 20.10 engine; keys only newer engines know (``local``'s ``tag``, ``fluentd``'s
``fluentd-write-timeout``, ...) are refused, which is safe on every engine.
"""

from __future__ import annotations

import json
import os
import re
import shutil

from .errors import OpsError
from .runner import run_command

DEFAULT_DRIVER = "json-file"
_ATTRS = ("env", "env-regex", "labels", "labels-regex", "tag")
# Taken by every driver: dockerd handles them itself (blocking mode, dual-logging cache).
COMMON_LOG_OPTS = ("mode", "max-buffer-size", "cache-disabled", "cache-max-size",
                   "cache-max-file", "cache-compress")
LOG_DRIVER_OPTS = {
    "json-file": ("max-size", "max-file", "compress") + _ATTRS,
    "local": ("max-size", "max-file", "compress"),
    "journald": _ATTRS,
    "syslog": ("syslog-address", "syslog-facility", "syslog-format", "syslog-tls-ca-cert",
               "syslog-tls-cert", "syslog-tls-key", "syslog-tls-skip-verify") + _ATTRS,
    "gelf": ("gelf-address", "gelf-compression-type", "gelf-compression-level",
             "gelf-tcp-max-reconnect", "gelf-tcp-reconnect-delay") + _ATTRS,
    "fluentd": ("fluentd-address", "fluentd-async", "fluentd-async-connect",
                "fluentd-buffer-limit", "fluentd-retry-wait", "fluentd-max-retries",
                "fluentd-sub-second-precision", "fluentd-request-ack") + _ATTRS,
    "awslogs": ("awslogs-region", "awslogs-endpoint", "awslogs-group", "awslogs-stream",
                "awslogs-create-group", "awslogs-datetime-format", "awslogs-multiline-pattern",
                "awslogs-credentials-endpoint", "awslogs-force-flush-interval-seconds",
                "awslogs-max-buffered-events", "tag"),
    "splunk": ("splunk-token", "splunk-url", "splunk-source", "splunk-sourcetype",
               "splunk-index", "splunk-capath", "splunk-caname", "splunk-insecureskipverify",
               "splunk-format", "splunk-verify-connection", "splunk-gzip", "splunk-gzip-level",
               "splunk-index-acknowledgment") + _ATTRS,
    "gcplogs": ("gcp-project", "gcp-log-cmd", "gcp-meta-zone", "gcp-meta-name",
                "gcp-meta-id", "env", "env-regex", "labels", "labels-regex"),
    "logentries": ("logentries-token", "line-only") + _ATTRS,
    "none": (),
}
# Values dockerd parses: addresses, facility and format when it starts (a bad one stops
# it), sizes, counts and switches when it starts a container (a bad one fails every start).
_HOST_PORT = r"(\[[0-9a-fA-F:.]+\]|[^:/\[\]]+)"
_FACILITIES = ("kern user mail daemon auth syslog lpr news uucp cron authpriv ftp "
               "local0 local1 local2 local3 local4 local5 local6 local7").split()
VALUE_RULES = {
    "max-size": (r"^(?=.*[1-9])[0-9]+(\.[0-9]+)? ?[kKmMgGtTpP]?[iI]?[bB]?$", "a size above 0 such as 10m"),
    "max-file": (r"^[1-9][0-9]*$", "a whole number of 1 or more"),
    "compress": (r"^(1|t|T|TRUE|true|True|0|f|F|FALSE|false|False)$", "true or false"),
    "mode": (r"^(blocking|non-blocking)$", "blocking or non-blocking"),
    "syslog-address": (r"^$|^(udp|tcp|tcp\+tls)://%s(:[0-9]+)?$|^(unix|unixgram)://(/.+)$" % _HOST_PORT,
                       "proto://address (udp, tcp, tcp+tls, unix, unixgram)"),
    "syslog-facility": (r"^$|^(%s|[0-9]|1[0-9]|2[0-3])$" % "|".join(_FACILITIES),
                        "a syslog facility (daemon, local0 ... local7) or 0-23"),
    "syslog-format": (r"^$|^(rfc5424|rfc5424micro|rfc3164)$", "rfc5424, rfc5424micro or rfc3164"),
    "gelf-address": (r"^(udp|tcp)://%s:[0-9]+$" % _HOST_PORT, "udp://host:port or tcp://host:port"),
    "fluentd-address": (r"^$|^(tcp://)?%s(:[0-9]+)?$|^unix:///.+$" % _HOST_PORT,
                        "host:port, tcp://host:port or unix:///path"),
}
# Options dockerd will not start without.
REQUIRED_LOG_OPTS = {"gelf": ("gelf-address",)}
DOCKERD_CANDIDATES = ("/usr/bin/dockerd", "/usr/sbin/dockerd", "/usr/local/bin/dockerd")
VALIDATE_TIMEOUT = 60


def log_opts_allowed(driver):
    """The ``log-opts`` keys ``driver`` takes (sorted), or ``None`` for an unknown driver."""
    if driver not in LOG_DRIVER_OPTS:
        return None
    return sorted(set(LOG_DRIVER_OPTS[driver]) | set(COMMON_LOG_OPTS))


def check_daemon_config(config, where="daemon.json"):
    """Check the log settings of a parsed daemon.json; return ``(driver, opts)``.

    Raises ``OpsError`` with one line naming the first problem: not a JSON object, a
    ``log-driver`` dockerd does not have built in, ``log-opts`` not an object, a key the
    driver does not take, a value that is not a string (dockerd wants ``"3"``, not ``3``).
    Raises ``OpsError`` naming as well a value not in the form dockerd parses
    (``VALUE_RULES``: sizes, counts, addresses, facility, format; a unix syslog socket must
    exist here) and an option the driver cannot go without (``REQUIRED_LOG_OPTS``).
    A missing ``log-driver`` is dockerd's default, json-file.
    """
    if not isinstance(config, dict):
        raise OpsError("%s must hold a JSON object" % where)
    driver = config.get("log-driver", DEFAULT_DRIVER)
    allowed = log_opts_allowed(driver) if isinstance(driver, str) else None
    if allowed is None:
        raise OpsError("%s: log-driver %r is not a built-in Docker log driver (%s); dockerd "
                       "would accept no container with it" % (
                           where, driver, ", ".join(sorted(LOG_DRIVER_OPTS))))
    opts = config.get("log-opts", {})
    if not isinstance(opts, dict):
        raise OpsError("%s: log-opts must be an object of strings, not %r" % (where, opts))
    for key in sorted(opts):
        if driver != "none" and key not in allowed:
            raise OpsError("%s: log-opts key %r is not an option of log-driver %s (%s takes %s, "
                           "and every driver mode, max-buffer-size, cache-*); dockerd would "
                           "refuse to start" % (where, key, driver, driver, ", ".join(
                               sorted(LOG_DRIVER_OPTS[driver])) or "nothing else"))
        _check_value(key, opts[key], where)
    for key in REQUIRED_LOG_OPTS.get(driver, ()):
        if key not in opts:
            raise OpsError("%s: log-driver %s needs log-opts %s; dockerd would refuse to start"
                           % (where, driver, key))
    return driver, dict(opts)


def _check_value(key, value, where):
    """Refuse a value dockerd cannot read: not a string, or (for sizes, counts, switches)
    not in the form it parses."""
    if not isinstance(value, str):
        text = str(value).lower() if isinstance(value, bool) else str(value)
        raise OpsError("%s: log-opts %s must be a string (\"%s\"), not %s; dockerd would "
                       "refuse to start" % (where, key, text, json.dumps(value)))
    rule = VALUE_RULES.get(key)
    if rule and not re.match(rule[0], value):
        raise OpsError("%s: log-opts %s=%r must be %s; dockerd would refuse it" % (
            where, key, value, rule[1]))
    socket = re.match(r"^unix(gram)?://(/.+)$", value) if key == "syslog-address" else None
    if socket and not os.path.exists(socket.group(2)):
        raise OpsError("%s: log-opts syslog-address %s: %s does not exist on this host; dockerd "
                       "would refuse to start" % (where, value, socket.group(2)))


def find_dockerd():
    """The path of the host's dockerd, or ``None`` when the engine is not installed here."""
    found = shutil.which("dockerd")
    if found:
        return found
    for candidate in DOCKERD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def dockerd_can_validate(dockerd):
    """Whether ``dockerd --help`` lists ``--validate`` (Docker 23 and later)."""
    result = run_command([dockerd, "--help"], timeout=VALIDATE_TIMEOUT)
    return "--validate" in (result.stdout or "") + (result.stderr or "")


def validate_daemon_file(path, dockerd=None):
    """Check the daemon.json at ``path`` as a whole; return what was checked.

    The log settings always (``check_daemon_config``); then, when the engine has it,
    ``dockerd --validate --config-file path``. Returns ``{"path", "log_driver",
    "log_opts", "dockerd", "dockerd_validate"}`` where ``dockerd_validate`` is ``"ok"``,
    ``"unsupported"`` (engine older than 23) or ``"no dockerd"``. Raises ``OpsError``
    (one line) for the first problem found.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except OSError as exc:
        raise OpsError("cannot read %s: %s" % (path, exc.strerror or exc))
    except ValueError as exc:
        raise OpsError("%s is not valid JSON: %s" % (path, exc))
    driver, opts = check_daemon_config(config, where=path)
    dockerd = dockerd or find_dockerd()
    verdict = "no dockerd"
    if dockerd:
        verdict = "unsupported"
        if dockerd_can_validate(dockerd):
            result = run_command([dockerd, "--validate", "--config-file", path],
                                 timeout=VALIDATE_TIMEOUT)
            if not result.ok:
                lines = ((result.stderr or "") + (result.stdout or "")).strip().splitlines()
                raise OpsError("%s: dockerd --validate refused it: %s" % (
                    path, lines[-1] if lines else "exit status %s" % result.rc))
            verdict = "ok"
    return {"path": path, "log_driver": driver, "log_opts": opts, "dockerd": dockerd,
            "dockerd_validate": verdict}
