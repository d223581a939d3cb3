# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_cleanup.py planning on real /system/df output captured from a Docker 20.10 engine.

The fixture (tests/unit/fixtures/docker_cleanup/scenario-20.10.json) was captured by
tests/harness/capture_docker_cleanup_state.py from tests/harness/cleanup_scenario.py's
state; ``scenario`` maps the scenario's names to the ids the engine gave them.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import datetime, timezone

import docker
import pytest

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_cleanup as dc  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.timestamps import epoch_seconds  # noqa: E402

FIXTURE = os.path.join(_REPO, "tests", "unit", "fixtures", "docker_cleanup", "scenario-20.10.json")


@pytest.fixture(scope="module")
def captured():
    with open(FIXTURE) as fh:
        return json.load(fh)


def _names(captured):
    """id -> scenario name, for images, containers, networks; volumes by name."""
    out = {}
    for kind in ("images", "containers", "networks"):
        for name, value in captured["scenario"][kind].items():
            for one in (value if isinstance(value, list) else [value]):
                out[one] = name
    for name, value in captured["scenario"]["volumes"].items():
        out[value] = name
    return out


# Stopped containers stay at least an hour after they stop (a day after a crash), whatever
# the options say: the scenario's stopped containers are old enough to go a week later.
WEEK_LATER = 8 * 86400


def _plan(captured, later=0, **options):
    opts = dc.normalize_options(dict({"until": "0s"}, **options))
    return dc.plan_cleanup_steps(captured["state"], opts, now=captured["captured_at"] + 60 + later)


def _removed(captured, plan):
    names = _names(captured)
    out = {}
    for step in plan["steps"]:
        if step["name"] == "builder_cache":
            out[step["name"]] = len(step["planned"])
        else:
            out[step["name"]] = sorted(names.get(i["id"], i["name"]) for i in step["planned"])
    return out


UNUSED = ["app:compose", "app:old", "bk:1", "bk:2", "dang:latest", "dangling", "dangling"]

PLAN_CASES = [
    ("defaults", {},
     {"builder_cache": 10, "containers": [], "images": UNUSED, "volumes": [], "networks": []}),
    ("dangling-only", {"images": "dangling", "builder_cache": False},
     {"builder_cache": 0, "containers": [], "images": ["dangling", "dangling"], "volumes": [],
      "networks": []}),
    ("anonymous-volumes", {"images": "none", "builder_cache": False, "volumes": "anonymous"},
     {"builder_cache": 0, "containers": [], "images": [], "volumes": ["anon"], "networks": []}),
    ("all-volumes", {"images": "none", "builder_cache": False, "volumes": "all"},
     {"builder_cache": 0, "containers": [], "images": [], "networks": [],
      "volumes": ["anon", "loose", "shop_data"]}),
    ("networks", {"images": "none", "builder_cache": False, "networks": True},
     {"builder_cache": 0, "containers": [], "images": [], "volumes": [],
      "networks": ["unusednet"]}),
    # stopped_anon belongs to "stopped", which this run removes: it stays until a later run
    ("everything", {"containers": True, "volumes": "anonymous", "networks": True, "later": WEEK_LATER},
     {"builder_cache": 10, "containers": ["derived-stopped", "stopped"],
      "images": sorted(UNUSED + ["app:stopped", "base:1", "derived:1"]),
      "volumes": ["anon"], "networks": ["stoppednet", "unusednet"]}),
    ("custom-keep-label", {"builder_cache": False, "keep_label": "no.such.label"},
     {"builder_cache": 0, "containers": [], "images": sorted(UNUSED + ["app:keep"]),
      "volumes": [], "networks": []}),
    ("too-young", {"until": "1h", "containers": True, "volumes": "all", "networks": True},
     {"builder_cache": 0, "containers": [], "images": [], "volumes": [], "networks": []}),
]


@pytest.mark.parametrize("options,expected", [c[1:] for c in PLAN_CASES],
                         ids=[c[0] for c in PLAN_CASES])
def test_plan_removes_exactly_the_expected_set(captured, options, expected):
    assert _removed(captured, _plan(captured, **options)) == expected


def test_plan_never_touches_images_used_by_any_container(captured):
    plan = _plan(captured, volumes="all", networks=True)
    images = set(i["id"] for i in plan["steps"][2]["planned"])
    used = set(c["ImageID"] for c in captured["state"]["df"]["Containers"])
    assert used and not images & used


def test_plan_keeps_the_parent_of_an_image_a_stopped_container_uses(captured):
    base = captured["scenario"]["images"]["base:1"]
    assert base not in [i["id"] for i in _plan(captured)["steps"][2]["planned"]]


def test_plan_removes_children_before_their_parents(captured):
    items = [i["id"] for i in _plan(captured, containers=True, later=WEEK_LATER)["steps"][2]["planned"]]
    imgs = captured["scenario"]["images"]
    assert items.index(imgs["derived:1"]) < items.index(imgs["base:1"])


def test_plan_keeps_volumes_of_stopped_containers_and_compose_named_volumes(captured):
    vols = captured["scenario"]["volumes"]
    planned = [i["name"] for i in _plan(captured, volumes="anonymous")["steps"][3]["planned"]]
    assert planned == [vols["anon"]]
    assert vols["stopped_anon"] not in planned and "shop_data" not in planned


