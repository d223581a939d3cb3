# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups proven by restores: restic (default) or self-contained archives.

Control flow, as the CLI (``backup_cli.py``) drives it::

    load_config(path) -> config (validated plain dict)
    run_backup(config)        hooks -> restic backup -> size check -> forget --prune
    run_check(config)         restic check --read-data-subset
    check_freshness(config)   newest snapshot age from ``restic snapshots --json``
    plan_restore / run_restore  scratch directory, or in place (stop, move aside, restore,
                                start, health; ``restore_plan.py`` decides what moves aside)

Every subprocess goes through ``runner.run_command``. The repository password is
only ever passed as ``RESTIC_PASSWORD_FILE`` (a 0600 file) and the repository
location as ``RESTIC_REPOSITORY`` in the environment, never in argv, results or
messages (a rest-server or S3 URL can carry credentials).

Docker named volumes are backed up from the host: restic runs on the host and
reads the volume's ``Mountpoint`` from ``docker volume inspect``; each snapshot is
tagged ``volume:NAME`` so a restore can recreate the volume before putting the
files back at the same path.

Jobs sharing a repository stay apart: every snapshot carries ``runbook-ops`` and
``job:NAME``, and listing, retention, freshness, size checks and restores take only
this host's snapshots of this job (``job_snapshots``). Snapshots made before job tags
(``runbook-ops`` alone) belong to the job with ``legacy_snapshots`` (by default the
job named ``backup``). Retention is planned here (``retention.py``, restic's own rules)
and restic forgets exactly the chosen ids.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
import re
import shutil
import time

from . import env_file, restore_plan, timestamps
from .errors import OpsError
from .mounts import unescape_mount
from .restic_filter import invalid_patterns
from .retention import keeps_oldest, plan_retention, restic_version
from .runner import run_command
from .runtime import job_name_problem

SNAPSHOT_TAG = "runbook-ops"
JOB_TAG_PREFIX = "job:"
LEGACY_JOB = "backup"
VOLUME_TAG_PREFIX = "volume:"
MACHINE_TAG_PREFIX = "machine:"
# On the snapshots of the one job that adopts the legacy (job-tag-less) snapshots.
LEGACY_CLAIM_TAG = "legacy-owner"
RESTIC_INCOMPLETE_RC = 3
RESTIC_LOCKED_RC = 11
LOCK_RETRY_SECONDS = 10
DEFAULT_SCRATCH_ROOT = "/var/tmp/runbook-ops-restore"
FSTAB = "/etc/fstab"
# Retention never forgets a snapshot younger than this, nor the newest FLOOR_LAST of a job.
FLOOR_HOURS = 48
FLOOR_LAST = 2
# In a dump_dir: the job that owns it (two jobs emptying one directory lose each other's dumps).
DUMP_OWNER_FILE = ".runbook-ops-dump-owner"

_DEFAULTS = {
    "engine": "restic",
    "job": "backup",
    "host_label": "",
    "repository": "",
    "password_file": None,
    "env_file": "",
    "legacy_snapshots": None,
    "restic_bin": "restic",
    "paths": [],
    "volumes": [],
    "compose": {},
    "excludes": [],
    "hooks": [],
    "dump_dir": "",
    "retention": {"keep_daily": 30, "keep_weekly": 0, "keep_monthly": 0},
    "check_read_data_subset": "5%",
    "freshness_max_age_hours": 25,
    "size_drop_percent": 50,
    "backup_timeout_seconds": 6 * 3600,
    "lock_wait_seconds": 1800,
    "archive": {},
}

_ARCHIVE_DEFAULTS = {
    "dir": "/var/backups/runbook-ops",
    "compression": "zstd",
    "gpg_recipient_file": "",
    "retention_days": 30,
    "min_size_bytes": 1024,
}


# --------------------------------------------------------------------------- config

def load_config(path):
    """Read and validate the job config at ``path``; return the completed dict (``OpsError``
    when the file is missing, not JSON, or a value is wrong)."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except OSError as exc:
        raise OpsError("cannot read backup config %s (%s); run the runbook.ops.backup role"
                       % (path, exc.strerror))
    except ValueError as exc:
        raise OpsError("backup config %s is not valid JSON (%s)" % (path, exc))
    return validate_config(raw)


def validate_config(raw):
    """Fill defaults into ``raw`` and check every value; return the new dict."""
    if not isinstance(raw, dict):
        raise OpsError("backup config must be a JSON object")
    raw = {key: value for key, value in raw.items() if not key.startswith("_")}
    unknown = sorted(set(raw) - set(_DEFAULTS))
    if unknown:
        raise OpsError("unknown backup config keys: %s" % ", ".join(unknown))
    config = json.loads(json.dumps(_DEFAULTS))
    config.update(json.loads(json.dumps(raw)))
    for key in ("retention", "archive"):
        if not isinstance(config[key] or {}, dict):
            raise OpsError("%s must be a JSON object of settings, not %r" % (key, config[key]))
    retention = config["retention"] = dict(_DEFAULTS["retention"], **(config["retention"] or {}))
    archive = config["archive"] = dict(_ARCHIVE_DEFAULTS, **(config["archive"] or {}))

    if config["engine"] not in ("restic", "archive"):
        raise OpsError("engine must be 'restic' or 'archive', not %r" % config["engine"])
    if job_name_problem(config["job"], "job"):  # the one rule of runbook-ops run --job
        raise OpsError(job_name_problem(config["job"], "job"))
    if config["password_file"] is None:
        config["password_file"] = "/etc/runbook-ops/%s.password" % config["job"]
    if config["legacy_snapshots"] is None:
        config["legacy_snapshots"] = config["job"] == LEGACY_JOB
    if not isinstance(config["legacy_snapshots"], bool):
        raise OpsError("legacy_snapshots must be true or false")
    if config["engine"] == "restic":
        if not config["repository"]:
            raise OpsError("repository is empty; set backup_repository")
        if not config["password_file"]:
            raise OpsError("password_file is empty; set backup_password")
    for key in ("paths", "volumes", "excludes", "hooks"):
        if not isinstance(config[key], list):
            raise OpsError("%s must be a list" % key)
    for path in config["paths"]:
        if not isinstance(path, str) or not path.startswith("/"):
            raise OpsError("backup path %r must be absolute" % (path,))
    if not all(isinstance(pattern, str) for pattern in config["excludes"]):
        raise OpsError("excludes must be a list of restic --exclude patterns (strings)")
    bad = invalid_patterns(config["excludes"])
    if bad:
        raise OpsError("backup_excludes pattern %r is not a valid restic pattern (check its "
                       "[ ] brackets and backslashes)" % bad[0])
    for name in config["volumes"]:
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
            raise OpsError("volume name %r is not a Docker volume name" % (name,))
    for hook in config["hooks"]:
        if not isinstance(hook, dict) or not hook.get("name") or not hook.get("command"):
            raise OpsError("each hook needs a name and a command")
        if not isinstance(hook["command"], (str, list)):
            raise OpsError("hook %s: command must be a string or a list" % hook["name"])
        if not isinstance(hook.get("dump", True), bool):
            raise OpsError("hook %s: dump must be true or false" % hook["name"])
    compose = config["compose"] or {}
    if not isinstance(compose, dict):
        raise OpsError("compose must be an object")
    if compose and not str(compose.get("project_dir", "")).startswith("/"):
        raise OpsError("compose.project_dir must be an absolute path")
    for key in ("keep_daily", "keep_weekly", "keep_monthly"):
        value = retention[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise OpsError("retention.%s must be a whole number >= 0" % key)
    if not _valid_subset(config["check_read_data_subset"]):
        raise OpsError("check_read_data_subset must look like '5%', '1/10' or '500M'")
    for key in ("freshness_max_age_hours", "size_drop_percent", "backup_timeout_seconds",
                "lock_wait_seconds"):
        if not isinstance(config[key], (int, float)) or config[key] <= 0:
            raise OpsError("%s must be a positive number" % key)
    if archive["compression"] not in ("zstd", "gzip"):
        raise OpsError("archive.compression must be 'zstd' or 'gzip'")
    if config["engine"] == "archive" and not str(archive["dir"]).startswith("/"):
        raise OpsError("archive.dir must be an absolute path")
    if int(archive["retention_days"]) < 1:
        raise OpsError("archive.retention_days must be at least 1")
    if not (config["paths"] or config["volumes"] or compose or config["hooks"]):
        raise OpsError("nothing to back up: set backup_paths, backup_volumes, "
                       "backup_compose_project_dir or backup_hooks")
    return config


def _valid_subset(value):
    return bool(re.match(r"^(\d+(\.\d+)?%|\d+/\d+|\d+[KMGT]?)$", str(value)))


# --------------------------------------------------------------------------- restic basics

def restic_env(config):
    """The environment restic needs: repository and password file, plus the lines of
    ``env_file`` (0600, ``KEY=VALUE`` lines: S3/B2/rest-server credentials)."""
    env = {
        "RESTIC_REPOSITORY": config["repository"],
        "RESTIC_PASSWORD_FILE": config["password_file"],
    }
    if config.get("env_file"):
        env.update(read_env_file(config["env_file"]))
    return env


def read_env_file(path):
    """The ``env_file`` values (secrets), read as Docker Compose reads an env file; the role
    writes each line with ``runbook.ops.env_line``, so every value arrives as written. A last
    line without ``=`` (an empty key to compose-go) is left out: no environment holds one."""
    values = env_file.read_env_file(path, what="restic env file")
    return {key: value for key, value in values.items() if key}


def restic_argv(config, *args):
    """``[restic_bin, *args]``; the repository and password stay in the environment."""
    return [config["restic_bin"]] + [str(arg) for arg in args]


def _restic(config, *args, timeout=None):
    if not os.path.isfile(config["password_file"]):
        raise OpsError("password file %s is missing; run the runbook.ops.backup role"
                       % config["password_file"])
    return run_command(restic_argv(config, *args), env=restic_env(config), timeout=timeout)


def is_lock_failure(result):
    """Whether restic failed because another process holds the repository lock (restic
    0.14-0.16 exit 1 with "repository is already locked", 0.17+ exit 11)."""
    text = (result.stderr or "") + (result.stdout or "")
    return not result.ok and not result.timed_out and (
        result.rc == RESTIC_LOCKED_RC or "repository is already locked" in text
        or "unable to create lock" in text)


def _restic_locked(config, *args, timeout=None, sleep=time.sleep):
    """``_restic``, tried again while another process holds the repository lock, for at
    most ``lock_wait_seconds`` (then the lock failure is the result)."""
    deadline = time.monotonic() + config["lock_wait_seconds"]
    while True:
        result = _restic(config, *args, timeout=timeout)
        if not is_lock_failure(result) or time.monotonic() >= deadline:
            return result
        sleep(max(0.0, min(LOCK_RETRY_SECONDS, deadline - time.monotonic())))


def _fail_text(result):
    """Last lines of a failed command's output, with nothing secret in them."""
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    if result.timed_out:
        return "timed out"
    return " | ".join(lines[-3:]) if lines else "exit status %d" % result.rc


def _checked(result, what):
    """``result`` of a command that succeeded; else ``OpsError`` "``what`` failed: ..."."""
    if not result.ok:
        raise OpsError("%s failed: %s" % (what, _fail_text(result)))
    return result


def repository_id(config):
    """The repository's id (``restic cat config``); ``None`` when there is no repository
    at the location. Raises ``OpsError`` when it cannot be opened for another reason."""
    probe = _restic_locked(config, "cat", "config", timeout=300)
    if probe.ok:
        try:
            return json.loads(probe.stdout)["id"]
        except (ValueError, KeyError, TypeError):
            raise OpsError("restic cat config did not return the repository config")
    if is_lock_failure(probe):
        raise OpsError("the restic repository stayed locked by another process for %s s "
                       "(lock_wait_seconds): %s; nothing was done"
                       % (config["lock_wait_seconds"], _fail_text(probe)))
    text = probe.stderr or ""
    if "Is there a repository" not in text and "does not exist" not in text \
            and "no such file" not in text.lower():
        raise OpsError("cannot open the restic repository: %s; check backup_repository, "
                       "the password and the credentials" % _fail_text(probe))
    return None


def ensure_repository(config, dry_run=False):
    """Initialise the repository when it does not exist (provisioning only, never a
    backup run); return ``'exists'``/``'created'``/``'would-create'``."""
    if repository_id(config) is not None:
        return "exists"
    if dry_run:
        return "would-create"
    _checked(_restic(config, "init", timeout=300), "restic init")
    return "created"


def repository_record(state_dir, job):
    """Where the id of job ``job``'s repository is recorded."""
    return os.path.join(state_dir, "backup", job + ".repository.json")


def check_repository(config, state_dir=None, record=True):
    """The repository as a backup run needs it: existing (a run never initialises one: an
    unmounted disk would get a new, empty repository), and, with ``state_dir``, the same
    one as recorded there for this location before (recorded on first sight, and again
    when backup_repository is changed on purpose). Returns the id."""
    found = repository_id(config)
    if found is None:
        raise OpsError("no restic repository at backup_repository (is its disk mounted? is "
                       "the location right?); a backup run never creates one: run "
                       "`runbook-ops backup init --config FILE` (the backup role does) once")
    if not state_dir:
        return found
    from .hostkey import fingerprint, host_key
    location = fingerprint(host_key(state_dir, create=record)[0], config["repository"])
    path = repository_record(state_dir, config["job"])
    try:
        with open(path, encoding="utf-8") as handle:
            known = json.load(handle)
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict) or known.get("location") != location:
        known = {}
    if known.get("id") and known["id"] != found:
        raise OpsError("the repository at backup_repository is another one than this job "
                       "backed up to (id %s, recorded in %s, now %s): a disk swapped or not "
                       "mounted, or a new repository; nothing was backed up. If the change is "
                       "intended, delete %s" % (known["id"][:8], path, found[:8], path))
    if not known and record:
        save_record(path, {"location": location, "id": found})
    return found


