# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Review of issue #15 items 1-3 (branch i15-restore): ways a backup or an in-place restore
still loses data or fails silently, each on real restic repositories and real files.

Every test here FAILS on bea4074 and states the behaviour a fix must give.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, "plugins", "module_utils"))

from _ops import backup, retention  # noqa: E402
from _ops.errors import OpsError  # noqa: E402
from restic_keys import cheapen_keys, seal  # noqa: E402

RESTIC = os.environ.get("RUNBOOK_OPS_TEST_RESTIC", "restic")
needs_restic = pytest.mark.skipif(shutil.which(RESTIC) is None, reason="restic not installed")


@pytest.fixture
def env(tmp_path, monkeypatch, tmpfs):
    """A data directory on a tmpfs of its own, a password file, a job config (``raw``)."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fs = tmpfs("fs", "size=64m")
    data = fs / "data"
    data.mkdir()
    password = tmp_path / "password"
    password.write_text("pw\n")
    os.chmod(str(password), 0o600)
    raw = {"repository": str(tmp_path / "repo"), "password_file": str(password),
           "host_label": "h", "paths": [str(data)], "retention": {"keep_daily": 7},
           "restic_bin": shutil.which(RESTIC) or RESTIC}
    if shutil.which(RESTIC):
        backup.ensure_repository(backup.validate_config(raw))  # provisioning: `backup init`
        cheapen_keys(raw["repository"], "pw")
    return {"tmp": tmp_path, "fs": fs, "data": data, "raw": raw}


def _photos(directory, count=5):
    for number in range(count):
        (directory / ("photo%d.jpg" % number)).write_bytes(os.urandom(100000))


def _gated_restic(tmp_path, subcommand):
    """A restic that, for ``subcommand``, announces itself (``<gate>.waiting``) and waits for
    ``<gate>.open`` first: holds one process at a known point without sleeping on a race."""
    gate = tmp_path / ("gate-" + subcommand)
    script = tmp_path / ("restic-gated-" + subcommand)
    script.write_text(
        "#!/bin/sh\n"
        "if [ \"$1\" = %s ]; then touch %s.waiting; while [ ! -e %s.open ]; do sleep 0.1; done; fi\n"
        "exec %s \"$@\"\n" % (subcommand, gate, gate, shutil.which(RESTIC)))
    os.chmod(str(script), 0o755)
    return str(script), gate


def _wait_for(path, seconds=60):
    deadline = time.monotonic() + seconds
    while not os.path.exists(str(path)):
        assert time.monotonic() < deadline, "%s never appeared" % path
        time.sleep(0.1)


# --------------------------------------------------------------------------- data loss

@needs_restic
def test_a_backup_whose_size_dropped_forgets_nothing(env):
    """The uploads are wiped (a bad deploy, an unmounted disk); a second backup that day (a
    "safety" backup before restoring, or a schedule of several runs a day) sees the drop and
    alerts, and then keep-daily forgets and prunes the one good snapshot of the day."""
    _photos(env["data"])
    config = backup.validate_config(env["raw"])
    today = datetime.datetime.now().strftime("%Y-%m-%d")
    good = backup.run_backup(config, when=today + " 00:00:01")
    assert good["ok"]
    for path in env["data"].iterdir():
        path.unlink()

    second = backup.run_backup(config)

    assert second["size_drop"] and second["size_drop"]["drop_percent"] == 100.0
    kept = [snap["id"] for snap in backup.list_snapshots(config)]
    assert any(snap_id.startswith(good["snapshot_id"]) for snap_id in kept), \
        "retention ran after a 100% size drop and pruned the only good snapshot"


@needs_restic
def test_a_backup_during_an_in_place_restore_cannot_prune_the_snapshot_being_restored(env):
    """The job's cron run fires while an in-place restore of the same job is under way
    (compose stop, restic ls and the walk take minutes on a real host). Nothing serialises
    them: the backup snapshots the half-moved tree and its retention prunes the snapshot the
    restore is about to read; the restore then fails and the photos exist nowhere."""
    _photos(env["data"])
    config = backup.validate_config(env["raw"])
    today = datetime.datetime.now().strftime("%Y-%m-%d")
    good = backup.run_backup(config, when=today + " 00:00:01")
    for path in env["data"].iterdir():  # the incident
        path.unlink()
    (env["data"] / "written-after.txt").write_text("x")
    gated, gate = _gated_restic(env["tmp"], "restore")
    restore_config = backup.validate_config(dict(env["raw"], restic_bin=gated))
    outcome = {}

    def restore():
        snap = backup.resolve_snapshot(restore_config)
        try:
            outcome["result"] = backup.run_restore(
                restore_config, backup.plan_restore(restore_config, snap, in_place=True))
        except OpsError as exc:
            outcome["error"] = exc.message

    worker = threading.Thread(target=restore)
    worker.start()
    try:
        _wait_for(str(gate) + ".waiting")  # moved aside, restic restore about to start
        try:
            during = backup.run_backup(config)  # what `runbook-ops run --job backup` runs
        except OpsError as exc:
            during = {"ok": False, "error": exc.message}
    finally:
        (env["tmp"] / "gate-restore.open").touch()
        worker.join()

    kept = [snap["id"] for snap in backup.list_snapshots(config)]
    assert any(snap_id.startswith(good["snapshot_id"]) for snap_id in kept), \
        "a backup during the restore pruned the snapshot being restored (%s)" % during.get("forget")
    assert "error" not in outcome, outcome["error"]


# --------------------------------------------------------------------------- silent failures

def _role_default_dump_dir(job):
    with open(os.path.join(_REPO, "roles", "backup", "defaults", "main.yml")) as handle:
        template = yaml.safe_load(handle)["backup_dump_dir"]
    return template.replace("{{ backup_job_name }}", job)


@needs_restic
def test_two_jobs_with_hooks_never_lose_each_others_dump(env):
    """Two jobs with dump hooks (say postgres and redis) on the role's defaults: the same
    dump_dir and the same 03:00 cron line. The second job empties the shared directory
    while the first has dumped but not yet read it: the first job's snapshot has no dump and
    its run says ok."""
    def job(name):
        dump_dir = str(env["tmp"] / "root") + _role_default_dump_dir(name)
        return backup.validate_config(dict(env["raw"], job=name, paths=[], dump_dir=dump_dir, hooks=[
            {"name": "dump", "command": "echo %s-rows > \"$RUNBOOK_OPS_DUMP_DIR/%s.dump\"" % (name, name)}]))

    gated, gate = _gated_restic(env["tmp"], "backup")
    first = dict(job("backup-db"), restic_bin=gated)
    second = job("backup-redis")
    backup.ensure_repository(second)
    results = {}
    worker = threading.Thread(target=lambda: results.setdefault("db", backup.run_backup(first)))
    worker.start()
    try:
        _wait_for(str(gate) + ".waiting")  # db has dumped; restic backup not started yet
        results["redis"] = backup.run_backup(second)
    finally:
        (env["tmp"] / "gate-backup.open").touch()
        worker.join()

    assert results["db"]["ok"]
    snap = backup.list_snapshots(first)[-1]
    dumps = [path for path in backup.snapshot_nodes(first, snap["id"]) if path.endswith(".dump")]
    assert first["dump_dir"] + "/backup-db.dump" in dumps, \
        "backup-db reported ok with a snapshot holding %s" % (dumps or "no dump")


@needs_restic
def test_a_backup_never_initialises_a_new_repository_where_its_disk_is_not_mounted(env, tmpfs):
    """(Older than #15, same promise.) The repository lives on a disk that is not mounted
    tonight: `run` initialises a fresh repository in the empty mount point on the root
    filesystem, backs up into it and says ok; freshness says fresh. Nobody notices."""
    disk = env["tmp"] / "backupdisk"
    tmpfs(str(disk), "size=64m")
    (env["data"] / "f").write_text("data")
    config = backup.validate_config(dict(env["raw"], repository=str(disk / "restic")))
    backup.ensure_repository(config)  # provisioning: `backup init`
    assert backup.run_backup(config)["ok"]
    subprocess.run(["umount", str(disk)], check=True)

    try:
        result = backup.run_backup(config)
    except OpsError:
        return  # refused: what a fix does
    assert not result["ok"] and result.get("repository") != "created", \
        "a new repository was created in the unmounted mount point and the backup said ok"


# --------------------------------------------------------------------------- restore

@needs_restic
def test_in_place_restore_of_a_hard_link_pair_split_since_the_backup(env):
    """restic 0.14 (Debian 12) restores the second name of a hard-link pair by removing
    what is there and linking, and when the removal succeeds it returns without linking.
    The plan calls the live second name a plain 'replace' (one link now: the app rewrote it
    with temp + rename), so the restore deletes it, fails --verify, and the services stay
    stopped. Moving it aside like any hard-linked file avoids both."""
    data = env["data"]
    (data / "a").write_text("orig")
    os.link(str(data / "a"), str(data / "b"))
    config = backup.validate_config(env["raw"])
    assert backup.run_backup(config)["ok"]
    (data / "b.new").write_text("rewritten since")
    os.rename(str(data / "b.new"), str(data / "b"))

    snap = backup.resolve_snapshot(config)
    try:
        result = backup.run_restore(config, backup.plan_restore(config, snap, in_place=True))
    except OpsError as exc:
        pytest.fail("in-place restore failed: %s; b exists: %s"
                    % (exc.message, os.path.lexists(str(data / "b"))))
    assert result["ok"]
    assert (data / "a").read_text() == "orig" and (data / "b").read_text() == "orig"


@needs_restic
def test_the_quarantine_is_not_in_the_next_backup_when_a_backup_path_is_a_mount_point(env):
    """roles/backup/README.md: "It is not in the backup paths, so the next backup does not
    pick it up". A backup path that is its own filesystem (/srv/media on its own disk) is the
    top the quarantine goes to: the next backup carries it, and deleting it later shows up
    as a size drop."""
    fs = env["fs"]
    (fs / "photo.jpg").write_text("p")
    config = backup.validate_config(dict(env["raw"], paths=[str(fs)]))
    assert backup.run_backup(config)["ok"]
    (fs / "uploaded-later.jpg").write_text("later")
    snap = backup.resolve_snapshot(config)
    moved = backup.run_restore(config, backup.plan_restore(config, snap, in_place=True))
    assert moved["quarantine"][0].startswith(str(fs) + "/")
    assert backup.run_backup(config)["ok"]
    newest = backup.list_snapshots(config)[-1]
    carried = [path for path in backup.snapshot_nodes(config, newest["id"])
               if "runbook-ops-quarantine" in path]
    assert not carried


@needs_restic
def test_a_same_filesystem_bind_mount_added_since_the_backup_is_kept_not_planned_as_a_move(env):
    """A bind mount of a directory of the same filesystem has the st_dev of its parent, so
    the plan (and its --check preview) moves it aside as "not in the snapshot"; rename(2)
    then fails with EBUSY and the restore stops half-way after whatever moved before it."""
    data = env["data"]
    (data / "a").write_text("a")
    config = backup.validate_config(env["raw"])
    assert backup.run_backup(config)["ok"]
    elsewhere = env["fs"] / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("p")
    (data / "shared").mkdir()
    subprocess.run(["mount", "--bind", str(elsewhere), str(data / "shared")], check=True)
    try:
        snap = backup.resolve_snapshot(config)
        preview = backup.run_restore(config, backup.plan_restore(config, snap, in_place=True),
                                     dry_run=True)
        assert [item["path"] for item in preview["kept"]] == [str(data / "shared")], preview["moves"]
        assert backup.run_restore(config, backup.plan_restore(config, snap, in_place=True))["ok"]
    finally:
        subprocess.run(["umount", "-l", str(data / "shared")], check=False)


# --------------------------------------------------------------------------- snapshot choice

class _Forger:
    """Writes real, encrypted snapshot files with any time into a real repository (the
    repository's own master key from `restic cat masterkey`), so retention can be compared
    with `restic forget --dry-run` over thousands of timestamps in seconds."""

    def __init__(self, repo, environ):
        self.repo, self.environ = repo, environ
        key = json.loads(self._run("cat", "masterkey"))
        self.key = (base64.b64decode(key["encrypt"]), base64.b64decode(key["mac"]["k"]),
                    base64.b64decode(key["mac"]["r"]))
        self.tree = json.loads(self._run("snapshots", "--json"))[0]["tree"]

    def _run(self, *argv):
        return subprocess.run([RESTIC, "--no-cache"] + list(argv), env=self.environ, check=True,
                              capture_output=True, text=True, timeout=300).stdout

    def snapshot(self, when, tags, host="h"):
        blob = seal(*self.key, json.dumps({"time": when, "tree": self.tree, "paths": ["/data"],
                                           "hostname": host, "username": "root",
                                           "tags": list(tags)}).encode())
        snapshot_id = hashlib.sha256(blob).hexdigest()
        with open(os.path.join(self.repo, "snapshots", snapshot_id), "wb") as handle:
            handle.write(blob)
        return snapshot_id


@pytest.fixture(scope="module")
def forger(tmp_path_factory):
    if shutil.which(RESTIC) is None:
        pytest.skip("restic not installed")
    base = tmp_path_factory.mktemp("forged")
    environ = dict(os.environ, RESTIC_REPOSITORY=str(base / "repo"), RESTIC_PASSWORD="pw",
                   XDG_CACHE_HOME=str(base / "cache"))
    (base / "src").mkdir()
    (base / "src" / "f").write_text("x")
    subprocess.run([RESTIC, "init"], env=environ, check=True, capture_output=True)
    cheapen_keys(str(base / "repo"), "pw")
    subprocess.run([RESTIC, "backup", "--host", "seed", str(base / "src")], env=environ,
                   check=True, capture_output=True)
    return _Forger(str(base / "repo"), environ)


_TAGS = itertools.count()
_OFFSETS = [0, 60, -300, 330, 345, 840, -720, 1]
_FRACTIONS = ["", ".5", ".123456789", ".000000001"]


def _rfc3339(instant, offset_minutes, fraction):
    local = (instant + datetime.timedelta(minutes=offset_minutes)).replace(tzinfo=None)
    zone = "Z" if not offset_minutes else "%s%02d:%02d" % (
        "+" if offset_minutes > 0 else "-", abs(offset_minutes) // 60, abs(offset_minutes) % 60)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone


_START = datetime.datetime(2025, 12, 20, tzinfo=datetime.timezone.utc)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(points=st.lists(st.tuples(st.integers(0, 24 * 60 * 400), st.sampled_from(_OFFSETS),
                                 st.sampled_from(_FRACTIONS)), min_size=1, max_size=25),
       repeats=st.lists(st.tuples(st.integers(0, 30), st.sampled_from(_OFFSETS)), max_size=3),
       keep=st.fixed_dictionaries({"last": st.integers(1, 2), "daily": st.integers(0, 7),
                                   "weekly": st.integers(0, 4), "monthly": st.integers(0, 3)}))
@example(points=[(0, 0, "")], repeats=[(0, 0)], keep={"last": 1, "daily": 0, "weekly": 0, "monthly": 0})
def test_retention_never_forgets_a_snapshot_restic_would_keep(forger, points, repeats, keep):
    """The job forgets by id what plan_retention removes: any snapshot restic's own forget
    keeps and the plan removes is lost. Snapshots with the same time (a drill's --time, two
    runs forged to one second) are where the plan and restic part: the plan keeps the one
    restic lists first in `snapshots`, restic's forget the other."""
    times = [_rfc3339(_START + datetime.timedelta(minutes=minute), offset, fraction)
             for minute, offset, fraction in points]
    times += [_rfc3339(_START + datetime.timedelta(minutes=points[index % len(points)][0]),
                       offset, points[index % len(points)][2]) for index, offset in repeats]
    tag = "case-%d-%d" % (os.getpid(), next(_TAGS))
    for when in times:
        forger.snapshot(when, ["runbook-ops", "job:backup", tag])
    snapshots = backup.parse_snapshots(forger._run("snapshots", "--json", "--tag", tag))
    plan = retention.plan_retention(snapshots, keep, keep_oldest=retention.keeps_oldest(
        forger._run("version")))
    argv = ["forget", "--dry-run", "--json", "--tag", tag, "--group-by", "host"]
    for rule, count in keep.items():
        if count:
            argv += ["--keep-%s" % rule, str(count)]
    groups = json.loads(forger._run(*argv).splitlines()[0])
    restic_keeps = {snap["id"] for group in groups for snap in group["keep"] or []}
    lost = restic_keeps - set(plan["keep"])
    assert not lost, "plan forgets %s, restic keeps them" % sorted(
        snap["time"].isoformat() for snap in snapshots if snap["id"] in lost)


def test_an_ambiguous_snapshot_prefix_is_refused_not_resolved_to_the_oldest(forger, monkeypatch):
    """restore.yml -e restore_snapshot=4f restores in place whichever snapshot of the job
    starting with 4f is oldest; restic itself refuses an ambiguous prefix."""
    tag = "ambiguous-%d" % os.getpid()
    ids = [forger.snapshot("2026-01-%02dT03:00:00Z" % day, ["runbook-ops", "job:" + tag])
           for day in range(1, 18)]  # 17 ids: two share their first hex digit
    first = {}
    prefix = next(snap_id[0] for snap_id in ids if first.setdefault(snap_id[0], snap_id) != snap_id)
    monkeypatch.setenv("XDG_CACHE_HOME", os.path.dirname(forger.repo) + "/cache")
    password = os.path.join(os.path.dirname(forger.repo), "password")
    with open(password, "w") as handle:
        handle.write("pw\n")
    config = backup.validate_config({"repository": forger.repo, "password_file": password,
                                     "host_label": "h", "job": tag, "paths": ["/data"],
                                     "restic_bin": shutil.which(RESTIC)})
    with pytest.raises(OpsError):
        backup.resolve_snapshot(config, prefix)