def test_plan_keeps_containers_that_stopped_recently_and_says_why(captured):
    plan = _plan(captured, containers_until="1h", containers=True, volumes="anonymous", images="none")
    step = plan["steps"][1]
    names = _names(captured)
    assert step["planned"] == []
    kept = dict((names[k["id"]], k) for k in step["kept"])
    assert sorted(kept) == ["derived-stopped", "stopped"]  # kept-stopped: keep label, not listed
    for entry in kept.values():
        assert entry["exit_code"] == 0
        assert re.match(r"^exited \d+ (s|min) ago \(exit 0\), younger than 1h$", entry["reason"]), entry
    assert plan["steps"][3]["kept"] == []  # nothing removed, so no volume kept for that


def test_plan_keeps_the_volume_of_a_container_it_removes(captured):
    plan = _plan(captured, containers=True, volumes="anonymous", images="none", later=WEEK_LATER)
    vols = captured["scenario"]["volumes"]
    assert [i["name"] for i in plan["steps"][3]["planned"]] == [vols["anon"]]
    assert plan["steps"][3]["kept"] == [{
        "kind": "volume", "id": vols["stopped_anon"], "name": vols["stopped_anon"],
        "reason": "data of stopped, which this run removes; a later run may remove it"}]


T0 = "2026-11-23T10:00:00Z"


@pytest.mark.parametrize("state,expected", [
    ({"Status": "exited", "StartedAt": "2026-11-23T11:00:00Z", "FinishedAt": "2026-11-23T12:00:00Z"},
     "2026-11-23T12:00:00Z"),
    ({"Status": "created", "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"},
     T0),
    ({"Status": "exited", "StartedAt": "2026-11-23T11:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"},
     "2026-11-23T11:00:00Z"),
    (None, None),
], ids=["exited", "never-started", "no-finish-time", "not-inspected"])
def test_stopped_since_is_when_it_stopped(state, expected):
    details = None if state is None else {"Created": T0, "State": state}
    got = dc.stopped_since({"Created": 1}, details)
    assert got == (epoch_seconds(expected) if expected else None)


@pytest.mark.parametrize("seconds,text", [(0, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"),
                                          (3600, "1 h"), (2 * 86400 - 1, "47 h"), (2 * 86400, "2 days")])
def test_ago(seconds, text):
    assert dc._ago(seconds) == text


def _listed(image_id, size, shared):
    return {"Id": image_id, "Size": size, "SharedSize": shared}


def test_share_among_listed_counts_listed_images_only():
    """Docker 23+ counts an image's own intermediate parents as sharing its layers
    (SharedSize == Size); 1.41's /images/json does not compute it (-1)."""
    base, app, api_ = ("sha256:" + c * 64 for c in "abc")
    images = [_listed("i-alone", 100, 100), _listed("i-a", 130, -1), _listed("i-b", 150, 7),
              _listed("i-unpaired", 40, -1), _listed("i-engine", 60, 5)]
    layers = {"i-alone": [[app, 100]], "i-a": [[base, 100], [api_, 30]],
              "i-b": [[base, 100], [app, 50]]}
    dc.share_among_listed(images, layers)
    assert [img["SharedSize"] for img in images] == [0, 100, 100, 40, 5]


def test_size_planned_volumes_walks_only_the_planned_ones(tmp_path):
    planned_dir = tmp_path / "volumes" / "v1" / "_data"
    planned_dir.mkdir(parents=True)
    (planned_dir / "blob").write_bytes(b"x" * 100000)
    plan = _plan_of(volumes=[{"id": "v1", "name": "v1", "mountpoint": str(planned_dir), "size_bytes": None},
                             {"id": "v2", "name": "v2", "mountpoint": "/nonexistent", "size_bytes": None},
                             {"id": "v3", "name": "v3", "mountpoint": None, "size_bytes": 7}])
    warnings = dc.size_planned_volumes(plan, str(tmp_path))
    items = plan["steps"][3]["planned"]
    assert items[0]["size_bytes"] >= 100000 and items[0]["size_partial"] is False
    assert items[1]["size_bytes"] is None and items[2]["size_bytes"] == 7
    assert plan["steps"][3]["estimated_bytes"] == items[0]["size_bytes"] + 7
    assert warnings == ["size of 1 planned volume(s) unknown (their data is not visible here): v2"]
    remote = _plan_of(volumes=[{"id": "v1", "name": "v1", "mountpoint": str(planned_dir),
                                "size_bytes": None}])
    assert dc.size_planned_volumes(remote, None)[0].startswith("size of 1 planned volume(s) unknown")


def test_plan_estimates_shared_layers_once(captured):
    imgs = captured["scenario"]["images"]
    df_images = captured["state"]["df"]["Images"]
    layers = captured["state"]["image_layers"]
    by_id = dict((i["Id"], i) for i in df_images)
    both = dc.estimate_image_bytes(df_images, [imgs["base:1"], imgs["derived:1"]], layers)
    child = dc.estimate_image_bytes(df_images, [imgs["derived:1"]], layers)
    assert child == by_id[imgs["derived:1"]]["Size"] - by_id[imgs["derived:1"]]["SharedSize"]
    assert both == by_id[imgs["derived:1"]]["Size"]


def test_plan_builder_cache_estimate_leaves_out_records_shared_with_images(captured):
    step = _plan(captured)["steps"][0]
    records = captured["state"]["df"]["BuildCache"]
    assert step["estimated_bytes"] == sum(r["Size"] for r in records if not r["Shared"])


BUILD_RECORDS = [
    {"ID": "old-parent", "Parent": "", "InUse": False, "Shared": False, "Size": 10,
     "LastUsedAt": "2026-01-01T00:00:00Z"},
    {"ID": "young-child", "Parent": "old-parent", "InUse": False, "Shared": False, "Size": 20,
     "LastUsedAt": "2026-01-09T23:00:00Z"},
    {"ID": "old-alone", "Parents": [], "InUse": False, "Shared": False, "Size": 30,
     "LastUsedAt": "2026-01-02T00:00:00.123456789Z"},
    {"ID": "in-use", "Parent": "", "InUse": True, "Shared": False, "Size": 40,
     "LastUsedAt": "2026-01-01T00:00:00Z"},
    {"ID": "never-used", "Parent": "", "InUse": False, "Shared": False, "Size": 50,
     "LastUsedAt": None},
]


def test_plan_builder_cache_follows_the_engine_rules():
    state = {"df": {"BuildCache": BUILD_RECORDS}}
    opts = dc.normalize_options({"until": "24h", "images": "none"})
    now = epoch_seconds("2026-01-10T00:00:00Z")
    items = dc.plan_cleanup_steps(state, opts, now=now)["steps"][0]["planned"]
    assert [i["id"] for i in items] == ["old-alone", "never-used"]


@pytest.mark.parametrize("volume,anonymous", [
    ({"Name": "a" * 64, "Labels": None}, True),
    ({"Name": "0123456789abcdef" * 4, "Labels": {"other": "x"}}, True),
    ({"Name": "data", "Labels": {"com.docker.volume.anonymous": ""}}, True),
    ({"Name": "a" * 64, "Labels": {"com.docker.compose.volume": "data"}}, False),
    ({"Name": "shop_data", "Labels": {"com.docker.compose.volume": "data"}}, False),
    ({"Name": "A" * 64, "Labels": None}, False),
    ({"Name": "a" * 63, "Labels": None}, False),
], ids=["hex64", "hex64-other-label", "engine-label", "compose-hex64", "compose-named",
        "uppercase", "hex63"])
def test_is_anonymous_volume(volume, anonymous):
    assert dc.is_anonymous_volume(volume) is anonymous


@pytest.mark.parametrize("text,seconds", [
    ("168h", 168 * 3600), ("1h30m", 5400), ("90s", 90), ("0", 0), ("0s", 0), ("1.5h", 5400),
    ("250ms", 0.25),
])
def test_parse_duration_accepts_go_durations(text, seconds):
    assert dc.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "7d", "1 h", "h", "-1h", "168", "1h-", "abc"])