def save_record(path, content, dir_mode=0o700):
    """Write a record of the state directory (the repository's id, the newest snapshot's
    size), best effort: a full disk only means the next run records it."""
    from .state import write_json_atomic
    try:
        os.makedirs(os.path.dirname(path), mode=dir_mode, exist_ok=True)
        write_json_atomic(path, content)
    except OSError:
        pass


def parse_restic_time(text):
    """RFC 3339 with nanoseconds (``2026-01-01T03:00:00.123456789Z``) -> aware datetime,
    with the UTC offset restic recorded: retention buckets days by it."""
    parsed = timestamps.parse(text)
    if parsed is None:
        raise OpsError("unexpected snapshot time %r from restic" % text)
    return parsed[0]


def parse_snapshots(stdout):
    """``restic snapshots --json`` output -> list of snapshots, oldest first, each ``{"id",
    "short_id", "time" (aware datetime), "time_ns" (the nanoseconds below the microsecond,
    for order), "paths", "tags", "hostname"}``."""
    try:
        data = json.loads(stdout or "[]") or []
    except ValueError:
        raise OpsError("restic snapshots --json did not return JSON")
    snapshots = [{
        "id": item["id"],
        "short_id": item.get("short_id", item["id"][:8]),
        "time": parse_restic_time(item["time"]),
        "time_ns": timestamps.epoch_ns(item["time"]) % 1000,
        "paths": list(item.get("paths") or []),
        "tags": list(item.get("tags") or []),
        "hostname": item.get("hostname", ""),
    } for item in data]
    return sorted(snapshots, key=lambda snap: (snap["time"], snap["time_ns"]))


