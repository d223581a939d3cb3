# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plan_cleanup_steps against an independent model, over generated engine states (Hypothesis).

The model below is written from the safety rules (README "Docker cleanup: the safety
rules"), not from the planner: for every generated state and option set it says what
must go and what must stay, and the plan has to match it exactly. States: running and
stopped containers (created, exited, dead, ...) with Created/StartedAt/FinishedAt around
the ``until`` cutoff, images with tags, digests, parent chains (untagged parents with
children are intermediates, not listed) and keep labels, named and anonymous volumes
(engine label, 64-hex names, compose names) mounted by any container, build cache
records with parents, and networks. Stopped containers have their own age
(``containers_until``) with a floor no option switches off: an hour after a clean stop,
a day after a crash (exit code not 0, killed for memory, dead); one holding an anonymous
volume a staying container mounts too (``--volumes-from``) stays; volumes of containers
an earlier run removed (the state file) stay for ``containers_until``, at least an hour;
images a caller holds (``held_images``: service_down's recreate) stay with their parents.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone

from hypothesis import example, given, settings
from hypothesis import strategies as st

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_cleanup as dc  # noqa: E402

NOW = 2000000000
KEEP = "runbook.ops.keep"
UNTILS = {"0s": 0, "30m": 1800, "1h": 3600, "24h": 86400, "168h": 168 * 3600}
HOUR, DAY = 3600, 86400
ZERO_TIME = "0001-01-01T00:00:00Z"
HEX = "0123456789abcdef"


def rfc3339(stamp):
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- generated states ------------------------------------------------------------------------

# ages in seconds before NOW: on both sides of every cutoff, and exactly at one
AGES = st.sampled_from([5, 60, 1799, 1801, 3599, 3600, 3601, 86399, 86400, 86401,
                        168 * 3600 - 1, 168 * 3600 + 1, 30 * 86400])
labels = st.sampled_from([None, {}, {"other": "x"}, {KEEP: ""}, {KEEP: "true"}, None, {}])


@st.composite
def images(draw):
    out = []
    for i in range(draw(st.integers(0, 8))):
        # chains: mostly on the image just before (a build's intermediates), often untagged
        link = draw(st.sampled_from(["none", "previous", "previous", "any"])) if i else "none"
        parent = {"none": "", "previous": "sha256:img%d" % (i - 1),
                  "any": "sha256:img%d" % draw(st.integers(0, i - 1)) if i else ""}[link]
        tags = draw(st.one_of(st.just([]), st.lists(st.sampled_from(
            ["app:1", "app:2", "db:16", "reg:5000/app:1"]), unique=True, max_size=2)))
        tags = [t for t in tags if not any(t in (o["RepoTags"] or []) for o in out)]  # one image per tag
        digests = draw(st.sampled_from([[], [], ["app@sha256:%064x" % i]]))
        size = draw(st.integers(1, 10 ** 6))
        out.append({"Id": "sha256:img%d" % i, "ParentId": parent, "RepoTags": tags or None,
                    "RepoDigests": digests, "Labels": draw(labels),
                    "Created": NOW - draw(AGES), "Size": size,
                    "SharedSize": draw(st.integers(0, size))})
    return out


@st.composite
def containers(draw, image_ids, volume_names, network_names):
    out, details = [], {}
    for i in range(draw(st.integers(0, 5))):
        state = draw(st.sampled_from(["running", "exited", "exited", "created", "dead",
                                      "paused", "restarting"]))
        created = NOW - draw(AGES)
        ran = state != "created"
        started = max(created, NOW - draw(AGES)) if ran else None
        finished = max(started, NOW - draw(AGES)) if ran and state not in ("running", "paused") else None
        cid = "c%d" % i
        mounts = [{"Type": "volume", "Name": name}
                  for name in draw(st.lists(st.sampled_from(volume_names), unique=True, max_size=2))
                  ] if volume_names else []
        nets = draw(st.lists(st.sampled_from(network_names), unique=True, max_size=2)) if network_names else []
        out.append({"Id": cid, "Names": ["/ctr-%d" % i], "State": state, "Labels": draw(labels),
                    "ImageID": draw(st.sampled_from(image_ids)) if image_ids else "",
                    "Created": created, "Mounts": mounts,
                    "NetworkSettings": {"Networks": dict((n, {"NetworkID": "net-" + n}) for n in nets)}})
        exit_code = draw(st.sampled_from([0, 0, 1, 137])) if state in ("exited", "dead") else 0
        details[cid] = {"Created": rfc3339(created), "State": {
            "Status": state, "ExitCode": exit_code,
            "OOMKilled": state in ("exited", "dead") and draw(st.booleans()),
            "StartedAt": rfc3339(started) if started else ZERO_TIME,
            "FinishedAt": rfc3339(finished) if finished else ZERO_TIME}}
    return out, details


@st.composite
def volumes(draw):
    out = []
    for i in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["hex", "hex-compose", "named", "labelled"]))
        name = ("%x" % i) * 64 if kind.startswith("hex") else "vol%d" % i
        if kind == "hex":
            name = (HEX[i % 16] * 63) + HEX[(i + 1) % 16]
        vol_labels = dict(draw(labels) or {})
        if kind == "hex-compose":
            vol_labels["com.docker.compose.volume"] = "data"
        if kind == "labelled":
            vol_labels["com.docker.volume.anonymous"] = ""
        out.append({"Name": name, "Labels": vol_labels or None, "CreatedAt": rfc3339(NOW - draw(AGES)),
                    "Mountpoint": "/nonexistent/%s/_data" % name,
                    "UsageData": {"Size": draw(st.integers(-1, 10 ** 6))}})
    return out