def test_parse_duration_rejects_anything_else(text):
    with pytest.raises(OpsError, match="until"):
        dc.parse_duration(text)


@pytest.mark.parametrize("options,match", [
    ({"images": "all"}, "images"),
    ({"volumes": "named"}, "volumes"),
    ({"until": "1 week"}, "until"),
    ({"builder_cache": "yes"}, "builder_cache"),
    ({"target_percent": 100}, "target_percent"),
    ({"target_percent": "x"}, "target_percent"),
    ({"keep_label": " "}, "keep_label"),
    ({"prune_everything": True}, "unknown option"),
])
def test_normalize_options_rejects_bad_values(options, match):
    with pytest.raises(OpsError, match=match):
        dc.normalize_options(options)


def _usage_sequence(values, size=1000):
    """A fake ``usage`` callable returning successive percentages of a ``size`` disk."""
    it = iter(values)

    def usage():
        pct = next(it)
        used = int(size * pct / 100)
        return {"used_percent": pct, "used_bytes": used, "free_bytes": size - used, "total_bytes": size}
    return usage


class FakeApi:
    """Records removal calls; images answer like the engine (by ID: untag, then delete)."""

    def __init__(self, images=None):
        self.calls = []
        self.images = dict(images or {})  # id -> {"RepoTags": [...], "RepoDigests": [...]}
        self.users = {}  # image id -> containers using it

    def inspect_image(self, ref):
        self.calls.append(("inspect_image", ref))
        for image_id, image in self.images.items():
            if ref == image_id or ref in image.get("RepoTags", []):
                return dict(image, Id=image_id)
        raise docker.errors.NotFound("No such image: %s" % ref)

    def containers(self, all=False, filters=None):
        self.calls.append(("containers", all, filters))
        return self.users.get((filters or {}).get("ancestor"), [])  # users[None]: the whole list

    def remove_image(self, ref, force=False, noprune=False):
        self.calls.append(("remove_image", ref, force, noprune))
        image = self.images.pop(ref)
        return [{"Untagged": t} for t in image.get("RepoTags", [])] + [{"Deleted": ref}]

    def inspect_container(self, cid):
        """Every container stopped cleanly long ago, unless ``self.containers_now`` says."""
        self.calls.append(("inspect_container", cid))
        return getattr(self, "containers_now", {}).get(cid) or {
            "Created": "2020-01-01T00:00:00Z", "State": {
                "Status": "exited", "Running": False, "ExitCode": 0, "OOMKilled": False,
                "StartedAt": "2020-01-01T00:00:01Z", "FinishedAt": "2020-01-01T00:00:02Z"}}

    def remove_container(self, cid, v=False, force=False):
        self.calls.append(("remove_container", cid, v, force))

    def remove_volume(self, name, force=False):
        self.calls.append(("remove_volume", name, force))
        if name == "busy":
            raise RuntimeError("volume is in use")

    def remove_network(self, nid):
        self.calls.append(("remove_network", nid))


