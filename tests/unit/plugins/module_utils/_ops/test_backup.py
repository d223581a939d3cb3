# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of _ops/backup.py and backup_cli.py against real restic repositories in tmp_path."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys

import jinja2
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

_MODULE_UTILS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..",
                                             "..", "plugins", "module_utils"))
sys.path.insert(0, _MODULE_UTILS)

from _ops import backup, backup_cli  # noqa: E402
from _ops.errors import OpsError  # noqa: E402
from restic_keys import cheapen_keys  # noqa: E402

PASSWORD = "s3cret-Backup-Pa55word"
UTC = datetime.timezone.utc

needs_restic = pytest.mark.skipif(shutil.which("restic") is None, reason="restic not installed")


def _tree_checksums(root):
    sums = {}
    for current, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(current, name)
            if os.path.islink(path):
                sums[os.path.relpath(path, root)] = "link->" + os.readlink(path)
                continue
            with open(path, "rb") as handle:
                sums[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return sums


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


@pytest.fixture
def setup(tmp_path, monkeypatch, tmpfs):
    """A data tree (files + a volume-like dir) on a filesystem of its own (an in-place
    restore's quarantine goes to its top, ``<fs>/runbook-ops-quarantine``), a password
    file and a config."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fs = tmp_path / "fs"
    tmpfs(fs, "size=64m")
    data = fs / "data"
    _write(str(data / "app" / "config.yml"), b"key: value\n")
    _write(str(data / "app" / "uploads" / "a.bin"), os.urandom(200000))
    _write(str(data / "app" / "uploads" / "b.txt"), b"hello\n" * 1000)
    _write(str(data / "volume" / "_data" / "db.sqlite"), os.urandom(50000))
    os.symlink("uploads/b.txt", str(data / "app" / "link-to-b"))
    password_file = tmp_path / "backup.password"
    password_file.write_text(PASSWORD + "\n")
    os.chmod(str(password_file), 0o600)
    raw = {
        "repository": str(tmp_path / "repo"),
        "password_file": str(password_file),
        "host_label": "drill-host",
        "paths": [str(data / "app"), str(data / "volume")],
        "retention": {"keep_daily": 3},
    }
    config = backup.validate_config(raw)
    if shutil.which("restic"):
        assert backup.ensure_repository(config) == "created"  # provisioning: `backup init`
        cheapen_keys(raw["repository"], PASSWORD)
    return {"tmp": tmp_path, "data": data, "config": config, "raw": raw,
            "quarantine": fs / "runbook-ops-quarantine"}


# --------------------------------------------------------------------------- pure functions

@pytest.mark.parametrize("raw, message", [
    ({"paths": ["/x"]}, "repository is empty"),
    ({"repository": "/r", "paths": ["relative"]}, "must be absolute"),
    ({"repository": "/r", "paths": ["/x"], "bogus": 1}, "unknown backup config keys"),
    ({"repository": "/r", "paths": ["/x"], "engine": "borg"}, "engine must be"),
    ({"repository": "/r"}, "nothing to back up"),
    ({"repository": "/r", "paths": ["/x"], "retention": {"keep_daily": -1}}, "keep_daily"),
    ({"repository": "/r", "paths": ["/x"], "check_read_data_subset": "lots"}, "read_data_subset"),
    ({"repository": "/r", "volumes": ["bad name!"]}, "not a Docker volume name"),
    ({"repository": "/r", "hooks": [{"name": "x"}]}, "name and a command"),
    ({"repository": "/r", "paths": ["/x"], "excludes": ["*.tmp", "cache[0-"]},
     "pattern 'cache[0-' is not a valid restic pattern"),
    ({"repository": "/r", "paths": ["/x"], "legacy_snapshots": "yes"}, "legacy_snapshots"),
    ({"repository": "/r", "paths": ["/x"], "job": "backup.daily"},
     "job 'backup.daily' is not a valid job name: use letters, digits, '_' and '-' (not first), "
     "at most 100 characters (no dot: Debian's cron silently ignores /etc/cron.d files with one)"),
    ({"repository": "/r", "paths": ["/x"], "retention": [["keep_daily", 2]]},
     "retention must be a JSON object of settings"),
    ({"repository": "/r", "paths": ["/x"], "archive": "daily"}, "archive must be a JSON object of settings"),
], ids=["no-repo", "relative-path", "unknown-key", "bad-engine", "no-sources",
        "negative-keep", "bad-subset", "bad-volume", "hook-without-command", "bad-exclude",
        "legacy-not-bool", "dot-in-job-name", "retention-not-an-object", "archive-not-an-object"])
def test_validate_config_rejects_bad_input_with_a_fix(raw, message):
    with pytest.raises(OpsError) as info:
        backup.validate_config(raw)
    assert message in info.value.message


def test_retention_policy_always_keeps_the_newest_and_forget_names_ids_only():
    config = backup.validate_config({"repository": "/r", "paths": ["/x"], "host_label": "h",
                                     "retention": {"keep_daily": 30, "keep_monthly": 6}})
    assert backup.retention_policy(config) == {"last": 1, "daily": 30, "weekly": 0, "monthly": 6}
    assert backup.forget_argv(["a" * 64, "b" * 64]) == ["forget", "--prune", "a" * 64, "b" * 64]


@pytest.mark.parametrize("raw, password_file, legacy", [
    ({}, "/etc/runbook-ops/backup.password", True),
    ({"job": "backup-db"}, "/etc/runbook-ops/backup-db.password", False),
    ({"job": "backup-db", "legacy_snapshots": True}, "/etc/runbook-ops/backup-db.password", True),
    ({"job": "backup", "legacy_snapshots": False, "password_file": "/root/pw"}, "/root/pw", False),
], ids=["default-job-keeps-its-paths", "other-job", "other-job-adopts", "explicit"])
def test_password_file_and_legacy_snapshots_default_per_job(raw, password_file, legacy):
    config = backup.validate_config(dict({"repository": "/r", "paths": ["/x"]}, **raw))
    assert config["password_file"] == password_file
    assert config["legacy_snapshots"] is legacy


def test_restic_argv_never_carries_password_or_repository(setup):
    config = dict(setup["config"], repository="rest:https://user:pw@backup.example/repo")
    sources = {"paths": ["/srv"], "tags": ["runbook-ops"]}
    argv = backup.restic_argv(config, *backup.backup_argv(config, sources)) + \
        backup.restic_argv(config, *backup.forget_argv(["abc"]))
    joined = " ".join(argv)
    assert PASSWORD not in joined and "user:pw" not in joined
    env = backup.restic_env(config)
    assert env["RESTIC_PASSWORD_FILE"] == config["password_file"]
    assert "RESTIC_PASSWORD" not in env


@pytest.mark.parametrize("text, expected", [
    ("2026-01-01T03:00:00Z", datetime.datetime(2026, 1, 1, 3, tzinfo=UTC)),
    ("2026-11-23T16:09:47.975238951Z", datetime.datetime(2026, 11, 23, 16, 9, 47, 975238, tzinfo=UTC)),
    ("2026-01-01T06:00:00.5+03:00", datetime.datetime(2026, 1, 1, 3, 0, 0, 500000, tzinfo=UTC)),
], ids=["plain", "nanoseconds", "offset"])
def test_parse_restic_time_handles_nanoseconds_and_offsets(text, expected):
    assert backup.parse_restic_time(text) == expected


def test_parse_snapshots_of_captured_output_sorts_oldest_first():
    captured = (
        '[{"time":"2026-11-23T16:09:47.975238951Z","parent":"8c2b","tree":"36cd","paths":'
        '["/tmp/rt/src"],"hostname":"h1","username":"root","id":"bdfda1361c0e4af9","short_id":'
        '"bdfda136"},{"time":"2026-01-01T03:00:00Z","tree":"36cd","paths":["/tmp/rt/src"],'
        '"hostname":"h1","username":"root","tags":["runbook-ops"],"id":"8c2bf9843dcfffd6",'
        '"short_id":"8c2bf984"}]')
    snaps = backup.parse_snapshots(captured)
    assert [s["short_id"] for s in snaps] == ["8c2bf984", "bdfda136"]
    assert snaps[1]["tags"] == []


@pytest.mark.parametrize("ages, limit, ok", [
    ([24.9], 25, True),
    ([25.5], 25, False),
    ([100, 2], 25, True),
    ([], 25, False),
], ids=["just-fresh", "stale", "newest-counts", "no-snapshots"])
def test_freshness_judges_only_the_newest_snapshot(ages, limit, ok):
    now = datetime.datetime(2026, 3, 1, 12, tzinfo=UTC)
    times = [now - datetime.timedelta(hours=age) for age in ages]
    assert backup.freshness(times, limit, now=now)["ok"] is ok


@pytest.mark.parametrize("previous, current, alert", [
    (1000, 900, False),
    (1000, 499, True),
    (1000, 500, False),
    (0, 10, False),
    (1000, 2000, False),
], ids=["small-drop", "halved", "at-limit", "no-previous", "growth"])
def test_size_drop_flags_a_far_smaller_snapshot(previous, current, alert):
    assert (backup.size_drop(previous, current, 50) is not None) is alert


def test_plan_sources_adds_volume_mountpoints_with_tags_and_compose_files(setup, tmp_path):
    project = tmp_path / "app"
    project.mkdir()
    (project / ".env").write_text("A=1\n")
    (project / "compose.yaml").write_text("services: {}\n")
    config = backup.validate_config(dict(setup["raw"], volumes=["app_db"],
                                         compose={"project_dir": str(project)}))
    plan = backup.plan_sources(config, mountpoint_of=lambda name: "/var/lib/docker/volumes/%s/_data" % name)
    assert "/var/lib/docker/volumes/app_db/_data" in plan["paths"]
    assert plan["tags"] == ["runbook-ops", "job:backup", "legacy-owner", "volume:app_db"]
    assert str(project / ".env") in plan["paths"]
    assert str(project / "compose.yaml") in plan["paths"]


def test_parse_volume_inspect_of_captured_output():
    captured = ('{"CreatedAt":"2026-01-14T10:00:00Z","Driver":"local","Labels":{"com.docker.compose.'
                'project":"app"},"Mountpoint":"/var/lib/docker/volumes/app_db/_data","Name":"app_db",'
                '"Options":null,"Scope":"local"}')
    assert backup.parse_volume_inspect(captured) == "/var/lib/docker/volumes/app_db/_data"


def test_plan_sources_refuses_missing_paths(setup):
    config = backup.validate_config(dict(setup["raw"], paths=["/nonexistent/runbook-ops"]))
    with pytest.raises(OpsError, match="missing"):
        backup.plan_sources(config)


def test_plan_restore_in_place_stops_recreates_volumes_and_starts(setup):
    config = backup.validate_config(dict(setup["raw"], compose={
        "project_dir": "/opt/app", "services": ["db"], "health_url": "http://127.0.0.1:8000/health"}))
    snapshot = {"id": "abc123", "short_id": "abc123", "time": datetime.datetime(2026, 1, 1, tzinfo=UTC),
                "paths": ["/var/lib/docker/volumes/app_db/_data"], "tags": ["runbook-ops", "volume:app_db"]}
    plan = backup.plan_restore(config, snapshot, in_place=True)
    actions = [step["action"] for step in plan["steps"]]
    assert actions == ["compose_stop", "volume_create", "move_aside", "restore",
                       "compose_start", "health"]
    assert plan["steps"][0]["argv"][-2:] == ["stop", "db"]
    assert plan["steps"][1]["argv"] == ["docker", "volume", "create", "app_db"]


def test_plan_archive_retention_never_removes_the_newest():
    paths = ["/b/h-2026-01-%02d.tar.zst" % day for day in (1, 2, 3)]
    today = datetime.date(2026, 3, 1)
    assert backup.plan_archive_retention(paths, 7, today) == paths[:2]
    assert backup.plan_archive_retention(paths, 60, today) == []


# --------------------------------------------------------------------------- real restic

@needs_restic
def test_backup_then_restore_into_scratch_matches_every_checksum(setup, tmp_path):
    config = setup["config"]
    before = _tree_checksums(str(setup["data"]))
    result = backup.run_backup(config)
    assert result["ok"], result
    assert result["repository"] == "exists"
    # change and delete data after the backup
    _write(str(setup["data"] / "app" / "config.yml"), b"key: CHANGED\n")
    os.unlink(str(setup["data"] / "volume" / "_data" / "db.sqlite"))
    snapshot = backup.resolve_snapshot(config, "latest")
    target = str(tmp_path / "scratch")
    plan = backup.plan_restore(config, snapshot, target=target)
    restored = backup.run_restore(config, plan)
    assert restored["ok"]
    after = _tree_checksums(target + str(setup["data"]))
    assert after == before


def _everything(root):
    """``{path: inode}`` of every entry under ``root`` (symlinks not followed)."""
    found = {}
    for current, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(current, name)
            found[path] = os.lstat(path).st_ino
    return found


def _in_place(config, snapshot="latest"):
    snap = backup.resolve_snapshot(config, snapshot)
    return backup.run_restore(config, backup.plan_restore(config, snap, in_place=True))


@needs_restic
def test_in_place_restore_puts_back_changed_and_deleted_files(setup):
    config = setup["config"]
    before = _tree_checksums(str(setup["data"]))
    assert backup.run_backup(config)["ok"]
    _write(str(setup["data"] / "app" / "config.yml"), b"key: CHANGED\n")
    shutil.rmtree(str(setup["data"] / "app" / "uploads"))
    os.unlink(str(setup["data"] / "app" / "link-to-b"))
    os.symlink("/etc/passwd", str(setup["data"] / "app" / "link-to-b"))  # points elsewhere now
    result = _in_place(config)
    assert result["ok"]
    assert _tree_checksums(str(setup["data"])) == before
    moved = {item["path"]: item["reason"] for item in result["moves"]}
    assert moved[str(setup["data"] / "app" / "link-to-b")] == \
        "a symlink where the snapshot has a symlink"
    # the changed file is not overwritten: it is in the quarantine, so the restore can be undone
    assert moved[str(setup["data"] / "app" / "config.yml")].startswith("differs from the snapshot")
    assert open(result["quarantine"][0] + str(setup["data"] / "app" / "config.yml")).read() == \
        "key: CHANGED\n"


@needs_restic
def test_in_place_restore_keeps_excluded_paths_and_moves_new_files_aside(setup):
    """Photos uploaded after 03:00 and excluded caches survive a restore; nothing is deleted."""
    app = setup["data"] / "app"
    _write(str(app / "cache" / "thumb.bin"), b"thumbnail")
    _write(str(app / "uploads" / "draft.tmp"), b"draft")
    config = backup.validate_config(dict(setup["raw"], excludes=["*.tmp", str(app / "cache")]))
    assert backup.run_backup(config)["ok"]
    _write(str(app / "cache" / "thumb.bin"), b"regenerated since")
    _write(str(app / "uploads" / "draft.tmp"), b"edited since")
    _write(str(app / "uploads" / "photo-after-backup.jpg"), b"uploaded at 09:00")
    _write(str(app / "uploads" / "2026" / "new-album" / "p1.jpg"), b"album")
    _write(str(app / "config.yml"), b"key: CHANGED\n")
    alive = _everything(setup["data"])

    result = _in_place(config)

    assert (app / "config.yml").read_bytes() == b"key: value\n"
    assert (app / "cache" / "thumb.bin").read_bytes() == b"regenerated since"
    assert (app / "uploads" / "draft.tmp").read_bytes() == b"edited since"
    assert os.lstat(str(app / "cache" / "thumb.bin")).st_ino == alive[str(app / "cache" / "thumb.bin")]
    assert not (app / "uploads" / "photo-after-backup.jpg").exists()
    [quarantine] = result["quarantine"]
    assert quarantine.startswith(str(setup["quarantine"]) + "/")
    for path, inode in alive.items():  # every live entry is where it was or in the quarantine
        where = path if os.path.lexists(path) else quarantine + path
        assert os.path.lexists(where), path
        if path.endswith(".jpg") or "/cache/" in path:
            assert os.lstat(where).st_ino == inode, path  # renamed, not copied
    moved = {item["path"]: item["reason"] for item in result["moves"]}
    assert moved == {str(app / "uploads" / "photo-after-backup.jpg"): "not in the snapshot",
                     str(app / "uploads" / "2026"): "not in the snapshot",
                     # restic 0.14 cannot restore over a symlink: it is moved aside too
                     str(app / "link-to-b"): "a symlink where the snapshot has a symlink",
                     str(app / "config.yml"): "differs from the snapshot: moved aside, so "
                                              "the restore can be undone"}
    assert result["excluded_untouched"] == 2
    with open(os.path.join(quarantine, "restore-plan.json")) as handle:
        assert json.load(handle)["snapshot"] == result["snapshot"]


@needs_restic
def test_in_place_restore_moves_a_directory_where_the_snapshot_has_a_file_aside(setup):
    config = setup["config"]
    db = setup["data"] / "volume" / "_data" / "db.sqlite"
    original = db.read_bytes()
    assert backup.run_backup(config)["ok"]
    db.unlink()
    _write(str(db / "wal" / "000001"), b"the only copy of today's writes")
    result = _in_place(config)
    assert db.read_bytes() == original
    [quarantine] = result["quarantine"]
    assert open(quarantine + str(db / "wal" / "000001"), "rb").read() == \
        b"the only copy of today's writes"
    assert {"path": str(db), "reason": "a dir where the snapshot has a file",
            "to": quarantine + str(db)} in result["moves"]


@needs_restic
def test_excludes_added_after_the_backup_still_protect_live_files(setup):
    config = setup["config"]
    assert backup.run_backup(config)["ok"]
    _write(str(setup["data"] / "app" / "uploads" / "b.txt"), b"live, now excluded")
    later = backup.validate_config(dict(setup["raw"], excludes=["b.txt"]))
    assert _in_place(later)["ok"]  # restic restore --exclude, and --verify still passes
    assert (setup["data"] / "app" / "uploads" / "b.txt").read_bytes() == b"live, now excluded"


@needs_restic
def test_a_restore_failing_after_moving_aside_keeps_everything_and_says_where(setup):
    config = setup["config"]
    assert backup.run_backup(config)["ok"]
    _write(str(setup["data"] / "app" / "new.jpg"), b"uploaded after the backup")
    script = setup["tmp"] / "restic-restore-fails"
    script.write_text("#!/bin/sh\n[ \"$1\" = restore ] && { echo 'disk full' >&2; exit 1; }\n"
                      "exec restic \"$@\"\n")
    os.chmod(str(script), 0o755)
    broken = dict(config, restic_bin=str(script))
    with pytest.raises(OpsError) as info:
        _in_place(broken)
    message = info.value.message
    assert "restic restore failed: disk full; the restore did not finish" in message
    [quarantine] = info.value.details["quarantine"]
    assert quarantine in message
    assert open(quarantine + str(setup["data"] / "app" / "new.jpg"), "rb").read() == \
        b"uploaded after the backup"


@needs_restic
def test_a_restore_refused_before_touching_anything_starts_the_services_again(
        setup, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\necho \"$@\" >> %s\n" % (tmp_path / "docker.log"))
    os.chmod(str(bin_dir / "docker"), 0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    config = backup.validate_config(dict(setup["raw"], compose={"project_dir": "/opt/app"}))
    assert backup.run_backup(config)["ok"]
    _write(str(setup["data"] / "app" / "new.jpg"), b"x")
    # excludes changed since: they now hide a parent of a restored path from restic restore
    hiding = backup.validate_config(dict(setup["raw"], compose={"project_dir": "/opt/app"},
                                         excludes=[str(setup["data"]),
                                                   "!" + str(setup["data"] / "app")]))
    with pytest.raises(OpsError, match="nothing live was changed and the services were started"):
        _in_place(hiding)
    assert (tmp_path / "docker.log").read_text().splitlines() == [
        "compose --project-directory /opt/app stop", "compose --project-directory /opt/app up -d"]
    assert (setup["data"] / "app" / "new.jpg").exists()


@needs_restic
def test_forget_with_forged_dates_keeps_expected_snapshots_and_the_newest(setup):
    config = setup["config"]  # keep_daily 3 (+ keep-last 1)
    days = ["2026-01-%02d 03:00:00" % day for day in range(1, 8)]
    for when in days:
        assert backup.run_backup(config, when=when)["ok"]
    kept = sorted(s["time"].strftime("%Y-%m-%d") for s in backup.list_snapshots(config))
    assert kept == ["2026-01-05", "2026-01-06", "2026-01-07"]
    # an older forged snapshot made *after* the newest still never removes the newest
    assert backup.run_backup(config, when="2025-12-01 03:00:00")["ok"]
    kept = sorted(s["time"].strftime("%Y-%m-%d") for s in backup.list_snapshots(config))
    assert "2026-01-07" in kept and "2025-12-01" not in kept


def _raw_snapshots(config):
    """Every snapshot in the repository, read with restic itself (not the code under test)."""
    out = subprocess.run(["restic", "snapshots", "--json"], capture_output=True, text=True,
                         check=True, env=dict(os.environ, RESTIC_REPOSITORY=config["repository"],
                                              RESTIC_PASSWORD_FILE=config["password_file"])).stdout
    return json.loads(out or "[]")


@needs_restic
def test_two_jobs_in_one_repository_keep_their_own_snapshots_and_freshness(setup):
    """backup-db (02:00) and backup-files (03:00) share a repository with keep-daily 2."""
    data = setup["data"]
    daily_2 = {"keep_daily": 2}
    db = backup.validate_config(dict(setup["raw"], job="backup-db", retention=daily_2,
                                     paths=[str(data / "volume")]))
    files = backup.validate_config(dict(setup["raw"], job="backup-files", retention=daily_2,
                                        paths=[str(data / "app")]))
    db_runs = [backup.run_backup(db, when="2026-01-%02d 02:00:00" % day) for day in (1, 2, 3)]
    for day in (1, 2, 3, 4):
        assert backup.run_backup(files, when="2026-01-%02d 03:00:00" % day)["ok"]

    by_paths = {}
    for snap in _raw_snapshots(db):
        by_paths.setdefault(tuple(snap["paths"]), []).append(snap["time"][:16])
    assert sorted(by_paths[(str(data / "volume"),)]) == ["2026-01-02T02:00", "2026-01-03T02:00"]
    assert sorted(by_paths[(str(data / "app"),)]) == ["2026-01-03T03:00", "2026-01-04T03:00"]
    # the small db snapshot is never compared with the big files snapshot
    assert all(run["ok"] and run["size_drop"] is None for run in db_runs)
    # each job's freshness is its own: the db job last ran 27 h ago
    now = datetime.datetime(2026, 1, 4, 5, tzinfo=UTC)
    assert backup.check_freshness(db, now=now)["ok"] is False
    assert backup.check_freshness(files, now=now)["ok"] is True
    # and a restore of the db job takes the db job's latest, not the newer files snapshot
    assert backup.resolve_snapshot(db)["paths"] == [str(data / "volume")]
    with pytest.raises(OpsError, match="is not one of job backup-db"):
        backup.resolve_snapshot(db, backup.resolve_snapshot(files)["id"])


def _legacy_backup(config, when, host=None):
    """A snapshot as runbook.ops made them before job tags: only the tag runbook-ops."""
    subprocess.run(["restic", "backup", "-q", "--host", host or config["host_label"], "--tag",
                    "runbook-ops", "--time", when] + config["paths"], check=True,
                   capture_output=True, env=dict(os.environ, RESTIC_REPOSITORY=config["repository"],
                                                 RESTIC_PASSWORD_FILE=config["password_file"]))


@needs_restic
def test_legacy_snapshots_stay_with_the_default_job_and_no_other(setup):
    config = setup["config"]  # job "backup", keep_daily 3
    assert backup.ensure_repository(config) == "exists"
    for day in (1, 2):
        _legacy_backup(config, "2026-01-%02d 03:00:00" % day)
    _legacy_backup(config, "2026-01-02 04:00:00", host="other-host")
    legacy = [snap["id"] for snap in _raw_snapshots(config) if snap["hostname"] == "drill-host"]

    # found right after the upgrade: fresh, listed, restorable
    now = datetime.datetime(2026, 1, 2, 5, tzinfo=UTC)
    assert backup.check_freshness(config, now=now)["ok"]
    assert [snap["id"] for snap in backup.list_snapshots(config)] == legacy
    assert backup.resolve_snapshot(config, legacy[0][:8])["id"] == legacy[0]

    # a job whose name starts like it, in the same repository, neither sees nor forgets them
    other = backup.validate_config(dict(setup["raw"], job="backup-db",
                                        retention={"keep_daily": 1}))
    for day in (3, 4):
        assert backup.run_backup(other, when="2026-01-%02d 02:00:00" % day)["ok"]
    # keep-daily 1, but the floor keeps a job's newest two
    assert [snap["time"].day for snap in backup.list_snapshots(other)] == [3, 4]
    # the default job's retention counts them as its own: keep-daily 3 over days 1, 2, 5
    assert backup.run_backup(config, when="2026-01-05 03:00:00")["ok"]
    kept = backup.list_snapshots(config)
    assert [snap["time"].day for snap in kept] == [1, 2, 5]
    assert sorted(kept[-1]["tags"]) == ["job:backup", "legacy-owner", "runbook-ops"]
    for day in (6, 7):
        assert backup.run_backup(config, when="2026-01-%02d 03:00:00" % day)["ok"]
    assert [snap["time"].day for snap in backup.list_snapshots(config)] == [5, 6, 7]
    hosts = sorted(snap["hostname"] for snap in _raw_snapshots(config))
    assert hosts.count("other-host") == 1  # another host's snapshot is never in reach


@needs_restic
def test_the_floor_keeps_the_newest_two_when_the_policy_keeps_nothing_else(setup):
    config = backup.validate_config(dict(setup["raw"], retention={"keep_daily": 0}))
    for when in ("2026-01-01 03:00:00", "2026-01-02 03:00:00", "2026-01-03 03:00:00"):
        assert backup.run_backup(config, when=when)["ok"]
    snaps = backup.list_snapshots(config)
    assert [s["time"].day for s in snaps] == [2, 3]


@needs_restic
def test_failing_hook_fails_the_backup_and_makes_no_snapshot(setup):
    config = backup.validate_config(dict(setup["raw"], dump_dir=str(setup["tmp"] / "dumps"), hooks=[
        {"name": "pg_dump", "command": "false | gzip > \"$RUNBOOK_OPS_DUMP_DIR/db.sql.gz\""}]))
    with pytest.raises(OpsError, match="hook pg_dump failed"):
        backup.run_backup(config)
    assert backup.list_snapshots(config) == []


@needs_restic
def test_hook_dump_lands_in_the_snapshot(setup, tmp_path):
    dump_dir = str(setup["tmp"] / "dumps")
    config = backup.validate_config(dict(setup["raw"], dump_dir=dump_dir, hooks=[
        {"name": "dump", "command": "echo dumped > \"$RUNBOOK_OPS_DUMP_DIR/db.dump\""}]))
    assert backup.run_backup(config)["ok"]
    snapshot = backup.resolve_snapshot(config)
    assert dump_dir + "/db.dump" in backup.snapshot_nodes(config, snapshot["id"])


@needs_restic
def test_failed_backup_never_prunes(setup, monkeypatch):
    config = setup["config"]
    for when in ("2026-01-01 03:00:00", "2026-01-02 03:00:00"):
        assert backup.run_backup(config, when=when)["ok"]
    calls = []
    monkeypatch.setattr(backup, "run_forget", calls.append)
    broken = dict(config, restic_bin=str(setup["tmp"] / "restic-fails"))
    script = setup["tmp"] / "restic-fails"
    script.write_text("#!/bin/sh\n[ \"$1\" = backup ] && exit 1\nexec restic \"$@\"\n")
    os.chmod(str(script), 0o755)
    result = backup.run_backup(broken)
    assert not result["ok"] and "restic backup failed" in result["error"]
    assert calls == []


@needs_restic
def test_size_drop_detected_from_real_snapshots(setup):
    config = setup["config"]
    assert backup.run_backup(config)["ok"]
    shutil.rmtree(str(setup["data"] / "app" / "uploads"))
    result = backup.run_backup(config)
    assert result["ok"] and result["size_drop"]["drop_percent"] > 50


@needs_restic
def test_check_passes_then_fails_on_a_damaged_pack(setup):
    config = setup["config"]
    assert backup.run_backup(config)["ok"]
    assert backup.run_check(dict(config, check_read_data_subset="100%"))["ok"]
    packs = []
    for current, _dirs, files in os.walk(str(setup["tmp"] / "repo" / "data")):
        packs += [os.path.join(current, name) for name in files]
    for pack in packs:
        os.chmod(pack, 0o644)
        with open(pack, "r+b") as handle:
            handle.seek(100)
            handle.write(b"\0" * 64)
    result = backup.run_check(dict(config, check_read_data_subset="100%"))
    assert not result["ok"] and "restic check failed" in result["error"]


@needs_restic
def test_freshness_from_real_snapshots_with_forged_time(setup):
    config = setup["config"]
    assert backup.run_backup(config, when="2026-01-01 03:00:00")["ok"]
    now = datetime.datetime(2026, 1, 2, 5, tzinfo=UTC)
    result = backup.check_freshness(config, now=now)
    assert not result["ok"] and result["age_hours"] == 26.0
    assert backup.check_freshness(config, now=now - datetime.timedelta(hours=2))["ok"]


@needs_restic
def test_wrong_password_is_reported_without_the_password(setup, tmp_path):
    config = setup["config"]
    assert backup.run_backup(config)["ok"]
    wrong = tmp_path / "wrong.password"
    wrong.write_text("nope\n")
    with pytest.raises(OpsError) as info:
        backup.run_backup(dict(config, password_file=str(wrong)))
    assert "cannot open the restic repository" in info.value.message
    assert PASSWORD not in info.value.message


# --------------------------------------------------------------------------- archive engine

def test_archive_engine_writes_verifies_and_keeps_retention(setup, tmp_path):
    config = backup.validate_config(dict(setup["raw"], engine="archive", repository="",
                                         archive={"dir": str(tmp_path / "archives"),
                                                  "compression": "gzip", "retention_days": 2}))
    for day in (1, 2, 3):
        result = backup.run_archive(config, today=datetime.date(2026, 1, day))
        assert result["ok"], result
        assert result["verify"]["listed"] and result["verify"]["entries"] > 3
    names = sorted(os.path.basename(p) for p in backup.list_archives(config))
    assert names == ["drill-host-2026-01-02.tar.gz", "drill-host-2026-01-03.tar.gz"]
    newest = backup.list_archives(config)[-1]
    with open(newest, "r+b") as handle:
        handle.seek(30)
        handle.write(b"garbage")
    assert not backup.verify_archive(config, newest)["ok"]


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd not installed")
def test_archive_engine_zstd_enforces_minimum_size(setup, tmp_path):
    config = backup.validate_config(dict(setup["raw"], engine="archive", repository="",
                                         archive={"dir": str(tmp_path / "a"),
                                                  "min_size_bytes": 10 ** 9}))
    result = backup.run_archive(config)
    assert not result["ok"] and "minimum" in result["error"]


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg not installed")
def test_archive_engine_encrypts_to_a_public_key(setup, tmp_path):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    try:
        _archive_round_trip(setup, tmp_path, env)
    finally:  # the test's own gpg calls start an agent; leave no daemon behind
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False, capture_output=True)


def _archive_round_trip(setup, tmp_path, env):
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "drill@example",
                    "default", "default", "never"], env=env, check=True, capture_output=True)
    pub = tmp_path / "pub.asc"
    pub.write_bytes(subprocess.run(["gpg", "--export", "--armor", "drill@example"], env=env,
                                   check=True, capture_output=True).stdout)
    config = backup.validate_config(dict(setup["raw"], engine="archive", repository="",
                                         archive={"dir": str(tmp_path / "a"), "compression": "gzip",
                                                  "gpg_recipient_file": str(pub)}))
    result = backup.run_archive(config)
    assert result["ok"], result
    assert result["file"].endswith(".tar.gz.gpg")
    plain = subprocess.run(["gpg", "--batch", "--decrypt", result["file"]], env=env,
                           check=True, capture_output=True).stdout
    listing = subprocess.run(["tar", "-tz"], input=plain, check=True, capture_output=True).stdout
    assert b"config.yml" in listing


# --------------------------------------------------------------------------- CLI

@pytest.fixture
def runtime(tmp_path):
    return {"host_label": "drill-host", "state_dir": str(tmp_path / "state"),
            "log_dir": str(tmp_path / "log"), "lock_dir": str(tmp_path / "lock"),
            "alert": {"telegram_api_url": "http://127.0.0.1:9", "telegram_chat_id": "",
                      "telegram_token_file": str(tmp_path / "none"), "cooldown_seconds": 0},
            "jobs": {}}


def _cli(argv, runtime):
    import argparse
    parser = argparse.ArgumentParser()
    backup_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args, runtime)


@needs_restic
def test_cli_run_restore_and_output_never_show_the_password(setup, runtime, tmp_path, capsys):
    config_path = tmp_path / "backup.json"
    config_path.write_text(json.dumps(setup["raw"]))
    assert _cli(["backup", "run", "--config", str(config_path)], runtime) == 0
    assert _cli(["backup", "run", "--config", str(config_path), "--json"], runtime) == 0
    assert _cli(["backup", "restore", "--config", str(config_path), "--in-place"], runtime) == 1
    target = tmp_path / "out"
    assert _cli(["backup", "restore", "--config", str(config_path), "--target", str(target)],
                runtime) == 0
    assert _cli(["backup", "freshness", "--config", str(config_path)], runtime) == 0
    assert _cli(["backup", "check", "--config", str(config_path)], runtime) == 0
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err
    assert "refusing to restore in place without --confirm-overwrite" in out.err
    assert _tree_checksums(str(target) + str(setup["data"])) == _tree_checksums(str(setup["data"]))


@needs_restic
def test_the_morning_check_shows_the_size_the_backup_run_recorded(setup, runtime, tmp_path, capsys):
    """The freshness result carries the newest snapshot's restore size (recorded by the run
    that made it), and the morning check reads it under the writer's key."""
    from _ops import health
    from _ops.runner import CommandResult
    from _ops.units import format_bytes

    config_path = tmp_path / "backup.json"
    config_path.write_text(json.dumps(setup["raw"]))
    assert _cli(["backup", "freshness", "--config", str(config_path), "--json"], runtime) == 0
    assert json.loads(capsys.readouterr().out)["size_bytes"] is None  # no backup yet
    assert _cli(["backup", "run", "--config", str(config_path), "--json"], runtime) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["size_bytes"] == backup.snapshot_size(setup["config"], made["snapshot_id"]) > 0
    assert _cli(["backup", "freshness", "--config", str(config_path), "--json"], runtime) == 0
    written = capsys.readouterr().out
    assert json.loads(written)["size_bytes"] == made["size_bytes"]

    cli = tmp_path / "runbook-ops"
    cli.write_text("")
    seen = health.read_backup_freshness(str(cli), runner=lambda argv, timeout: CommandResult(argv, 0, written, "", 0.1))
    assert seen["size_bytes"] == made["size_bytes"] and seen["level"] == "ok"
    assert seen["detail"].endswith(", size %s" % format_bytes(made["size_bytes"]))


