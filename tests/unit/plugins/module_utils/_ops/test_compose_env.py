# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for compose_env: drift rules on captured real `docker compose config --format json`
and `docker inspect` output (tests/unit/fixtures/compose_env/, Compose 2.40.3, Engine 20.10)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import stat
import sys
import tempfile
import time

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), *[".."] * 5, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import compose_env  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.compose_env import (  # noqa: E402
    analyse, build_diff, build_state, changed_files, check_project_directory, compare_environment,
    compose_environment_values, compose_error_text, compose_escapes_dollars, declared_replicas,
    desired_environment, file_digest, file_signature, files_to_use, find_inconsistent, load_config,
    load_state, make_redactor, parse_docker_time, parse_env_list, referenced_files,
    replicas_to_keep, save_state, select_services, started_with, state_path, sync_compose_env,
    unescape_dollars, wait_for_services)
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.hostkey import (  # noqa: E402
    fingerprint as keyed_fingerprint, key_id)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "compose_env")
# The values in the captured project (test data, not secrets of anyone).
OLD_SECRET = "old-secret-value-1111"
NEW_SECRET = "new-secret-value-2222"
CAPTURED_DIR = "/tmp/envsync-iso/proj/app"
COMPOSE_BIN = os.environ.get("RUNBOOK_OPS_COMPOSE_BIN") or ""
KEY = b"0123456789abcdef0123456789abcdef-unit-test-key"


def fingerprint(value):
    """The fingerprint the plan shows for ``value`` under the tests' host key."""
    return keyed_fingerprint(KEY, value)


def _load(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return json.load(handle)


@pytest.fixture
def captured(tmp_path):
    """The captured project after `.env` changed and only `backend` was recreated, with
    its secrets/configs files moved into ``tmp_path`` (older than every container)."""
    config = _load("config-after-env-change.json")
    containers = _load("containers-backend-only-recreated.json")
    image = _load("image-busybox.json")[0]
    created = min(parse_docker_time(c["Created"]) for c in containers)
    for section in ("secrets", "configs"):
        for definition in config[section].values():
            path = tmp_path / os.path.basename(definition["file"])
            path.write_text("content of %s\n" % path.name)
            os.utime(path, (created - 60, created - 60))
            definition["file"] = str(path)
    image_envs = {image["Id"]: parse_env_list(image["Config"]["Env"])}
    return config, containers, image_envs


def _by_service(containers, name):
    return [c for c in containers if c["Config"]["Labels"]["com.docker.compose.service"] == name]


# --------------------------------------------------------------------------- values


def test_fingerprints_are_keyed_never_the_plain_sha256_prefix(captured):
    config, containers, image_envs = captured
    config = copy.deepcopy(config)
    config["services"]["celery-worker"]["environment"]["PIN"] = "1234"
    plan = analyse(config, containers, image_envs, ["celery-worker"], hmac_key=KEY)
    shown = plan["fingerprints"]["celery-worker"]
    assert shown["AI_PROXY_SECRET"] != hashlib.sha256(OLD_SECRET.encode()).hexdigest()[:12]
    assert plan["desired_fingerprints"]["celery-worker"]["PIN"] == fingerprint("1234") != \
        hashlib.sha256(b"1234").hexdigest()[:12]
    other = analyse(config, containers, image_envs, ["celery-worker"], hmac_key=b"k" * 32)
    assert other["fingerprints"]["celery-worker"]["AI_PROXY_SECRET"] != shown["AI_PROXY_SECRET"]


def test_parse_env_list_keeps_bare_keys_as_none_and_equals_signs_in_values():
    assert parse_env_list(["A=1", "EMPTY_ONE", "B=x=y", "C="]) == {
        "A": "1", "EMPTY_ONE": None, "B": "x=y", "C": ""}


def test_desired_environment_reads_captured_env_file_and_interpolation(captured):
    config = captured[0]
    assert desired_environment(config["services"]["celery-worker"])["EMPTY_ONE"] is None
    assert desired_environment(config["services"]["bot"])["AI_PROXY_SECRET"] == NEW_SECRET
    assert desired_environment({"environment": ["A=1", "B"]}) == {"A": "1", "B": None}


IMAGE_ENV = {"PATH": "/usr/bin:/bin", "IMAGE_LEVEL": "from-image"}


@pytest.mark.parametrize("desired, actual, image_env, expected", [
    ({"A": "1"}, {"A": "1", **IMAGE_ENV}, IMAGE_ENV, {}),
    ({"A": "2"}, {"A": "1", **IMAGE_ENV}, IMAGE_ENV, {"changed": ["A"]}),
    ({"A": "1", "B": "2"}, {"A": "1", **IMAGE_ENV}, IMAGE_ENV, {"added": ["B"]}),
    ({}, {"OLD": "x", **IMAGE_ENV}, IMAGE_ENV, {"removed": ["OLD"]}),
    ({}, dict(IMAGE_ENV), IMAGE_ENV, {}),
    ({}, {"PATH": "/usr/bin:/bin", "IMAGE_LEVEL": "overridden"}, IMAGE_ENV, {"removed": ["IMAGE_LEVEL"]}),
    ({"IMAGE_LEVEL": "overridden"}, {"PATH": "/bin", "IMAGE_LEVEL": "overridden"}, IMAGE_ENV, {}),
    ({}, {"HOSTNAME": "abc", "TERM": "xterm", "HOME": "/root", "PATH": "/x"}, {}, {}),
    ({"A": None}, {"A": None}, {}, {}),
    ({"A": None}, {"A": "now-set"}, {}, {"changed": ["A"]}),
    ({}, {"OLD": "x"}, None, {}),
], ids=["same", "changed", "added", "removed-compose-key", "image-env-is-not-drift",
        "dropped-override-of-image-key", "override-of-image-key-kept", "runtime-keys-ignored",
        "declared-without-value", "value-appeared", "image-gone-no-removed"])
def test_compare_environment_counts_only_keys_compose_sets(desired, actual, image_env, expected):
    result = compare_environment(desired, actual, image_env)
    assert result == {"added": [], "removed": [], "changed": [], **expected}


def test_redactor_replaces_values_but_not_short_ones():
    redact = make_redactor([NEW_SECRET, "1", None, ""])
    assert redact("value %s here, 1 left" % NEW_SECRET) == "value *** here, 1 left"


def test_redactor_also_replaces_a_value_as_compose_quotes_it_with_dollars_doubled():
    redact = make_redactor(["$2y$10$abcdef"])
    assert redact("a $2y$10$abcdef b $$2y$$10$$abcdef c") == "a *** b *** c"


# --------------------------------------------------------------------------- compose's `$$`


def compose_escape(document):
    """Independent model of `compose config`: serialize, then double every `$` byte."""
    return json.loads(json.dumps(document).replace("$", "$$"))


@pytest.mark.parametrize("printed, held", [
    ("$$2y$$10$$N9qo8", "$2y$10$N9qo8"),
    ("admin:$$apr1$$Vh3f$$3mZ1", "admin:$apr1$Vh3f$3mZ1"),
    ("p$$$$q", "p$$q"),
    ("$$$$$$", "$$$"),
    ("no dollar", "no dollar"),
    ("", ""),
], ids=["bcrypt", "htpasswd", "escaped-pair", "only-dollars", "none", "empty"])
def test_unescape_dollars_halves_every_run(printed, held):
    assert unescape_dollars({"services": {"a": {"environment": {"K": printed}}}}) == {
        "services": {"a": {"environment": {"K": held}}}}
    assert unescape_dollars(["K=" + printed]) == ["K=" + held]


@pytest.mark.parametrize("printed", ["a$b", "$", "$$$", "x$$$y"], ids=["one", "alone", "three", "odd-run"])
def test_unescape_dollars_refuses_output_compose_did_not_escape(printed):
    with pytest.raises(ValueError):
        unescape_dollars({"environment": {"K": printed}})


_TEXT = st.text(st.sampled_from("$ab\\'\"# =\n{}:-?"), max_size=12)
_DOCUMENTS = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), _TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=20)


