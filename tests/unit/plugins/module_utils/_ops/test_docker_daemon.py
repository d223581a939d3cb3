# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_daemon.py and ``runbook-ops docker-daemon-json``: a daemon.json dockerd would refuse
never passes, checked with the real dockerd binaries of Debian 12 (20.10, no ``--validate``)
and Debian 13 (26, ``--validate``) where they are on this machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

import pytest
from hypothesis import given, strategies as st

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
_COLLECTIONS = os.path.join(_REPO, ".collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible_collections.runbook.ops.plugins.module_utils._ops import cli, docker_daemon  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from docker26 import dockerd_26_wrapper, trixie_root  # noqa: E402  (tests/harness)

DOCKERD_20 = "/usr/sbin/dockerd"


@pytest.fixture(scope="module")
def dockerd_26(tmp_path_factory):
    """A ``dockerd`` path that runs Debian 13's Docker 26 in a chroot of its root filesystem
    (tests/harness/docker26.py)."""
    root = trixie_root()
    if not root:
        pytest.skip("no Debian 13 root filesystem with Docker 26 (scripts/build-test-engine-rootfs)")
    return dockerd_26_wrapper(str(tmp_path_factory.mktemp("dockerd26") / "dockerd"), root)


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
# Which sample values dockerd (20.10, 26, 28) reads for the options whose values it parses.
READABLE = {"max-size": {"10m", "3"}, "max-file": {"3"}, "compress": {"true"},
            "mode": {"", "non-blocking"}, "max-buffer-size": {"10m", "3"}, "cache-disabled": {"", "true"},
            "syslog-address": {"", "udp://10.0.0.1:514"},
            "syslog-facility": {"", "3", "local0"}, "syslog-format": {""},
            "gelf-address": {"udp://10.0.0.1:514"}, "gelf-compression-level": {"3"},
            "gelf-compression-type": set(), "gelf-tcp-max-reconnect": set(),
            "gelf-tcp-reconnect-delay": set(), "fluentd-async-connect": set(),
            "fluentd-address": {"", "x", "10m", "3", "true", "non-blocking", "local0"},
            "fluentd-async": {"", "true"}, "fluentd-sub-second-precision": {"", "true"},
            "fluentd-request-ack": {"", "true"}, "fluentd-buffer-limit": {"", "10m", "3"},
            "fluentd-retry-wait": {"", "10m"}, "fluentd-max-retries": {"", "3"},
            "awslogs-create-group": {"", "true"}, "awslogs-force-flush-interval-seconds": {"", "3"},
            "awslogs-max-buffered-events": {"", "3"}}


def _model_combinations_hold(driver, opts):
    """The rules that tie options together (moby's ValidateLogOpts and the drivers' New)."""
    if "max-buffer-size" in opts and opts.get("mode") != "non-blocking":
        return False
    if driver == "json-file" and opts.get("compress") == "true":
        return "max-size" in opts and opts.get("max-file") == "3"
    if driver == "gelf":
        return "gelf-address" in opts
    if driver == "awslogs":
        return bool(opts.get("awslogs-group")) and not (
            "awslogs-datetime-format" in opts and "awslogs-multiline-pattern" in opts)
    return driver not in ("splunk", "logentries")  # no sample is a splunk URL; logentries left Docker 25


@given(driver=st.sampled_from(sorted(docker_daemon.LOG_DRIVER_OPTS)),
       opts=st.dictionaries(st.one_of(st.sampled_from(KNOWN_KEYS),
                                      st.text(alphabet="abcdefgxyz-", min_size=1, max_size=12)),
                            st.one_of(st.sampled_from(SAMPLE_VALUES), st.integers(), st.booleans()),
                            max_size=5))
def test_a_file_passes_only_when_every_key_is_the_drivers_and_every_value_readable(driver, opts):
    """Model: the option lists of Docker's documentation per driver (none takes anything),
    the sample values each engine reads, and the rules that tie options together."""
    documented = {
        "json-file": "max-size max-file compress labels labels-regex env env-regex tag",
        "local": "max-size max-file compress",
        "journald": "labels labels-regex env env-regex tag",
    }
    common = "mode max-buffer-size cache-disabled cache-max-size cache-max-file cache-compress"
    config = {"log-driver": driver, "log-opts": opts}
    keys_ok = driver == "none" or set(opts) <= set(docker_daemon.LOG_DRIVER_OPTS[driver]) | set(docker_daemon.COMMON_LOG_OPTS)
    if driver in documented:
        assert keys_ok == (driver == "none" or set(opts) <= set((documented[driver] + " " + common).split()))
    strings = all(isinstance(value, str) for value in opts.values())
    expected = strings and (driver == "none" or (
        keys_ok and all(value in READABLE.get(key, {value}) for key, value in opts.items())
        and _model_combinations_hold(driver, opts)))
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


# ---------------------------------------------------------------------------- how options combine


@pytest.mark.parametrize("driver, opts, words, refused_by", [
    ("json-file", {"max-size": "10m", "max-file": "3", "max-buffer-size": "4m"},
     "max-buffer-size needs mode non-blocking", "dockerd"),
    ("json-file", {"mode": "non-blocking", "max-buffer-size": "lots"}, "max-buffer-size='lots'", "dockerd"),
    ("json-file", {"cache-disabled": "yes"}, "cache-disabled='yes' must be true or false", "dockerd"),
    ("json-file", {"max-size": "10m", "compress": "True"}, "compress=True needs max-file of 2", "container"),
    ("json-file", {"max-file": "3", "compress": "true"}, "and max-size", "container"),
    ("json-file", {"max-size": "0.1"}, "max-size='0.1' must be a size above 0", "container"),
    ("local", {"max-file": "1"}, "needs compress false", "container"),
    ("json-file", {"labels-regex": "(?=app)"}, "labels-regex='(?=app)': Go cannot compile it", "container"),
    ("journald", {"tag": "{{.Nam}}"}, "tag='{{.Nam}}' is not a tag template", "container"),
    ("gelf", {"gelf-address": "udp://127.0.0.1:12201", "gelf-compression-type": "zip"},
     "gelf-compression-type='zip'", "dockerd"),
    ("gelf", {"gelf-address": "udp://127.0.0.1:12201", "gelf-compression-level": "99"},
     "gelf-compression-level='99' must be a whole number from -1 to 9", "dockerd"),
    ("gelf", {"gelf-address": "tcp://127.0.0.1:12201", "gelf-compression-level": "1"},
     "compression is only supported on UDP", "dockerd"),
    ("gelf", {"gelf-address": "tcp://127.0.0.1:12201", "gelf-tcp-max-reconnect": "x"},
     "gelf-tcp-max-reconnect='x'", "dockerd"),
    ("fluentd", {"fluentd-async": "maybe"}, "fluentd-async='maybe'", "dockerd"),
    ("fluentd", {"fluentd-retry-wait": "x"}, "fluentd-retry-wait='x'", "dockerd"),
    ("fluentd", {"fluentd-async-connect": "true"}, "removed in Docker 28", None),
    ("awslogs", {"awslogs-region": "eu-west-1"}, "needs log-opts awslogs-group", "dockerd"),
    ("splunk", {"splunk-url": "https://splunk:8088"}, "needs log-opts splunk-token", "container"),
    ("logentries", {"logentries-token": "t"}, "removed in Docker 25", None),
], ids=lambda value: value if isinstance(value, str) and len(value) < 12 else None)
def test_options_each_engine_refuses_are_refused_saying_what_would_happen(driver, opts, words, refused_by):
    with pytest.raises(OpsError) as caught:
        docker_daemon.check_daemon_config({"log-driver": driver, "log-opts": opts}, where="/etc/docker/daemon.json")
    message = caught.value.message
    assert words in message and "\n" not in message
    assert caught.value.details["refused_by"] == refused_by
    assert message.endswith({"dockerd": "dockerd would refuse to start",
                             "container": "every new container would fail to start",
                             None: "refused so that every engine from Docker 20.10 to 28 takes the file"}[refused_by])


def _tls_files(tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=x",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")


def test_syslog_tls_files_must_be_there_and_be_what_they_say(tmp_path):
    cert, key = _tls_files(tmp_path)
    base = {"syslog-address": "tcp+tls://127.0.0.1:6514"}
    good = dict(base, **{"syslog-tls-ca-cert": cert, "syslog-tls-cert": cert, "syslog-tls-key": key})
    docker_daemon.check_daemon_config({"log-driver": "syslog", "log-opts": good})
    for opts, words in ((dict(base, **{"syslog-tls-ca-cert": "/nonexistent/ca.pem"}), "cannot read it"),
                        (dict(base, **{"syslog-tls-ca-cert": key}), "holds no PEM certificate"),
                        (dict(base, **{"syslog-tls-cert": cert}), "go together"),
                        (dict(base, **{"syslog-tls-cert": key, "syslog-tls-key": cert}), "not a readable")):
        with pytest.raises(OpsError, match=words):
            docker_daemon.check_daemon_config({"log-driver": "syslog", "log-opts": opts})
    # over udp the files are never read
    docker_daemon.check_daemon_config({"log-driver": "syslog", "log-opts": {
        "syslog-address": "udp://127.0.0.1:514", "syslog-tls-ca-cert": "/nonexistent/ca.pem"}})


def test_a_plugin_driver_needs_the_opt_in_and_then_only_its_shape_is_checked():
    config = {"log-driver": "grafana/loki-docker-driver:latest",
              "log-opts": {"loki-url": "http://loki:3100", "mode": "non-blocking"}}
    with pytest.raises(OpsError, match="needs the plugin opt-in"):
        docker_daemon.check_daemon_config(config)
    assert docker_daemon.check_daemon_config(config, plugin_driver=True)[0] == config["log-driver"]
    for opts, words in (({"loki url": "x"}, "not an option name"), ({"mode": "fast"}, "mode='fast'"),
                        ({"max-buffer-size": "4m"}, "needs mode non-blocking")):
        with pytest.raises(OpsError, match=words):
            docker_daemon.check_daemon_config({"log-driver": "loki", "log-opts": opts}, plugin_driver=True)


# ---------------------------------------------------------------------------- keys and flags


def test_top_level_keys_are_checked_against_docker_20_10s():
    docker_daemon.check_daemon_keys({"live-restore": True, "log-driver": "local", "data-root": "/srv",
                                     "default-address-pools": [], "features": {}})
    with pytest.raises(OpsError, match=r"^d.json: live-restor, logdriver are no dockerd setting"):
        docker_daemon.check_daemon_keys({"live-restor": True, "logdriver": "local"}, "d.json")


def test_on_docker_20_10_a_typo_in_a_key_is_refused(tmp_path):
    if not os.path.exists(DOCKERD_20):
        pytest.skip("Debian 12's docker.io is not installed")
    path = write(tmp_path, {"live-restor": True, "log-driver": "local"})
    with pytest.raises(OpsError, match="live-restor is no dockerd setting"):
        docker_daemon.validate_daemon_file(path, dockerd=DOCKERD_20, flag_sources=[])


def _host_root(tmp_path, unit, dropins=None, default=None):
    root = tmp_path / "root"
    (root / "lib/systemd/system").mkdir(parents=True)
    (root / "lib/systemd/system/docker.service").write_text(unit)
    for directory, name, text in dropins or ():
        (root / directory).mkdir(parents=True, exist_ok=True)
        (root / directory / name).write_text(text)
    if default is not None:
        (root / "etc/default").mkdir(parents=True, exist_ok=True)
        (root / "etc/default/docker").write_text(default)
    (tmp_path / "proc").mkdir(exist_ok=True)
    return str(root)


DEBIAN_UNIT = ("[Unit]\nDescription=Docker\n[Service]\nType=notify\nEnvironmentFile=-/etc/default/docker\n"
               "ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\n")


def test_the_units_flags_come_from_execstart_its_environment_file_and_drop_ins(tmp_path):
    root = _host_root(tmp_path, DEBIAN_UNIT, dropins=[
        ("etc/systemd/system/docker.service.d", "10-logs.conf",
         "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// \\\n  --log-driver=journald ${EXTRA}\n"
         "Environment=\"EXTRA=--log-opt tag=x\"\n"),
        ("lib/systemd/system/docker.service.d", "10-logs.conf", "[Service]\nExecStart=\nExecStart=/bin/false\n")],
        default='DOCKER_OPTS="--dns 8.8.8.8"\n')
    [source] = docker_daemon.dockerd_flag_sources("/etc/docker/daemon.json", proc=str(tmp_path / "proc"), root=root)
    # systemd: the drop-in's ExecStart replaces the unit's (the /etc one shadows the /lib one of the
    # same name), ${VAR} stays one word where $VAR would split
    assert source["argv"] == ["-H", "fd://", "--log-driver=journald", "--log-opt tag=x"]
    assert source["source"].startswith("docker.service's ExecStart (/lib/systemd/system/docker.service")


def test_debians_docker_opts_clash_with_the_same_settings_in_the_file(tmp_path):
    root = _host_root(tmp_path, DEBIAN_UNIT, default='# settings\nDOCKER_OPTS="--log-opt max-size=50m --dns 8.8.8.8"\n')
    sources = docker_daemon.dockerd_flag_sources("/etc/docker/daemon.json", proc=str(tmp_path / "proc"), root=root)
    assert sources[0]["argv"][-4:] == ["--log-opt", "max-size=50m", "--dns", "8.8.8.8"]
    docker_daemon.check_flag_conflicts({"log-driver": "json-file", "live-restore": True}, sources)
    with pytest.raises(OpsError) as caught:
        docker_daemon.check_flag_conflicts({"log-opts": {"max-file": "3"}, "hosts": ["unix:///x"]}, sources, "d.json")
    message = caught.value.message
    assert message.startswith("d.json: hosts, log-opts are also given as dockerd flags (-H=fd://, "
                              "--log-opt=max-size=50m, from docker.service's ExecStart (")
    assert "/etc/default/docker" in message and "\n" not in message
    # the flags' log-opts count against the file's driver
    effective = docker_daemon.effective_log_config({"log-driver": "journald"}, sources)
    with pytest.raises(OpsError, match="'max-size' is not an option of log-driver journald"):
        docker_daemon.check_daemon_config(effective)


def test_a_unit_for_another_config_file_does_not_count(tmp_path):
    root = _host_root(tmp_path, DEBIAN_UNIT.replace("$DOCKER_OPTS", "--config-file /srv/d.json --log-opt a=b"))
    assert docker_daemon.dockerd_flag_sources("/etc/docker/daemon.json", proc=str(tmp_path / "proc"), root=root) == []
    assert len(docker_daemon.dockerd_flag_sources("/srv/d.json", proc=str(tmp_path / "proc"), root=root)) == 1


def test_without_a_unit_debians_init_script_reads_docker_opts(tmp_path):
    root = tmp_path / "root"
    (root / "etc/init.d").mkdir(parents=True)
    (root / "etc/init.d/docker").write_text("#!/bin/sh\n")
    (root / "etc/default").mkdir()
    (root / "etc/default/docker").write_text("DOCKER_OPTS='--log-driver journald'\n")
    (tmp_path / "proc").mkdir()
    [source] = docker_daemon.dockerd_flag_sources("/etc/docker/daemon.json", proc=str(tmp_path / "proc"),
                                                  root=str(root))
    assert source["argv"] == ["--log-driver", "journald"] and "/etc/init.d/docker" in source["source"]


def test_a_running_dockerd_counts_when_it_reads_the_file(tmp_path):
    proc = tmp_path / "proc"
    for pid, argv in (("10", ["/usr/sbin/dockerd", "-H", "fd://", "--log-opt", "max-size=5m"]),
                      ("11", ["/usr/sbin/dockerd", "--config-file", "/other.json", "--log-level", "warn"]),
                      ("12", ["/usr/bin/containerd"])):
        (proc / pid).mkdir(parents=True)
        (proc / pid / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        os.symlink("/", str(proc / pid / "root"))
    (tmp_path / "root").mkdir()
    sources = docker_daemon.dockerd_flag_sources("/etc/docker/daemon.json", proc=str(proc), root=str(tmp_path / "root"))
    assert sources == [{"source": "the running dockerd (pid 10)", "argv": ["-H", "fd://", "--log-opt", "max-size=5m"]}]


def test_cli_reads_the_file_from_stdin_and_names_the_target(tmp_path, capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"log-driver": "journald", "log-opts": {"max-size": "1m"}})))
    target = str(tmp_path / "daemon.json")
    assert run("docker-daemon-json", "--config", "-", "--target", target, "--validate", "--dockerd", "/bin/false") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("runbook-ops: error: %s: log-opts key 'max-size'" % target)
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"log-driver": "journald"})))
    assert run("docker-daemon-json", "--config", "-", "--target", target, "--validate", "--dockerd", "/bin/false") == 0
    assert capsys.readouterr().out.strip() == "%s: ok" % target
    assert not [name for name in os.listdir(tempfile.gettempdir()) if name.startswith("daemon-json-")]


@pytest.mark.parametrize("opts", [{"max-size": "10mi"}, {"mode": "non-blocking", "max-buffer-size": "4Mi"}])
def test_a_size_only_docker_20_10_reads_is_this_checks_caution(opts):
    """go-units before v0.5.0 (Docker 20.10) takes 10mi, v0.5.0 (Docker 26) refuses it: refused,
    but not as the engine's own refusal (the oracle test found 20.10 starting such a container)."""
    from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_logopts

    text, refused_by = docker_logopts.log_options_problem("json-file", opts)
    assert refused_by is None and text.endswith("(Docker 20.10 reads it, 26 and later refuse it)")
    assert docker_logopts.log_options_problem("json-file", {"max-size": "10x"})[1] == "container"