def test_cli_validate_rejects_a_bad_config(tmp_path, runtime):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"repository": "/r", "paths": ["relative"]}))
    with pytest.raises(OpsError, match="must be absolute"):
        _cli(["backup", "run", "--validate", "--config", str(bad)], runtime)


@needs_restic
def test_cli_in_place_dry_run_changes_nothing_and_names_what_would_move(
        setup, runtime, tmp_path, capsys):
    config_path = tmp_path / "backup.json"
    config_path.write_text(json.dumps(dict(setup["raw"], excludes=["*.tmp"])))
    assert _cli(["backup", "run", "--config", str(config_path)], runtime) == 0
    _write(str(setup["data"] / "app" / "uploads" / "after-backup.jpg"), b"new")
    _write(str(setup["data"] / "app" / "uploads" / "scratch.tmp"), b"excluded")
    _write(str(setup["data"] / "app" / "config.yml"), b"key: CHANGED\n")
    before = (_tree_checksums(str(setup["data"])), _everything(setup["data"]))
    capsys.readouterr()

    assert _cli(["backup", "restore", "--config", str(config_path), "--in-place", "--dry-run"],
                runtime) == 0
    text = capsys.readouterr().out
    assert (_tree_checksums(str(setup["data"])), _everything(setup["data"])) == before
    assert not setup["quarantine"].exists()
    assert "in place: dry run, nothing changed" in text
    assert "would replace 4 files from the snapshot (1 differ from it now)" in text
    assert "differs now: %s" % (setup["data"] / "app" / "config.yml") in text
    assert "would move 3 paths aside" in text and str(setup["quarantine"]) in text
    assert "%s  (not in the snapshot)" % (setup["data"] / "app" / "uploads" / "after-backup.jpg") \
        in text
    assert "1 excluded paths left untouched" in text

    assert _cli(["backup", "restore", "--config", str(config_path), "--in-place",
                 "--confirm-overwrite", "--json"], runtime) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["moved_aside"] == 3 and result["quarantine"][0].startswith(str(setup["quarantine"]))
    assert os.path.exists(result["quarantine"][0] + str(setup["data"] / "app" / "uploads" /
                                                        "after-backup.jpg"))


