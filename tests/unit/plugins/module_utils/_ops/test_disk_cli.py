# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""disk_cli.py: ``runbook-ops disk-check`` as installed on a host, against a fake Bot API.

The core is copied into ``<tmp>/lib/runbook_ops/`` and started by a launcher like the
base role's, with ``/usr/bin/python3``. The checked filesystem is a 1 MiB tmpfs filled
to 700 KiB (df: 69%), so the level does not depend on this machine's disks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tmpfs import mounted_tmpfs

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))
sys.path.insert(0, os.path.join(_REPO, "tests", "fakes"))

from fake_telegram import FakeTelegram  # noqa: E402
from host_layout import install_host_cli  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import disk  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402

TOKEN = "555:AADisk_secret_token_0123456789abcdefGH"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


@pytest.fixture
def fake():
    with FakeTelegram(TOKEN) as server:
        yield server


@pytest.fixture
def host(tmp_path, fake):
    install_host_cli(tmp_path)
    token_file = tmp_path / "telegram.token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    runtime = {"host_label": "web1", "state_dir": str(tmp_path / "state"),
               "log_dir": str(tmp_path / "log"), "lock_dir": str(tmp_path / "run" / "lock"),
               "fallback_state_dir": str(tmp_path / "run" / "state"),
               "alert": {"telegram_api_url": fake.url, "telegram_chat_id": "42",
                         "telegram_token_file": str(token_file)}}
    (tmp_path / "runtime.json").write_text(json.dumps(runtime))
    return tmp_path


@pytest.fixture
def filled(tmp_path):
    with mounted_tmpfs(tmp_path / "fs") as mount:
        (mount / "media").mkdir()
        (mount / "media" / "photo").write_bytes(b"\0" * 700 * 1024)
        yield mount


def _config(host, **settings):
    path = host / "disk-monitor.json"
    path.write_text(json.dumps(settings))
    return str(path)


def _run(host, *args):
    argv = [str(host / "runbook-ops"), "--runtime", str(host / "runtime.json")] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_disk_check_warns_once_records_the_day_and_recovers(host, fake, filled):
    config = _config(host, paths=[str(filled)], warn_percent=60, crit_percent=90,
                     largest_under=[str(filled)], largest_count=3)
    first = _run(host, "disk-check", "--config", config)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("\u26a0\ufe0f web1 disk WARNING: 69%% used on %s " % filled)
    assert [m["text"] for m in fake.messages] == [
        "\u26a0\ufe0f web1 disk WARNING: 69%% used on %s (free 324K, threshold 60%%)\n"
        "Largest directories:\n700K %s/media\n700K %s" % (filled, filled, filled)]  # tmpfs dirs: 0 blocks
    history = host / "state" / "disk-history.jsonl"
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    assert [(row["mount"], row["used_bytes"]) for row in lines] == [(str(filled), 700 * 1024)]

    again = _run(host, "disk-check", "--config", config)
    assert again.returncode == 0, again.stderr
    assert len(fake.messages) == 1  # cooldown
    assert len(history.read_text().splitlines()) == 1  # one sample a day

    calm = _config(host, paths=[str(filled)], warn_percent=70, crit_percent=90)
    recovered = _run(host, "disk-check", "--config", calm)
    assert recovered.returncode == 0, recovered.stderr
    assert fake.messages[-1]["text"] == (
        "\u2705 web1 disk recovered: 69%% used on %s (free 324K, threshold 70%%)" % filled)