def machine_tag(state_dir, machine_id_file="/etc/machine-id"):
    """``machine:<keyed fingerprint of the machine id>``: tells two hosts apart that share a
    host label and a repository (keyed: the machine id is never in the repository).
    ``None`` when the machine id cannot be read."""
    from .hostkey import fingerprint, host_key, key_path, read_key
    try:
        with open(machine_id_file, encoding="utf-8") as handle:
            machine_id = handle.read().strip()
    except OSError:
        return None
    if not machine_id:
        return None
    key, _warnings = host_key(state_dir)
    try:
        kept = read_key(key_path(state_dir), may_change=False)[0]
    except (OSError, OpsError):
        kept = None
    if kept != key:
        return None  # a throw-away key (state dir read-only): a tag no later run would know
    return MACHINE_TAG_PREFIX + fingerprint(key, "machine-id:" + machine_id)


def job_tag(config):
    """``job:NAME``: the tag that tells this job's snapshots from other jobs'."""
    return JOB_TAG_PREFIX + config["job"]


def belongs_to_job(snapshot, config):
    """This job's snapshot: its job tag, or no job tag at all when the job adopts legacy ones."""
    tags = snapshot["tags"]
    if SNAPSHOT_TAG not in tags:
        return False
    if job_tag(config) in tags:
        return True
    return config["legacy_snapshots"] and not any(tag.startswith(JOB_TAG_PREFIX) for tag in tags)


def job_snapshots(snapshots, config, other_machines=False):
    """The snapshots of ``snapshots`` (parsed) this host's job owns, oldest first: its host
    label, its job, and no other machine's tag (``machine_tag``; snapshots from before
    machine tags count as this machine's). ``other_machines``: those with another
    machine's tag instead (a host label two hosts share)."""
    mine = config.get("machine_tag")
    found = []
    for snap in snapshots:
        if snap["hostname"] != config["host_label"] or not belongs_to_job(snap, config):
            continue
        machine = next((tag for tag in snap["tags"] if tag.startswith(MACHINE_TAG_PREFIX)), None)
        foreign = bool(mine and machine and machine != mine)
        if foreign == other_machines:
            found.append(snap)
    return found


def _refuse_double_legacy_claim(snapshots, config):
    """Two jobs of one host that both adopt the legacy (untagged) snapshots would both
    apply retention to them: refuse until one sets legacy_snapshots false."""
    if not config["legacy_snapshots"]:
        return
    others = sorted({tag for snap in snapshots if LEGACY_CLAIM_TAG in snap["tags"]
                     and snap["hostname"] == config["host_label"]
                     for tag in snap["tags"] if tag.startswith(JOB_TAG_PREFIX)} - {job_tag(config)})
    if others:
        raise OpsError("job %s and job %s both adopt the snapshots made before job tags "
                       "(legacy_snapshots); set backup_legacy_snapshots false for all but one; "
                       "nothing was done" % (config["job"], others[0][len(JOB_TAG_PREFIX):]))


def _list_host_snapshots(config):
    result = _checked(_restic(config, "snapshots", "--json", "--host", config["host_label"],
                              "--tag", SNAPSHOT_TAG, timeout=600), "restic snapshots")
    snapshots = parse_snapshots(result.stdout)
    _refuse_double_legacy_claim(snapshots, config)
    return snapshots


def list_snapshots(config):
    """This host's snapshots of this job, oldest first (``job_snapshots``)."""
    return job_snapshots(_list_host_snapshots(config), config)


def snapshot_size(config, snapshot_id):
    """Restore size in bytes of one snapshot (``restic stats --mode restore-size``)."""
    result = _checked(_restic(config, "stats", "--mode", "restore-size", "--json", snapshot_id,
                              timeout=1800), "restic stats")
    return int(json.loads(result.stdout)["total_size"])


# --------------------------------------------------------------------------- sources and hooks

def volume_mountpoint(name):
    """The host directory behind Docker named volume ``name`` (``docker volume inspect``)."""
    result = run_command(["docker", "volume", "inspect", "--format", "{{json .}}", name],
                         timeout=60)
    if not result.ok:
        raise OpsError("docker volume %s not found (%s); check backup_volumes"
                       % (name, _fail_text(result)))
    return parse_volume_inspect(result.stdout)


def parse_volume_inspect(stdout):
    """``docker volume inspect --format '{{json .}}'`` output -> Mountpoint."""
    try:
        data = json.loads(stdout)
    except ValueError:
        raise OpsError("docker volume inspect did not return JSON")
    if isinstance(data, list):
        data = data[0] if data else {}
    mountpoint = data.get("Mountpoint")
    if not mountpoint:
        raise OpsError("volume %s has no local Mountpoint (driver %s); only local volumes "
                       "can be backed up from the host" % (data.get("Name"), data.get("Driver")))
    return mountpoint


def compose_files(config):
    """The compose project's files to back up: ``.env`` and the compose files that exist
    (``plan_sources`` drops a name given twice)."""
    compose = config["compose"] or {}
    if not compose:
        return []
    names = compose.get("files") or ["compose.yaml", "compose.yml", "docker-compose.yml",
                                     "docker-compose.yaml"]
    paths = [os.path.join(compose["project_dir"], name)  # an absolute name stays as it is
             for name in list(names) + [compose.get("env_file", ".env")]]
    return [path for path in paths if os.path.isfile(path)]