# --------------------------------------------------------------------------- review of #15: guards

@needs_restic
def test_a_run_never_creates_a_repository(setup, tmp_path):
    config = backup.validate_config(dict(setup["raw"], repository=str(tmp_path / "nowhere")))
    with pytest.raises(OpsError, match="a backup run never creates one"):
        backup.run_backup(config)
    assert not (tmp_path / "nowhere").exists()


@needs_restic
def test_a_repository_that_changed_under_the_job_is_refused(setup, tmp_path):
    """The disk was swapped (or another repository mounted where the old one was): the
    recorded id no longer matches; the run refuses and changes nothing."""
    config, state = setup["config"], str(tmp_path / "state")
    assert backup.run_backup(config, state_dir=state)["ok"]
    os.rename(config["repository"], config["repository"] + ".old")
    assert backup.ensure_repository(config) == "created"
    with pytest.raises(OpsError, match="another one than this job backed up to"):
        backup.run_backup(config, state_dir=state)
    assert _raw_snapshots(config) == []


def _exclusive_lock_holder(config):
    """A real ``restic prune`` stopped (SIGSTOP) while it holds the repository's exclusive
    lock; returns its Popen."""
    import signal
    environ = dict(os.environ, RESTIC_REPOSITORY=config["repository"],
                   RESTIC_PASSWORD_FILE=config["password_file"])
    locks = os.path.join(config["repository"], "locks")

    def held():  # a lock file written in full (not restic's "<id>-tmp-<n>" while writing)
        return [name for name in os.listdir(locks) if len(name) == 64]
    for _attempt in range(20):
        proc = subprocess.Popen(["restic", "prune"], env=environ, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while not held() and proc.poll() is None:
            pass
        os.kill(proc.pid, signal.SIGSTOP)
        if proc.poll() is None and held():
            return proc
        os.kill(proc.pid, signal.SIGCONT)
        proc.wait()
    pytest.fail("could not catch restic prune holding its lock")


@needs_restic
def test_a_locked_repository_is_waited_for_then_backed_up(setup):
    import signal
    import threading
    config = dict(setup["config"], lock_wait_seconds=60)
    assert backup.run_backup(config)["ok"]
    holder = _exclusive_lock_holder(config)
    timer = threading.Timer(3, lambda: os.kill(holder.pid, signal.SIGCONT))
    timer.start()
    try:
        result = backup.run_backup(config)
    finally:
        timer.cancel()
        os.kill(holder.pid, signal.SIGCONT)
        holder.wait()
    assert result["ok"], result.get("error")
    assert result["seconds"] >= 0


@needs_restic
def test_a_lock_held_past_the_wait_fails_the_backup(setup):
    import signal
    config = dict(setup["config"], lock_wait_seconds=1)
    assert backup.run_backup(config)["ok"]
    holder = _exclusive_lock_holder(config)
    try:
        with pytest.raises(OpsError, match="stayed locked by another process for 1 s"):
            backup.run_backup(config)
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        holder.wait()
    assert len(backup.list_snapshots(config)) == 1


@needs_restic
def test_a_failed_retention_alerts_on_its_own_and_the_backup_stays_ok(
        setup, runtime, tmp_path, capsys):
    script = tmp_path / "restic-forget-fails"
    script.write_text("#!/bin/sh\n[ \"$1\" = forget ] && { echo 'Fatal: forget broke' >&2; "
                      "exit 1; }\nexec restic \"$@\"\n")
    os.chmod(str(script), 0o755)
    config_path = tmp_path / "backup.json"
    config_path.write_text(json.dumps(dict(setup["raw"], restic_bin=str(script),
                                           retention={"keep_daily": 1})))
    for day in (1, 2, 3):
        capsys.readouterr()
        assert _cli(["backup", "run", "--config", str(config_path), "--json", "--time",
                     "2026-01-%02d 03:00:00" % day], runtime) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["ok"] and "forget broke" in result["forget"]["error"]
    assert result["retention_alert"]["key"] == "backup:backup:retention"
    assert result["retention_alert"]["level"] == "critical"
    assert len(backup.list_snapshots(setup["config"])) == 3


@needs_restic
def test_an_empty_dump_fails_the_backup_and_makes_no_snapshot(setup):
    for command in ("true", ": > \"$RUNBOOK_OPS_DUMP_DIR/db.dump\""):
        config = backup.validate_config(dict(setup["raw"], dump_dir=str(setup["tmp"] / "dumps"),
                                             hooks=[{"name": "dump", "command": command}]))
        with pytest.raises(OpsError, match="no dump|an empty dump"):
            backup.run_backup(config)
    assert backup.list_snapshots(setup["config"]) == []
    # a hook that writes no dump says so
    config = backup.validate_config(dict(setup["raw"], dump_dir=str(setup["tmp"] / "dumps"),
                                         hooks=[{"name": "flush", "command": "true", "dump": False}]))
    assert backup.run_backup(config)["ok"]


@needs_restic
def test_a_dump_dir_of_another_job_is_refused_before_anything_is_deleted(setup):
    shared = setup["tmp"] / "dumps"
    hook = [{"name": "dump", "command": "echo rows > \"$RUNBOOK_OPS_DUMP_DIR/$JOB.dump\""}]

    def job(name, dump_dir):
        return backup.validate_config(dict(setup["raw"], job=name, dump_dir=str(dump_dir),
                                           hooks=[dict(hook[0], command=hook[0]["command"]
                                                       .replace("$JOB", name))]))
    assert backup.run_backup(job("backup-db", shared))["ok"]
    for other in (job("backup-redis", shared), job("backup-redis", shared / "redis"),
                  job("backup-redis", setup["tmp"])):
        with pytest.raises(OpsError, match="is shared"):
            backup.run_backup(other)
        assert (shared / "backup-db.dump").read_text() == "rows\n"


@needs_restic
def test_an_old_claim_of_the_same_job_below_does_not_stand_in_for_the_dump_dirs_own(setup):
    """A directory below the dump dir that the same job once claimed (its dump_dir moved up a
    level) is no claim of the dump dir itself: the job claims it, and another job is refused."""
    dumps = setup["tmp"] / "dumps"
    (dumps / "old").mkdir(parents=True)
    (dumps / "old" / backup.DUMP_OWNER_FILE).write_text("backup-db\n")
    backup.claim_dump_dir(backup.validate_config(dict(setup["raw"], job="backup-db", dump_dir=str(dumps))))
    assert (dumps / backup.DUMP_OWNER_FILE).read_text() == "backup-db\n"
    other = backup.validate_config(dict(setup["raw"], job="backup-redis", dump_dir=str(dumps)))
    with pytest.raises(OpsError, match="is shared: it is the dump_dir of job backup-db;"):
        backup.claim_dump_dir(other)


def _job_lock_is_held(jobs, runtime, name):
    """Whether another open file description holds the job's lock (flock)."""
    probe = jobs.JobLock(runtime, name, runtime["state_dir"])
    try:
        return probe.acquire(0) is not None
    finally:
        probe.close()


@needs_restic
def test_an_in_place_restore_refuses_while_the_job_holds_its_lock(setup, runtime, tmp_path):
    from _ops import jobs
    config_path = tmp_path / "backup.json"
    config_path.write_text(json.dumps(setup["raw"]))
    assert _cli(["backup", "run", "--config", str(config_path)], runtime) == 0
    (setup["data"] / "app" / "new.jpg").write_bytes(b"after")
    handle = jobs.JobLock(runtime, "backup", runtime["state_dir"])
    assert handle.acquire(0) is None
    handle.write_note({"pid": 4242})
    try:
        assert _cli(["backup", "restore", "--config", str(config_path), "--in-place",
                     "--confirm-overwrite"], runtime) == 1
    finally:
        handle.close()
    assert (setup["data"] / "app" / "new.jpg").exists() and not setup["quarantine"].exists()
    # and a backup run under the wrapper waits its turn: the restore holds the same lock
    handle = backup_cli._job_lock(setup["config"], runtime, "backup restore --in-place")
    try:
        assert _job_lock_is_held(jobs, runtime, "backup")
    finally:
        handle.close()


@needs_restic
def test_sigterm_during_an_in_place_restore_takes_the_failure_path(
        setup, runtime, tmp_path, capsys):
    script = tmp_path / "restic-killed"
    script.write_text("#!/bin/sh\n[ \"$1\" = restore ] && { kill -TERM %d; sleep 30; }\n"
                      "exec restic \"$@\"\n" % os.getpid())
    os.chmod(str(script), 0o755)
    config_path = tmp_path / "backup.json"
    config_path.write_text(json.dumps(dict(setup["raw"], restic_bin=str(script))))
    assert _cli(["backup", "run", "--config", str(config_path)], runtime) == 0
    (setup["data"] / "app" / "new.jpg").write_bytes(b"after")
    capsys.readouterr()
    assert _cli(["backup", "restore", "--config", str(config_path), "--in-place",
                 "--confirm-overwrite", "--json"], runtime) == 1
    out = capsys.readouterr()
    result = json.loads(out.out.splitlines()[-1])
    assert "stopped by SIGTERM" in result["error"] and result["quarantine"]
    assert os.path.exists(result["quarantine"][0] + str(setup["data"] / "app" / "new.jpg"))
    assert "restore of job backup failed: stopped by SIGTERM" in out.err
    with open(os.path.join(runtime["state_dir"], "alerts.json")) as handle:
        assert "backup:backup:restore" in handle.read()


@needs_restic
def test_a_restore_that_does_not_fit_is_refused_before_anything_is_written(setup, tmpfs, tmp_path):
    config = setup["config"]
    assert backup.run_backup(config)["ok"]
    small = tmpfs(tmp_path / "small", "size=128k")
    snap = backup.resolve_snapshot(config)
    plan = backup.plan_restore(config, snap, target=str(small / "look"))
    with pytest.raises(OpsError, match="not enough free space"):
        backup.run_restore(config, plan)
    assert os.listdir(str(small / "look")) == []


@needs_restic
def test_a_check_run_into_a_non_empty_directory_refuses_like_the_real_run(setup, tmp_path):
    config = setup["config"]
    assert backup.run_backup(config)["ok"]
    (tmp_path / "look").mkdir()
    (tmp_path / "look" / "keep.txt").write_text("mine")
    plan = backup.plan_restore(config, backup.resolve_snapshot(config), target=str(tmp_path / "look"))
    for dry_run in (True, False):
        with pytest.raises(OpsError, match="is not empty"):
            backup.run_restore(config, plan, dry_run=dry_run)


def test_the_machine_tag_is_keyed_and_tells_machines_apart(tmp_path):
    ids = []
    for name, machine_id in (("a", "0123456789abcdef0123456789abcdef"),
                             ("b", "fedcba9876543210fedcba9876543210")):
        (tmp_path / name).write_text(machine_id + "\n")
        ids.append(backup.machine_tag(str(tmp_path / "state"), str(tmp_path / name)))
    assert ids[0] != ids[1] and all(tag.startswith("machine:") for tag in ids)
    assert "0123456789ab" not in ids[0]  # keyed, not the machine id itself
    assert backup.machine_tag(str(tmp_path / "state"), str(tmp_path / "missing")) is None


@needs_restic
def test_two_hosts_with_one_label_never_forget_each_others_snapshots(setup):
    """web1 was cloned into web2 with the same host label: each keeps to its own."""
    raw = dict(setup["raw"], retention={"keep_daily": 1})
    web1 = dict(backup.validate_config(raw), machine_tag="machine:aaaaaaaaaaaa")
    web2 = dict(backup.validate_config(raw), machine_tag="machine:bbbbbbbbbbbb")
    for day in (1, 2, 3):
        assert backup.run_backup(web1, when="2026-01-%02d 03:00:00" % day)["ok"]
    for day in (4, 5, 6):
        result = backup.run_backup(web2, when="2026-01-%02d 03:00:00" % day)
        assert result["ok"] and result["other_machines"] == 2
    assert [snap["time"].day for snap in backup.list_snapshots(web1)] == [2, 3]
    assert [snap["time"].day for snap in backup.list_snapshots(web2)] == [5, 6]
    assert backup.resolve_snapshot(web1)["time"].day == 3


@needs_restic
def test_a_second_job_adopting_legacy_snapshots_is_refused(setup):
    config = setup["config"]  # job "backup": adopts them by default
    _legacy_backup(config, "2026-01-01 03:00:00")
    assert backup.run_backup(config, when="2026-01-02 03:00:00")["ok"]
    other = backup.validate_config(dict(setup["raw"], job="backup-files", legacy_snapshots=True))
    with pytest.raises(OpsError, match="both adopt the snapshots made before job tags"):
        backup.run_backup(other)
    assert len(_raw_snapshots(config)) == 2
    with pytest.raises(OpsError, match="both adopt"):
        backup.list_snapshots(other)


@needs_restic
def test_a_source_whose_disk_is_not_mounted_is_refused(setup, tmp_path):
    """/srv/media is its own disk in fstab; tonight it did not mount: the empty directory
    below is not backed up as if it were the uploads."""
    media = tmp_path / "media"
    media.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(media)], check=True)
    (media / "photo.jpg").write_bytes(b"p")
    fstab = tmp_path / "fstab"
    fstab.write_text("# <file system> <mount point> <type>\nUUID=1 / ext4 defaults 0 1\n"
                     "UUID=2 %s ext4 defaults 0 2\nUUID=3 none swap sw 0 0\n" % media)
    config = backup.validate_config(dict(setup["raw"], paths=[str(media)]))
    assert backup.plan_sources(config, fstab=str(fstab))["paths"] == [str(media)]
    subprocess.run(["umount", str(media)], check=True)
    with pytest.raises(OpsError, match="is not mounted"):
        backup.plan_sources(config, fstab=str(fstab))
    assert backup.unmounted_sources([str(media / "sub")], str(fstab)) == [
        (str(media / "sub"), str(media))]


