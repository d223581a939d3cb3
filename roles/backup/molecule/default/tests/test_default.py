# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore drill: back up, damage, restore (CLI and playbooks/restore.yml), compare
every checksum, find what was written after the backup in the quarantine and excluded
files untouched; restore.yml refuses without a host selection and restores in place one
host at a time, stopping at the first failure; retention with forged dates; a failing
hook and a stale repository alert at the fake Telegram Bot API; the password never shows
anywhere. Checks run on backup-instance; backup-instance-2 is the second host."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import testinfra

testinfra_hosts = ["ansible://backup-instance"]

PASSWORD = "Molecule-Backup-Password-do-not-leak-9876"
CONFIG = "/etc/runbook-ops/backup.json"
DATA = ["/srv/app", "/srv/volumes/app_db/_data", "/opt/app"]
RESTIC_ENV = "RESTIC_PASSWORD_FILE=/etc/runbook-ops/backup.password RESTIC_REPOSITORY=%s"
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
REPO_ROOT = os.path.abspath(os.path.join(PROJECT, "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "verifiers"))
from common_checks import TELEGRAM, json_lines  # noqa: E402 pylint: disable=wrong-import-position


def _ok(host, command):
    result = host.run(command)
    assert result.rc == 0, "%s\nstdout: %s\nstderr: %s" % (command, result.stdout, result.stderr)
    return result.stdout


def _checksums(host, roots, prefix=""):
    """{path: sha256 or 'link->target'} for every file and symlink under roots."""
    script = (
        "import hashlib, json, os, sys\n"
        "prefix, roots = sys.argv[1], sys.argv[2:]\n"
        "out = {}\n"
        "for root in roots:\n"
        "    for cur, dirs, files in os.walk(prefix + root):\n"
        "        for name in files + dirs:\n"
        "            p = os.path.join(cur, name)\n"
        "            key = p[len(prefix):]\n"
        "            if os.path.islink(p): out[key] = 'link->' + os.readlink(p)\n"
        "            elif os.path.isfile(p): out[key] = hashlib.sha256(open(p, 'rb').read()).hexdigest()\n"
        "            else: out[key] = 'dir'\n"
        "print(json.dumps(out, sort_keys=True))\n")
    return json.loads(_ok(host, "python3 -c %s %s %s" % (
        _quote(script), _quote(prefix), " ".join(roots))))


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _derived_config(host, name, **changes):
    """Copy the role's config to /etc/runbook-ops/<name>.json with ``changes``."""
    config = json.loads(host.file(CONFIG).content_string)
    config.update(changes)
    path = "/etc/runbook-ops/%s.json" % name
    _ok(host, "printf '%%s' %s > %s && chmod 600 %s" % (_quote(json.dumps(config)), path, path))
    return path


def _snapshots(host, repository):
    out = _ok(host, (RESTIC_ENV % repository) + " restic snapshots --json")
    return json.loads(out or "[]")


def _playbook(*extra, hosts="backup-instance", check=False):
    """Run playbooks/restore.yml with ``-e`` items; ``hosts=None`` chooses no hosts at all."""
    env = dict(os.environ)
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", env.get("RUNBOOK_OPS_COLLECTIONS_PATH", ""))
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"  # one line per message, never folded
    argv = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
            os.path.join(REPO_ROOT, "playbooks", "restore.yml")]
    if hosts:
        argv += ["-e", "restore_hosts=%s" % hosts]
    if check:
        argv.append("--check")
    for item in extra:
        argv += ["-e", item]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)