def _plan_of(**steps):
    out = []
    for name in dc.STEP_ORDER:
        items = steps.get(name, [])
        out.append({"name": name, "enabled": name in steps, "planned": items,
                    "estimated_bytes": sum(i["size_bytes"] or 0 for i in items)})
    return {"steps": out, "estimated_bytes": sum(s["estimated_bytes"] for s in out)}


def _image_item(image_id, tags=(), digests=(), size=5):
    return {"id": image_id, "name": ", ".join(tags) or "<none>", "tags": list(tags),
            "digests": list(digests), "depth": 0, "size_bytes": size}


def test_execute_never_forces_and_removes_images_by_id():
    api = FakeApi({"sha256:a": {"RepoTags": ["app:1"]}})
    plan = _plan_of(images=[_image_item("sha256:a", ["app:1"])],
                    containers=[{"id": "c1", "name": "c1", "size_bytes": 1}],
                    volumes=[{"id": "v", "name": "v", "size_bytes": 2},
                             {"id": "busy", "name": "busy", "size_bytes": 3}])
    result = dc.execute_plan(plan, dc.normalize_options({}), api=api)
    assert ("remove_image", "sha256:a", False, False) in api.calls
    assert not [c for c in api.calls if c[0] == "remove_image" and c[1] == "app:1"]
    assert ("remove_container", "c1", False, False) in api.calls
    assert all(call[-1] is False for call in api.calls if call[0].startswith("remove_"))
    assert result["reclaimed_bytes"] == 5 + 1 + 2
    assert result["steps"][3]["removed"] == ["v"]
    assert result["errors"] == ["volume busy: volume is in use"]
    assert result["changed"] is True


def test_execute_leaves_a_moved_tag_and_reports_it():
    """app:1 moved to a new image after the plan: the planned image goes by ID, the new
    one and its tag stay, and the move is reported."""
    api = FakeApi({"sha256:old": {"RepoTags": []}, "sha256:new": {"RepoTags": ["app:1"]}})
    plan = _plan_of(images=[_image_item("sha256:old", ["app:1"])])
    result = dc.execute_plan(plan, dc.normalize_options({}), api=api)
    assert [c[1] for c in api.calls if c[0] == "remove_image"] == ["sha256:old"]
    assert "sha256:new" in api.images
    assert result["moved_tags"] == [{"tag": "app:1", "planned_image": "sha256:old",
                                     "image": "sha256:new"}]
    assert result["steps"][2]["moved_tags"] == result["moved_tags"]
    assert result["errors"] == []


def test_execute_keeps_an_image_named_since_the_plan():
    api = FakeApi({"sha256:a": {"RepoTags": ["app:rollback"]}})
    result = dc.execute_plan(_plan_of(images=[_image_item("sha256:a")]),
                             dc.normalize_options({}), api=api)
    assert "sha256:a" in api.images and result["steps"][2]["removed"] == []
    assert result["kept"] == [{"kind": "image", "id": "sha256:a", "name": "<none>",
                               "reason": "named app:rollback since the plan"}]
    assert result["errors"] == [] and result["changed"] is False


def test_execute_forces_only_a_several_named_image_no_container_uses():
    tags = ["app:1", "app:latest"]
    api = FakeApi({"sha256:a": {"RepoTags": tags}, "sha256:b": {"RepoTags": ["b:1", "c:1"]}})
    api.users["sha256:b"] = [{"Id": "c9", "Names": ["/started-since"]}]
    plan = _plan_of(images=[_image_item("sha256:a", tags), _image_item("sha256:b", ["b:1", "c:1"])])
    result = dc.execute_plan(plan, dc.normalize_options({}), api=api)
    assert ("remove_image", "sha256:a", True, False) in api.calls
    assert "sha256:b" in api.images
    assert result["kept"][0]["reason"] == "used by container started-since since the plan"


def test_execute_removes_nothing_it_could_not_check():
    api = FakeApi({"sha256:b": {"RepoTags": ["b:1", "c:1"]}})

    def engine_gone(**_kwargs):
        raise RuntimeError("connection refused")

    api.containers = engine_gone
    result = dc.execute_plan(_plan_of(images=[_image_item("sha256:b", ["b:1", "c:1"])]),
                             dc.normalize_options({}), api=api)
    assert "sha256:b" in api.images and result["steps"][2]["removed"] == []
    assert result["errors"] == ["image b:1, c:1: connection refused"]


@pytest.mark.parametrize("tags,digests,single", [
    ([], [], True),
    (["app:1"], [], True),
    ([], ["app@sha256:aa"], True),
    (["app:1"], ["app@sha256:aa"], True),
    (["reg:5000/app:1"], ["reg:5000/app@sha256:aa"], True),
    (["app:1", "app:2"], [], False),
    (["app:1"], ["other@sha256:aa"], False),
    ([], ["app@sha256:aa", "other@sha256:bb"], False),
    ([], ["app@sha256:aa", "app@sha256:bb"], True),
], ids=["none", "one-tag", "one-digest", "tag-and-digest", "registry-port", "two-tags",
        "two-repos", "two-digest-repos", "two-digests-one-repo"])