@given(_DOCUMENTS)
def test_unescape_dollars_is_the_exact_inverse_of_compose_escaping(document):
    assert unescape_dollars(compose_escape(document)) == document


DOLLARS = os.path.join(FIXTURES, "dollars")


@pytest.fixture
def dollars(tmp_path):
    """The captured `dollars` project: the config as compose printed it (through a stand-in
    compose that prints it), the containers of a real `--profile workers up`, the image."""
    with open(os.path.join(DOLLARS, "config.json")) as handle:
        compose = _fake_compose(tmp_path, stdout=handle.read())
    containers = _load(os.path.join("dollars", "containers.json"))
    image = _load(os.path.join("dollars", "image.json"))
    return compose, containers, {image["Id"]: parse_env_list(image["Config"]["Env"])}


def test_values_with_dollars_equal_what_compose_put_into_the_containers(dollars, tmp_path):
    compose, containers, image_envs = dollars
    config = load_config(compose, str(tmp_path))
    plan = analyse(config, containers, image_envs, sorted(config["services"]), hmac_key=KEY)
    assert plan["drifted"] == {} and plan["to_recreate"] == [] and plan["fingerprints"] == {}
    web = parse_env_list(_by_service(containers, "web")[0]["Config"]["Env"])
    assert web["BCRYPT_FROM_ENV"] == "$2y$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
    assert web["ADMIN_HTPASSWD"] == "admin:$apr1$Vh3f0qS2$3mZ1rJ8p0eQ9Xc2LkYwT1/"
    for service in ("web", "worker"):
        held = parse_env_list(_by_service(containers, service)[0]["Config"]["Env"])
        desired = desired_environment(config["services"][service])
        assert {k: held[k] for k in desired} == desired, service


def test_one_changed_value_with_dollars_drifts_alone(dollars, tmp_path):
    compose, containers, image_envs = dollars
    config = load_config(compose, str(tmp_path))
    config["services"]["web"]["environment"]["ADMIN_HTPASSWD"] = "admin:$apr1$other$hash"
    plan = analyse(config, containers, image_envs, ["web", "worker"], hmac_key=KEY)
    assert plan["drifted"] == {"web": {"added": [], "removed": [], "changed": ["ADMIN_HTPASSWD"],
                                       "files": []}}
    assert plan["to_recreate"] == ["web"]
    assert list(plan["fingerprints"]) == ["web"] and list(plan["fingerprints"]["web"]) == [
        "ADMIN_HTPASSWD"]


def test_running_services_of_an_inactive_profile_are_named_not_compared(dollars, tmp_path):
    compose, containers, image_envs = dollars
    config = load_config(compose, str(tmp_path))
    del config["services"]["worker"]  # what `config` prints without --profile workers
    plan = analyse(config, containers, image_envs, sorted(config["services"]), hmac_key=KEY)
    assert plan["to_recreate"] == [] and "worker" not in plan["container_ids"]
    assert plan["warnings"] == [
        "running service worker of compose project dollars not in the configuration compose "
        "resolves (a profile not listed in profiles, or removed from the compose file): not compared"]


def test_output_with_a_single_dollar_is_refused_not_guessed(tmp_path):
    printed = json.dumps({"name": "p", "services": {"a": {"environment": {"K": "a$b"}}}})
    compose = _fake_compose(tmp_path, stdout=printed)
    with pytest.raises(OpsError, match="printed a single `\\$` in .*; use Docker Compose v2"):
        load_config(compose + ["--project-directory", str(tmp_path)], str(tmp_path))


@pytest.mark.parametrize("text, epoch", [
    ("2026-11-23T16:11:11.791386871Z", 1795450271.791386871),
    ("2026-11-23T16:11:11Z", 1795450271.0),
    ("2026-11-23T17:11:11.5+01:00", 1795450271.5),
], ids=["nanoseconds", "whole-seconds", "offset"])
def test_parse_docker_time_handles_nanoseconds_and_offsets(text, epoch):
    assert parse_docker_time(text) == pytest.approx(epoch, abs=1e-6)


# --------------------------------------------------------------------------- analysis