def test_disk_check_json_carries_result_samples_and_alerts(host, fake, filled):
    config = _config(host, paths=[str(filled)], alert=False)
    proc = _run(host, "disk-check", "--config", config, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["result"]["status"] == "ok"
    assert data["samples"] == [{"mount": str(filled), "recorded": True}]
    assert data["alerts"] == [] and fake.messages == []


@pytest.mark.parametrize("settings, words", [
    ({"warn_percent": 90, "crit_percent": 85}, "warn_percent (90) must be lower than crit_percent (85)"),
    ({"paths": "/"}, "paths must be a list of paths"),
    ({"treshold": 3}, "unknown key(s) treshold"),
    ({"scan_timeout": 0}, "scan_timeout must be a positive number"),
], ids=["warn-above-crit", "paths-not-a-list", "unknown-key", "timeout-zero"])
def test_disk_check_validate_rejects_bad_config_with_exit_2(host, settings, words):
    proc = _run(host, "disk-check", "--config", _config(host, **settings), "--validate")
    assert proc.returncode == 2
    assert words in proc.stderr and "Traceback" not in proc.stderr


def test_disk_check_validate_accepts_a_good_config(host):
    proc = _run(host, "disk-check", "--config", _config(host, paths=["/"]), "--validate")
    assert proc.returncode == 0, proc.stderr
    assert "is valid: 1 path(s), 0 scan root(s)" in proc.stdout


def test_validate_config_fills_defaults():
    config = disk.validate_config({})
    assert config == disk.CONFIG_DEFAULTS
    with pytest.raises(OpsError):
        disk.validate_config([])


@pytest.fixture
def brim(tmp_path):
    """A 1 MiB tmpfs that the test fills to 0 bytes free (``fill(mount)``)."""
    with mounted_tmpfs(tmp_path / "brim") as mount:
        yield mount


def _fill_to_the_brim(mount):
    for block in ("4k", "1"):
        subprocess.run(["dd", "if=/dev/zero", "of=%s/filler-%s" % (mount, block), "bs=" + block],
                       capture_output=True, check=False)
    assert os.statvfs(str(mount)).f_bavail == 0


def _runtime_on(host, state_dir, name="runtime-full.json"):
    runtime = json.loads((host / "runtime.json").read_text())
    runtime.update(state_dir=str(state_dir / "state"), log_dir=str(state_dir / "log"))
    (host / name).write_text(json.dumps(runtime))
    return str(host / name)


def test_a_full_disk_still_alerts_through_the_wrapper_and_skips_only_the_state(host, fake, brim):
    runtime = _runtime_on(host, brim)
    config = _config(host, paths=[str(brim)], largest_under=[str(brim)],
                     textfile_dir=str(brim / "textfile"))
    launcher = str(host / "runbook-ops")
    check = [launcher, "--runtime", runtime, "disk-check", "--config", config]
    calm = subprocess.run(check, capture_output=True, text=True, timeout=120, check=False)
    assert calm.returncode == 0, calm.stderr
    assert fake.messages == []  # ok, state and one sample written while there was room
    _fill_to_the_brim(brim)
    cron = [launcher, "--runtime", runtime, "run", "--job", "disk-monitor", "--"] + check
    for _attempt in (1, 2):
        subprocess.run(cron, capture_output=True, text=True, timeout=120, check=False)
        # The wrapper keeps the state (cooldowns too) in the fallback directory: one each.
        texts = [m["text"] for m in fake.messages]
        assert len(texts) == 2
        assert texts[0].startswith("\U0001f6a8 web1 CRITICAL: job disk-monitor: cannot write "
                                   "the state directory %s/state (No space left on device)"
                                   % brim)
        assert texts[1].startswith(
            "\U0001f6a8 web1 disk CRITICAL: 100%% used on %s (free 0, threshold 85%%)\n"
            "Largest directories:\n" % brim)
    direct = subprocess.run(check, capture_output=True, text=True, timeout=120, check=False)
    assert direct.returncode == 0, direct.stderr
    assert "alert state not saved" in direct.stdout
    assert "metrics: NOT written, cannot write %s/textfile/runbook_ops_disk.prom" % brim \
        in direct.stdout
    assert not (brim / "state" / "alerts.json").exists()  # a calm run writes no alert state
    fallback = json.loads((host / "run" / "state" / "alerts.json").read_text())
    assert fallback["disk:%s" % brim]["level"] == "critical"
    assert len((brim / "state" / "disk-history.jsonl").read_text().splitlines()) == 1


def test_the_wrapper_exits_0_on_a_full_state_disk(host, fake, brim):
    runtime = _runtime_on(host, brim)
    config = _config(host, paths=[str(brim)])
    launcher = str(host / "runbook-ops")
    _fill_to_the_brim(brim)
    proc = subprocess.run([launcher, "--runtime", runtime, "run", "--job", "disk-monitor", "--",
                           launcher, "--runtime", runtime, "disk-check", "--config", config],
                          capture_output=True, text=True, timeout=120, check=False)
    assert [m["text"].split(":")[0] for m in fake.messages] == [
        "\U0001f6a8 web1 CRITICAL", "\U0001f6a8 web1 disk CRITICAL"]  # storage, then the disk
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


def test_the_docker_breakdown_goes_only_to_the_mount_holding_the_data_root(host, fake, filled,
                                                                           tmp_path):
    from ansible_collections.runbook.ops.plugins.module_utils._ops import disk_cli
    from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import load_runtime
    runtime = load_runtime(str(host / "runtime.json"))
    config = disk.validate_config({"paths": [str(filled)], "warn_percent": 60})
    sent = []
    calls = []

    def notify(runtime, key, level, text, subject=""):
        sent.append((key, level, subject, text))
        return {"key": key, "sent": True}

    def docker_on(data_root):
        def usage():
            calls.append(data_root)
            return {"data_root": data_root, "logs": None,
                    "images": {"bytes": 3 << 30, "reclaimable_bytes": 1 << 30, "count": 9,
                               "active": 4},
                    "build_cache": {}, "volumes": {}, "containers": {}}
        return usage

    summary = disk_cli.run_disk_check(config, runtime, notify=notify,
                                      docker=docker_on(str(filled / "media")))
    assert sent[0][:3] == ("disk:%s" % filled, "warning", "disk")
    assert "\nDocker (docker system df):\nimages 3.0G (9 images, 4 in use, reclaimable 1.0G)" \
        in sent[0][3]
    assert summary["docker"]["data_root"] == str(filled / "media")
    disk_cli.run_disk_check(config, runtime, notify=notify, docker=docker_on(str(tmp_path)))
    assert "Docker" not in sent[1][3]
    calm = disk.validate_config({"paths": [str(filled)], "warn_percent": 80, "crit_percent": 90})
    disk_cli.run_disk_check(calm, runtime, notify=notify, docker=docker_on("/"))
    assert len(calls) == 2  # an ok disk does not ask Docker


def test_disk_check_writes_the_textfile_metrics(host, fake, filled):
    textfile = host / "textfile"
    config = _config(host, paths=[str(filled)], alert=False, textfile_dir=str(textfile))
    proc = _run(host, "disk-check", "--config", config)
    assert proc.returncode == 0, proc.stderr
    assert "metrics: written to %s/runbook_ops_disk.prom" % textfile in proc.stdout
    prom = (textfile / "runbook_ops_disk.prom").read_text()
    assert 'runbook_ops_disk_used_percent{mount="%s"} 69\n' % filled in prom
    assert os.listdir(str(textfile)) == ["runbook_ops_disk.prom"]  # no temp file left


@pytest.mark.parametrize("settings, words", [
    ({"textfile_dir": "relative/dir"}, "textfile_dir must be an absolute directory path"),
    ({"docker_usage": "yes"}, "docker_usage must be true or false"),
], ids=["textfile-relative", "docker-usage-not-bool"])
def test_validate_rejects_bad_metrics_and_docker_settings(host, settings, words):
    proc = _run(host, "disk-check", "--config", _config(host, **settings), "--validate")
    assert proc.returncode == 2 and words in proc.stderr


def test_validate_ignores_the_managed_comment():
    config = disk.validate_config({"_comment": "Ansible managed", "paths": ["/"]})
    assert "_comment" not in config