@st.composite
def build_cache(draw):
    out = []
    for i in range(draw(st.integers(0, 5))):
        parent = draw(st.sampled_from([""] + ["rec%d" % j for j in range(i)]))
        out.append({"ID": "rec%d" % i, "Parent": parent, "InUse": draw(st.booleans()),
                    "Shared": draw(st.booleans()), "Size": draw(st.integers(0, 10 ** 6)),
                    "LastUsedAt": draw(st.sampled_from([None, rfc3339(NOW - 5),
                                                        rfc3339(NOW - 30 * 86400)]))})
    return out


@st.composite
def engine_states(draw):
    all_images = draw(images())
    parents = set(img["ParentId"] for img in all_images if img["ParentId"])
    listed = [img for img in all_images
              if img["RepoTags"] or img["RepoDigests"] or img["Id"] not in parents]
    vols = draw(volumes())
    net_names = ["n%d" % i for i in range(draw(st.integers(0, 3)))]
    ctrs, details = draw(containers([img["Id"] for img in all_images],
                                    [v["Name"] for v in vols], net_names))
    networks = [{"Id": "net-" + n, "Name": n, "Labels": draw(labels),
                 "Created": rfc3339(NOW - draw(AGES)), "Scope": "local"} for n in net_names]
    networks.append({"Id": "net-bridge", "Name": "bridge", "Created": rfc3339(NOW - 30 * 86400)})
    removed = dict((v["Name"], {"container": "gone", "removed_at": NOW - draw(AGES)})
                   for v in vols if draw(st.booleans()))
    # --volumes-from as users write it: a name (with a mode), an ID prefix, the full ID
    refs = dict((c["Id"], draw(st.lists(st.sampled_from(
        ["ctr-%d" % i for i in range(len(ctrs))] + ["ctr-0:ro", "/ctr-1", "c2", "other"]),
        max_size=2))) for c in ctrs)
    # images a caller is about to create containers from (service_down's held_images)
    ids = [img["Id"] for img in all_images]
    held = draw(st.lists(st.sampled_from(ids), max_size=2)) if ids else []
    return {"df": {"Images": listed, "Containers": ctrs, "Volumes": vols,
                   "BuildCache": draw(build_cache())},
            "images_all": all_images, "image_layers": {}, "container_details": details,
            "networks": networks, "removed_volumes": removed, "volumes_from": refs,
            "held_images": held}


option_sets = st.fixed_dictionaries({
    "builder_cache": st.booleans(), "images": st.sampled_from(["none", "dangling", "unused"]),
    "containers": st.booleans(), "volumes": st.sampled_from(["none", "anonymous", "all"]),
    "networks": st.booleans(), "until": st.sampled_from(sorted(UNTILS)),
    "containers_until": st.sampled_from(sorted(UNTILS)),
})


# --- the model ---------------------------------------------------------------------------------

def old(stamp, until):
    """At or before the cutoff ``until`` ago (0: everything is), as the engine's ``until``
    filters read it: they keep only what is *after* the cutoff (Go's ``After``); an
    unknown time is never old."""
    return until == 0 or (stamp is not None and stamp <= NOW - until)


def stamp_of(text):
    if not text or text.startswith("0001-"):
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def when_stopped(details):
    """The spec: FinishedAt for a container that ran, Created for one that never did."""
    state = details["State"]
    if stamp_of(state["StartedAt"]) is None:
        return stamp_of(details["Created"])
    return stamp_of(state["FinishedAt"]) or stamp_of(state["StartedAt"])