def _second_host():
    return testinfra.get_host("ansible://backup-instance-2",
                              ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


def _quarantined(host, path):
    """Where ``path`` went in the quarantine (one dated directory per restore), or None."""
    found = host.run("ls -d /runbook-ops-quarantine/*%s 2>/dev/null" % path).stdout.split()
    return found[-1] if found else None


# --------------------------------------------------------------------------- what the role left

def test_password_file_is_0600_and_only_there(host):
    secret = host.file("/etc/runbook-ops/backup.password")
    assert secret.mode == 0o600 and secret.user == "root"
    assert secret.content_string.strip() == PASSWORD
    config = host.file(CONFIG)
    assert config.mode == 0o600
    assert PASSWORD not in config.content_string
    assert json.loads(config.content_string)["password_file"] == "/etc/runbook-ops/backup.password"


def test_repository_was_initialised(host):
    assert host.file("/srv/restic-repo/config").exists


@pytest.mark.parametrize("name, schedule, command", [
    ("backup", "0 3 * * *", "backup run"),
    ("backup-check", "30 5 * * 0", "backup check"),
    ("backup-freshness", "15 * * * *", "backup freshness"),
])
def test_cron_jobs_go_through_the_wrapper(host, name, schedule, command):
    cron = host.file("/etc/cron.d/runbook-ops-%s" % name)
    assert cron.mode == 0o644
    text = cron.content_string
    assert text.startswith("#") and "Ansible managed" in text
    assert "%s root /usr/local/bin/runbook-ops run --job %s " % (schedule, name) in text
    assert "-- /usr/local/bin/runbook-ops %s --config %s" % (command, CONFIG) in text


def test_logs_are_rotated(host):
    text = host.file("/etc/logrotate.d/backup").content_string
    for log in ("/var/log/backup.log", "/var/log/backup-check.log", "/var/log/backup-freshness.log"):
        assert log in text


def test_config_validates(host):
    assert "valid" in _ok(host, "runbook-ops backup run --validate --config %s" % CONFIG)


# --------------------------------------------------------------------------- the restore drill

def test_restore_drill_brings_back_every_checksum(host):
    before = _checksums(host, DATA)
    assert len([v for v in before.values() if v not in ("dir",)]) >= 6
    _ok(host, "runbook-ops run --job backup -- runbook-ops backup run --config %s" % CONFIG)
    log = host.file("/var/log/backup.log").content_string
    assert "backup backup done" in log

    # the hook's dump is in the snapshot, the excluded thumbnails are not
    listing = _ok(host, (RESTIC_ENV % "/srv/restic-repo") + " restic ls latest")
    assert "/var/backups/runbook-ops/dumps/backup/db.dump" in listing  # the job's own dump dir
    assert "thumbs.cache" not in listing

    # damage: change, delete, add, and change the excluded file
    _ok(host, "echo changed > /srv/app/uploads/2026/01/photo.jpg && rm /srv/app/uploads/2026/01/list.txt"
              " && rm -rf /srv/volumes/app_db/_data/* && echo new > /srv/app/uploads/added-later.txt"
              " && echo APP_SECRET=changed > /opt/app/.env"
              " && echo regenerated > /srv/app/uploads/2026/01/thumbs.cache")
    damaged = _checksums(host, DATA)
    assert damaged != before
    excluded = "/srv/app/uploads/2026/01/thumbs.cache"
    in_snapshot = {path: value for path, value in before.items() if path != excluded}

    # 1. CLI: into a scratch directory, nothing live touched
    scratch_dir = "/var/tmp/drill-scratch-%d" % os.getpid()
    _ok(host, "runbook-ops backup restore --config %s --target %s" % (CONFIG, scratch_dir))
    assert _checksums(host, DATA, prefix=scratch_dir) == in_snapshot
    assert _checksums(host, DATA) == damaged

    # 2. playbook without confirmation refuses to overwrite
    refused = _playbook("restore_in_place=true")
    assert refused.returncode != 0
    assert "Refusing to overwrite live data" in refused.stdout + refused.stderr
    assert host.file("/srv/app/uploads/added-later.txt").exists

    # 3. playbook default: a fresh scratch directory that it prints
    scratch = _playbook()
    assert scratch.returncode == 0, scratch.stdout + scratch.stderr
    assert "/var/tmp/runbook-ops-restore/backup-drill-" in scratch.stdout
    assert "nothing live was touched" in scratch.stdout

    # 4. --check in place: shows what would be replaced and moved aside, changes nothing
    preview = _playbook("confirm_overwrite=yes", check=True)
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert "dry run, nothing changed" in preview.stdout
    assert "would move" in preview.stdout and "/srv/app/uploads/added-later.txt" in preview.stdout
    assert "differs now: /srv/app/uploads/2026/01/photo.jpg" in preview.stdout
    assert _checksums(host, DATA) == damaged and not host.file("/runbook-ops-quarantine").exists

    # 5. playbook in place with confirm_overwrite=yes: every file as it was, the excluded
    #    file as it is now, the file written after the backup moved aside, not deleted
    in_place = _playbook("confirm_overwrite=yes")
    assert in_place.returncode == 0, in_place.stdout + in_place.stderr
    assert "in place: ok" in in_place.stdout
    after = _checksums(host, DATA)
    assert after == dict(in_snapshot, **{excluded: damaged[excluded]})
    assert not host.file("/srv/app/uploads/added-later.txt").exists
    moved = _quarantined(host, "/srv/app/uploads/added-later.txt")
    assert moved and host.file(moved).content_string == "new\n"
    assert moved.split("/srv/app")[0] in in_place.stdout  # the playbook names the quarantine
    assert "1 excluded paths left untouched" in in_place.stdout
    assert PASSWORD not in scratch.stdout + in_place.stdout + refused.stdout + preview.stdout


def test_restore_playbook_refuses_without_a_host_selection_and_changes_nothing(host):
    second = _second_host()
    for machine in (host, second):
        _ok(machine, "echo written-after > /srv/app/not-in-any-snapshot.txt")
    before = [_checksums(machine, DATA) for machine in (host, second)]
    quarantines = [machine.run("ls /runbook-ops-quarantine 2>/dev/null").stdout
                   for machine in (host, second)]

    refused = _playbook("confirm_overwrite=yes", hosts=None)

    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    lines = [line for line in output.splitlines() if "Refusing to run on every host" in line]
    assert lines and "--limit HOST or -e restore_hosts=GROUP" in lines[0]
    assert "Restore the snapshot" not in output
    assert [_checksums(machine, DATA) for machine in (host, second)] == before
    assert [machine.run("ls /runbook-ops-quarantine 2>/dev/null").stdout
            for machine in (host, second)] == quarantines


def test_in_place_restore_goes_host_by_host_and_stops_at_the_first_failure(host):
    second = _second_host()
    for machine in (host, second):
        # the dump hook needs its source, whatever an earlier test left
        _ok(machine, "test -s /srv/volumes/app_db/_data/db.sqlite"
                     " || echo rows > /srv/volumes/app_db/_data/db.sqlite")
        _ok(machine, "runbook-ops backup run --config %s" % CONFIG)
        _ok(machine, "echo after-the-backup > /srv/app/uploads/stop-test.txt")
    # the first host's repository is unreachable: its restore fails
    _ok(host, "mv /srv/restic-repo /srv/restic-repo.away")
    try:
        failed = _playbook("confirm_overwrite=yes", hosts="all")
    finally:
        _ok(host, "mv /srv/restic-repo.away /srv/restic-repo")
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "Restore on backup-instance failed" in output
    assert "backup-instance-2" not in output.split("PLAY RECAP")[0]  # never started there
    assert second.file("/srv/app/uploads/stop-test.txt").exists
    assert _quarantined(second, "/srv/app/uploads/stop-test.txt") is None

    both = _playbook("confirm_overwrite=yes", hosts="all")
    assert both.returncode == 0, both.stdout + both.stderr
    # serial: every task of the first host ran before the second host's first task
    tasks = [line for line in both.stdout.splitlines() if line.startswith("TASK [Restore the snapshot")]
    assert len(tasks) == 2
    first_done = both.stdout.index("in place: ok")
    assert both.stdout.index("backup-instance-2") > first_done
    for machine in (host, second):
        assert not machine.file("/srv/app/uploads/stop-test.txt").exists
        assert _quarantined(machine, "/srv/app/uploads/stop-test.txt")


def test_retention_with_forged_dates_keeps_expected_and_the_newest(host):
    config = _derived_config(host, "backup-forged", repository="/srv/restic-forged", hooks=[],
                             dump_dir="")
    _ok(host, "runbook-ops backup init --config %s" % config)  # a run never initialises
    for day in range(1, 7):
        _ok(host, "runbook-ops backup run --config %s --time '2026-01-%02d 03:00:00'" % (config, day))
    days = sorted(s["time"][:10] for s in _snapshots(host, "/srv/restic-forged"))
    assert days == ["2026-01-04", "2026-01-05", "2026-01-06"]
    # a snapshot forged older than all others: retention removes it, never the newest
    _ok(host, "runbook-ops backup run --config %s --time '2025-12-01 03:00:00'" % config)
    days = sorted(s["time"][:10] for s in _snapshots(host, "/srv/restic-forged"))
    assert days == ["2026-01-04", "2026-01-05", "2026-01-06"]


def test_failing_hook_fails_the_backup_and_alerts(host):
    before = len(_snapshots(host, "/srv/restic-repo"))
    config = _derived_config(host, "backup-failhook", job="backup-failhook",
                             legacy_snapshots=False,  # the job "backup" adopts them
                             dump_dir="/var/backups/runbook-ops/dumps/backup-failhook", hooks=[
                                 {"name": "pg_dump",
                                  "command": "echo 'pg_dump: connection refused' >&2; exit 3"}])
    run = host.run("runbook-ops run --job backup-failhook -- runbook-ops backup run --config %s"
                   % config)
    assert run.rc != 0
    assert len(_snapshots(host, "/srv/restic-repo")) == before
    texts = [a["text"] for a in json_lines(host, TELEGRAM) if a.get("text")]
    assert any("backup-failhook" in t and "CRITICAL" in t and "hook pg_dump failed" in t
               for t in texts), texts


def test_stale_repository_raises_the_freshness_alert(host):
    config = _derived_config(host, "backup-stale", job="backup-stale",
                             repository="/srv/restic-stale", hooks=[], dump_dir="")
    _ok(host, "runbook-ops backup init --config %s" % config)
    _ok(host, "runbook-ops backup run --config %s --time '2026-01-01 03:00:00'" % config)
    _ok(host, "runbook-ops run --job backup-stale-freshness -- runbook-ops backup freshness "
              "--config %s" % config)
    texts = [a["text"] for a in json_lines(host, TELEGRAM) if a.get("text")]
    assert any("backup-stale: newest backup is" in t and "CRITICAL" in t and "limit 25 h" in t
               for t in texts), texts
    assert all(a.get("token_ok", True) for a in json_lines(host, TELEGRAM))


def test_fresh_repository_sends_no_freshness_alert(host):
    count = len(json_lines(host, TELEGRAM))
    _ok(host, "runbook-ops run --job backup-freshness -- runbook-ops backup freshness --config %s"
        % CONFIG)
    assert len(json_lines(host, TELEGRAM)) == count


def test_password_never_in_logs_state_or_alerts(host):
    found = host.run("grep -rlF %s /var/log /var/lib/runbook-ops /opt/fake-telegram/requests.jsonl "
                     "/etc/runbook-ops/backup.json /etc/cron.d" % _quote(PASSWORD))
    assert found.rc == 1, found.stdout
