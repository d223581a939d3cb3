# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host runtime settings in ``/etc/runbook-ops/runtime.json`` (written by role base).

``load_runtime`` returns a complete dict: every key the base role writes, with the
defaults below for whatever the file leaves out (or for a missing file, so the CLI
works before the role has run). Keys starting with ``_`` (comments) are ignored.
``RUNBOOK_OPS_STATE_DIR`` in the environment replaces ``state_dir``: the cron wrapper
sets it for its job when the state directory cannot be written (``jobs.py``).

The job-name and timeout rules live here, once: the CLI, runtime.json, the backup config
and every role (through ``validate.py`` and ``runbook.ops.validate_vars``) check with
``job_name_reason``/``job_name_problem`` and ``timeout_reason``/``timeout_problem``.
"""

from __future__ import annotations

import json
import os
import re
import socket

from .errors import OpsError

DEFAULT_RUNTIME_PATH = "/etc/runbook-ops/runtime.json"
DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
DEFAULT_TOKEN_FILE = "/etc/runbook-ops/telegram.token"
DEFAULT_COOLDOWN_SECONDS = 86400
STATE_DIR_ENV = "RUNBOOK_OPS_STATE_DIR"
# Locks live on tmpfs, writable when the root filesystem is read-only, in a directory only
# root can write (never /run/lock, which every user can): see private_dir.py.
DEFAULT_LOCK_DIR = "/run/runbook-ops/locks"
# Set by the cron wrapper for its command: the job whose lock the wrapper holds for it.
LOCKED_JOB_ENV = "RUNBOOK_OPS_LOCKED_JOB"

# A job name becomes /etc/cron.d/runbook-ops-NAME, /var/log/NAME.log, a lock and alert
# keys. No dot: Debian's cron silently ignores /etc/cron.d files whose names contain one.
# No leading '-': `--job -x` would read as an option.
JOB_NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,99}")
JOB_NAME_RULE = "letters, digits, '_' and '-' (not first), at most 100 characters"


def job_name_reason(name) -> str:
    """Why ``name`` is not a valid job name (``is not a valid job name: use ...``), or ``""``."""
    if isinstance(name, str) and JOB_NAME_PATTERN.fullmatch(name):
        return ""
    reason = "is not a valid job name: use %s" % JOB_NAME_RULE
    if isinstance(name, str) and "." in name:
        reason += " (no dot: Debian's cron silently ignores /etc/cron.d files with one)"
    return reason


def job_name_problem(name, where="job name") -> str:
    """One line saying why ``name`` is not a valid job name, or ``""`` when it is.

    ``where`` names the setting in the message (``backup_job_name``, ``--job``).
    """
    reason = job_name_reason(name)
    return "%s %r %s" % (where, name, reason) if reason else ""


# A timeout reaches `runbook-ops run --timeout S` on every cron line of every role.
TIMEOUT_RULE = "a number of seconds greater than 0"


def timeout_reason(value) -> str:
    """Why ``value`` is not a valid job timeout (``is not a valid timeout: use ...``), or ``""``.

    0 would mean "never stop the job, never judge it stuck", and a negative value would
    make every cron run fail before the job starts; both are refused.
    """
    try:
        seconds = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        seconds = float("nan")
    if 0 < seconds < float("inf"):
        return ""
    return "is not a valid timeout: use %s" % TIMEOUT_RULE


def timeout_problem(value, where="timeout") -> str:
    """One line saying why ``value`` is not a valid job timeout, or ``""`` when it is.

    ``where`` names the setting in the message (``--timeout``, ``backup_timeout_seconds``).
    """
    reason = timeout_reason(value)
    return "%s %r %s" % (where, value, reason) if reason else ""


def default_runtime() -> dict:
    """The settings used for anything runtime.json does not set."""
    return {
        "host_label": socket.gethostname().split(".")[0] or "localhost",
        "state_dir": "/var/lib/runbook-ops",
        "log_dir": "/var/log",
        "lock_dir": DEFAULT_LOCK_DIR,
        # State while state_dir cannot be written (lost at reboot, which is when a
        # read-only root usually comes back writable).
        "fallback_state_dir": "/run/runbook-ops",
        # node_exporter's textfile collector directory for the jobs' metrics ("": none).
        "textfile_dir": "",
        "alert": {
            "telegram_api_url": DEFAULT_TELEGRAM_API_URL,
            "telegram_chat_id": "",
            "telegram_token_file": DEFAULT_TOKEN_FILE,
            "cooldown_seconds": DEFAULT_COOLDOWN_SECONDS,
        },
        "jobs": {},
    }


def _fail(path, problem):
    raise OpsError("runtime config %s: %s; fix the file or re-run the runbook.ops.base role"
                   % (path, problem), path=str(path))


def _check_string(path, where, value, allow_empty=True):
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        _fail(path, "%s must be a %sstring, got %r" % (
            where, "" if allow_empty else "non-empty ", value))


def _check_url(path, where, value):
    _check_string(path, where, value, allow_empty=False)
    if not re.match(r"^https?://[^/\s]+", value):
        _fail(path, "%s must be an http:// or https:// URL" % where)


def merge_runtime(data, path="<runtime>") -> dict:
    """Check ``data`` (the parsed file) and return it merged over the defaults."""
    if not isinstance(data, dict):
        _fail(path, "top level must be a JSON object")
    runtime = default_runtime()
    for key, value in data.items():
        if key.startswith("_"):
            continue
        if key == "alert":
            if not isinstance(value, dict):
                _fail(path, "'alert' must be a JSON object")
            runtime["alert"].update({k: v for k, v in value.items() if not k.startswith("_")})
        elif key == "jobs":
            if not isinstance(value, dict):
                _fail(path, "'jobs' must be a JSON object of job name -> settings")
            runtime["jobs"] = value
        else:
            runtime[key] = value

    if os.environ.get(STATE_DIR_ENV):
        runtime["state_dir"] = os.environ[STATE_DIR_ENV]
    for key in ("host_label", "state_dir", "log_dir", "lock_dir", "fallback_state_dir"):
        _check_string(path, key, runtime[key], allow_empty=False)
    _check_string(path, "textfile_dir", runtime["textfile_dir"])
    if runtime["textfile_dir"] and not runtime["textfile_dir"].startswith("/"):
        _fail(path, "textfile_dir must be an absolute directory path or \"\" (no metrics), got %r"
              % (runtime["textfile_dir"],))
    alert = runtime["alert"]
    _check_url(path, "alert.telegram_api_url", alert["telegram_api_url"])
    if isinstance(alert["telegram_chat_id"], int) and not isinstance(alert["telegram_chat_id"], bool):
        alert["telegram_chat_id"] = str(alert["telegram_chat_id"])
    _check_string(path, "alert.telegram_chat_id", alert["telegram_chat_id"])
    _check_string(path, "alert.telegram_token_file", alert["telegram_token_file"], allow_empty=False)
    cooldown = alert["cooldown_seconds"]
    if isinstance(cooldown, bool) or not isinstance(cooldown, int) or cooldown < 0:
        _fail(path, "alert.cooldown_seconds must be a whole number >= 0, got %r" % (cooldown,))
    for name, settings in runtime["jobs"].items():
        problem = job_name_problem(name, "jobs key")
        if problem:
            _fail(path, problem)
        if not isinstance(settings, dict):
            _fail(path, "jobs.%s must be a JSON object" % name)
        ping_url = settings.get("ping_url")
        if ping_url not in (None, ""):
            _check_url(path, "jobs.%s.ping_url" % name, ping_url)
    return runtime


def load_runtime(path=DEFAULT_RUNTIME_PATH) -> dict:
    """Read, check and complete the runtime settings; defaults if the file is missing.

    A missing file is noted as ``runtime["missing"] = path`` (no chat id, so no alert can
    go out: the cron wrapper says so on stderr). Raises ``OpsError`` naming the file and
    the problem for bad JSON or bad values.
    """
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return dict(merge_runtime({}, path), missing=str(path))
    except OSError as exc:
        raise OpsError("cannot read runtime config %s: %s; check the path and its permissions"
                       % (path, exc.strerror or exc), path=str(path))
    try:
        data = json.loads(text)
    except ValueError as exc:
        _fail(path, "not valid JSON (%s)" % exc)
    return merge_runtime(data, path)


def job_settings(runtime, name) -> dict:
    """The settings of job ``name`` (``{}`` when runtime.json names none)."""
    return dict(runtime.get("jobs", {}).get(name) or {})
