# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_daemon.py and ``runbook-ops docker-daemon-json``: a daemon.json dockerd would refuse
never passes, checked with the real dockerd binaries of Debian 12 (20.10, no ``--validate``)
and Debian 13 (26, ``--validate``) where they are on this machine."""

from __future__ import annotations

import glob
import json
import os
import re
import stat
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
_COLLECTIONS = os.path.join(_REPO, ".collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible_collections.runbook.ops.plugins.module_utils._ops import cli, docker_daemon  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402

DOCKERD_20 = "/usr/sbin/dockerd"
TRIXIE_SCRIPT = os.path.join(_REPO, "scripts", "build-test-engine-rootfs")


def _trixie_root():
    """The Debian 13 root filesystem with Docker 26, if built on this machine."""
    if os.path.isfile(TRIXIE_SCRIPT):
        proc = subprocess.run([TRIXIE_SCRIPT], capture_output=True, text=True, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip().splitlines()[-1]
    roots = sorted(glob.glob("/var/cache/runbook-ops/trixie-docker-*/usr/sbin/dockerd"))
    return os.path.dirname(os.path.dirname(os.path.dirname(roots[-1]))) if roots else None


@pytest.fixture(scope="module")
def dockerd_26(tmp_path_factory):
    """A ``dockerd`` path that runs Debian 13's Docker 26 in a chroot of its root filesystem.

    ``--config-file F`` is bind-mounted into the root's /mnt in a private mount namespace,
    so nothing is written into the shared root and no mount shows outside the process.
    """
    root = _trixie_root()
    if not root:
        pytest.skip("no Debian 13 root filesystem with Docker 26 (scripts/build-test-engine-rootfs)")
    wrapper = tmp_path_factory.mktemp("dockerd26") / "dockerd"
    wrapper.write_text(
        "#!/usr/bin/python3\n"
        "import os, sys\n"
        "args, bind = sys.argv[1:], '/nonexistent'\n"
        "if '--config-file' in args:\n"
        "    i = args.index('--config-file') + 1\n"
        "    bind = os.path.dirname(os.path.abspath(args[i]))\n"
        "    args[i] = '/mnt/' + os.path.basename(args[i])\n"
        "script = ('[ \"$1\" = /nonexistent ] || mount --bind \"$1\" \"$0/mnt\" || exit 125; '\n"
        "          'shift; exec chroot \"$0\" /usr/sbin/dockerd \"$@\"')\n"
        "os.execvp('unshare', ['unshare', '-m', '--propagation', 'private', 'sh', '-c', script,\n"
        "                      %r, bind] + args)\n" % root)
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def write(tmp_path, config, name="daemon.json"):
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return str(path)


# ---------------------------------------------------------------------------- the log settings


@pytest.mark.parametrize("config, driver", [
    ({}, "json-file"),
    ({"log-opts": {"max-size": "10m", "max-file": "3", "labels": "app"}}, "json-file"),
    ({"log-driver": "journald", "log-opts": {"tag": "{{.Name}}", "labels": "app"}}, "journald"),
    ({"log-driver": "local", "log-opts": {"max-size": "20m", "compress": "false"}}, "local"),
    ({"log-driver": "syslog", "log-opts": {"syslog-address": "udp://10.0.0.1:514",
                                           "mode": "non-blocking", "max-buffer-size": "4m"}}, "syslog"),
    ({"log-driver": "none", "log-opts": {"anything": "x"}}, "none"),
    ({"data-root": "/srv/docker", "live-restore": True}, "json-file"),
], ids=["empty", "json-file-limits", "journald-tag", "local", "syslog-nonblocking", "none",
        "other-keys"])
def test_settings_dockerd_starts_with_pass(config, driver):
    assert docker_daemon.check_daemon_config(config)[0] == driver


@pytest.mark.parametrize("config, words", [
    ({"log-driver": "journald", "log-opts": {"max-size": "10m", "max-file": "3"}},
     ["'max-file'", "log-driver journald", "tag"]),
    ({"log-opts": {"max-size": "10m", "tags": "x"}}, ["'tags'", "log-driver json-file"]),
    ({"log-driver": "local", "log-opts": {"tag": "x"}}, ["'tag'", "log-driver local"]),
    ({"log-opts": {"max-file": 3}}, ["max-file", '"3"', "not 3"]),
    ({"log-opts": {"compress": True}}, ["compress", '"true"', "not true"]),
    ({"log-driver": "jsonfile"}, ["'jsonfile'", "json-file", "journald"]),
    ({"log-opts": ["max-size=10m"]}, ["log-opts must be an object"]),
    (["log-driver", "json-file"], ["must hold a JSON object"]),
], ids=["old-driver-opts", "typo-key", "local-tag-newer-engines-only", "int-value", "bool-value",
        "unknown-driver", "opts-list", "not-an-object"])
def test_settings_dockerd_refuses_are_refused_with_one_line_naming_them(config, words):
    with pytest.raises(OpsError) as caught:
        docker_daemon.check_daemon_config(config, where="/etc/docker/daemon.json")
    message = caught.value.message
    assert "\n" not in message and message.startswith("/etc/docker/daemon.json")
    for word in words:
        assert word in message


KNOWN_KEYS = sorted({key for keys in docker_daemon.LOG_DRIVER_OPTS.values() for key in keys}
                    | set(docker_daemon.COMMON_LOG_OPTS))


SAMPLE_VALUES = ["10m", "3", "true", "non-blocking", "x", "", "udp://10.0.0.1:514", "local0"]
# Which sample values dockerd reads for the options whose values it parses.
READABLE = {"max-size": {"10m", "3"}, "max-file": {"3"}, "compress": {"true"},
            "mode": {"non-blocking"}, "syslog-address": {"", "udp://10.0.0.1:514"},
            "syslog-facility": {"", "3", "local0"}, "syslog-format": {""},
            "gelf-address": {"udp://10.0.0.1:514"}, "fluentd-address": {"", "x", "10m", "3", "true", "non-blocking", "local0"}}


@given(driver=st.sampled_from(sorted(docker_daemon.LOG_DRIVER_OPTS)),
       opts=st.dictionaries(st.one_of(st.sampled_from(KNOWN_KEYS),
                                      st.text(alphabet="abcdefgxyz-", min_size=1, max_size=12)),
                            st.one_of(st.sampled_from(SAMPLE_VALUES), st.integers(), st.booleans()),
                            max_size=5))
def test_a_file_passes_only_when_every_key_is_the_drivers_and_every_value_readable(driver, opts):
    """Model: the option lists of Docker's documentation per driver (none takes anything)."""
    documented = {
        "json-file": "max-size max-file compress labels labels-regex env env-regex tag",
        "local": "max-size max-file compress",
        "journald": "labels labels-regex env env-regex tag",
    }
    common = "mode max-buffer-size cache-disabled cache-max-size cache-max-file cache-compress"
    config = {"log-driver": driver, "log-opts": opts}
    keys_ok = driver == "none" or set(opts) <= set(docker_daemon.log_opts_allowed(driver))
    if driver in documented:
        assert keys_ok == (driver == "none" or set(opts) <= set((documented[driver] + " " + common).split()))
    expected = keys_ok and all(isinstance(value, str) and value in READABLE.get(key, {value})
                               for key, value in opts.items()) \
        and (driver != "gelf" or "gelf-address" in opts)
    try:
        docker_daemon.check_daemon_config(config)
        passed = True
    except OpsError:
        passed = False
    assert passed == expected