def test_single_reference_follows_the_engine(tags, digests, single):
    assert dc.single_reference(tags, digests) is single


def test_execute_stops_after_the_step_that_reaches_the_target():
    api = FakeApi({"sha256:b": {}})
    plan = _plan_of(containers=[{"id": "c1", "name": "c1", "size_bytes": 100}],
                    images=[_image_item("sha256:b", size=300)],
                    volumes=[{"id": "v", "name": "v", "size_bytes": 200}])
    opts = dc.normalize_options({"target_percent": 70})
    result = dc.execute_plan(plan, opts, api=api, usage=_usage_sequence([90, 85, 65, 50]))
    assert [s["skipped"] for s in result["steps"]] == [
        "disabled", None, None, "target reached", "disabled"]
    assert ("remove_volume", "v", False) not in api.calls
    assert result["usage_before_percent"] == 90 and result["usage_after_percent"] == 65
    assert result["target_reached"] is True


def test_check_mode_predicts_the_stop_from_estimates_and_calls_nothing():
    plan = _plan_of(containers=[{"id": "c1", "name": "c1", "size_bytes": 100}],
                    images=[{"id": "sha256:b", "name": "<none>", "tags": [], "size_bytes": 300}],
                    volumes=[{"id": "v", "name": "v", "size_bytes": 200}])
    opts = dc.normalize_options({"target_percent": 55})
    result = dc.execute_plan(plan, opts, api=None, usage=_usage_sequence([90]), check_mode=True)
    assert [s["removed"] for s in result["steps"]] == [[], ["c1"], ["sha256:b"], [], []]
    assert result["usage_after_percent"] == 50.0
    assert result["reclaimed_bytes"] == 400 and result["changed"] is True


def test_execute_does_nothing_when_usage_is_already_below_the_target():
    plan = _plan_of(images=[{"id": "sha256:b", "name": "<none>", "tags": [], "size_bytes": 1}])
    result = dc.execute_plan(plan, dc.normalize_options({"target_percent": 80}), api=FakeApi(),
                             usage=_usage_sequence([40]))
    assert result["changed"] is False and result["steps"][2]["skipped"] == "target reached"


def test_remote_engine_ignores_target_with_a_warning():
    api = FakeApi({"sha256:b": {}})
    plan = _plan_of(images=[_image_item("sha256:b", size=1)])
    result = dc.execute_plan(plan, dc.normalize_options({"target_percent": 80}), api=api,
                             usage=None)
    assert result["usage_before_percent"] is None and result["usage_after_percent"] is None
    assert result["steps"][2]["removed"] == ["sha256:b"]
    assert "target_percent ignored" in result["warnings"][0]


@pytest.mark.parametrize("host,expected", [
    ("unix:///var/run/docker.sock", "DIR"),
    ("tcp://10.0.0.5:2376", None),
    ("ssh://user@host", None),
    ("unix:///var/run/docker.sock", None),
], ids=["local", "tcp", "ssh", "root-missing"])
def test_local_data_root_only_for_a_visible_local_engine(tmp_path, host, expected):
    root = str(tmp_path) if expected else str(tmp_path / "missing")
    assert dc.local_data_root(host, root) == (str(tmp_path) if expected else None)


def test_connect_to_a_dead_socket_says_what_to_do(tmp_path):
    with pytest.raises(OpsError, match="cannot reach the Docker daemon at unix://.*docker_host"):
        dc.connect("unix://%s/nothing.sock" % tmp_path, timeout=2)


# --- stopped containers: their own age, a floor, judged again right before removal ----------

NOW = epoch_seconds("2026-11-23T12:00:00Z")