@needs_restic
def test_a_dump_dir_with_a_filesystem_mounted_below_is_never_emptied(setup, tmp_path):
    dump_dir = tmp_path / "dumps"
    (dump_dir / "archive").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.sql").write_text("rows")
    subprocess.run(["mount", "--bind", str(elsewhere), str(dump_dir / "archive")], check=True)
    try:
        config = backup.validate_config(dict(setup["raw"], dump_dir=str(dump_dir), hooks=[
            {"name": "dump", "command": "echo rows > \"$RUNBOOK_OPS_DUMP_DIR/db.dump\""}]))
        with pytest.raises(OpsError, match="has a filesystem mounted below it"):
            backup.run_backup(config)
    finally:
        subprocess.run(["umount", "-l", str(dump_dir / "archive")], check=False)
    assert (elsewhere / "precious.sql").read_text() == "rows"


@pytest.fixture(scope="module")
def newer_restic():
    """Debian 13's restic (0.18), from scripts/ensure-test-restic-newer."""
    script = os.path.join(_MODULE_UTILS, "..", "..", "scripts", "ensure-test-restic-newer")
    found = subprocess.run([script], capture_output=True, text=True, timeout=600, check=False)
    if found.returncode != 0:
        pytest.skip("Debian 13's restic is not available: %s" % found.stderr[-300:])
    return found.stdout.strip()


