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
import shutil
import subprocess
import sys

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))
sys.path.insert(0, os.path.join(_REPO, "tests", "fakes"))

from fake_telegram import FakeTelegram  # noqa: E402

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
    lib = tmp_path / "lib" / "runbook_ops"
    lib.mkdir(parents=True)
    source = os.path.join(_REPO, "plugins", "module_utils", "_ops")
    for name in os.listdir(source):
        if name.endswith(".py"):
            shutil.copy(os.path.join(source, name), lib / name)
    launcher = tmp_path / "runbook-ops"
    launcher.write_text("#!%s\nimport sys\nsys.path.insert(0, %r)\n"
                        "from runbook_ops.cli import main\nsys.exit(main())\n"
                        % (PYTHON, str(lib.parent)))
    launcher.chmod(0o755)
    token_file = tmp_path / "telegram.token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    runtime = {"host_label": "web1", "state_dir": str(tmp_path / "state"),
               "log_dir": str(tmp_path / "log"),
               "alert": {"telegram_api_url": fake.url, "telegram_chat_id": "42",
                         "telegram_token_file": str(token_file)}}
    (tmp_path / "runtime.json").write_text(json.dumps(runtime))
    return tmp_path


@pytest.fixture
def filled(tmp_path):
    mount = tmp_path / "fs"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("cannot mount tmpfs here: %s" % proc.stderr.strip())
    try:
        (mount / "media").mkdir()
        (mount / "media" / "photo").write_bytes(b"\0" * 700 * 1024)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


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
        "\u26a0\ufe0f web1 WARNING: disk 69%% used on %s (free 324K, threshold 60%%)\n"
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
        "\u2705 web1 recovered: disk 69%% used on %s (free 324K, threshold 70%%)" % filled)


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