def _stopped(minutes_ago, exit_code=0, oom=False, status="exited", started=True):
    stamp = datetime.fromtimestamp(NOW - 60 * minutes_ago, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    return {"Created": "2026-01-01T00:00:00Z", "State": {
        "Status": status, "Running": False, "ExitCode": exit_code, "OOMKilled": oom,
        "StartedAt": stamp if started else "0001-01-01T00:00:00Z",
        "FinishedAt": stamp if started else "0001-01-01T00:00:00Z"}}


@pytest.mark.parametrize("details,status,until,reason", [
    (_stopped(5, 137), "exited", "0s", "exited 5 min ago (exit 137), younger than 24h (the minimum after a crash)"),
    (_stopped(23 * 60, 1), "exited", "0s", "exited 23 h ago (exit 1), younger than 24h (the minimum after a crash)"),
    (_stopped(25 * 60, 1), "exited", "0s", None),
    (_stopped(30, 0, oom=True), "exited", "1h",
     "exited 30 min ago (exit 0, out of memory), younger than 24h (the minimum after a crash)"),
    (_stopped(30, 0, status="dead"), "dead", "0s", "died 30 min ago (exit 0), younger than 24h (the minimum after a crash)"),
    (_stopped(59), "exited", "0s", "exited 59 min ago (exit 0), younger than 1h (the minimum for a stopped container)"),
    (_stopped(61), "exited", "0s", None),
    (_stopped(61), "exited", "168h", "exited 1 h ago (exit 0), younger than 168h"),
    (_stopped(3 * 24 * 60, 137), "exited", "48h", None),
    (_stopped(30 * 60, 137), "exited", "48h", "exited 30 h ago (exit 137), younger than 48h"),
], ids=["crash-5min", "crash-23h", "crash-25h", "oom", "dead", "clean-59min", "clean-61min",
        "clean-under-until", "crash-over-until", "crash-under-until"])
def test_stopped_containers_have_a_floor_no_option_switches_off(details, status, until, reason):
    opts = dc.normalize_options({"containers_until": until})
    assert dc.stopped_container_verdict(status, details, opts, NOW) == reason


def test_a_never_started_container_is_aged_by_creation_with_the_clean_floor():
    details = _stopped(0, started=False)
    details["Created"] = datetime.fromtimestamp(NOW - 1800, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    opts = dc.normalize_options({"containers_until": "0s"})
    assert dc.stopped_container_verdict("created", details, opts, NOW) == (
        "created 30 min ago, never started, younger than 1h (the minimum for a stopped container)")
    assert dc.stopped_container_verdict("created", details, opts, NOW + 3600) is None


def _container(cid, state="exited", volumes=()):
    return {"Id": cid, "Names": ["/" + cid], "State": state, "Labels": {}, "ImageID": "sha256:i",
            "Mounts": [{"Type": "volume", "Name": name} for name in volumes]}


def test_until_does_not_reach_stopped_containers():
    """``until: 0s`` (the README's emergency sample) is for cache, images, volumes: a
    container that crashed five minutes ago stays; ``containers_until`` decides."""
    state = {"df": {"Containers": [_container("db")]}, "container_details": {"db": _stopped(5, 137)}}
    plan = dc.plan_cleanup_steps(state, dc.normalize_options({"until": "0s", "containers": True,
                                                              "images": "none"}), now=NOW)
    assert plan["steps"][1]["planned"] == []
    assert plan["steps"][1]["kept"][0]["reason"].endswith("younger than 168h")


HEX_A, HEX_B = "a" * 64, "b" * 64


def test_a_data_only_container_stays_while_a_staying_container_mounts_its_volume():
    """``docker create -v /data --name dbdata`` + ``docker run --volumes-from dbdata app``:
    the list shows dbdata's anonymous volume on both. dbdata stays while app stays; so
    does a chain (old -> dbdata); a container whose volume nobody else mounts goes."""
    containers = [_container("app", "running", [HEX_A]), _container("dbdata", "created", [HEX_A, HEX_B]),
                  _container("older", "exited", [HEX_B]), _container("loner", "exited", ["c" * 64])]
    details = dict((c["Id"], _stopped(3 * 24 * 60)) for c in containers[1:])
    state = {"df": {"Containers": containers}, "container_details": details}
    plan = dc.plan_cleanup_steps(state, dc.normalize_options({"containers": True, "images": "none",
                                                              "containers_until": "24h"}), now=NOW)
    step = plan["steps"][1]
    assert [i["id"] for i in step["planned"]] == ["loner"]
    kept = dict((k["id"], k["reason"]) for k in step["kept"])
    assert kept == {"dbdata": "holds volume aaaaaaaaaaaa…, which app mounts too (--volumes-from)",
                    "older": "holds volume bbbbbbbbbbbb…, which dbdata mounts too (--volumes-from)"}
    assert step["planned"][0]["volumes"] == ["c" * 64]


def test_execute_keeps_a_container_started_or_crashed_since_the_plan():
    api = FakeApi()
    api.containers_now = {"restarted": _stopped(0, 3), "running": {"State": {"Status": "running", "Running": True}}}
    api.containers_now["restarted"]["State"]["FinishedAt"] = datetime.now(timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    plan = _plan_of(containers=[{"id": cid, "name": cid, "size_bytes": 1, "volumes": []}
                                for cid in ("restarted", "running", "old")])
    result = dc.execute_plan(plan, dc.normalize_options({}), api=api)
    assert [c[1] for c in api.calls if c[0] == "remove_container"] == ["old"]
    kept = dict((k["id"], k) for k in result["kept"])
    assert kept["running"]["reason"] == "started or stopped since the plan: running now"
    assert re.match(r"^started or stopped since the plan: exited \d+ s ago \(exit 3\), younger than 168h$",
                    kept["restarted"]["reason"])
    assert kept["restarted"]["exit_code"] == 3 and result["errors"] == []


def test_execute_turns_a_step_that_raises_into_one_error_line_and_goes_on():
    """``/build/prune`` past the client's timeout raised out of the module as a traceback."""
    import requests

    api = FakeApi({"sha256:b": {}})

    def slow_prune(*_args, **_kwargs):
        raise requests.exceptions.ReadTimeout(
            "UnixHTTPConnectionPool(host='localhost', port=None): Read timed out. (read timeout=120)")

    api.base_url, api.api_version, api.timeout = "http+docker://localhost", "1.41", 120
    api.request = slow_prune
    plan = _plan_of(builder_cache=[{"id": "r1", "name": "r1", "shared": False, "record_bytes": 5,
                                    "size_bytes": 5}],
                    images=[_image_item("sha256:b", size=1)])
    result = dc.execute_plan(plan, dc.normalize_options({}), api=api)
    assert result["steps"][0]["errors"] == result["errors"][:1] == [
        "builder_cache: the step failed: UnixHTTPConnectionPool(host='localhost', port=None): "
        "Read timed out. (read timeout=120)"]
    assert result["steps"][2]["removed"] == ["sha256:b"]


def test_execute_reports_a_container_that_took_a_force_removed_image():
    """Between the check and a forced removal (several names need force) a container was
    created from the image: the engine let the removal through; say so."""
    tags = ["app:1", "app:latest"]
    api = FakeApi({"sha256:a": {"RepoTags": tags}})
    real_remove = api.remove_image

    def remove_while_deploying(ref, force=False, noprune=False):
        api.users[None] = [{"Id": "c7", "Names": ["/late"], "ImageID": ref}]
        return real_remove(ref, force=force, noprune=noprune)

    api.remove_image = remove_while_deploying
    result = dc.execute_plan(_plan_of(images=[_image_item("sha256:a", tags)]),
                             dc.normalize_options({}), api=api)
    assert result["steps"][2]["removed"] == ["sha256:a"]
    assert result["errors"] == ["image app:1, app:latest: removed (several names need force), but "
                                "container late, created since the check, uses it: it cannot be "
                                "recreated from that image"]


@pytest.mark.parametrize("offset,kept", [(-7200, True), (3, False), (0, False)],
                         ids=["engine-2h-behind", "within-tolerance", "same"])
def test_ages_follow_the_engine_clock_when_it_differs(offset, kept):
    """The container stopped 90 min ago by this host's clock; an engine whose clock is 2 h
    behind says 30 min ago (by its own clock, which wrote FinishedAt: 30 min)."""
    host_now = time.time()
    stopped = datetime.fromtimestamp(host_now - 5400, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    details = {"Created": stopped, "State": {"Status": "exited", "ExitCode": 0, "OOMKilled": False,
                                             "StartedAt": stopped, "FinishedAt": stopped}}
    state = {"df": {"Containers": [_container("job")]}, "container_details": {"job": details},
             "clock_offset": offset}
    plan = dc.plan_cleanup_steps(state, dc.normalize_options({"containers": True, "images": "none",
                                                              "containers_until": "0s"}))
    assert bool(plan["steps"][1]["kept"]) is kept
    assert plan["clock_offset"] == (offset if kept else 0)
    if kept:
        assert dc._clock_warning(plan["clock_offset"]) == [
            "the engine's clock is 2 h behind this host's: ages are measured by the engine's clock"]


# --- the volumes of removed containers, remembered across runs ---------------------------------

def _volume(name):
    return {"Name": name, "Labels": None, "CreatedAt": "2026-01-01T00:00:00Z",
            "Mountpoint": "/nonexistent", "UsageData": {"Size": 1}}


def test_volumes_of_a_removed_container_stay_for_containers_until_after_the_removal(tmp_path):
    path = dc.removed_volumes_path(str(tmp_path), "OFJY:3BUQ:OJ46")
    assert path == str(tmp_path / "docker-cleanup" / "removed-volumes-OFJY-3BUQ-OJ46.json")
    opts = dc.normalize_options({"containers": True, "volumes": "anonymous", "images": "none",
                                 "until": "0s", "containers_until": "24h"})
    state = {"df": {"Containers": [_container("old-job", volumes=[HEX_A])], "Volumes": [_volume(HEX_A)]},
             "container_details": {"old-job": _stopped(3 * 24 * 60)}, "removed_volumes": {}}
    plan = dc.plan_cleanup_steps(state, opts, now=NOW)
    result = {"steps": [{"name": "containers", "removed": ["old-job"]}]}
    assert dc.remember_removed_volumes(path, {}, plan, result, opts, NOW) == []
    record = dc.load_removed_volumes(path)
    assert record == {HEX_A: {"container": "old-job", "removed_at": NOW}}
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"

    later = {"df": {"Containers": [], "Volumes": [_volume(HEX_A)]}, "removed_volumes": record}
    step = dc.plan_cleanup_steps(later, opts, now=NOW + 600)["steps"][3]
    assert step["planned"] == []
    assert step["kept"] == [{"kind": "volume", "id": HEX_A, "name": HEX_A, "reason":
                             "data of old-job, which a cleanup removed 10 min ago; kept for 24h after that"}]
    gone = dc.plan_cleanup_steps(later, opts, now=NOW + 86401)["steps"][3]
    assert [i["name"] for i in gone["planned"]] == [HEX_A] and gone["kept"] == []
    # an expired record is dropped at the next write
    empty = {"steps": [{"name": "containers", "planned": []}]}
    assert dc.remember_removed_volumes(path, record, empty, {"steps": [{"name": "containers", "removed": []}]},
                                       opts, NOW + 86401) == []
    assert dc.load_removed_volumes(path) == {}


def test_a_record_that_cannot_be_written_is_a_warning_not_a_failure(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    path = dc.removed_volumes_path(str(tmp_path / "file"), "id")
    opts = dc.normalize_options({"containers": True})
    plan = {"steps": [{"name": "containers", "planned": [{"id": "c", "name": "old-job", "volumes": [HEX_A]}]}]}
    result = {"steps": [{"name": "containers", "removed": ["c"]}]}
    warnings = dc.remember_removed_volumes(path, {}, plan, result, opts, NOW)
    assert len(warnings) == 1 and warnings[0].startswith("could not record in %s" % path)
    assert warnings[0].endswith("they are kept in this run only")


@pytest.mark.parametrize("content", ["{torn", "[]", '{"volumes": []}', '{"volumes": {"v": 3}}'])
def test_a_torn_or_odd_record_reads_as_empty(tmp_path, content):
    path = tmp_path / "r.json"
    path.write_text(content)
    assert dc.load_removed_volumes(str(path)) == {}


@pytest.mark.parametrize("options,message", [
    ({"containers_until": "7d"}, "containers_until: '7d' is not a duration; use a Go duration, numbers with a "
                                 "unit h, m, s, ms, us or ns (168h, 24h, 1h30m, 90m, 0s); no days in Go: 7d is 168h"),
    ({"until": "2562048h"}, "until: '2562048h' is longer than Docker accepts"),
    ({"state_dir": "relative/dir"}, "state_dir: 'relative/dir' is not an absolute path"),
])
def test_normalize_options_names_the_option_and_the_rule(options, message):
    with pytest.raises(OpsError) as info:
        dc.normalize_options(options)
    assert info.value.message.startswith(message)


def test_a_connection_that_cannot_be_made_loses_no_other_images_outcome():
    """Parallel removals: one worker's client fails; what the others removed is still reported."""
    import threading

    api = FakeApi(dict(("sha256:%d" % n, {"RepoTags": ["app:%d" % n]}) for n in range(8)))
    lock, made = threading.Lock(), []

    def clone():
        with lock:
            made.append(1)
            if len(made) == 2:
                raise dc.OpsError("cannot reach the Docker daemon at unix:///x (refused)")
        return api

    removal = api.remove_image

    def slow_removal(*args, **kwargs):  # every worker thread gets items, and its own client
        time.sleep(0.05)
        return removal(*args, **kwargs)

    api.remove_image, api.clone, api.close = slow_removal, clone, lambda: None
    plan = _plan_of(images=[_image_item("sha256:%d" % n, ["app:%d" % n]) for n in range(8)])
    result = dc.execute_plan(plan, dc.normalize_options({}), api=api)
    gone = [c[1] for c in api.calls if c[0] == "remove_image"]
    assert gone and sorted(result["steps"][2]["removed"]) == sorted(gone)
    assert result["changed"] is True
    assert len(made) > 2 and len(result["errors"]) == 8 - len(gone) >= 1
    assert all(e.startswith("image app:") and "cannot reach the Docker daemon" in e for e in result["errors"])


def test_a_data_root_that_cannot_be_measured_mid_run_ends_nothing():
    """The disk reading fails after the containers step: the run goes on and says so."""
    api = FakeApi({"sha256:a": {"RepoTags": ["app:1"]}})
    readings = iter([{"used_percent": 90, "used_bytes": 900, "free_bytes": 100, "total_bytes": 1000}])

    def usage():
        try:
            return next(readings)
        except StopIteration:
            raise dc.OpsError("path /var/lib/docker does not exist; give a path on the filesystem to check")

    plan = _plan_of(containers=[{"id": "c1", "name": "c1", "size_bytes": 1, "volumes": []}],
                    images=[_image_item("sha256:a", ["app:1"])])
    result = dc.execute_plan(plan, dc.normalize_options({"target_percent": 50}), api=api, usage=usage)
    assert [c[1] for c in api.calls if c[0].startswith("remove_")] == ["c1", "sha256:a"]
    assert result["warnings"] == ["the data root's usage could not be measured (path /var/lib/docker does not "
                                  "exist; give a path on the filesystem to check); steps run on without the target"]


def test_a_stop_time_that_cannot_be_read_keeps_the_container():
    """FinishedAt present but impossible: the stop time is unknown (the container stays),
    never the older StartedAt."""
    details = {"Created": "2020-01-01T00:00:00Z", "State": {
        "Status": "exited", "StartedAt": "2020-01-01T00:00:01Z", "FinishedAt": "2026-02-30T00:00:00Z"}}
    assert dc.stopped_since({"Created": 1}, details) is None


def test_parent_chains_count_ancestors_once_and_end_at_a_cycle():
    by_id = dict(("c%d" % n, {"Id": "c%d" % n, "ParentId": "c%d" % (n - 1) if n else ""}) for n in range(2000))
    by_id["loop-a"], by_id["loop-b"] = {"Id": "loop-a", "ParentId": "loop-b"}, {"Id": "loop-b", "ParentId": "loop-a"}
    depths = dc._depths(by_id, list(by_id))
    assert [depths["c%d" % n] for n in (0, 1, 1999)] == [0, 1, 1999]
    assert sorted([depths["loop-a"], depths["loop-b"]]) == [0, 1]
    assert dc._held_parents(by_id, {"c1999"}, set()) == set("c%d" % n for n in range(1998)) | {"loop-a", "loop-b"}


def test_a_volume_without_a_name_is_never_planned():
    opts = dc.normalize_options({"volumes": "all", "until": "0s"})
    step = dc._plan_volumes([{"Labels": None, "CreatedAt": "2020-01-01T00:00:00Z"},
                             {"Name": "old", "Labels": None, "CreatedAt": "2020-01-01T00:00:00Z"}],
                            [], set(), opts, None, {}, 1.8e9)
    assert [item["name"] for item in step["planned"]] == ["old"]