@pytest.mark.parametrize("key, value, readable", [
    ("max-size", "10m", True), ("max-size", "1.5g", True), ("max-size", "20MB", True),
    ("max-size", "10 m", True), ("max-size", "10x", False), ("max-size", "0", False),
    ("max-size", "-1", False), ("max-file", "3", True), ("max-file", "0", False),
    ("max-file", "three", False), ("compress", "false", True), ("compress", "yes", False),
    ("mode", "blocking", True), ("mode", "fast", False),
    ("syslog-address", "udp://10.0.0.1", True), ("syslog-address", "tcp+tls://10.0.0.1:6514", True),
    ("syslog-address", "10.0.0.1:514", False), ("syslog-address", "http://x:1", False),
    ("syslog-address", "unix:///nonexistent/log.sock", False), ("syslog-facility", "local0", True),
    ("syslog-facility", "23", True), ("syslog-facility", "24", False), ("syslog-facility", "bogus", False),
    ("syslog-format", "rfc3164", True), ("syslog-format", "x", False),
    ("gelf-address", "udp://127.0.0.1:12201", True), ("gelf-address", "127.0.0.1:12201", False),
    ("gelf-address", "http://x:1", False), ("fluentd-address", "tcp://1.2.3.4:24224", True),
    ("fluentd-address", "x:y", False),
])
def test_values_dockerd_parses_are_checked(key, value, readable):
    driver = key.split("-")[0] if key.split("-")[0] in ("syslog", "gelf", "fluentd") else "json-file"
    config = {"log-driver": driver, "log-opts": {key: value}}
    if readable:
        docker_daemon.check_daemon_config(config)
    else:
        with pytest.raises(OpsError, match="log-opts %s[= ]" % key):
            docker_daemon.check_daemon_config(config)


def test_a_unix_syslog_socket_must_exist_on_the_host(tmp_path):
    sock = tmp_path / "log.sock"
    config = {"log-driver": "syslog", "log-opts": {"syslog-address": "unix://%s" % sock}}
    with pytest.raises(OpsError, match="does not exist on this host"):
        docker_daemon.check_daemon_config(config)
    sock.write_text("")
    docker_daemon.check_daemon_config(config)