def may_go_after(details):
    """How long ago a stopped container must have stopped to go, before the option:
    a day after a crash, an hour otherwise."""
    state = details["State"]
    bad = state["Status"] == "dead" or state["OOMKilled"] or state["ExitCode"] != 0
    return DAY if bad else HOUR


def anonymous_mounts(ctr):
    return set(m["Name"] for m in ctr["Mounts"]
               if len(m["Name"]) == 64 and all(ch in HEX for ch in m["Name"]))


def named_by_volumes_from(ctr, state):
    """Another container's --volumes-from names ``ctr`` (by name, ``/name``, ID)."""
    me = ctr["Names"][0].lstrip("/")
    return any(ref.split(":")[0].lstrip("/") == me or ctr["Id"].startswith(ref.split(":")[0])
               for cid, refs in state["volumes_from"].items() if cid != ctr["Id"] for ref in refs)


def kept_label(thing):
    return KEEP in (thing.get("Labels") or {})


def model(state, options):
    """``{step: set of ids/names that go}`` and ``{kind: set kept by a rule}``."""
    until = UNTILS[options["until"]]
    df = state["df"]
    go = dict((name, set()) for name in dc.STEP_ORDER)
    kept = {"container": set(), "volume": set()}

    if options["builder_cache"]:
        records = df["BuildCache"]
        stays = set(r["ID"] for r in records
                    if r["InUse"] or (r["LastUsedAt"] and not old(stamp_of(r["LastUsedAt"]), until)))
        grown = True
        while grown:  # a record a staying record is built on stays
            parents = set(r["Parent"] for r in records if r["ID"] in stays and r["Parent"])
            grown = not parents <= stays
            stays |= parents
        go["builder_cache"] = set(r["ID"] for r in records) - stays

    for ctr in df["Containers"] if options["containers"] else ():
        if ctr["State"] not in ("created", "exited", "dead") or kept_label(ctr):
            continue
        details = state["container_details"][ctr["Id"]]
        need = max(UNTILS[options["containers_until"]], may_go_after(details))
        if when_stopped(details) < NOW - need and not named_by_volumes_from(ctr, state):
            go["containers"].add(ctr["Id"])
        else:
            kept["container"].add(ctr["Id"])
    settled = False
    while not settled:  # a data-only container stays while a staying one mounts its volume
        settled = True
        for ctr in df["Containers"]:
            if ctr["Id"] in go["containers"] and any(
                    anonymous_mounts(ctr) & anonymous_mounts(other) for other in df["Containers"]
                    if other["Id"] not in go["containers"]):
                go["containers"].discard(ctr["Id"])
                kept["container"].add(ctr["Id"])
                settled = False
    remaining = [c for c in df["Containers"] if c["Id"] not in go["containers"]]

    if options["images"] != "none":
        used = set(c["ImageID"] for c in remaining) | set(state.get("held_images") or ())
        listed = set(img["Id"] for img in df["Images"])
        parent_of = dict((img["Id"], img["ParentId"]) for img in state["images_all"])
        going = set(img["Id"] for img in df["Images"]
                    # /images/json's Created is whole seconds: the image may be a second younger
                    if img["Id"] not in used and not kept_label(img) and old(img["Created"] + 1, until)
                    and (options["images"] == "unused" or not (img["RepoTags"] or img["RepoDigests"])))
        while True:  # an image something that stays is built on stays
            staying = (set(parent_of) | used) - going
            ancestors = set()
            for img_id in staying:
                parent = parent_of.get(img_id)
                while parent:
                    ancestors.add(parent)
                    parent = parent_of.get(parent)
            if not ancestors & going:
                break
            going -= ancestors
        go["images"] = going & listed

    if options["volumes"] != "none":
        for vol in df["Volumes"]:
            labels_ = vol["Labels"] or {}
            anonymous = "com.docker.volume.anonymous" in labels_ or (
                len(vol["Name"]) == 64 and all(ch in HEX for ch in vol["Name"])
                and "com.docker.compose.volume" not in labels_)
            if kept_label(vol) or not old(stamp_of(vol["CreatedAt"]), until):
                continue
            if options["volumes"] == "anonymous" and not anonymous:
                continue
            users = [c for c in df["Containers"] if vol["Name"] in [m["Name"] for m in c["Mounts"]]]
            removed_at = (state["removed_volumes"].get(vol["Name"]) or {}).get("removed_at")
            grace = max(UNTILS[options["containers_until"]], HOUR)
            if users and all(c["Id"] in go["containers"] for c in users):
                kept["volume"].add(vol["Name"])
            elif not users and removed_at is not None and removed_at > NOW - grace:
                kept["volume"].add(vol["Name"])
            elif not users:
                go["volumes"].add(vol["Name"])

    if options["networks"]:
        attached = set(n for c in remaining for n in c["NetworkSettings"]["Networks"])
        go["networks"] = set(n["Name"] for n in state["networks"]
                             if n["Name"] != "bridge" and n["Name"] not in attached
                             and not kept_label(n) and old(stamp_of(n["Created"]), until))
    return go, kept


