# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_usage.py: the docker system df breakdown from captured real ``df()`` answers.

Fixtures (tests/unit/fixtures/docker_usage/): ``df-main-20.10.json``, the main engine's
``docker.from_env().df()`` with the ``docker system df`` CLI's answer taken at the same
time; ``df-isolated-20.10.json``, an isolated engine with BuildKit cache, named and
anonymous volumes, stopped and running containers.
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_usage  # noqa: E402

FIXTURES = os.path.join(_REPO, "tests", "unit", "fixtures", "docker_usage")


def _fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return json.load(handle)


def _cli_bytes(text):
    """``225.3MB`` (the CLI's decimal units) -> bytes; the ``(99%)`` suffix is dropped."""
    number, unit = re.match(r"^([\d.]+)\s*([kMGT]?B)", text).groups()
    return float(number) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]


@pytest.mark.parametrize("name, expected", [
    ("df-isolated-20.10.json", {
        "images": {"bytes": 24469232, "reclaimable_bytes": 20033232, "count": 12, "active": 3},
        "containers": {"bytes": 0, "reclaimable_bytes": 0, "count": 4, "active": 1},
        "volumes": {"bytes": 716802, "reclaimable_bytes": 716800, "count": 5, "active": 1},
        "build_cache": {"bytes": 4507890, "reclaimable_bytes": 4507890, "count": 6, "active": 0}}),
    ("df-main-20.10.json", {
        "images": {"bytes": 225312246, "reclaimable_bytes": 223318515, "count": 2, "active": 2},
        "containers": {"bytes": 406773382, "reclaimable_bytes": 0, "count": 7, "active": 7},
        "volumes": {"bytes": 0, "reclaimable_bytes": 0, "count": 0, "active": 0},
        "build_cache": {"bytes": 0, "reclaimable_bytes": 0, "count": 0, "active": 0}}),
], ids=["isolated-cache-volumes", "main-no-volumes-no-cache"])
def test_summarize_df_sums_each_kind_like_the_cli(name, expected):
    assert docker_usage.summarize_df(_fixture(name)["df"]) == expected


def test_summarize_df_agrees_with_docker_system_df_captured_alongside():
    capture = _fixture("df-main-20.10.json")
    summary = docker_usage.summarize_df(capture["df"])
    kinds = {"Images": "images", "Containers": "containers", "Local Volumes": "volumes",
             "Build Cache": "build_cache"}
    for row in capture["cli"]:
        part = summary[kinds[row["Type"]]]
        assert int(row["TotalCount"]) == part["count"]
        assert int(row["Active"]) == part["active"]
        if row["Type"] != "Containers":  # writable layers grew between the two calls
            assert _cli_bytes(row["Size"]) == pytest.approx(part["bytes"], rel=5e-4, abs=1)
            assert _cli_bytes(row["Reclaimable"]) == pytest.approx(part["reclaimable_bytes"],
                                                                   rel=5e-4, abs=1)


def test_summarize_df_tolerates_an_empty_answer():
    summary = docker_usage.summarize_df({"BuildCache": None, "Volumes": None})
    assert all(part == {"bytes": 0, "reclaimable_bytes": 0, "count": 0, "active": 0}
               for part in summary.values())


def _container_dir(root, container_id, logs):
    directory = root / "containers" / container_id
    directory.mkdir(parents=True)
    (directory / "config.v2.json").write_bytes(b"{}" * 5000)  # not a log
    for suffix, size in logs.items():
        (directory / ("%s-json.log%s" % (container_id, suffix))).write_bytes(b"x" * size)


def test_container_logs_are_summed_per_container_with_rotated_files(tmp_path):
    _container_dir(tmp_path, "a" * 64, {"": 3000, ".1": 7000})
    _container_dir(tmp_path, "b" * 64, {"": 500})
    _container_dir(tmp_path, "c" * 64, {})
    logs = docker_usage.container_log_usage(
        str(tmp_path), [{"Id": "a" * 64, "Names": ["/eatfit24-backend-1"]}], top=2)
    assert logs == {"bytes": 10500, "files": 3,
                    "largest": [{"container": "eatfit24-backend-1", "bytes": 10000},
                                {"container": "b" * 12, "bytes": 500}]}


def test_container_logs_of_a_missing_data_root_are_unknown(tmp_path):
    assert docker_usage.container_log_usage(str(tmp_path / "nope")) is None


def test_format_docker_usage_reads_like_the_runbook_section():
    usage = docker_usage.summarize_df(_fixture("df-isolated-20.10.json")["df"])
    usage["logs"] = {"bytes": 45 << 20, "files": 12,
                     "largest": [{"container": "backend", "bytes": 40 << 20}]}
    assert docker_usage.format_docker_usage(usage) == "\n".join([
        "Docker (docker system df):",
        "images 24M (12 images, 3 in use, reclaimable 20M)",
        "build cache 4.3M (6 records, 0 in use, reclaimable 4.3M)",
        "volumes 701K (5 volumes, 1 in use, reclaimable 700K)",
        "containers 0 (4 containers, 1 running, reclaimable 0)",
        "container logs 45M in 12 files (largest: backend 40M)"])


def test_format_docker_usage_without_docker_is_empty():
    assert docker_usage.format_docker_usage(None) == ""


class _Client:
    def __init__(self, df, root):
        self._df, self._root, self.closed = df, root, False

    def df(self):
        return self._df

    def info(self):
        return {"DockerRootDir": self._root}

    def close(self):
        self.closed = True


def test_docker_usage_adds_the_logs_of_the_data_root(tmp_path):
    df = _fixture("df-isolated-20.10.json")["df"]
    running = [c for c in df["Containers"] if c["State"] == "running"][0]
    _container_dir(tmp_path, running["Id"], {"": 2048})
    client = _Client(df, str(tmp_path))
    usage = docker_usage.docker_usage(client_factory=lambda: client)
    assert usage["data_root"] == str(tmp_path) and client.closed
    assert usage["logs"]["largest"] == [{"container": "running", "bytes": 2048}]
    assert usage["images"]["count"] == 12


def test_an_unreachable_daemon_means_no_section():
    def unreachable():
        raise ConnectionError("Error while fetching server API version")
    assert docker_usage.docker_usage(client_factory=unreachable) is None


def test_on_mount_compares_the_filesystem_of_the_data_root(tmp_path):
    assert docker_usage.on_mount(str(tmp_path), str(tmp_path))
    assert not docker_usage.on_mount("", "/")
    assert not docker_usage.on_mount(str(tmp_path / "missing"), "/")
