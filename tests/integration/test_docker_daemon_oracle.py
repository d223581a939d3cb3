# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The daemon.json check against the real engine as the oracle (issue #15 review, items 2-4).

* A Hypothesis property over generated log settings (the built-in drivers a container can
  use here: json-file, local, syslog, gelf, fluentd, and journald for dockerd's start only):
  every file the check passes, a real Docker 20.10 starts on and a container with that
  default log config starts; every file it refuses as something the engine refuses, dockerd
  does not start on or the container does not start. Refusals the check marks as its own
  caution (``refused_by`` None: other engine versions, unmodelled syntax) are counted, not
  asserted. Endpoints the options name listen on loopback (TCP, unix stream and datagram).
* dockerd's flags: a running dockerd with ``--log-opt``, Debian's ``DOCKER_OPTS`` read through
  the unit's EnvironmentFile, ``dockerd --validate`` of Docker 26 given those flags.
* The top-level keys of Docker 20.10, and a log driver plugin the engine does not have.

RUNBOOK_OPS_DAEMON_EXAMPLES (default 30) generated examples; each restarts the engine (~2 s).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading

import pytest
from hypothesis import example, given, settings, strategies as st

import isolated_engine
from docker26 import dockerd_26_wrapper, trixie_root
from images import build_busybox_image
from isolated_engine import start_isolated_engine

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_daemon
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError

EXAMPLES = int(os.environ.get("RUNBOOK_OPS_DAEMON_EXAMPLES", "30"))


class Endpoints:
    """Loopback listeners the generated addresses point at; they accept and discard."""

    def __init__(self, directory):
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(64)
        self.port = self.tcp.getsockname()[1]
        self.stream_path = os.path.join(directory, "stream.sock")
        self.stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.stream.bind(self.stream_path)
        self.stream.listen(64)
        self.dgram_path = os.path.join(directory, "dgram.sock")
        self.dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.dgram.bind(self.dgram_path)
        for listener in (self.tcp, self.stream):
            threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    @staticmethod
    def _accept(listener):
        while True:
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            threading.Thread(target=_drain, args=(conn,), daemon=True).start()

    def close(self):
        for sock in (self.tcp, self.stream, self.dgram):
            sock.close()


def _drain(conn):
    with conn:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """An isolated 20.10 engine with a busybox image, restarted on each generated file."""
    directory = tmp_path_factory.mktemp("oracle")
    endpoints = Endpoints(str(directory))
    engine = start_isolated_engine("oracle")
    try:
        build_busybox_image(engine, "logprobe:1")
        yield engine, endpoints, directory
    finally:
        engine.stop()
        endpoints.close()


def _values(ep):
    """Each option's pool: values the engines read and values they do not."""
    tcp, stream, dgram = "127.0.0.1:%d" % ep.port, ep.stream_path, ep.dgram_path
    return {
        "mode": ["", "blocking", "non-blocking", "fast"],
        "max-buffer-size": ["4m", "1k", "0", "lots", "10mi", "1e3"],
        "cache-disabled": ["", "true", "false", "1", "yes"],
        "cache-max-size": ["10m", "x"],
        "max-size": ["10m", "1k", "0", "0.1", "0.5k", "1.5m", "20MB", "10 m", "10x", "10mi", "-1"],
        "max-file": ["1", "2", "3", "0", "+3", "-1", "x"],
        "compress": ["true", "false", "True", "1", "yes"],
        "labels": ["app", ""], "env": ["HOME", ""],
        "labels-regex": ["^x", "", "(?=x)", "a(b", "[[:alpha:]]", "[[:foo:]]", "\\1", "\\12",
                         "a{1001}", "a**", "\\pL", "(?i)web", "\\Z"],
        "env-regex": ["^PATH$", "x|", "*x", "[z-a]"],
        "tag": ["web", "{{.Name}}", "{{.Nam}}", "{{lower .Name}}", "{{truncate .ID 5}}",
                '{{truncate .ID "5"}}', "{{.Name", "{{if .Name}}x{{end}}",
                '{{index .ContainerLabels "a"}}', "{{upper .ContainerArgs}}", "{{}}",
                '{{printf "%s-%s" .ImageName .ID}}'],
        "syslog-address": ["udp://127.0.0.1:514", "udp://127.0.0.1", "tcp://" + tcp,
                           "unixgram://" + dgram, "unix://" + stream, "10.0.0.1:514",
                           "udp://127.0.0.1:99999", "unix:///nonexistent.sock", "http://x:1",
                           "UDP://127.0.0.1:514", "udp://[::1]"],
        "syslog-facility": ["", "daemon", "local0", "23", "24", "bogus"],
        "syslog-format": ["", "rfc5424", "rfc5424micro", "rfc3164", "x"],
        "syslog-tls-skip-verify": ["true"],
        "gelf-address": ["udp://127.0.0.1:12201", "tcp://" + tcp, "127.0.0.1:12201",
                         "udp://127.0.0.1", "http://x:1", "udp://127.0.0.1:0"],
        "gelf-compression-type": ["gzip", "zlib", "none", "zip"],
        "gelf-compression-level": ["-1", "0", "9", "10", "99", "x"],
        "gelf-tcp-max-reconnect": ["0", "3", "-1", "x"],
        "gelf-tcp-reconnect-delay": ["1", "-1", "x"],
        "fluentd-address": [tcp, "tcp://" + tcp, "unix://" + stream, "x:y", "udp://" + tcp,
                            "tls://" + tcp, "tcp://%s/path" % tcp, "unix://"],
        "fluentd-async": ["", "true", "false", "maybe"],
        "fluentd-async-connect": ["true"],
        "fluentd-buffer-limit": ["8m", "1k", "x"],
        "fluentd-retry-wait": ["1s", "500ms", "10", "x", "1h2m"],
        "fluentd-max-retries": ["3", "-1", "x", "4294967296"],
        "fluentd-sub-second-precision": ["true", "x"],
        "fluentd-request-ack": ["false", "x"],
    }


# The keys a generated file may hold for each driver (a foreign one now and then).
DRIVER_KEYS = {
    "json-file": ["max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex",
                  "tag", "syslog-facility"],
    "local": ["max-size", "max-file", "compress", "tag"],
    "journald": ["labels", "labels-regex", "env", "tag", "max-size"],
    "syslog": ["syslog-facility", "syslog-format", "syslog-tls-skip-verify", "tag", "labels-regex",
               "labels"],
    "gelf": ["gelf-compression-type", "gelf-compression-level", "gelf-tcp-max-reconnect",
             "gelf-tcp-reconnect-delay", "tag", "labels-regex", "env-regex"],
    "fluentd": ["fluentd-async", "fluentd-buffer-limit", "fluentd-retry-wait", "fluentd-max-retries",
                "fluentd-sub-second-precision", "fluentd-request-ack", "fluentd-async-connect", "tag",
                "env-regex"],
    "none": ["max-size", "tag"],
}
COMMON = ["mode", "max-buffer-size", "cache-disabled", "cache-max-size"]
# Addresses every generated file of these drivers carries: without one the driver talks to the
# host's local syslog or to 127.0.0.1:24224, which this check does not look at.
ADDRESS = {"syslog": "syslog-address", "gelf": "gelf-address", "fluentd": "fluentd-address"}


@st.composite
def log_settings(draw, endpoints):
    values = _values(endpoints)
    driver = draw(st.sampled_from(sorted(DRIVER_KEYS)))
    keys = draw(st.lists(st.sampled_from(DRIVER_KEYS[driver] + COMMON), max_size=4, unique=True))
    if driver in ADDRESS and (driver != "gelf" or draw(st.integers(0, 9)) > 0):
        keys.append(ADDRESS[driver])
    opts = dict((key, draw(st.sampled_from(values[key]))) for key in keys)
    return {"log-driver": driver, "log-opts": opts}


def _engine_verdict(engine, directory, config):
    """``(started, container)``: whether dockerd starts on ``config`` and a container starts
    with the default log config (``None`` when not tried); with the engine's last log line."""
    import docker

    path = os.path.join(str(directory), "daemon.json")
    with open(path, "w") as handle:
        json.dump(config, handle)
    try:
        engine.restart(config_file=path)
    except RuntimeError as exc:
        return False, None, str(exc).strip().splitlines()[-1]
    if config["log-driver"] == "journald":
        return True, None, "journald: no container (this machine runs no journald)"
    client = engine.client(timeout=60)
    try:
        client.containers.run("logprobe:1", ["true"], remove=True)
        return True, True, "container ran"
    except docker.errors.APIError as exc:
        return True, False, str(exc.explanation or exc)
    finally:
        client.close()


def _check_verdict(config):
    try:
        docker_daemon.check_daemon_config(config)
        return "passed", ""
    except OpsError as exc:
        return exc.details.get("refused_by") or "strict", exc.message


FIGURES = {"passed": 0, "dockerd": 0, "container": 0, "strict": 0}
REVIEW_CASES = [  # the review's files (tests/integration/test_docker_daemon_review.py)
    {"max-size": "10m", "max-file": "3", "max-buffer-size": "4m"},
    {"mode": "non-blocking", "max-buffer-size": "lots"},
    {"cache-disabled": "yes"},
    {"max-size": "10m", "compress": "True"},
    {"max-size": "10m", "max-file": "1", "compress": "true"},
]


@settings(max_examples=EXAMPLES, database=None)
@given(data=st.data())
@example(data=None)
def test_the_engine_takes_what_the_check_passes_and_refuses_what_it_refuses(oracle, data):
    engine, endpoints, directory = oracle
    configs = ([{"log-driver": "json-file", "log-opts": opts} for opts in REVIEW_CASES]
               + [{"log-driver": "gelf", "log-opts": {"gelf-address": "udp://127.0.0.1:12201", key: value}}
                  for key, value in (("gelf-compression-type", "zip"), ("gelf-compression-level", "99"))]
               + [{"log-driver": "gelf", "log-opts": {"gelf-address": "tcp://127.0.0.1:%d" % endpoints.port,
                                                      "gelf-tcp-max-reconnect": "x"}}]
               + [{"log-driver": "fluentd", "log-opts": {"fluentd-address": "127.0.0.1:%d" % endpoints.port,
                                                         key: value}}
                  for key, value in (("fluentd-async", "maybe"), ("fluentd-retry-wait", "x"))]
               if data is None else [data.draw(log_settings(endpoints))])
    for config in configs:
        verdict, message = _check_verdict(config)
        started, container, said = _engine_verdict(engine, directory, config)
        FIGURES[verdict] += 1
        shown = "%s\ncheck: %s %s\nengine: %s" % (json.dumps(config), verdict, message, said)
        if verdict == "passed":
            assert started and container is not False, shown
        elif verdict in ("dockerd", "container") and container is not None:
            assert not started or container is False, shown
        elif verdict in ("dockerd", "container"):
            assert not started or config["log-driver"] == "journald", shown


def test_zz_figures_of_the_property(capsys):
    """Prints how the generated files fell (the property test runs first in this module)."""
    with capsys.disabled():
        sys.stdout.write("\ndaemon.json oracle: %s\n" % json.dumps(FIGURES, sort_keys=True))


# ---------------------------------------------------------------------------- dockerd's flags


def _dockerd_with_flags(tmp_path, monkeypatch, flags):
    """Make isolated engines run ``dockerd FLAGS ...`` (the flags a unit would add)."""
    wrapper = tmp_path / "dockerd"
    wrapper.write_text("#!/bin/sh\nexec %s %s \"$@\"\n" % (isolated_engine.DOCKERD, " ".join(flags)))
    wrapper.chmod(0o755)
    monkeypatch.setattr(isolated_engine, "DOCKERD", str(wrapper))


def _write(path, config):
    path.write_text(json.dumps(config))
    return str(path)


def test_a_running_dockerd_with_log_opt_flags_makes_the_check_refuse_log_opts(tmp_path, monkeypatch):
    """The flags come from /proc/<pid>/cmdline of the dockerd reading the target file."""
    _dockerd_with_flags(tmp_path, monkeypatch, ["--log-opt", "max-size=50m"])
    target = _write(tmp_path / "daemon.json", {"live-restore": True})
    engine = start_isolated_engine("flags-run", config_file=target)
    try:
        candidate = _write(tmp_path / "candidate.json", {"live-restore": True, "log-driver": "json-file",
                                                         "log-opts": {"max-size": "10m", "max-file": "3"}})
        with pytest.raises(OpsError) as caught:
            docker_daemon.validate_daemon_file(candidate, target=target)
        message = caught.value.message
        assert "log-opts is also given as dockerd flags (--log-opt=max-size=50m, from the running dockerd (pid " in message
        assert "\n" not in message
        # the driver alone does not clash: the flags' max-size is checked against it
        alone = _write(tmp_path / "driver.json", {"live-restore": True, "log-driver": "json-file"})
        assert docker_daemon.validate_daemon_file(alone, target=target)["log_opts"] == {"max-size": "50m"}
    finally:
        engine.stop()
    with pytest.raises(RuntimeError, match="specified both as a flag and in the configuration file"):
        start_isolated_engine("flags-both", config_file=candidate).stop()


def test_docker_opts_read_through_the_unit_make_the_check_refuse_what_dockerd_refuses(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "lib/systemd/system").mkdir(parents=True)
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/docker").mkdir(parents=True)
    (root / "lib/systemd/system/docker.service").write_text(
        "[Service]\nEnvironmentFile=-/etc/default/docker\n"
        "ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\n")
    (root / "etc/default/docker").write_text('# Debian\nDOCKER_OPTS="--log-opt max-file=5 --log-driver json-file"\n')
    (tmp_path / "noproc").mkdir()
    sources = docker_daemon.dockerd_flag_sources("/etc/docker/daemon.json", proc=str(tmp_path / "noproc"),
                                                 root=str(root))
    assert sources == [{"source": "docker.service's ExecStart (/lib/systemd/system/docker.service, "
                                  "/etc/default/docker)",
                        "argv": ["-H", "fd://", "--containerd=/run/containerd/containerd.sock",
                                 "--log-opt", "max-file=5", "--log-driver", "json-file"]}]
    config = {"log-driver": "json-file", "log-opts": {"max-size": "10m"}}
    candidate = _write(tmp_path / "candidate.json", config)
    with pytest.raises(OpsError, match="log-driver, log-opts are also given as dockerd flags"):
        docker_daemon.validate_daemon_file(candidate, flag_sources=sources, dockerd="/bin/false")
    # the oracle: dockerd with those log flags refuses the same file
    _dockerd_with_flags(tmp_path, monkeypatch, ["--log-opt", "max-file=5", "--log-driver", "json-file"])
    with pytest.raises(RuntimeError, match="specified both as a flag and in the configuration file"):
        start_isolated_engine("flags-unit", config_file=candidate).stop()


def test_docker_26_validate_gets_the_engines_flags(tmp_path):
    root = trixie_root()
    if not root:
        pytest.skip("no Debian 13 root filesystem with Docker 26")
    dockerd = dockerd_26_wrapper(str(tmp_path / "dockerd"), root)
    good = _write(tmp_path / "good.json", {"log-driver": "local"})
    assert docker_daemon.validate_daemon_file(good, dockerd=dockerd, flag_sources=[])["dockerd_validate"] == "ok"
    sources = [{"source": "docker.service's ExecStart (test)", "argv": ["-H", "fd://", "--no-such-flag"]}]
    with pytest.raises(OpsError, match="dockerd --validate refused it with the engine's flags: .*no-such-flag"):
        docker_daemon.validate_daemon_file(good, dockerd=dockerd, flag_sources=sources)
    sources[0]["argv"] = ["-H", "fd://", "--containerd=/run/containerd/containerd.sock"]
    assert docker_daemon.validate_daemon_file(good, dockerd=dockerd, flag_sources=sources)["dockerd_validate"] == "ok"


# ---------------------------------------------------------------------------- keys, plugins


def test_docker_20_10_knows_every_key_the_check_takes_and_both_refuse_a_typo(tmp_path):
    flags_of_the_harness = {"data-root", "exec-root", "pidfile", "hosts", "host", "bridge", "iptables",
                            "ip-masq", "ip-forward", "containerd-namespace", "containerd-plugins-namespace",
                            "storage-driver", "shutdown-timeout", "log-level", "config-file"}
    keys = sorted(docker_daemon.DAEMON_JSON_KEYS_20_10 - flags_of_the_harness)
    config = dict((key, None) for key in keys)
    config["live-restor"] = True
    with pytest.raises(RuntimeError) as caught:
        start_isolated_engine("keys", config_file=_write(tmp_path / "keys.json", config)).stop()
    said = str(caught.value).strip().splitlines()[-1]
    assert said.endswith("the following directives don't match any configuration option: live-restor"), said
    with pytest.raises(OpsError, match="live-restor is no dockerd setting"):
        docker_daemon.check_daemon_keys(config, "daemon.json")


def test_a_log_driver_plugin_the_engine_does_not_have_is_refused(tmp_path):
    engine = start_isolated_engine("plugins")
    try:
        path = _write(tmp_path / "daemon.json", {"log-driver": "loki", "log-opts": {"loki-url": "http://x"}})
        with pytest.raises(OpsError, match="log-driver 'loki' is not a built-in Docker log driver"):
            docker_daemon.validate_daemon_file(path, flag_sources=[], dockerd="/bin/false")
        with pytest.raises(OpsError, match=r"log-driver loki is not an enabled log driver plugin of "
                                           r"the engine at unix://.*\(its plugins: none\)"):
            docker_daemon.validate_daemon_file(path, flag_sources=[], dockerd="/bin/false",
                                               plugin_driver=True, docker_host=engine.host)
    finally:
        engine.stop()