def test_restic_0_15_and_later_restore_sparse_files_sparse(setup, newer_restic, tmp_path):
    """A 30 MB database file that is mostly holes restores as a few blocks, not 30 MB of
    zeros (restic 0.14 has no --sparse and writes them out)."""
    sparse = setup["data"] / "app" / "sparse.db"
    with open(str(sparse), "wb") as handle:
        handle.write(b"head")
        handle.truncate(30 * 2 ** 20)
    config = backup.validate_config(dict(setup["raw"], restic_bin=newer_restic))
    assert backup.run_backup(config)["ok"]
    target = str(tmp_path / "look")
    plan = backup.plan_restore(config, backup.resolve_snapshot(config), target=target)
    assert backup.run_restore(config, plan)["ok"]
    restored = os.stat(target + str(sparse))
    assert restored.st_size == 30 * 2 ** 20 and restored.st_blocks * 512 < 2 ** 20


# --------------------------------------------------------------------------- adversarial pass

@needs_restic
def test_a_file_rewritten_with_its_old_size_and_mtime_is_moved_aside_not_overwritten(setup):
    """An app (or rsync -t, tar -x) rewrote the database with the same length and put the
    old modification time back: only its change time tells. Overwriting it would lose the
    rows written since the backup."""
    config = setup["config"]
    db = setup["data"] / "volume" / "_data" / "db.sqlite"
    assert backup.run_backup(config)["ok"]
    before = os.stat(str(db))
    today = os.urandom(before.st_size)
    db.write_bytes(today)
    os.utime(str(db), ns=(before.st_atime_ns, before.st_mtime_ns))
    result = _in_place(config)
    moved = {item["path"] for item in result["moves"]}
    assert str(db) in moved
    with open(result["quarantine"][0] + str(db), "rb") as handle:
        assert handle.read() == today


