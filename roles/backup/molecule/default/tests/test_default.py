# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore drill: back up, damage, restore (CLI and playbooks/restore.yml), compare
every checksum; retention with forged dates; a failing hook and a stale repository
alert at the fake Telegram Bot API; the password never shows anywhere."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

PASSWORD = "Molecule-Backup-Password-do-not-leak-9876"
CONFIG = "/etc/runbook-ops/backup.json"
RECORD = "/opt/fake-telegram/requests.jsonl"
DATA = ["/srv/app", "/srv/volumes/app_db/_data", "/opt/app"]
RESTIC_ENV = "RESTIC_PASSWORD_FILE=/etc/runbook-ops/backup.password RESTIC_REPOSITORY=%s"
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
REPO_ROOT = os.path.abspath(os.path.join(PROJECT, "..", ".."))


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


def _alerts(host):
    content = host.file(RECORD).content_string if host.file(RECORD).exists else ""
    return [json.loads(line) for line in content.splitlines() if line.strip()]


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


def _playbook(*extra):
    env = dict(os.environ)
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", env.get("RUNBOOK_OPS_COLLECTIONS_PATH", ""))
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
    argv = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
            os.path.join(REPO_ROOT, "playbooks", "restore.yml"),
            "-e", "restore_hosts=backup-instance"]
    for item in extra:
        argv += ["-e", item]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)


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

    # the hook's dump is in the snapshot
    listing = _ok(host, (RESTIC_ENV % "/srv/restic-repo") + " restic ls latest")
    assert "/var/backups/runbook-ops/dumps/db.dump" in listing

    # damage: change, delete, add
    _ok(host, "echo changed > /srv/app/uploads/2026/01/photo.jpg && rm /srv/app/uploads/2026/01/list.txt"
              " && rm -rf /srv/volumes/app_db/_data/* && echo new > /srv/app/uploads/added-later.txt"
              " && echo APP_SECRET=changed > /opt/app/.env")
    assert _checksums(host, DATA) != before

    # 1. CLI: into a scratch directory, nothing live touched
    scratch_dir = "/var/tmp/drill-scratch-%d" % os.getpid()
    _ok(host, "runbook-ops backup restore --config %s --target %s" % (CONFIG, scratch_dir))
    assert _checksums(host, DATA, prefix=scratch_dir) == before

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

    # 4. playbook in place with confirm_overwrite=yes: every file as it was, extras gone
    in_place = _playbook("confirm_overwrite=yes")
    assert in_place.returncode == 0, in_place.stdout + in_place.stderr
    assert "restored in place" in in_place.stdout
    assert _checksums(host, DATA) == before
    assert not host.file("/srv/app/uploads/added-later.txt").exists
    assert PASSWORD not in scratch.stdout + in_place.stdout + refused.stdout


def test_retention_with_forged_dates_keeps_expected_and_the_newest(host):
    config = _derived_config(host, "backup-forged", repository="/srv/restic-forged", hooks=[],
                             dump_dir="")
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
    config = _derived_config(host, "backup-failhook", job="backup-failhook", hooks=[
        {"name": "pg_dump", "command": "echo 'pg_dump: connection refused' >&2; exit 3"}])
    run = host.run("runbook-ops run --job backup-failhook -- runbook-ops backup run --config %s"
                   % config)
    assert run.rc != 0
    assert len(_snapshots(host, "/srv/restic-repo")) == before
    texts = [a["text"] for a in _alerts(host) if a.get("text")]
    assert any("backup-failhook" in t and "CRITICAL" in t and "hook pg_dump failed" in t
               for t in texts), texts


def test_stale_repository_raises_the_freshness_alert(host):
    config = _derived_config(host, "backup-stale", job="backup-stale",
                             repository="/srv/restic-stale", hooks=[], dump_dir="")
    _ok(host, "runbook-ops backup init --config %s" % config)
    _ok(host, "runbook-ops backup run --config %s --time '2026-01-01 03:00:00'" % config)
    _ok(host, "runbook-ops run --job backup-stale-freshness -- runbook-ops backup freshness "
              "--config %s" % config)
    texts = [a["text"] for a in _alerts(host) if a.get("text")]
    assert any("backup-stale: newest backup is" in t and "CRITICAL" in t and "limit 25 h" in t
               for t in texts), texts
    assert all(a.get("token_ok", True) for a in _alerts(host))


def test_fresh_repository_sends_no_freshness_alert(host):
    count = len(_alerts(host))
    _ok(host, "runbook-ops run --job backup-freshness -- runbook-ops backup freshness --config %s"
        % CONFIG)
    assert len(_alerts(host)) == count


def test_password_never_in_logs_state_or_alerts(host):
    found = host.run("grep -rlF %s /var/log /var/lib/runbook-ops /opt/fake-telegram/requests.jsonl "
                     "/etc/runbook-ops/backup.json /etc/cron.d" % _quote(PASSWORD))
    assert found.rc == 1, found.stdout
