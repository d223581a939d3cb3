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

import pytest

_MODULE_UTILS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..",
                                             "..", "plugins", "module_utils"))
sys.path.insert(0, _MODULE_UTILS)

from _ops import backup, backup_cli  # noqa: E402
from _ops.errors import OpsError  # noqa: E402

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
def setup(tmp_path, monkeypatch):
    """A data tree (files + a volume-like dir), a password file and a config."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = tmp_path / "data"
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
    return {"tmp": tmp_path, "data": data, "config": backup.validate_config(raw), "raw": raw}


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
], ids=["no-repo", "relative-path", "unknown-key", "bad-engine", "no-sources",
        "negative-keep", "bad-subset", "bad-volume", "hook-without-command"])
def test_validate_config_rejects_bad_input_with_a_fix(raw, message):
    with pytest.raises(OpsError) as info:
        backup.validate_config(raw)
    assert message in info.value.message


def test_forget_argv_always_keeps_the_newest_and_prunes():
    config = backup.validate_config({"repository": "/r", "paths": ["/x"], "host_label": "h",
                                     "retention": {"keep_daily": 30, "keep_monthly": 6}})
    argv = backup.forget_argv(config)
    assert argv[:3] == ["forget", "--json", "--prune"]
    assert argv[argv.index("--keep-last") + 1] == "1"
    assert argv[argv.index("--keep-daily") + 1] == "30"
    assert argv[argv.index("--keep-monthly") + 1] == "6"
    assert "--keep-weekly" not in argv
    assert argv[argv.index("--group-by") + 1] == "host"


def test_restic_argv_never_carries_password_or_repository(setup):
    config = dict(setup["config"], repository="rest:https://user:pw@backup.example/repo")
    sources = {"paths": ["/srv"], "tags": ["runbook-ops"]}
    argv = backup.restic_argv(config, *backup.backup_argv(config, sources)) + \
        backup.restic_argv(config, *backup.forget_argv(config))
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
    assert "volume:app_db" in plan["tags"] and "runbook-ops" in plan["tags"]
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
    assert actions == ["compose_stop", "volume_create", "clear_conflicts", "restore",
                       "prune_extra_files",
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
    assert result["repository"] == "created"
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


@needs_restic
def test_in_place_restore_puts_back_changed_deleted_and_removes_new_files(setup):
    config = setup["config"]
    before = _tree_checksums(str(setup["data"]))
    assert backup.run_backup(config)["ok"]
    _write(str(setup["data"] / "app" / "config.yml"), b"key: CHANGED\n")
    shutil.rmtree(str(setup["data"] / "app" / "uploads"))
    _write(str(setup["data"] / "volume" / "_data" / "new-after-backup"), b"x")
    os.unlink(str(setup["data"] / "volume" / "_data" / "db.sqlite"))
    os.mkdir(str(setup["data"] / "volume" / "_data" / "db.sqlite"))  # a dir where a file was
    snapshot = backup.resolve_snapshot(config, "latest")
    result = backup.run_restore(config, backup.plan_restore(config, snapshot, in_place=True))
    assert result["ok"] and result["removed_extra_files"] == 1
    assert result["replaced_conflicts"] == 2  # the symlink and the dir-for-file
    assert _tree_checksums(str(setup["data"])) == before


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


@needs_restic
def test_keep_last_one_survives_a_policy_that_keeps_nothing_else(setup):
    config = backup.validate_config(dict(setup["raw"], retention={"keep_daily": 0}))
    for when in ("2026-01-01 03:00:00", "2026-01-02 03:00:00"):
        assert backup.run_backup(config, when=when)["ok"]
    snaps = backup.list_snapshots(config)
    assert [s["time"].day for s in snaps] == [2]


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
    assert dump_dir + "/db.dump" in backup.snapshot_file_paths(config, snapshot["id"])


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
            "log_dir": str(tmp_path / "log"),
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


def test_cli_validate_rejects_a_bad_config(tmp_path, runtime):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"repository": "/r", "paths": ["relative"]}))
    with pytest.raises(OpsError, match="must be absolute"):
        _cli(["backup", "run", "--validate", "--config", str(bad)], runtime)