@needs_restic
def test_a_snapshot_due_to_go_that_is_far_larger_than_the_new_one_is_not_forgotten(setup):
    """The uploads were wiped two runs ago: the first small snapshot alerted and forgot
    nothing; the second is not smaller than the first small one. Retention must still not
    forget the last good snapshot that is due to go."""
    config = backup.validate_config(dict(setup["raw"], retention={"keep_daily": 1}))
    assert backup.run_backup(config, when="2026-01-01 03:00:00")["ok"]
    good = backup.list_snapshots(config)[-1]["id"]
    shutil.rmtree(str(setup["data"] / "app" / "uploads"))
    first = backup.run_backup(config, when="2026-01-02 03:00:00")
    assert first["size_drop"] and "skipped" in first["forget"]
    second = backup.run_backup(config, when="2026-01-03 03:00:00")
    assert second["ok"] and "skipped" in second["forget"], second["forget"]
    assert second["size_drop"]["compared_with"] == good[:8]
    assert good in [snap["id"] for snap in backup.list_snapshots(config)]


def test_a_throw_away_host_key_gives_no_machine_tag(tmp_path):
    """A read-only state directory: the key would be new each run, and so the tag; a
    later run would take its own snapshots for another machine's."""
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef0123456789abcdef\n")
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(state)], check=True)
    try:
        assert backup.machine_tag(str(state), str(machine_id)) is None
    finally:
        subprocess.run(["umount", str(state)], check=False)