def plan_sources(config, mountpoint_of=volume_mountpoint, fstab=FSTAB):
    """What a backup reads: ``{"paths": [...], "tags": [...], "volumes": {name: dir}}``.
    Missing paths raise ``OpsError``: restic 0.14 only warns about them and would make a
    snapshot that silently lacks the data."""
    paths = []
    missing = []
    for path in config["paths"]:
        path = os.path.abspath(path)
        if not os.path.lexists(path):
            missing.append(path)
        elif path not in paths:
            paths.append(path)
    if missing:
        raise OpsError("backup source(s) missing: %s; fix backup_paths or create them"
                       % ", ".join(missing))
    unmounted = unmounted_sources(paths, fstab)
    if unmounted:
        raise OpsError("the filesystem of backup source %s is not mounted (%s is a mount point "
                       "in %s): the backup would hold an empty directory; mount it first"
                       % (unmounted[0][0], unmounted[0][1], fstab))
    volumes = {}
    tags = [SNAPSHOT_TAG, job_tag(config)]
    if config.get("machine_tag"):
        tags.append(config["machine_tag"])
    if config["legacy_snapshots"]:
        tags.append(LEGACY_CLAIM_TAG)
    for name in config["volumes"]:
        mountpoint = mountpoint_of(name)
        volumes[name] = mountpoint
        paths.append(mountpoint)
        tags.append(VOLUME_TAG_PREFIX + name)
    for path in compose_files(config):
        if path not in paths:
            paths.append(path)
    if config["dump_dir"] and config["hooks"] and config["dump_dir"] not in paths:
        paths.append(os.path.abspath(config["dump_dir"]))
    return {"paths": paths, "tags": tags, "volumes": volumes}


def fstab_mount_points(fstab=FSTAB):
    """The mount points ``fstab`` lists (not swap, not ``/``); empty when unreadable."""
    points = []
    for line in restore_plan.mount_table(fstab):
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 3 and fields[1].startswith("/") and fields[1] != "/" \
                and fields[2] != "swap":
            points.append(os.path.normpath(unescape_mount(fields[1])))
    return points


def unmounted_sources(paths, fstab=FSTAB, mounts=None):
    """``[(path, mount point)]`` for each of ``paths`` at or below a mount point of
    ``fstab`` that is not mounted now (its disk missing: the directory below is empty)."""
    mounts = restore_plan.mount_points() if mounts is None else mounts
    missing = [point for point in fstab_mount_points(fstab) if point not in mounts]
    found = []
    for path in paths:
        real = os.path.realpath(path)
        for point in missing:
            if real == point or real.startswith(point + "/"):
                found.append((path, point))
                break
    return found


def run_hooks(config, dry_run=False):
    """Run the pre-backup hooks in order; return a result per hook.

    A string command runs under ``bash -o pipefail -c`` (so ``pg_dump | gzip > f``
    fails when pg_dump fails) in the hook's ``cwd``. The first failure raises
    ``OpsError``: a backup without its dump is not a backup. ``dump_dir`` is the job's
    own (``claim_dump_dir``) and is emptied first so yesterday's dump is never mistaken
    for today's; dump hooks (all but ``dump: false``) that leave no dump, or an empty
    file, fail the job (``check_dumps``).
    """
    results = []
    if config["dump_dir"] and config["hooks"] and not dry_run:
        claim_dump_dir(config)
        for entry in os.listdir(config["dump_dir"]):
            if entry == DUMP_OWNER_FILE:
                continue
            target = os.path.join(config["dump_dir"], entry)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            else:
                os.unlink(target)
    for hook in config["hooks"]:
        command = hook["command"]
        argv = ["bash", "-o", "pipefail", "-c", command] if isinstance(command, str) \
            else list(command)
        if dry_run:
            results.append({"name": hook["name"], "rc": None, "seconds": 0.0})
            continue
        env = {"RUNBOOK_OPS_DUMP_DIR": config["dump_dir"]} if config["dump_dir"] else None
        result = run_command(argv, cwd=hook.get("cwd") or None, env=env,
                             timeout=hook.get("timeout_seconds") or 3600)
        results.append({"name": hook["name"], "rc": result.rc,
                        "seconds": round(result.seconds, 1)})
        if not result.ok:
            raise OpsError("backup hook %s failed (%s); the backup was not made"
                           % (hook["name"], _fail_text(result)), hooks=results)
    if config["dump_dir"] and not dry_run and any(
            hook.get("dump", True) for hook in config["hooks"]):
        check_dumps(config["dump_dir"], results)
    return results


