# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cli.py, jobs_cli.py, alerts_cli.py: the runbook-ops CLI as installed on a host.

The core is copied into ``<tmp>/lib/runbook_ops/`` and started by the same kind of
launcher the base role installs, with ``/usr/bin/python3`` (the host's interpreter).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))
sys.path.insert(0, os.path.join(_REPO, "tests", "fakes"))

from fake_telegram import FakeTelegram  # noqa: E402
from host_layout import install_host_cli  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import cli  # noqa: E402

TOKEN = "555:AACli_secret_token_0123456789abcdefGH"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


@pytest.fixture
def fake():
    with FakeTelegram(TOKEN) as server:
        yield server


@pytest.fixture
def host(tmp_path):
    install_host_cli(tmp_path)
    token_file = tmp_path / "telegram.token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    return tmp_path


def _write_runtime(host, api_url, **extra):
    data = {"host_label": "web1", "state_dir": str(host / "state"), "log_dir": str(host / "log"),
            "lock_dir": str(host / "run" / "lock"), "fallback_state_dir": str(host / "run" / "state"),
            "alert": {"telegram_api_url": api_url, "telegram_chat_id": "42",
                      "telegram_token_file": str(host / "telegram.token")}}
    data.update(extra)
    path = host / "runtime.json"
    path.write_text(json.dumps(data))
    return path


def _run(host, *args, runtime=None):
    argv = [str(host / "runbook-ops")]
    if runtime is not None:
        argv += ["--runtime", str(runtime)]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=60, check=False)


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_command_map_matches_what_each_module_registers():
    core_dir = os.path.dirname(cli.__file__)
    cli_files = sorted(f[:-3] for f in os.listdir(core_dir) if f.endswith("_cli.py"))
    assert sorted(cli.command_modules()) == cli_files
    for name in cli.command_modules():
        parser = cli.build_parser((name,))
        registered = set(parser._subparsers._group_actions[0].choices)  # pylint: disable=protected-access
        assert registered == {cmd for cmd, module in cli.COMMANDS.items() if module == name}, name
    help_text = cli.build_parser().format_help()
    assert all(cmd in help_text for cmd in cli.COMMANDS)


@pytest.mark.parametrize("argv, expected", [
    (["run", "--job", "x", "--", "true"], "run"),
    (["--runtime", "/tmp/r.json", "health-check", "--config", "c"], "health-check"),
    (["--runtime=/tmp/r.json", "alert", "--test"], "alert"),
    (["--help"], None),
    ([], None),
], ids=["plain", "runtime-before", "runtime-equals", "help", "empty"])
def test_requested_command_finds_the_subcommand_after_global_options(argv, expected):
    assert cli.requested_command(argv) == expected


def test_a_run_imports_only_the_module_of_its_subcommand(host):
    probe = ("import sys; sys.argv = ['runbook-ops', '--runtime', '/nonexistent.json', 'alert', '--help']\n"
             "from runbook_ops import cli\n"
             "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith('runbook_ops.') and m.endswith('_cli')))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=str(host / "lib"), capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.stdout.strip().splitlines()[-1] == "['runbook_ops.alerts_cli']"


def test_help_works_from_the_host_layout(host):
    proc = _run(host, "--help")
    assert proc.returncode == 0 and "run" in proc.stdout and "alert" in proc.stdout
    assert proc.stderr == ""


def test_validate_accepts_a_good_runtime_file(host, fake):
    runtime = _write_runtime(host, fake.url)
    proc = _run(host, "alert", "--validate", runtime=runtime)
    assert proc.returncode == 0 and "is valid" in proc.stdout


@pytest.mark.parametrize("content, words", [
    ("{not json", "not valid JSON"),
    ('{"alert": {"cooldown_seconds": -5}}', "cooldown_seconds"),
], ids=["bad-json", "bad-value"])
def test_bad_runtime_exits_2_with_the_reason_on_stderr(host, content, words):
    path = host / "runtime.json"
    path.write_text(content)
    proc = _run(host, "alert", "--validate", runtime=path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("runbook-ops: error: runtime config %s" % path)
    assert words in proc.stderr and "Traceback" not in proc.stderr


def test_validate_of_a_missing_file_exits_2(host):
    proc = _run(host, "alert", "--validate", runtime=host / "nope.json")
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_alert_sends_then_holds_back_within_cooldown(host, fake):
    runtime = _write_runtime(host, fake.url)
    first = _run(host, "alert", "--key", "disk:/", "--level", "warning", "--text",
                 "диск 71% used", "--json", runtime=runtime)
    second = _run(host, "alert", "--key", "disk:/", "--level", "warning", "--text",
                  "диск 71% used", runtime=runtime)
    assert first.returncode == 0 and json.loads(first.stdout)["sent"] is True
    assert second.returncode == 0 and "not sent: in cooldown" in second.stdout
    assert [m["text"] for m in fake.messages] == ["⚠️ web1 WARNING: диск 71% used"]


def test_alert_test_sends_immediately(host, fake):
    runtime = _write_runtime(host, fake.url)
    for _attempt in range(2):
        assert _run(host, "alert", "--test", runtime=runtime).returncode == 0
    assert len(fake.messages) == 2 and fake.messages[0]["text"].startswith("✅ web1:")


def test_alert_key_needs_level_and_text(host, fake):
    runtime = _write_runtime(host, fake.url)
    proc = _run(host, "alert", "--key", "x", runtime=runtime)
    assert proc.returncode == 2 and "needs --level" in proc.stderr


def test_undeliverable_alert_exits_1_and_never_shows_the_token(host):
    runtime = _write_runtime(host, "http://127.0.0.1:%d" % _closed_port())
    proc = _run(host, "alert", "--key", "job:x", "--level", "critical", "--text", "t",
                runtime=runtime)
    assert proc.returncode == 1 and "NOT delivered" in proc.stdout
    assert TOKEN not in proc.stdout + proc.stderr
    test = _run(host, "alert", "--test", runtime=runtime)
    assert test.returncode == 1 and TOKEN not in test.stdout + test.stderr


def test_500_echoing_the_path_never_shows_the_token(host):
    with FakeTelegram(TOKEN, fail_first=99, fail_status=500, echo_path=True) as fake:
        runtime = _write_runtime(host, fake.url)
        proc = _run(host, "alert", "--test", runtime=runtime)
    assert proc.returncode == 1 and "HTTP 500" in proc.stdout
    assert TOKEN not in proc.stdout + proc.stderr


@pytest.mark.parametrize("args, words", [
    (["run", "--job", "x"], "no command given"),
    (["run", "--job", "x", "--"], "no command given"),
    (["run", "--job", "../x", "--", "true"], "job name"),
], ids=["no-command", "empty-after-dashes", "bad-name"])
def test_run_usage_errors_exit_2(host, fake, args, words):
    runtime = _write_runtime(host, fake.url)
    proc = _run(host, *args, runtime=runtime)
    assert proc.returncode == 2 and words in proc.stderr


def test_run_passes_options_after_dashes_to_the_command(host, fake):
    runtime = _write_runtime(host, fake.url)
    proc = _run(host, "run", "--job", "echo", "--", "echo", "--timeout", "--job", runtime=runtime)
    assert proc.returncode == 0
    assert "--timeout --job" in (host / "log" / "echo.log").read_text()


def test_unknown_subcommand_is_a_usage_error(host):
    proc = _run(host, "frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