@needs_restic
def test_two_jobs_claiming_one_dump_dir_at_once_never_both_run(setup):
    import threading
    shared = str(setup["tmp"] / "dumps")
    configs = [backup.validate_config(dict(setup["raw"], job=name, dump_dir=shared, hooks=[
        {"name": "dump", "command": "echo x > \"$RUNBOOK_OPS_DUMP_DIR/%s.dump\"" % name}]))
        for name in ("backup-a", "backup-b")]
    outcomes = []
    barrier = threading.Barrier(2)

    def claim(config):
        barrier.wait()
        try:
            backup.claim_dump_dir(config)
            outcomes.append("claimed")
        except OpsError:
            outcomes.append("refused")
    for _round in range(100):
        shutil.rmtree(shared, ignore_errors=True)
        outcomes.clear()
        workers = [threading.Thread(target=claim, args=(config,)) for config in configs]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert sorted(outcomes) == ["claimed", "refused"]


@needs_restic
def test_a_backup_run_by_hand_during_an_in_place_restore_is_refused(setup, runtime, tmp_path,
                                                                    monkeypatch):
    """Under the wrapper the job's lock keeps them apart; a `backup run` typed by hand
    takes the same lock, and the wrapper's own command is let through."""
    from _ops import jobs, runtime as runtime_module
    config_path = tmp_path / "backup.json"
    config_path.write_text(json.dumps(setup["raw"]))
    assert _cli(["backup", "run", "--config", str(config_path)], runtime) == 0
    handle = backup_cli._job_lock(setup["config"], runtime, "backup restore --in-place")
    try:
        assert _cli(["backup", "run", "--config", str(config_path)], runtime) == 1
        assert len(backup.list_snapshots(setup["config"])) == 1
        monkeypatch.setenv(runtime_module.LOCKED_JOB_ENV, "backup")  # the wrapper's child
        assert _cli(["backup", "run", "--config", str(config_path)], runtime) == 0
    finally:
        handle.close()
    assert not _job_lock_is_held(jobs, runtime, "backup")