def test_analyse_names_the_stale_services_and_keys_of_the_incident(captured):
    config, containers, image_envs = captured
    plan = analyse(config, containers, image_envs, sorted(config["services"]),
                   consistent_keys=["AI_PROXY_SECRET"], hmac_key=KEY)
    stale = {"added": [], "removed": [], "changed": ["AI_PROXY_SECRET"], "files": []}
    assert plan["drifted"] == {"bot": stale, "celery-beat": stale, "celery-worker": stale}
    assert plan["to_recreate"] == ["bot", "celery-beat", "celery-worker"]
    assert plan["inconsistent"] == {}
    assert plan["not_running"] == []
    # fingerprints only for the keys that drifted: the container's value, and compose's
    assert plan["fingerprints"] == {name: {"AI_PROXY_SECRET": fingerprint(OLD_SECRET)}
                                    for name in ("bot", "celery-beat", "celery-worker")}
    assert plan["desired_fingerprints"] == {name: {"AI_PROXY_SECRET": fingerprint(NEW_SECRET)}
                                            for name in ("bot", "celery-beat", "celery-worker")}
    dumped = json.dumps(plan)
    assert OLD_SECRET not in dumped and NEW_SECRET not in dumped


def test_analyse_limits_to_selected_services_and_force_takes_all_running(captured):
    config, containers, image_envs = captured
    plan = analyse(config, containers, image_envs, ["backend", "celery-worker"], hmac_key=KEY)
    assert sorted(plan["drifted"]) == ["celery-worker"]
    plan = analyse(config, containers, image_envs, ["backend", "celery-worker"], force=True,
                   hmac_key=KEY)
    assert plan["to_recreate"] == ["backend", "celery-worker"]


def test_analyse_leaves_stopped_and_one_off_containers_alone(captured):
    config, containers, image_envs = captured
    containers = copy.deepcopy(containers)
    worker = _by_service(containers, "celery-worker")[0]
    worker["State"]["Status"] = "exited"
    oneoff = copy.deepcopy(_by_service(containers, "bot")[0])
    oneoff["Id"] = "f" * 64
    oneoff["Config"]["Labels"]["com.docker.compose.oneoff"] = "True"
    plan = analyse(config, containers + [oneoff], image_envs, sorted(config["services"]),
                   hmac_key=KEY)
    assert plan["not_running"] == ["celery-worker"]
    assert "celery-worker" not in plan["drifted"]
    assert plan["container_ids"]["bot"] == [_by_service(containers, "bot")[0]["Id"]]


def test_analyse_reports_an_image_that_is_gone_and_skips_removed_keys(captured):
    config, containers = captured[0], captured[1]
    plan = analyse(config, containers, {}, ["bot"], hmac_key=KEY)
    assert plan["drifted"]["bot"]["changed"] == ["AI_PROXY_SECRET"]
    assert plan["warnings"] and "image of app-bot-1 is gone" in plan["warnings"][0]


@pytest.mark.parametrize("overrides, expected", [
    ({}, {}),
    ({"bot": {"AI_PROXY_SECRET": "typo-" + NEW_SECRET}}, {"AI_PROXY_SECRET": ["bot"]}),
    ({"celery-worker": {"BOT_TOKEN": None}}, {"BOT_TOKEN": ["celery-worker"]}),
    ({"bot": {"AI_PROXY_SECRET": "a-value"}, "backend": {"AI_PROXY_SECRET": "a-value"}},
     {"AI_PROXY_SECRET": ["backend", "bot", "celery-beat", "celery-worker"]}),
], ids=["consistent", "one-service-differs", "declared-without-value", "no-majority"])
def test_find_inconsistent_names_the_services_that_disagree(captured, overrides, expected):
    config = copy.deepcopy(captured[0])
    for service, env in overrides.items():
        config["services"][service]["environment"].update(env)
    assert find_inconsistent(config, ["AI_PROXY_SECRET", "BOT_TOKEN", "NOT_THERE"]) == expected


def test_build_diff_holds_key_names_and_fingerprints_only(captured):
    config, containers, image_envs = captured
    plan = analyse(config, containers, image_envs, sorted(config["services"]), hmac_key=KEY)
    diff = build_diff(plan, {})
    assert diff["before"]["celery-worker"] == {"AI_PROXY_SECRET": fingerprint(OLD_SECRET)}
    assert diff["after"]["celery-worker"] == {"AI_PROXY_SECRET": fingerprint(NEW_SECRET)}
    assert NEW_SECRET not in json.dumps(diff) and OLD_SECRET not in json.dumps(diff)


# --------------------------------------------------------------------------- secrets/configs files


def test_referenced_files_reads_long_and_short_syntax_from_captured_config():
    config = _load("config-after-env-change.json")
    assert referenced_files(config, "backend") == {
        "secret:db_password": CAPTURED_DIR + "/db_password.txt",
        "config:app_conf": CAPTURED_DIR + "/app.conf"}
    assert referenced_files(config, "celery-worker") == {
        "secret:db_password": CAPTURED_DIR + "/db_password.txt"}
    assert referenced_files(config, "bot") == {}
    config["secrets"]["db_password"] = {"external": True, "name": "x"}
    config["services"]["bot"]["secrets"] = ["db_password"]
    assert referenced_files(config, "bot") == {}


def test_file_changed_after_container_creation_counts_without_state(captured):
    config, containers, image_envs = captured
    os.utime(config["secrets"]["db_password"]["file"], None)  # modified now, after creation
    plan = analyse(config, containers, image_envs, sorted(config["services"]), hmac_key=KEY)
    assert plan["drifted"]["backend"]["files"] == ["secret:db_password"]
    assert plan["drifted"]["celery-worker"]["files"] == ["secret:db_password"]
    assert plan["drifted"]["bot"]["files"] == []  # bot references no files; drifted by env only


def test_file_content_change_is_found_by_digest_for_recorded_containers(captured, tmp_path):
    config, containers, image_envs = captured
    selected = sorted(config["services"])
    plan = analyse(config, containers, image_envs, selected, hmac_key=KEY)
    state = build_state("app", CAPTURED_DIR, plan)
    secret = config["secrets"]["db_password"]["file"]
    mtime = os.stat(secret).st_mtime
    with open(secret, "w") as handle:
        handle.write("rotated\n")
    os.utime(secret, (mtime, mtime))  # same mtime: only the digest can tell
    plan = analyse(config, containers, image_envs, selected, state=state, hmac_key=KEY)
    assert plan["drifted"]["backend"]["files"] == ["secret:db_password"]
    assert plan["drifted"]["celery-worker"]["files"] == ["secret:db_password"]
    assert "rotated" not in json.dumps(plan)
    # the same digests recorded for other containers: back to the modification time rule
    other = copy.deepcopy(state)
    other["services"]["backend"]["containers"] = ["0" * 64]
    plan = analyse(config, containers, image_envs, ["backend"], state=other, hmac_key=KEY)
    assert "backend" not in plan["drifted"]