def test_gelf_without_an_address_is_refused():
    with pytest.raises(OpsError, match="log-driver gelf needs log-opts gelf-address"):
        docker_daemon.check_daemon_config({"log-driver": "gelf", "log-opts": {"tag": "x"}})


# ---------------------------------------------------------------------------- with real dockerd


def test_on_docker_20_10_the_driver_check_runs_without_dockerd_validate(tmp_path):
    if not os.path.exists(DOCKERD_20):
        pytest.skip("Debian 12's docker.io is not installed")
    good = write(tmp_path, {"log-driver": "journald", "log-opts": {"tag": "app"}})
    result = docker_daemon.validate_daemon_file(good, dockerd=DOCKERD_20)
    assert result["dockerd_validate"] == "unsupported" and result["log_driver"] == "journald"
    bad = write(tmp_path, {"log-driver": "journald", "log-opts": {"max-size": "10m"}}, "bad.json")
    with pytest.raises(OpsError, match="'max-size' is not an option of log-driver journald"):
        docker_daemon.validate_daemon_file(bad, dockerd=DOCKERD_20)


@pytest.mark.parametrize("config, words", [
    ({"log-driver": "journald", "log-opts": {"max-size": "10m"}},
     "'max-size' is not an option of log-driver journald"),
    ({"log-driver": "syslog", "log-opts": {"syslog-address": "10.0.0.1:514"}},
     "syslog-address='10.0.0.1:514' must be proto://address"),
    ({"log-driver": "gelf"}, "log-driver gelf needs log-opts gelf-address"),
    ({"log-driver": "jsonfile"}, "'jsonfile' is not a built-in Docker log driver"),
], ids=["journald-max-size", "syslog-no-proto", "gelf-no-address", "driver-typo"])
def test_docker_26_validate_misses_what_stops_dockerd_and_the_check_catches_it(
        tmp_path, dockerd_26, config, words):
    bad = write(tmp_path, config)
    proc = subprocess.run([dockerd_26, "--validate", "--config-file", bad], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr  # dockerd 26 says "configuration OK" ...
    with pytest.raises(OpsError, match=re.escape(words)):
        docker_daemon.validate_daemon_file(bad, dockerd=dockerd_26)  # ... and is not asked


def test_docker_26_validate_runs_and_its_refusal_is_one_line(tmp_path, dockerd_26):
    good = write(tmp_path, {"log-driver": "local", "log-opts": {"max-size": "20m"}})
    assert docker_daemon.validate_daemon_file(good, dockerd=dockerd_26)["dockerd_validate"] == "ok"
    bad = write(tmp_path, {"log-driver": "local", "live-restor": True}, "bad.json")
    with pytest.raises(OpsError) as caught:
        docker_daemon.validate_daemon_file(bad, dockerd=dockerd_26)
    assert "dockerd --validate refused it" in caught.value.message
    assert "live-restor" in caught.value.message and "\n" not in caught.value.message


def test_without_a_dockerd_only_the_log_settings_are_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(docker_daemon, "DOCKERD_CANDIDATES", ())
    result = docker_daemon.validate_daemon_file(write(tmp_path, {"log-opts": {"max-size": "1m"}}))
    assert result["dockerd"] is None and result["dockerd_validate"] == "no dockerd"


# ---------------------------------------------------------------------------- the CLI


def run(*argv):
    return cli.main(["--runtime", "/nonexistent/runtime.json"] + list(argv))


def test_cli_validate_says_ok_and_exits_0(tmp_path, capsys):
    path = write(tmp_path, {"log-driver": "json-file", "log-opts": {"max-size": "10m"}})
    assert run("docker-daemon-json", "--config", path, "--validate", "--dockerd", "/bin/false") == 0
    assert capsys.readouterr().out.strip() == "%s: ok" % path


def test_cli_refuses_with_exit_2_and_one_line(tmp_path, capsys):
    path = write(tmp_path, {"log-driver": "journald", "log-opts": {"max-size": "10m"}})
    assert run("docker-daemon-json", "--config", path, "--validate") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("runbook-ops: error: %s: log-opts key 'max-size'" % path)


@pytest.mark.parametrize("content, words", [
    ("{not json", "is not valid JSON"),
    (None, "cannot read"),
], ids=["bad-json", "missing"])
def test_cli_refuses_a_file_it_cannot_read(tmp_path, capsys, content, words):
    path = write(tmp_path, content) if content else str(tmp_path / "absent.json")
    assert run("docker-daemon-json", "--config", path, "--validate") == 2
    assert words in capsys.readouterr().err


def test_cli_without_validate_prints_what_it_checked(tmp_path, capsys):
    path = write(tmp_path, {"log-driver": "journald", "log-opts": {"tag": "web"}})
    assert run("docker-daemon-json", "--config", path, "--dockerd", "/bin/false") == 0
    out = capsys.readouterr().out
    assert "log-driver journald, log-opts tag=web" in out and "dockerd --validate: unsupported" in out