def _dump_owner(directory):
    try:
        with open(os.path.join(directory, DUMP_OWNER_FILE), encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


def claim_dump_dir(config):
    """Make ``dump_dir`` this job's, or refuse before anything in it is deleted: another
    job owns it, a directory above it or one below it (emptying one job's dump dir must
    never delete another job's dump)."""
    directory = os.path.abspath(config["dump_dir"])
    job = config["job"]
    problem = None
    parent = os.path.dirname(directory)
    while not problem and parent != os.path.dirname(parent):
        owner = _dump_owner(parent)
        if owner and owner != job:
            problem = "%s, above it, is the dump_dir of job %s" % (parent, owner)
        parent = os.path.dirname(parent)
    owner = _dump_owner(directory)
    if owner and owner != job:
        problem = "it is the dump_dir of job %s" % owner
    if not problem and os.path.isdir(directory):
        for current, dirs, files in os.walk(directory):
            below = _dump_owner(current) if DUMP_OWNER_FILE in files else None
            if current != directory and below and below != job:
                problem = "%s, below it, is the dump_dir of job %s" % (current, below)
                break
    mounted = sorted(point for point in restore_plan.mount_points()
                     if point.startswith(os.path.realpath(directory) + "/"))
    if not problem and mounted:
        raise OpsError("backup_dump_dir %s of job %s has a filesystem mounted below it (%s): "
                       "emptying it would delete files on that filesystem; unmount it or pick "
                       "another dump_dir; nothing was deleted" % (directory, job, mounted[0]))
    if problem:
        raise OpsError("backup_dump_dir %s of job %s is shared: %s; give every job a "
                       "dump_dir of its own (the default is per job); nothing was deleted "
                       "or backed up" % (directory, job, problem))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if owner != job:
        try:
            fd = os.open(os.path.join(directory, DUMP_OWNER_FILE),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            fd = None  # another job claimed it this very moment: judged below
        if fd is not None:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(job + "\n")
        deadline = time.monotonic() + 5
        while not _dump_owner(directory) and time.monotonic() < deadline:
            time.sleep(0.01)  # the other claimant is writing its name
        if _dump_owner(directory) != job:
            raise OpsError("backup_dump_dir %s of job %s is shared: job %s claimed it; give "
                           "every job a dump_dir of its own; nothing was deleted or backed up"
                           % (directory, job, _dump_owner(directory)))


def check_dumps(directory, hooks):
    """Fail the job when the hooks left no dump in ``directory`` or an empty file (a
    dump that wrote nothing is a failed dump, never a backup)."""
    found, empty = 0, []
    for current, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(current, name)
            if name == DUMP_OWNER_FILE and current == directory:
                continue
            found += 1
            if os.path.isfile(path) and os.path.getsize(path) == 0:
                empty.append(path)
    if not found:
        raise OpsError("the backup hooks wrote no dump into %s (RUNBOOK_OPS_DUMP_DIR); the "
                       "backup was not made" % directory, hooks=hooks)
    if empty:
        raise OpsError("the backup hooks wrote an empty dump (%s); the backup was not made"
                       % ", ".join(empty[:5]), hooks=hooks)


# --------------------------------------------------------------------------- backup

def backup_argv(config, sources, when=None):
    """argv for ``restic backup`` (``when``: forged snapshot time, ``YYYY-MM-DD HH:MM:SS``)."""
    argv = ["backup", "--json", "--host", config["host_label"]]
    for tag in sources["tags"]:
        argv += ["--tag", tag]
    for pattern in list(config["excludes"]) + [restore_plan.QUARANTINE_DIR]:
        argv += ["--exclude", pattern]
    if when:
        argv += ["--time", when]
    return argv + list(sources["paths"])


def parse_backup_summary(stdout):
    """The ``summary`` message of ``restic backup --json`` (or ``{}``)."""
    for line in reversed((stdout or "").splitlines()):
        line = line.strip()
        if line.startswith("{") and '"summary"' in line:
            try:
                return json.loads(line)
            except ValueError:
                break
    return {}


def retention_policy(config):
    """The job's policy for ``retention.plan_retention``: always ``last: 1`` (the newest stays)."""
    retention = config["retention"]
    return {"last": 1, "daily": retention["keep_daily"], "weekly": retention["keep_weekly"],
            "monthly": retention["keep_monthly"]}


def forget_argv(snapshot_ids):
    """argv that forgets exactly ``snapshot_ids`` and prunes their data."""
    return ["forget", "--prune"] + list(snapshot_ids)


@functools.lru_cache(maxsize=None)
def _restic_version_text(binary):
    return run_command([binary, "version"], timeout=60).stdout


def size_drop(previous_bytes, current_bytes, drop_percent):
    """``None`` when fine, else a dict saying how much smaller the new snapshot is."""
    if not previous_bytes or current_bytes is None:
        return None
    limit = previous_bytes * (1 - drop_percent / 100.0)
    if current_bytes >= limit:
        return None
    return {"previous_bytes": previous_bytes, "current_bytes": current_bytes,
            "drop_percent": round(100.0 * (previous_bytes - current_bytes) / previous_bytes, 1)}


def run_backup(config, when=None, dry_run=False, mountpoint_of=volume_mountpoint,
               state_dir=None):
    """Hooks, backup, size comparison, retention; returns a result dict. ``result["ok"]`` is
    False when the backup failed; then nothing was pruned. ``result["size_drop"]`` is set when
    the snapshot is far smaller than the previous one. Raises ``OpsError`` for bad config
    and failed hooks."""
    if config["engine"] == "archive":
        return run_archive(config, dry_run=dry_run, mountpoint_of=mountpoint_of)
    sources = plan_sources(config, mountpoint_of=mountpoint_of)
    result = {"engine": "restic", "ok": False, "paths": sources["paths"], "tags": sources["tags"],
              "dry_run": dry_run, "repository": "exists",
              "repository_id": check_repository(config, state_dir, record=not dry_run)[:8]}
    if config["legacy_snapshots"]:
        _list_host_snapshots(config)  # refuses a second job adopting them, before the hooks
    result["hooks"] = run_hooks(config, dry_run=dry_run)
    if dry_run:
        result["ok"] = True
        result["plan"] = [restic_argv(config, *backup_argv(config, sources, when)),
                          restic_argv(config, *forget_argv(["<ids the retention plan picks>"]))]
        return result
    _restic(config, "unlock", timeout=300)
    backup = _restic_locked(config, *backup_argv(config, sources, when),
                            timeout=config["backup_timeout_seconds"])
    summary = result["summary"] = parse_backup_summary(backup.stdout)
    result["seconds"] = round(backup.seconds, 1)
    if not backup.ok:
        reason = _fail_text(backup)
        if backup.rc == RESTIC_INCOMPLETE_RC:
            reason = "some files could not be read, the snapshot is incomplete (%s)" % reason
        result["error"] = "restic backup failed: %s" % reason
        return result
    result["ok"] = True
    result["snapshot_id"] = summary.get("snapshot_id", "")
    host_snapshots = _list_host_snapshots(config)
    snapshots = job_snapshots(host_snapshots, config)
    result["other_machines"] = len(job_snapshots(host_snapshots, config, other_machines=True))
    result["size_drop"] = None
    newest = select_snapshot(snapshots, result["snapshot_id"]) if result["snapshot_id"] else None
    if newest is None:
        result["forget"] = {"skipped": "the new snapshot %s is not among the job's snapshots; "
                                       "nothing was forgotten" % (result["snapshot_id"] or "?")}
        return result
    others = [snap for snap in snapshots if snap["id"] != newest["id"]]
    result["size_bytes"] = snapshot_size(config, newest["id"])
    if state_dir:
        remember_snapshot_size(state_dir, config["job"], newest["id"], result["size_bytes"])
    if others:
        previous = snapshot_size(config, others[-1]["id"])
        result["size_drop"] = size_drop(previous, result["size_bytes"], config["size_drop_percent"])
    if result["size_drop"]:
        result["forget"] = {"skipped": "the new snapshot is %.0f%% smaller than the previous "
                                       "one; nothing was forgotten"
                                       % result["size_drop"]["drop_percent"]}
        return result
    try:
        result["forget"] = run_forget(config, snapshots, result["size_bytes"])
    except OpsError as exc:
        result["forget"] = {"error": exc.message}
    if result["forget"].get("larger"):
        result["size_drop"] = result["forget"]["larger"]
    return result


def retention_floor(now=None):
    """What retention never forgets, whatever the policy: snapshots younger than
    ``FLOOR_HOURS`` and the newest ``FLOOR_LAST`` of the job."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return {"newer_than": now - datetime.timedelta(hours=FLOOR_HOURS), "last": FLOOR_LAST}


def run_forget(config, snapshots, current_bytes):
    """Apply retention to this job's snapshots only. Call only after a successful backup.

    The snapshots to forget are chosen by ``plan_retention`` (restic's rules, restic's
    version, and ``retention_floor``) over ``snapshots`` (the job's, ``job_snapshots``)
    and passed to ``restic forget --prune`` by id, so a snapshot of another job, host or
    tool is never in reach. Returns ``{"kept", "removed"}``; raises ``OpsError`` when
    restic fails.
    """
    plan = plan_retention(snapshots, retention_policy(config), floor=retention_floor(),
                          keep_oldest=keeps_oldest(_restic_version_text(config["restic_bin"])))
    owned = {snap["id"] for snap in snapshots}
    if not set(plan["remove"]) <= owned or (snapshots and snapshots[-1]["id"] not in plan["keep"]):
        raise OpsError("retention plan would remove a snapshot it does not own or the newest; "
                       "nothing was forgotten")
    for snapshot_id in plan["remove"]:
        drop = size_drop(snapshot_size(config, snapshot_id), current_bytes,
                         config["size_drop_percent"])
        if drop:  # the data went missing runs ago: this may be the last good snapshot
            return {"skipped": "snapshot %s, due to be forgotten, is %.0f%% larger than "
                               "the new one; nothing was forgotten"
                               % (snapshot_id[:8], drop["drop_percent"]),
                    "larger": dict(drop, compared_with=snapshot_id[:8])}
    if plan["remove"]:
        _checked(_restic_locked(config, *forget_argv(plan["remove"]), timeout=6 * 3600),
                 "restic forget --prune")
    return {"kept": plan["keep"], "removed": plan["remove"]}


def run_check(config):
    """``restic check --read-data-subset`` (archive engine: ``verify_archive`` of the newest
    file); ``{"ok", "subset", "error"?}``."""
    if config["engine"] == "archive":
        archives = list_archives(config)
        if not archives:
            return {"ok": False, "error": "no archive files in %s" % config["archive"]["dir"]}
        return verify_archive(config, archives[-1])
    subset = str(config["check_read_data_subset"])
    _restic(config, "unlock", timeout=300)
    check = _restic(config, "check", "--read-data-subset", subset, timeout=12 * 3600)
    result = {"ok": check.ok, "subset": subset, "seconds": round(check.seconds, 1)}
    if not check.ok:
        result["error"] = "restic check failed: %s" % _fail_text(check)
    return result


def freshness(snapshot_times, max_age_hours, now=None):
    """Judge the newest of ``snapshot_times`` (aware datetimes): ``{"ok", "newest",
    "age_hours", "max_age_hours"}``; no snapshot is not ok."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if not snapshot_times:
        return {"ok": False, "newest": None, "age_hours": None, "max_age_hours": max_age_hours}
    newest = max(snapshot_times)
    age = (now - newest).total_seconds() / 3600.0
    return {"ok": age <= max_age_hours, "newest": newest.isoformat(),
            "age_hours": round(age, 1), "max_age_hours": max_age_hours}


def check_freshness(config, now=None, state_dir=None):
    """Freshness of the newest snapshot (restic) or archive file, with its size: the
    archive's, or the restore size the backup run recorded for that snapshot
    (``remember_snapshot_size``; ``None`` when that run did not record it)."""
    if config["engine"] == "archive":
        found = [(datetime.datetime.fromtimestamp(os.stat(path).st_mtime, datetime.timezone.utc),
                  os.path.getsize(path)) for path in list_archives(config)]
    else:
        found = [(snap["time"], remembered_snapshot_size(state_dir, config["job"], snap["id"]))
                 for snap in list_snapshots(config)]
    result = freshness([when for when, _size in found], config["freshness_max_age_hours"], now=now)
    result["size_bytes"] = max(found, key=lambda entry: entry[0])[1] if found else None
    return result


def _snapshot_size_path(state_dir, job):
    return os.path.join(state_dir, "backup-sizes", job + ".json")


def remember_snapshot_size(state_dir, job, snapshot_id, size_bytes):
    """Record the newest snapshot's restore size for the freshness check (best effort)."""
    save_record(_snapshot_size_path(state_dir, job),
                {"snapshot_id": snapshot_id, "size_bytes": int(size_bytes)}, 0o755)


def remembered_snapshot_size(state_dir, job, snapshot_id):
    """The recorded restore size of ``snapshot_id``, or ``None``."""
    from .state import read_json

    if not state_dir:
        return None
    data = read_json(_snapshot_size_path(state_dir, job))
    if isinstance(data, dict) and data.get("snapshot_id") == snapshot_id:
        return data.get("size_bytes")
    return None


# --------------------------------------------------------------------------- restore

def select_snapshot(snapshots, snapshot_id):
    """The one snapshot of ``snapshots`` whose id is or starts with ``snapshot_id``;
    ``None`` when none does. Raises ``OpsError`` when the prefix is ambiguous (restic
    refuses one too): an in-place restore of whichever came first is not a choice."""
    found = [snap for snap in snapshots if snap["id"].startswith(snapshot_id or "\0")]
    if len(found) > 1:
        raise OpsError("snapshot id %s is ambiguous: %s start with it; give more of the id"
                       % (snapshot_id, ", ".join(snap["short_id"] for snap in found[:5])))
    return found[0] if found else None


def resolve_snapshot(config, snapshot="latest"):
    """This job's snapshot ``snapshot`` (an id, a unique id prefix, or ``latest``) as a
    dict; its full ``id`` is what every later step uses."""
    snapshots = list_snapshots(config)
    if not snapshots:
        raise OpsError("no snapshots of job %s for host %s in the repository; run a backup first"
                       % (config["job"], config["host_label"]))
    if snapshot in (None, "", "latest"):
        return snapshots[-1]
    if not re.match(r"^[0-9a-f]+$", snapshot):
        raise OpsError("snapshot %r is not a snapshot id (hex digits) or 'latest'" % snapshot)
    found = select_snapshot(snapshots, snapshot)
    if found is None:
        raise OpsError("snapshot %s is not one of job %s on host %s; list them with "
                       "`runbook-ops backup snapshots --config FILE`"
                       % (snapshot, config["job"], config["host_label"]))
    return found


def scratch_dir(host_label, snapshot_short_id, root=DEFAULT_SCRATCH_ROOT, now=None):
    """A fresh scratch directory name for an out-of-place restore."""
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%dT%H%M%S")
    return os.path.join(root, "%s-%s-%s" % (host_label, snapshot_short_id, stamp))


def plan_restore(config, snapshot, target=None, in_place=False):
    """The steps of a restore as plain data (``snapshot`` is a resolved snapshot dict).

    Out of place (default): restore into ``target`` (a new directory; it must not
    exist or be empty). In place: stop the compose services, recreate volumes, move
    aside what the snapshot does not have or what is in restic's way (``move_aside``,
    decided by ``restore_plan.plan_in_place``; excluded paths are never touched),
    restore over the original paths, start the services, wait for the health check.
    """
    compose = config["compose"] or {}
    volumes = [tag[len(VOLUME_TAG_PREFIX):] for tag in snapshot["tags"]
               if tag.startswith(VOLUME_TAG_PREFIX)]
    steps = []
    if in_place:
        if compose:
            steps.append({"action": "compose_stop", "argv": compose_argv(config, "stop")})
        for name in volumes:
            steps.append({"action": "volume_create",
                          "argv": ["docker", "volume", "create", name]})
        steps.append({"action": "move_aside", "paths": snapshot["paths"]})
        steps.append({"action": "restore", "target": "/", "paths": snapshot["paths"]})
        if compose:
            steps.append({"action": "compose_start", "argv": compose_argv(config, "up")})
            if compose.get("health_url"):
                steps.append({"action": "health", "url": compose["health_url"],
                              "timeout_seconds": int(compose.get("health_timeout_seconds", 120))})
    else:
        steps.append({"action": "restore", "target": target, "paths": snapshot["paths"]})
    return {"snapshot": snapshot["id"], "short_id": snapshot["short_id"],
            "time": snapshot["time"].isoformat(), "in_place": in_place, "target":
            "/" if in_place else target, "volumes": volumes, "steps": steps}


def compose_argv(config, action):
    """``docker compose`` argv to stop or start the project's (chosen) services."""
    compose = config["compose"]
    argv = ["docker", "compose", "--project-directory", compose["project_dir"]]
    for name in compose.get("files") or []:
        argv += ["-f", os.path.join(compose["project_dir"], name)]  # an absolute name stays
    argv += ["stop"] if action == "stop" else ["up", "-d"]
    return argv + list(compose.get("services") or [])


def snapshot_nodes(config, snapshot_id):
    """``{path: {"type", "size", "mtime_ns", "ctime_ns", "inode", "hardlinked"?}}`` of a
    snapshot (``restic ls --json``; ``inode`` and so ``hardlinked`` from restic 0.17)."""
    listing = _checked(_restic(config, "ls", "--json", snapshot_id, timeout=3600), "restic ls")
    nodes = {}
    for line in listing.stdout.splitlines():
        try:
            node = json.loads(line)
        except ValueError:
            continue
        if node.get("struct_type") == "node" and node.get("path"):
            nodes[node["path"]] = {
                "type": node.get("type", ""), "size": node.get("size", 0),
                "mtime_ns": timestamps.epoch_ns(node.get("mtime")),
                "ctime_ns": timestamps.epoch_ns(node.get("ctime")),
                "inode": node.get("inode")}
    by_inode = {}
    for node in nodes.values():  # restic 0.17+ lists inodes: names sharing one are linked
        if node["type"] == "file" and node["inode"]:
            by_inode.setdefault(node["inode"], []).append(node)
    for group in by_inode.values():
        for node in group:
            node["hardlinked"] = len(group) > 1
    return nodes


def plan_in_place(config, plan, result):
    """What an in-place restore of ``plan`` does to the live tree (``restore_plan.plan_in_place``
    over the snapshot's listing and the job's excludes), plus ``quarantine`` (directories)
    and each move's destination; its summary goes into ``result`` (``summarize_in_place``)
    and a filesystem without the space refuses it (``check_free_space``). Changes nothing on
    disk."""
    nodes = snapshot_nodes(config, plan["snapshot"])
    roots = next(step["paths"] for step in plan["steps"] if step["action"] == "move_aside")
    fs_plan = restore_plan.plan_in_place(roots, nodes, config["excludes"])
    placed = restore_plan.quarantine_moves(
        fs_plan["moves"], restore_plan.quarantine_name(config["job"], plan["short_id"]))
    fs_plan = dict(fs_plan, moves=placed["moves"], quarantine=placed["dirs"])
    result.update(summarize_in_place(fs_plan))
    check_free_space(fs_plan["space"])
    return fs_plan


def summarize_in_place(fs_plan):
    """The part of an in-place plan a person reads: counts, where moves go, samples."""
    sample = restore_plan.SAMPLE
    return {
        "quarantine": fs_plan["quarantine"],
        "moved_aside": len(fs_plan["moves"]),
        "moves": fs_plan["moves"][:sample],
        "kept": fs_plan["kept"][:sample],
        "excluded_untouched": len(fs_plan["excluded"]),
        "excluded_sample": fs_plan["excluded"][:sample],
        "replace": fs_plan["replace"], "changed": fs_plan["changed"],
        "changed_sample": fs_plan["changed_sample"], "create": fs_plan["create"],
    }


def wait_healthy(url, timeout_seconds, interval=3.0):
    """Poll ``url`` until it answers 2xx/3xx or ``timeout_seconds`` pass; return bool."""
    from .http_probe import ProbeError, http_get

    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            if http_get(url, timeout=5, read_limit=0)[0] < 400:
                return True
        except ProbeError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def run_restore(config, plan, dry_run=False):
    """Carry out a ``plan_restore`` plan; return ``{"ok", "steps": [...], ...}``.

    In place, the result says what moved aside and where (``quarantine``, ``moves``),
    what was kept and how many excluded paths were left alone; ``dry_run`` computes the
    same without changing anything. A failure raises ``OpsError`` saying what was done:
    before anything live was touched the services are started again; after, they stay
    stopped and the message names the quarantine.
    """
    if config["engine"] == "archive":
        raise OpsError("restore of archive files: unpack the newest file in %s with tar"
                       % config["archive"]["dir"])
    done = []
    result = {"ok": True, "snapshot": plan["snapshot"], "target": plan["target"],
              "in_place": plan["in_place"], "steps": done, "dry_run": dry_run}
    if dry_run:
        done.extend(step["action"] for step in plan["steps"])
        if plan["in_place"]:
            plan_in_place(config, plan, result)
        else:
            check_restore_target(plan["target"])
        return result
    state = {"stopped": False, "touched": False, "fs_plan": None}
    try:
        for step in plan["steps"]:
            _run_restore_step(config, plan, step, state, result)
            done.append(step["action"])
    except OpsError as exc:
        raise _restore_failure(config, state, exc, done)
    except OSError as exc:
        raise _restore_failure(config, state, OpsError("%s: %s" % (
            exc.filename or "restore", exc.strerror or exc)), done)
    return result


def _run_restore_step(config, plan, step, state, result):
    action = step["action"]
    if action in ("compose_stop", "compose_start", "volume_create"):
        _checked(run_command(step["argv"], timeout=900), " ".join(step["argv"][:4]))
        if action != "volume_create":
            state["stopped"] = action == "compose_stop"
    elif action == "move_aside":
        fs_plan = state["fs_plan"] = plan_in_place(config, plan, result)
        header = {"snapshot": plan["snapshot"], "job": config["job"],
                  "host": config["host_label"], "snapshot_time": plan["time"],
                  "restored_at": datetime.datetime.now().isoformat(timespec="seconds")}
        try:
            moved = restore_plan.move_aside(fs_plan["moves"], fs_plan["quarantine"], header)
        except OpsError as exc:
            state["touched"] = bool(exc.details.get("moved"))
            raise
        state["touched"] = bool(moved["moved"])
        if moved["warnings"]:
            result["warnings"] = moved["warnings"]
    elif action == "restore":
        target = step["target"]
        argv = ["restore", plan["snapshot"], "--target", target, "--verify"]
        version = restic_version(_restic_version_text(config["restic_bin"]))
        if version is not None and version >= (0, 15):
            argv.append("--sparse")
        if target == "/":
            for pattern in state["fs_plan"]["restore_excludes"]:
                argv += ["--exclude", pattern]
            state["touched"] = True
        else:
            check_restore_target(target)
            os.makedirs(target, mode=0o700, exist_ok=True)
            check_free_space([{"path": target, "bytes": snapshot_size(config, plan["snapshot"])}])
        _checked(_restic(config, *argv, timeout=12 * 3600), "restic restore")
    elif action == "health":
        if not wait_healthy(step["url"], step["timeout_seconds"]):
            result["ok"] = False
            result["error"] = ("services restarted but the health check did not pass "
                               "within %d s" % step["timeout_seconds"])


def check_restore_target(target):
    """Refuse a restore target that is not empty (a real run and its preview alike)."""
    if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
        raise OpsError("restore target %s is not empty; pick a new directory" % target)


def check_free_space(space):
    """Refuse (before anything is touched) when a filesystem has less free space than
    restic will write there (``[{"path", "bytes"}]``)."""
    for entry in space:
        try:
            stats = os.statvfs(entry["path"])
        except OSError:
            continue
        free = stats.f_bavail * stats.f_frsize
        if entry["bytes"] > free:
            raise OpsError("not enough free space for the restore on the filesystem of %s: "
                           "it needs %d MiB, %d MiB are free; free space first"
                           % (entry["path"], -(-entry["bytes"] // 2 ** 20), free // 2 ** 20))


def _restore_failure(config, state, exc, done):
    """The error of a failed restore, saying what state the host is left in."""
    details = dict(exc.details, steps=list(done))
    quarantine = state["fs_plan"]["quarantine"] if state["fs_plan"] else []
    if state["touched"]:
        details["quarantine"] = quarantine
        text = "the restore did not finish"
        if quarantine:
            text += " (what was moved aside is in %s)" % ", ".join(quarantine)
        if state["stopped"]:
            text += "; the services stay stopped: run the restore again"
        return OpsError("%s; %s" % (exc.message, text), **details)
    if not state["stopped"]:
        return OpsError("%s; nothing live was changed" % exc.message, **details)
    started = run_command(compose_argv(config, "up"), timeout=900)
    if started.ok:
        return OpsError("%s; nothing live was changed and the services were started again"
                        % exc.message, **details)
    return OpsError("%s; nothing live was changed, but starting the services again failed: %s"
                    % (exc.message, _fail_text(started)), **details)


# --------------------------------------------------------------------------- archive engine

def archive_name(host_label, compression, encrypted, day):
    """``<host>-<YYYY-MM-DD>.tar.<zst|gz>[.gpg]``: one file per day."""
    suffix = ".tar.zst" if compression == "zstd" else ".tar.gz"
    return "%s-%s%s%s" % (host_label, day.strftime("%Y-%m-%d"), suffix,
                          ".gpg" if encrypted else "")


_ARCHIVE_RE = re.compile(r"-(\d{4}-\d\d-\d\d)\.tar\.(zst|gz)(\.gpg)?$")


def list_archives(config):
    """This host's archive files, oldest first by the day in their name."""
    directory = config["archive"]["dir"]
    if not os.path.isdir(directory):
        return []
    prefix = config["host_label"] + "-"
    found = []
    for name in os.listdir(directory):
        match = _ARCHIVE_RE.search(name)
        if name.startswith(prefix) and match and name[len(prefix):].startswith(match.group(1)):
            found.append((match.group(1), os.path.join(directory, name)))
    return [path for _day, path in sorted(found)]


def plan_archive_retention(archives, retention_days, today):
    """Archives (paths named by day) older than ``retention_days``; never the newest."""
    doomed = []
    for path in archives[:-1]:
        match = _ARCHIVE_RE.search(path)
        day = datetime.datetime.strptime(match.group(1), "%Y-%m-%d").date()
        if (today - day).days >= retention_days:
            doomed.append(path)
    return doomed


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tar_compress_flag(compression):
    return ["--use-compress-program", "zstd -T0 -q"] if compression == "zstd" else ["-z"]


def verify_archive(config, path, expected_sha256=None):
    """Checksum, size and listing of one archive; ``{"ok", "error"?, ...}``. An encrypted
    file's packet structure is checked (``gpg --list-packets``): its listing was done before
    encryption."""
    archive = config["archive"]
    result = {"ok": False, "path": path, "size_bytes": os.path.getsize(path),
              "sha256": sha256_file(path)}
    sidecar = path + ".sha256"
    if expected_sha256 is None and os.path.isfile(sidecar):
        with open(sidecar, encoding="utf-8") as handle:
            expected_sha256 = handle.read().split()[0]
    if expected_sha256 and expected_sha256 != result["sha256"]:
        result["error"] = "checksum mismatch for %s" % path
    elif result["size_bytes"] < int(archive["min_size_bytes"]):
        result["error"] = "%s is only %d bytes (minimum %d)" % (
            path, result["size_bytes"], int(archive["min_size_bytes"]))
    elif path.endswith(".gpg"):
        packets = run_command(["gpg", "--batch", "--list-packets", path], timeout=600)
        if "encrypted data packet" not in (packets.stdout + packets.stderr).lower() and \
                ":pubkey enc packet" not in packets.stdout:
            result["error"] = "%s is not a GPG-encrypted file" % path
        else:
            result["listed"] = False
    else:
        compress = _tar_compress_flag(archive["compression"])
        listing = run_command(["tar", "-t", "-f", path] + compress, timeout=6 * 3600)
        if not listing.ok:
            result["error"] = "tar cannot list %s: %s" % (path, _fail_text(listing))
        else:
            result.update(listed=True, entries=len(listing.stdout.splitlines()))
    result["ok"] = "error" not in result
    return result


def run_archive(config, dry_run=False, today=None, mountpoint_of=volume_mountpoint):
    """Hooks, then ``tar`` + zstd/gzip (+ gpg) into one file per day, verify, retention."""
    archive = config["archive"]
    sources = plan_sources(config, mountpoint_of=mountpoint_of)
    today = today or datetime.date.today()
    encrypted = bool(archive["gpg_recipient_file"])
    final = os.path.join(archive["dir"], archive_name(
        config["host_label"], archive["compression"], encrypted, today))
    result = {"engine": "archive", "ok": False, "paths": sources["paths"], "file": final,
              "dry_run": dry_run, "hooks": run_hooks(config, dry_run=dry_run)}
    if dry_run:
        result["ok"] = True
        return result
    os.makedirs(archive["dir"], mode=0o700, exist_ok=True)
    plain = os.path.join(archive["dir"], ".partial-" + os.path.basename(final).replace(".gpg", ""))
    tar = run_command(["tar", "-c", "-f", plain] + _tar_compress_flag(archive["compression"])
                      + ["--absolute-names"] + sources["paths"],
                      timeout=config["backup_timeout_seconds"])
    check = verify_archive(dict(config, archive=dict(archive, min_size_bytes=0)), plain) \
        if tar.ok else {"error": "tar failed: %s" % _fail_text(tar)}
    if not check.get("ok"):
        _remove_quietly(plain)
        result["error"] = check.get("error")
        return result
    source = plain
    if encrypted:
        encrypted_partial = plain + ".gpg"
        gpg = run_command(["gpg", "--batch", "--yes", "--trust-model", "always",
                           "--recipient-file", archive["gpg_recipient_file"],
                           "--output", encrypted_partial, "--encrypt", plain], timeout=6 * 3600)
        _remove_quietly(plain)
        if not gpg.ok:
            _remove_quietly(encrypted_partial)
            result["error"] = "gpg --encrypt failed: %s" % _fail_text(gpg)
            return result
        source = encrypted_partial
    digest = sha256_file(source)
    os.replace(source, final)
    with open(final + ".sha256", "w", encoding="utf-8") as handle:
        handle.write("%s  %s\n" % (digest, os.path.basename(final)))
    verified = verify_archive(config, final, expected_sha256=digest)
    result["verify"] = verified
    result["size_bytes"] = verified["size_bytes"]
    if not verified["ok"]:
        result["error"] = verified["error"]
        return result
    result["ok"] = True
    result["removed"] = plan_archive_retention(list_archives(config),
                                               int(archive["retention_days"]), today)
    for path in result["removed"]:
        _remove_quietly(path)
        _remove_quietly(path + ".sha256")
    return result


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