def test_state_holds_keyed_digests_and_a_record_under_another_key_is_not_compared(captured):
    config, containers, image_envs = captured
    secret = config["secrets"]["db_password"]["file"]
    plan = analyse(config, containers, image_envs, ["backend"], hmac_key=KEY)
    state = build_state("app", CAPTURED_DIR, plan)
    recorded = state["services"]["backend"]["files"]["secret:db_password"]
    assert recorded == file_digest(secret, KEY) != file_digest(secret)
    assert state["key_id"] == key_id(KEY) and state["version"] == 2
    # the key file was replaced: every digest differs, yet nothing counts as changed (the
    # file is older than the containers), and the diff shows no digest made under the old key
    plan = analyse(config, containers, image_envs, ["backend"], state=state, hmac_key=b"n" * 32)
    assert "backend" not in plan["drifted"]
    os.utime(secret, None)
    plan = analyse(config, containers, image_envs, ["backend"], state=state, hmac_key=b"n" * 32)
    assert plan["drifted"]["backend"]["files"] == ["secret:db_password"]
    assert build_diff(plan, state)["before"]["backend"] == {
        "secret:db_password": "changed since container start"}
    assert build_state("app", CAPTURED_DIR, plan, state)["key_id"] == key_id(b"n" * 32)


def test_a_version_1_state_with_plain_digests_is_still_compared_once(captured):
    config, containers, image_envs = captured
    secret = config["secrets"]["db_password"]["file"]
    ids = [c["Id"] for c in _by_service(containers, "backend")]
    legacy = {"version": 1, "services": {"backend": {"containers": ids, "files": {
        "secret:db_password": file_digest(secret), "config:app_conf": file_digest(
            config["configs"]["app_conf"]["file"])}}}}
    os.utime(secret, None)  # touched, same content: the recorded digest says unchanged
    plan = analyse(config, containers, image_envs, ["backend"], state=legacy, hmac_key=KEY)
    assert "backend" not in plan["drifted"]
    with open(secret, "a") as handle:
        handle.write("rotated")
    plan = analyse(config, containers, image_envs, ["backend"], state=legacy, hmac_key=KEY)
    assert plan["drifted"]["backend"]["files"] == ["secret:db_password"]
    # the plain digest is never shown, and the next state replaces it by keyed ones
    assert file_digest(secret)[:12] not in json.dumps(build_diff(plan, legacy))
    assert build_state("app", CAPTURED_DIR, plan, legacy)["services"]["backend"]["files"][
        "secret:db_password"] == file_digest(secret, KEY)


def test_changed_files_counts_a_missing_file():
    container = {"Id": "a", "Created": "2026-11-23T16:11:11Z"}
    assert changed_files({"secret:x": "/nonexistent/x"}, {"secret:x": "missing"}, [container],
                         None) == ["secret:x"]


# --------------------------------------------------------------------------- state


def test_state_file_is_0600_in_a_0700_directory_and_round_trips(tmp_path):
    path = state_path(str(tmp_path / "state"), "my app")
    assert path.endswith("compose-env-sync/my_app.json")
    document = {"version": 2, "project": "my app", "key_id": key_id(KEY),
                "services": {"a": {"containers": ["1"], "files": {}}}}
    assert save_state(path, document) is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert load_state(path) == document


def test_load_state_ignores_corrupt_and_foreign_files(tmp_path):
    path = tmp_path / "x.json"
    assert load_state(str(path)) == {}
    path.write_text("{torn")
    assert load_state(str(path)) == {}
    path.write_text('{"version": 99}')
    assert load_state(str(path)) == {}


def test_build_state_keeps_services_it_did_not_look_at():
    previous = {"version": 2, "key_id": "k1",
                "services": {"other": {"containers": ["9"], "files": {"a": "b"}}}}
    plan = {"container_ids": {"web": ["1"]}, "file_digests": {"web": {}}, "key_id": "k1"}
    assert build_state("p", "/srv/p", plan, previous)["services"] == {
        "other": {"containers": ["9"], "files": {"a": "b"}},
        "web": {"containers": ["1"], "files": {}}}
    # entries made under another key (or plain sha256, version 1) are dropped
    for stale in (dict(previous, key_id="k0"), {"version": 1, "services": previous["services"]}):
        assert build_state("p", "/srv/p", plan, stale)["services"] == {
            "web": {"containers": ["1"], "files": {}}}


# --------------------------------------------------------------------------- waiting


class FakeAPI:
    """Answers containers()/inspect_container() from a list of snapshots, one per poll."""

    def __init__(self, snapshots):
        self.snapshots = snapshots
        self.polls = 0

    def containers(self, all=False, filters=None):  # noqa: A002 (the SDK's name)
        snapshot = self.snapshots[min(self.polls, len(self.snapshots) - 1)]
        self.polls += 1
        self.current = snapshot
        return [{"Id": c["Id"]} for c in snapshot]

    def inspect_container(self, container_id):
        return next(c for c in self.current if c["Id"] == container_id)


def _container(service, status, health=None, exit_code=0, cid=None):
    state = {"Status": status, "ExitCode": exit_code}
    if health:
        state["Health"] = {"Status": health}
    return {"Id": cid or service, "State": state, "Config": {"Labels": {
        "com.docker.compose.project": "app", "com.docker.compose.service": service,
        "com.docker.compose.oneoff": "False"}}}


def test_wait_returns_once_running_and_healthy():
    api = FakeAPI([[_container("web", "running", "starting"), _container("bot", "created")],
                   [_container("web", "running", "healthy"), _container("bot", "running")]])
    wait_for_services(api, "app", ["web", "bot"], timeout=5, poll_interval=0)
    assert api.polls == 2


@pytest.mark.parametrize("container, expected", [
    (_container("celery-worker", "exited", exit_code=3),
     "celery-worker is exited, exit code 3"),
    (_container("celery-worker", "running", "unhealthy"),
     "celery-worker is running (health: unhealthy), exit code 0"),
], ids=["exited", "unhealthy"])
def test_wait_fails_naming_the_service_its_state_and_exit_code(container, expected):
    api = FakeAPI([[_container("web", "running"), container]])
    with pytest.raises(OpsError) as info:
        wait_for_services(api, "app", ["web", "celery-worker"], timeout=5, poll_interval=0)
    assert expected in info.value.message
    assert "docker compose logs celery-worker" in info.value.message
    assert set(info.value.details["failed_services"]) == {"celery-worker"}