@needs_restic
def test_a_repository_moved_on_purpose_is_recorded_anew(setup, tmp_path):
    """backup_repository changed in the inventory (new storage, initialised by the role):
    a new location is a new record, not a refusal; the old location's id is not leaked."""
    config, state = setup["config"], str(tmp_path / "state")
    assert backup.run_backup(config, state_dir=state)["ok"]
    moved = dict(config, repository=str(tmp_path / "new-repo"))
    assert backup.ensure_repository(moved) == "created"
    assert backup.run_backup(moved, state_dir=state)["ok"]
    record = open(backup.repository_record(state, "backup")).read()
    assert str(tmp_path) not in record


# --------------------------------------------------------------------------- env file

_ROLE_TASKS = os.path.join(os.path.dirname(os.path.dirname(_MODULE_UTILS)), "roles", "backup", "tasks",
                           "configure.yml")


def _role_env_file(values):
    """The credentials file as roles/backup/tasks/configure.yml writes it (its template,
    with the collection's filters)."""
    from ansible_collections.runbook.ops.plugins.filter.env_line import FilterModule
    with open(_ROLE_TASKS, encoding="utf-8") as handle:
        tasks = yaml.safe_load(handle)
    (task,) = [t for t in tasks if t.get("name") == "Write the repository credentials (0600)"]
    environment = jinja2.Environment(trim_blocks=True)
    environment.filters.update(("runbook.ops." + name, f) for name, f in FilterModule().filters().items())
    template = environment.from_string(task["ansible.builtin.copy"]["content"])
    return template.render(backup_repository_env=values)


@given(st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,15}", fullmatch=True),
                       st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
                               max_size=30), max_size=4))
def test_every_credential_the_role_writes_reads_back_unchanged(tmp_path_factory, values):
    """A secret ending in a quote, holding '#', '$', '=', spaces or quotes arrives at
    restic as written (before, any quote at either end was stripped)."""
    path = tmp_path_factory.mktemp("env") / "backup.env"
    path.write_text(_role_env_file(values), encoding="utf-8")
    assert backup.read_env_file(str(path)) == values
