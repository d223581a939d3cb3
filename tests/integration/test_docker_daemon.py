# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The daemon.json check against a real Docker 20.10 engine: what it passes, dockerd takes.

The engine is the oracle twice: ``docker create --log-driver D --log-opt K=V`` runs the
same option validation dockerd runs at start, for every driver and every key the check
knows of; and dockerd itself is started (isolated, ``--config-file``) on the files of
the issue: the log-driver change from json-file with max-size to journald.
"""

from __future__ import annotations

import json
import re

import pytest

from images import build_busybox_image
from isolated_engine import start_isolated_engine

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_daemon
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError

# Values the engine accepts for options that check their values (addresses, choices, ...).
VALUES = {
    "max-size": "10m", "max-file": "3", "compress": "false", "mode": "non-blocking",
    "max-buffer-size": "4m", "cache-disabled": "false", "cache-max-size": "10m",
    "cache-max-file": "3", "cache-compress": "false", "labels-regex": "^x", "env-regex": "^x",
    "syslog-address": "udp://127.0.0.1:514", "syslog-facility": "daemon",
    "syslog-format": "rfc5424", "syslog-tls-skip-verify": "true",
    "gelf-address": "udp://127.0.0.1:12201", "gelf-compression-type": "gzip",
    "gelf-compression-level": "1", "gelf-tcp-max-reconnect": "3", "gelf-tcp-reconnect-delay": "1",
    "fluentd-address": "127.0.0.1:24224", "fluentd-async": "true", "fluentd-async-connect": "true",
    "fluentd-buffer-limit": "1000", "fluentd-retry-wait": "1s", "fluentd-max-retries": "3",
    "fluentd-sub-second-precision": "true", "fluentd-request-ack": "true",
    "awslogs-region": "eu-west-1", "awslogs-group": "g", "awslogs-create-group": "false",
    "awslogs-endpoint": "https://127.0.0.1", "awslogs-datetime-format": "%Y",
    "awslogs-multiline-pattern": "^x", "awslogs-force-flush-interval-seconds": "5",
    "awslogs-max-buffered-events": "10", "splunk-url": "https://127.0.0.1:8088",
    "splunk-token": "t", "splunk-insecureskipverify": "true", "splunk-verify-connection": "false",
    "splunk-gzip": "true", "splunk-gzip-level": "1", "splunk-format": "raw",
    "splunk-index-acknowledgment": "false", "gcp-log-cmd": "true", "line-only": "true",
    "logentries-token": "t",
}
# Options a driver cannot go without (the engine checks them with every other option).
REQUIRED = {"gelf": {"gelf-address": "udp://127.0.0.1:12201"},
            "awslogs": {"awslogs-region": "eu-west-1", "awslogs-group": "g"},
            "splunk": {"splunk-url": "https://127.0.0.1:8088", "splunk-token": "t"},
            "logentries": {"logentries-token": "t"}}
ALL_KEYS = sorted({key for keys in docker_daemon.LOG_DRIVER_OPTS.values() for key in keys}
                  | set(docker_daemon.COMMON_LOG_OPTS) | {"not-an-option", "tags"})
VALUE_RULE_SAMPLES = {"syslog-address": "udp://127.0.0.1:514", "fluentd-address": "127.0.0.1:24224"}
UNKNOWN_KEY = re.compile(r"unknown log opt|is not a valid option")


@pytest.fixture(scope="module")
def engine():
    eng = start_isolated_engine("daemonjson")
    try:
        build_busybox_image(eng, "logprobe:1")
        yield eng
    finally:
        eng.stop()


def _engine_knows(api, driver, key):
    """Whether the engine takes ``key`` for ``driver`` (a value error still means it knows it)."""
    import docker

    opts = dict(REQUIRED.get(driver, {}))
    opts[key] = VALUES.get(key, "x")
    if key == "max-buffer-size":
        opts["mode"] = "non-blocking"
    try:
        host_config = api.create_host_config(log_config={"Type": driver, "Config": opts})
        created = api.create_container("logprobe:1", host_config=host_config)
        api.remove_container(created["Id"])
        return True
    except docker.errors.APIError as exc:
        return not UNKNOWN_KEY.search(str(exc.explanation or exc))


def _check_passes(driver, key):
    """Whether the check takes ``key`` for ``driver`` (with a value it reads, and the options
    the driver cannot go without)."""
    opts = dict(REQUIRED.get(driver, {}))
    opts[key] = VALUE_RULE_SAMPLES.get(key, VALUES.get(key, "x"))
    if key == "max-buffer-size":
        opts["mode"] = "non-blocking"
    try:
        docker_daemon.check_daemon_config({"log-driver": driver, "log-opts": opts})
        return True
    except OpsError as exc:
        return "is not an option" not in exc.message


@pytest.mark.parametrize("driver", sorted(set(docker_daemon.LOG_DRIVER_OPTS) - {"none"}))
def test_every_key_the_check_passes_the_engine_takes_and_the_other_way_round(engine, driver):
    passed_but_refused, refused_but_known = [], []
    api = engine.api()
    for key in ALL_KEYS:
        ours, engines = _check_passes(driver, key), _engine_knows(api, driver, key)
        if ours and not engines:
            passed_but_refused.append(key)
        if engines and not ours:
            refused_but_known.append(key)
    api.close()
    assert passed_but_refused == []  # would stop dockerd: never
    # Docker 20.10's logentries takes any key; the check is stricter there, nowhere else.
    assert refused_but_known == ([k for k in ALL_KEYS if not _check_passes(driver, k)]
                                 if driver == "logentries" else [])


def _start(tmp_path, name, config):
    path = tmp_path / ("%s.json" % name)
    path.write_text(json.dumps(config))
    try:
        start_isolated_engine("dj-" + name, config_file=str(path)).stop()
        return "started"
    except RuntimeError as exc:
        return str(exc).strip().splitlines()[-1]


OLD = {"live-restore": True, "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}


def test_the_old_merge_stopped_dockerd_and_the_check_refuses_it(tmp_path):
    merged_the_old_way = dict(OLD, **{"log-driver": "journald",
                                      "log-opts": dict(OLD["log-opts"], tag="{{.Name}}")})
    assert re.search(r"unknown log opt 'max-(size|file)' for journald",
                     _start(tmp_path, "old", merged_the_old_way))
    with pytest.raises(OpsError, match="is not an option of log-driver journald"):
        docker_daemon.check_daemon_config(merged_the_old_way)


def test_the_replaced_log_opts_start_dockerd(tmp_path):
    replaced = dict(OLD, **{"log-driver": "journald", "log-opts": {"tag": "{{.Name}}"}})
    docker_daemon.check_daemon_config(replaced)
    assert _start(tmp_path, "new", replaced) == "started"


def test_a_number_where_dockerd_wants_a_string_is_refused_by_both(tmp_path):
    config = {"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": 3}}
    assert "cannot unmarshal number" in _start(tmp_path, "int", config)
    with pytest.raises(OpsError, match="max-file must be a string"):
        docker_daemon.check_daemon_config(config)


VALUE_CASES = [("max-size", "10m"), ("max-size", "1.5g"), ("max-size", "20MB"), ("max-size", "10 m"),
               ("max-size", "10x"), ("max-size", "0"), ("max-size", "-1"), ("max-file", "3"),
               ("max-file", "0"), ("max-file", "three"), ("compress", "false"), ("compress", "yes"),
               ("mode", "blocking"), ("mode", "fast")]
# Checked by dockerd at its own start (and at container create): the engine's create is the oracle.
START_CASES = [("syslog", "syslog-address", "udp://10.0.0.1"), ("syslog", "syslog-address", "10.0.0.1:514"),
               ("syslog", "syslog-address", "tcp+tls://10.0.0.1:6514"), ("syslog", "syslog-address", "http://x:1"),
               ("syslog", "syslog-address", "unix:///nonexistent.sock"), ("syslog", "syslog-facility", "local0"),
               ("syslog", "syslog-facility", "23"), ("syslog", "syslog-facility", "24"),
               ("syslog", "syslog-facility", "bogus"), ("syslog", "syslog-format", "rfc5424micro"),
               ("syslog", "syslog-format", "x"), ("gelf", "gelf-address", "udp://127.0.0.1:12201"),
               ("gelf", "gelf-address", "127.0.0.1:12201"), ("gelf", "gelf-address", "http://x:1"),
               ("gelf", "tag", "no-address"), ("fluentd", "fluentd-address", "tcp://1.2.3.4:24224"),
               ("fluentd", "fluentd-address", "x:y")]


def _check_takes(driver, opts):
    try:
        docker_daemon.check_daemon_config({"log-driver": driver, "log-opts": opts})
        return True
    except OpsError:
        return False


@pytest.mark.parametrize("key, value", VALUE_CASES)
def test_a_value_the_check_passes_is_one_a_container_starts_with(engine, key, value):
    """dockerd parses these values when it starts a container (creating checks only keys)."""
    import docker

    opts = {key: value}
    if key in ("max-file", "compress"):
        opts["max-size"] = "10m"
    client = engine.client()
    try:
        client.containers.run("logprobe:1", ["true"], remove=True, log_config={
            "Type": "json-file", "Config": opts})
        engines = True
    except docker.errors.APIError:
        engines = False
    finally:
        client.close()
    assert _check_takes("json-file", opts) == engines


@pytest.mark.parametrize("driver, key, value", START_CASES)
def test_an_address_facility_or_format_the_check_passes_is_one_dockerd_takes(engine, driver, key, value):
    opts = {} if value == "no-address" else {key: value}
    api = engine.api()
    try:
        created = api.create_container("logprobe:1", host_config=api.create_host_config(
            log_config={"Type": driver, "Config": opts}))
        api.remove_container(created["Id"])
        engines = True
    except Exception:  # noqa: BLE001 - docker.errors.APIError: the engine refused the options
        engines = False
    finally:
        api.close()
    assert _check_takes(driver, opts) == engines