def test_wait_times_out_on_a_healthcheck_that_never_passes():
    api = FakeAPI([[_container("web", "running", "starting")]])
    started = time.monotonic()
    with pytest.raises(OpsError) as info:
        wait_for_services(api, "app", ["web"], timeout=0.3, poll_interval=0.05)
    assert time.monotonic() - started < 5
    assert "web is running (health: starting), exit code 0" in info.value.message


# --------------------------------------------------------------------------- inputs and errors


def test_select_services_rejects_unknown_names(captured):
    assert select_services(captured[0], None) == ["backend", "bot", "celery-beat", "celery-worker"]
    with pytest.raises(OpsError, match="unknown service celery in compose project app; known: "):
        select_services(captured[0], ["celery", "bot"])


def test_missing_project_directory_is_a_clear_error(tmp_path):
    with pytest.raises(OpsError, match="project directory .*/nope does not exist"):
        sync_compose_env(str(tmp_path / "nope"), compose_command=["false"])


def test_bad_on_inconsistent_value_is_rejected(tmp_path):
    with pytest.raises(OpsError, match="on_inconsistent must be fail or warn"):
        sync_compose_env(str(tmp_path), on_inconsistent="ignore")


def _fake_compose(tmp_path, stdout="", stderr="", rc=0):
    """A stand-in compose printing captured output (error paths, captured configs)."""
    script = tmp_path / "fake-compose"
    script.write_text("#!%s\nimport sys\nsys.stdout.write(%r)\nsys.stderr.write(%r)\nsys.exit(%d)\n"
                      % (sys.executable, stdout, stderr, rc))
    script.chmod(0o755)
    return [str(script)]


def test_compose_that_prints_no_json_is_refused(tmp_path):
    # what the venv's always-exit-0 docker-compose shim does with unknown arguments
    compose = _fake_compose(tmp_path, stdout="Usage: docker-compose [OPTIONS]\n")
    with pytest.raises(OpsError, match="printed no JSON"):
        load_config(compose + ["--project-directory", str(tmp_path)], str(tmp_path))


@pytest.mark.parametrize("stderr", [
    "unknown flag: --format\n",
    "Validates and view the Compose file.\n\nUsage: config [options]\n",
], ids=["old-compose-v2", "compose-v1-docopt"])
def test_compose_without_config_format_json_is_named(tmp_path, stderr):
    compose = _fake_compose(tmp_path, stderr=stderr, rc=1)
    with pytest.raises(OpsError, match="config --format json` is not supported .*use Docker "
                                       "Compose v2 or set compose_command"):
        load_config(compose + ["--project-directory", str(tmp_path)], str(tmp_path))


def test_compose_errors_are_quoted_without_values(tmp_path):
    (tmp_path / ".env").write_text("AI_PROXY_SECRET=%s\n" % NEW_SECRET)
    compose = _fake_compose(tmp_path, rc=15, stderr="yaml: line 3: value %s unexpected\n" % NEW_SECRET)
    with pytest.raises(OpsError) as info:
        sync_compose_env(str(tmp_path), compose_command=compose)
    assert "could not resolve the project" in info.value.message
    assert "exit 15" in info.value.message and "***" in info.value.message
    assert NEW_SECRET not in info.value.message


@pytest.mark.skipif(not os.access(COMPOSE_BIN, os.X_OK), reason="RUNBOOK_OPS_COMPOSE_BIN not set")
@pytest.mark.parametrize("compose_yaml, expected", [
    ("services:\n  a:\n    image: x\n   environment: [\n", "yaml: line 1: did not find expected key"),
    ("services:\n  a:\n    image: x\n    environment:\n      K: ${NEEDED:?set NEEDED in .env}\n",
     "required variable NEEDED is missing a value: set NEEDED in .env"),
    (None, "no configuration file provided"),
], ids=["bad-yaml", "required-variable", "no-compose-file"])
def test_real_compose_parse_errors_are_clear(tmp_path, compose_yaml, expected):
    if compose_yaml is not None:
        (tmp_path / "compose.yaml").write_text(compose_yaml)
    with pytest.raises(OpsError) as info:
        sync_compose_env(str(tmp_path), compose_command=[COMPOSE_BIN])
    assert expected in info.value.message
    assert "fix the compose file or .env" in info.value.message


@pytest.mark.skipif(not os.access(COMPOSE_BIN, os.X_OK), reason="RUNBOOK_OPS_COMPOSE_BIN not set")
@pytest.mark.parametrize("line, expected", [
    ('PASSWORD="%s\n' % NEW_SECRET, 'unterminated quoted value ***'),
    ("DB@PASSWORD=%s\n" % NEW_SECRET, 'unexpected character "@" in variable name "DB@PASSWORD=***"'),
], ids=["unterminated-quote", "bad-key"])
def test_a_broken_service_env_file_is_named_without_its_values(tmp_path, line, expected):
    # compose quotes the broken line of an env_file that is not an interpolation .env
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: x\n    env_file: app.env\n")
    (tmp_path / "app.env").write_text("GOOD=1\n" + line)
    with pytest.raises(OpsError) as info:
        sync_compose_env(str(tmp_path), compose_command=[COMPOSE_BIN])
    assert "failed to read %s/app.env: line " % tmp_path in info.value.message
    assert expected in info.value.message
    assert NEW_SECRET not in info.value.message


@pytest.mark.skipif(not os.access(COMPOSE_BIN, os.X_OK), reason="RUNBOOK_OPS_COMPOSE_BIN not set")
def test_daemon_that_does_not_answer_is_a_clear_error(tmp_path):
    pytest.importorskip("docker")
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: x\n")
    host = "unix://%s/no-daemon.sock" % tmp_path
    with pytest.raises(OpsError, match="cannot reach the Docker daemon at %s .*docker_host" % host):
        sync_compose_env(str(tmp_path), compose_command=[COMPOSE_BIN], docker_host=host)


def test_core_imports_without_ansible_and_docker():
    source = open(compose_env.__file__).read()
    assert "import ansible" not in source and "from ansible" not in source
    assert "\nimport docker" not in source and "\nfrom docker" not in source