def planned(plan):
    out = {}
    for step in plan["steps"]:
        key = "name" if step["name"] in ("volumes", "networks") else "id"
        out[step["name"]] = set(item[key] for item in step["planned"])
    return out


def _image(n, parent="", tags=None, keep=False):
    return {"Id": "sha256:img%d" % n, "ParentId": parent and "sha256:img%d" % parent,
            "RepoTags": tags, "RepoDigests": [], "Labels": {KEEP: ""} if keep else None,
            "Created": NOW - 30 * 86400, "Size": 10, "SharedSize": 0}


_CHAIN = [_image(0, tags=["base:1"]), _image(1, 0), _image(2, 1, tags=["app:1"], keep=True)]
# a tagged base whose only child is an untagged intermediate of a kept image
INTERMEDIATE_PARENT = {"df": {"Images": [_CHAIN[0], _CHAIN[2]], "Containers": [], "Volumes": [],
                              "BuildCache": []},
                       "images_all": _CHAIN, "image_layers": {}, "container_details": {},
                       "networks": [], "removed_volumes": {}}
EVERYTHING = {"builder_cache": True, "images": "unused", "containers": True, "volumes": "all",
              "networks": True, "until": "0s", "containers_until": "0s"}


@settings(max_examples=400)
@given(engine_states(), option_sets)
@example(INTERMEDIATE_PARENT, EVERYTHING)
def test_plan_matches_the_model(state, options):
    opts = dc.normalize_options(options)
    plan = dc.plan_cleanup_steps(state, opts, now=NOW)
    go, kept = model(state, options)
    assert planned(plan) == go
    got_kept = {"container": set(), "volume": set()}
    for step in plan["steps"]:
        for entry in step["kept"]:
            got_kept[entry["kind"]].add(entry["id"])
    assert got_kept == kept


@settings(max_examples=200)
@given(engine_states(), option_sets)
def test_plan_never_touches_what_is_in_use_kept_or_named(state, options):
    """The rules stated on their own, whatever the model says."""
    plan = planned(dc.plan_cleanup_steps(state, dc.normalize_options(options), now=NOW))
    df = state["df"]
    by_id = dict((img["Id"], img) for img in state["images_all"])
    for ctr in df["Containers"]:
        if ctr["Id"] not in plan["containers"]:
            image = ctr["ImageID"]
            while image:  # used by any staying container, or its parent chain
                assert image not in plan["images"]
                image = by_id[image]["ParentId"]
        for mount in ctr["Mounts"]:  # referenced by any container, even one removed now
            assert mount["Name"] not in plan["volumes"]
        if ctr["State"] in ("running", "paused", "restarting") or kept_label(ctr):
            assert ctr["Id"] not in plan["containers"]
        if named_by_volumes_from(ctr, state):  # a data container another one takes volumes from
            assert ctr["Id"] not in plan["containers"]
        if ctr["Id"] in plan["containers"]:  # stopped over an hour ago, over a day after a crash
            details = state["container_details"][ctr["Id"]]
            assert when_stopped(details) < NOW - HOUR
            if details["State"]["ExitCode"] or details["State"]["OOMKilled"] or ctr["State"] == "dead":
                assert when_stopped(details) < NOW - DAY
    for image in state.get("held_images") or ():  # held by the caller, and its parent chain
        while image:
            assert image not in plan["images"]
            image = by_id[image]["ParentId"]
    for kind, things, key in (("images", df["Images"], "Id"), ("volumes", df["Volumes"], "Name")):
        for thing in things:
            if kept_label(thing):
                assert thing[key] not in plan[kind]
    if options["volumes"] != "all":
        named = set(v["Name"] for v in df["Volumes"] if not dc.is_anonymous_volume(v))
        assert not named & plan["volumes"]