# --------------------------------------------------------------------------- values compose may quote

# An independent model: YAML itself (PyYAML in the test venv; the core scans lines, since hosts
# may lack PyYAML) reads every value written in every way an `environment:` entry can be written.
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./@%+=$-]*")
_YAML_WORDS = ("true", "false", "null", "yes", "no", "on", "off", "y", "n")


def _plain(value):
    return value if _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS else None


def _single(text):
    return "'%s'" % text.replace("'", "''")


_ENTRY_STYLES = {
    "map_double": lambda k, v: "      %s: %s" % (k, json.dumps(v)),
    "map_single": lambda k, v: "      %s: %s" % (k, _single(v)),
    "map_plain": lambda k, v: _plain(v) and "      %s: %s  # a comment" % (k, v),
    "list_double": lambda k, v: "      - %s" % json.dumps("%s=%s" % (k, v)),
    "list_single": lambda k, v: "      - %s" % _single("%s=%s" % (k, v)),
    "list_plain": lambda k, v: _plain(v) and "      - %s=%s" % (k, v),
}
_VALUE_TEXT = st.text(st.sampled_from("abcXYZ019 $$${}:=#'\"\\!@,.-_/"), min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(entries=st.lists(st.tuples(st.sampled_from(sorted(_ENTRY_STYLES)), _VALUE_TEXT),
                        min_size=1, max_size=6), at_key_indent=st.booleans())
def test_every_value_yaml_reads_under_environment_is_found_for_redaction(entries, at_key_indent):
    maps, lists = [], []
    for index, (style, value) in enumerate(entries):
        line = _ENTRY_STYLES[style]("K%d" % index, value) or _ENTRY_STYLES["map_double"](
            "K%d" % index, value)
        if line.lstrip().startswith("-"):  # a list may also sit at its key's own indentation
            lists.append(line[2:] if at_key_indent else line)
        else:
            maps.append(line)
    text = ("services:\n  a:\n    image: x\n    environment:\n%s\n    command: [sleep, '1']\n"
            "  b:\n    environment:\n%s\n    image: y\n"
            % ("\n".join(maps) or "      NONE: ''", "\n".join(lists) or "      - NONE="))
    model = {}
    for service in yaml.safe_load(text)["services"].values():
        env = service["environment"]
        model.update({k: str(v) for k, v in env.items()} if isinstance(env, dict) else
                     dict(item.split("=", 1) for item in env))
    model.pop("NONE", None)
    assert model == {"K%d" % i: v for i, (_s, v) in enumerate(entries)}  # the rendering is right
    model = list(model.values())
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        handle.write(text)
        handle.flush()
        found = set(compose_environment_values([handle.name]))
    assert [v for v in model if v not in found and len(v) >= 4] == []


def test_compose_environment_values_reads_flow_and_multi_line_values(tmp_path):
    (tmp_path / "compose.yaml").write_text(
        "services:\n  a:\n    environment: {A: flow-value-1, B: \"flow two\"}\n"
        "  b:\n    environment:\n      C: |\n        first line of a key\n      D: after\n"
        "    labels:\n      L: not-an-environment-value\n")
    found = compose_environment_values([str(tmp_path / "compose.yaml"), str(tmp_path / "none")])
    assert {"flow-value-1", "flow two", "first line of a key", "after"} <= set(found)
    assert "not-an-environment-value" not in found


# Captured: `config --format json` of a compose.yaml holding DB_PASSWORD: "Xk9-pa${ss-TOPSECRET"
# (map form, Compose 2.40.3) and - "DB_PASSWORD=Xk9-pa${ss-TOPSECRET" (list form, 2.20.1).
@pytest.mark.parametrize("stderr, shown", [
    ("invalid interpolation format for services.web.environment.DB_PASSWORD.\nYou may need to "
     "escape any $ with another $.\nXk9-pa${ss-TOPSECRET\n",
     "invalid interpolation format for services.web.environment.DB_PASSWORD (write a literal $ as $$)"),
    ("parsing /srv/app/compose.yaml: invalid interpolation format for services.web.environment.[]."
     "\nYou may need to escape any $ with another $.\nDB_PASSWORD=Xk9-pa${ss-TOPSECRET\n",
     "parsing /srv/app/compose.yaml: invalid interpolation format for services.web.environment.[] "
     "(write a literal $ as $$)"),
    ("line 1\nline 2\nyaml: line 3: did not find expected key\n",
     "line 1 | line 2 | yaml: line 3: did not find expected key"),
], ids=["map-2.40.3", "list-2.20.1", "other"])
def test_compose_error_text_stops_at_the_key_path_of_an_interpolation_error(stderr, shown):
    assert compose_error_text(stderr, lambda text: text) == shown


@pytest.mark.skipif(not os.access(COMPOSE_BIN, os.X_OK), reason="RUNBOOK_OPS_COMPOSE_BIN not set")
def test_a_value_compose_quotes_from_the_compose_file_never_reaches_the_message(tmp_path):
    (tmp_path / "compose.yaml").write_text(
        "services:\n  a:\n    image: x\n    environment:\n      - \"PW=pa${ss-%s\"\n" % NEW_SECRET)
    with pytest.raises(OpsError) as info:
        sync_compose_env(str(tmp_path), compose_command=[COMPOSE_BIN])
    assert "invalid interpolation format for services.a.environment" in info.value.message
    assert "ss-" not in info.value.message and NEW_SECRET not in info.value.message


def test_other_compose_errors_quoting_a_compose_file_value_are_redacted(tmp_path):
    (tmp_path / "compose.yaml").write_text(
        "services:\n  a:\n    image: x\n    environment:\n      PW: '%s'\n" % NEW_SECRET)
    compose = _fake_compose(tmp_path, rc=1, stderr="services.a.environment.PW: %s is bogus\n"
                            % NEW_SECRET)
    with pytest.raises(OpsError) as info:
        sync_compose_env(str(tmp_path), compose_command=compose)
    assert "services.a.environment.PW: *** is bogus" in info.value.message


# --------------------------------------------------------------------------- `$` escaping probe


def _fake_compose_by_args(tmp_path, outputs, default):
    """A stand-in compose printing ``outputs[marker]`` when ``marker`` is in its arguments."""
    script = tmp_path / "fake-compose"
    script.write_text("#!%s\nimport sys\nOUT = %r\nargs = ' '.join(sys.argv[1:])\nsys.stdout.write("
                      "next((v for k, v in OUT.items() if k in args), %r))\n"
                      % (sys.executable, outputs, default))
    script.chmod(0o755)
    return [str(script)]


def _probe_answer(printed):
    return json.dumps({"name": "runbook-ops-probe", "services": {"probe": {
        "environment": {"PROBE": printed}}}})


def test_a_compose_that_does_not_escape_is_compared_as_it_prints(tmp_path):
    # what an early Compose v2 printed (docker/compose#8518): the values as containers hold them
    printed = json.dumps({"name": "p", "services": {"a": {"environment": {
        "HASH": "$2y$10$abc", "PAIR": "x$$y"}}}})
    compose = _fake_compose_by_args(tmp_path, {"runbook-ops-probe": _probe_answer("a$b")}, printed)
    assert compose_escapes_dollars(compose) is False
    config = load_config(compose + ["--project-directory", str(tmp_path)], str(tmp_path))
    assert config["services"]["a"]["environment"] == {"HASH": "$2y$10$abc", "PAIR": "x$$y"}


def test_a_compose_that_escapes_is_halved_and_a_single_dollar_from_it_is_refused(tmp_path):
    printed = json.dumps({"name": "p", "services": {"a": {"environment": {"PAIR": "x$$$$y"}}}})
    compose = _fake_compose_by_args(tmp_path, {"runbook-ops-probe": _probe_answer("a$$b")}, printed)
    assert compose_escapes_dollars(compose) is True
    config = load_config(compose + ["--project-directory", str(tmp_path)], str(tmp_path))
    assert config["services"]["a"]["environment"] == {"PAIR": "x$$y"}
    odd = tmp_path / "odd"
    odd.mkdir()
    compose = _fake_compose_by_args(odd, {"runbook-ops-probe": _probe_answer("a$$b")},
                                    printed.replace("x$$$$y", "x$y"))
    with pytest.raises(OpsError, match="printed a single `\\$` in .*never holds"):
        load_config(compose + ["--project-directory", str(odd)], str(odd))


@pytest.mark.skipif(not os.access(COMPOSE_BIN, os.X_OK), reason="RUNBOOK_OPS_COMPOSE_BIN not set")
def test_the_real_compose_escapes_dollars():
    assert compose_escapes_dollars([COMPOSE_BIN]) is True


# --------------------------------------------------------------------------- what was started


def _started(service, directory, files, env_files=None, status="running", cid=None, number=1):
    labels = {"com.docker.compose.project": "app", "com.docker.compose.service": service,
              "com.docker.compose.oneoff": "False",
              "com.docker.compose.project.working_dir": directory,
              "com.docker.compose.project.config_files": ",".join(files)}
    if env_files:
        labels["com.docker.compose.project.environment_file"] = ",".join(env_files)
    return {"Id": cid or "%s-%d" % (service, number), "Name": "/app-%s-%d" % (service, number),
            "State": {"Status": status, "ExitCode": 0 if status == "running" else 137},
            "Config": {"Labels": labels}}


def test_containers_of_a_same_named_project_elsewhere_are_refused(tmp_path):
    real = tmp_path / "releases" / "app"
    real.mkdir(parents=True)
    (tmp_path / "current").symlink_to(real)
    ours = [_started("web", str(real), [])]
    check_project_directory(ours, str(real), "app")
    check_project_directory(ours, str(tmp_path / "current"), "app")  # the same directory
    with pytest.raises(OpsError) as info:
        check_project_directory(ours + [_started("db", "/srv/app", [])], str(real), "app")
    assert info.value.message == (
        "compose project app has containers started from /srv/app, not from project_src %s: a "
        "project of the same name in another directory; set project_name to the name this "
        "project runs under, or project_src to /srv/app (nothing was recreated)" % real)


def test_files_default_to_those_the_containers_were_started_with(tmp_path):
    src = str(tmp_path)
    for name in ("compose.yaml", "compose.prod.yml", "prod.env"):
        (tmp_path / name).write_text("")
    both = [src + "/compose.yaml", src + "/compose.prod.yml"]
    containers = [_started("web", src, both, [src + "/prod.env"], number=n) for n in (1, 2)]
    started = started_with(containers, "app", "com.docker.compose.project.config_files", src)
    assert started == {tuple(both): ["web"]}
    assert files_to_use("files", None, started, src, "app") == both
    assert files_to_use("files", ["compose.yaml", src + "/compose.prod.yml"], started, src,
                        "app") == ["compose.yaml", src + "/compose.prod.yml"]
    with pytest.raises(OpsError) as info:
        files_to_use("files", ["compose.yaml"], started, src, "app")
    assert info.value.message == (
        "files (compose.yaml) are not the compose files the running containers of web in compose "
        "project app were started with (compose.yaml, compose.prod.yml); recreating them from "
        "other files changes more than their environment; set files to those, or leave it unset "
        "to use them (nothing was recreated)")
    env = started_with(containers, "app", "com.docker.compose.project.environment_file", src)
    assert files_to_use("env_files", None, env, src, "app") == [src + "/prod.env"]
    with pytest.raises(OpsError, match=r"^env_files \(\.env\) are not the env files"):
        files_to_use("env_files", [".env"], env, src, "app")


def test_containers_started_with_different_or_vanished_files_are_refused(tmp_path):
    src = str(tmp_path)
    (tmp_path / "compose.yaml").write_text("")
    containers = [_started("web", src, [src + "/compose.yaml", src + "/debug.yml"]),
                  _started("worker", src, [src + "/compose.yaml"]),
                  _started("old", src, [src + "/compose.yaml"], status="exited")]
    label = "com.docker.compose.project.config_files"
    with pytest.raises(OpsError) as info:
        files_to_use("files", None, started_with(containers, "app", label, src), src, "app")
    assert info.value.message == (
        "the running containers of compose project app were started with different compose files "
        "(worker: compose.yaml; web: compose.yaml, debug.yml); set files to the ones to compare "
        "with, and services to the services started with them (nothing was recreated)")
    # services narrows what must agree; a file that is gone is named
    assert files_to_use("files", None, started_with(containers, "app", label, src, ["worker"]),
                        src, "app") == [src + "/compose.yaml"]
    with pytest.raises(OpsError, match="started with compose files %s/debug.yml, which no longer "
                                       "exists; restore it or set files" % src):
        files_to_use("files", None, started_with(containers, "app", label, src, ["web"]), src, "app")


def test_containers_without_the_label_are_not_checked_against_given_files(tmp_path):
    src = str(tmp_path)
    started = started_with([_started("web", src, [])], "app",
                           "com.docker.compose.project.environment_file", src)
    assert started == {(): ["web"]}
    assert files_to_use("env_files", None, started, src, "app") is None
    assert files_to_use("env_files", ["prod.env"], started, src, "app") == ["prod.env"]


@pytest.mark.parametrize("service, expected", [
    ({}, 1), ({"scale": 3}, 3), ({"deploy": {"replicas": 0}}, 0), ({"deploy": {}}, 1),
    ({"scale": 2, "deploy": {"replicas": 5}}, 2)], ids=["none", "scale", "zero", "deploy", "both"])
def test_declared_replicas_reads_scale_and_deploy_replicas(service, expected):
    assert declared_replicas(service) == expected


_SERVICE_STATES = st.dictionaries(
    st.sampled_from(["web", "worker", "beat", "bot"]),
    st.tuples(st.integers(0, 4), st.integers(0, 2), st.sampled_from([None, 0, 1, 3])),
    min_size=1, max_size=4)


@given(states=_SERVICE_STATES, data=st.data())
def test_replicas_kept_are_the_running_containers_of_each_recreated_service(states, data):
    # model: N = running containers; a recreated service with stopped containers besides
    # running ones is refused; a warning names each service whose N differs from its file
    config = {"name": "app", "services": {}}
    containers = []
    for name, (running, stopped, declared) in states.items():
        config["services"][name] = {"deploy": {"replicas": declared}} if declared is not None else {}
        containers += [_started(name, "/srv/app", [], number=n) for n in range(running)]
        containers += [_started(name, "/srv/app", [], status="exited", number=running + n)
                       for n in range(stopped)]
    recreated = data.draw(st.lists(st.sampled_from(sorted(states)), unique=True))
    blocked = [n for n in recreated if states[n][0] and states[n][1]]
    if blocked:
        with pytest.raises(OpsError) as info:
            replicas_to_keep(config, containers, recreated)
        assert "cannot recreate %s without" % ", ".join(sorted(blocked)) in info.value.message
        return
    counts, warnings = replicas_to_keep(config, containers, recreated)
    assert counts == {n: states[n][0] for n in recreated if states[n][0]}
    declared = {n: 1 if states[n][2] is None else states[n][2] for n in states}
    assert [w.split(" ", 1)[0] for w in warnings] == sorted(
        n for n in counts if counts[n] != declared[n])


def test_a_stopped_replica_beside_running_ones_is_refused_with_how_to_fix_it():
    config = {"name": "app", "services": {"worker": {}}}
    containers = [_started("worker", "/srv/app", [], number=1),
                  _started("worker", "/srv/app", [], number=3),
                  _started("worker", "/srv/app", [], status="exited", number=2)]
    with pytest.raises(OpsError) as info:
        replicas_to_keep(config, containers, ["worker"])
    assert info.value.message == (
        "cannot recreate worker without removing or restarting a stopped container (compose keeps "
        "the running count): app-worker-2 is exited (exit code 137), 2 of worker running; start "
        "or remove it first (`docker start NAME` or `docker rm NAME`), or leave the service out "
        "of services (nothing was recreated)")
    assert replicas_to_keep(config, containers[:2], ["worker"]) == (
        {"worker": 2}, ["worker runs 2 containers, its compose file asks for 1: the recreate "
                        "keeps 2 (--scale worker=2)"])


# --------------------------------------------------------------------------- a replaced key


def test_a_record_under_another_key_is_compared_by_file_signature(captured):
    config, containers, image_envs = captured
    secret = config["secrets"]["db_password"]["file"]
    plan = analyse(config, containers, image_envs, ["backend"], hmac_key=KEY)
    state = build_state("app", CAPTURED_DIR, plan)
    assert state["services"]["backend"]["stats"]["secret:db_password"] == file_signature(secret)
    other_key = b"r" * 32
    plan = analyse(config, containers, image_envs, ["backend"], state=state, hmac_key=other_key)
    assert "backend" not in plan["drifted"]
    assert plan["warnings"] == [
        "the secrets/configs files of backend were recorded under another fingerprint key (the "
        "key was replaced, or this run used a throw-away key), so their content cannot be "
        "compared: a file whose inode or change time differs from the record counts as changed"]
    # rewritten in place with its old modification time (cp -p, rsync -a, tar): still found
    mtime = os.stat(secret).st_mtime
    with open(secret, "w") as handle:
        handle.write("rotated\n")
    os.utime(secret, (mtime, mtime))
    plan = analyse(config, containers, image_envs, ["backend"], state=state, hmac_key=other_key)
    assert plan["drifted"]["backend"]["files"] == ["secret:db_password"]
    # a record without signatures (written before them): modification time only, and said so
    del state["services"]["backend"]["stats"]
    plan = analyse(config, containers, image_envs, ["backend"], state=state, hmac_key=other_key)
    assert "backend" not in plan["drifted"]
    assert plan["warnings"][0].endswith("judged by modification time only (a file copied in with "
                                        "its old modification time goes unnoticed)")
    # no record of these containers: the key does not matter, nothing to say
    state["services"]["backend"]["containers"] = ["0" * 64]
    assert analyse(config, containers, image_envs, ["backend"], state=state,
                   hmac_key=other_key)["warnings"] == []


def test_file_signature_changes_with_any_write_and_not_with_reading(tmp_path):
    path = tmp_path / "secret"
    path.write_text("a")
    first = file_signature(str(path))
    path.read_text()
    assert file_signature(str(path)) == first
    stamp = os.stat(path).st_mtime
    path.write_text("b")
    os.utime(path, (stamp, stamp))
    assert file_signature(str(path)) != first
    folder = tmp_path / "conf.d"
    folder.mkdir()
    (folder / "x.conf").write_text("1")
    before = file_signature(str(folder))
    assert before.startswith("dir:") and file_signature(str(folder)) == before
    (folder / "x.conf").write_text("2")
    assert file_signature(str(folder)) != before
    assert file_signature(str(tmp_path / "nope")) == "missing"
