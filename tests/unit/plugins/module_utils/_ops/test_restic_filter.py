# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of _ops/restic_filter.py: Go's filepath.Match, restic's pattern rules, and the
verdict of the real restic on which paths a backup with ``--exclude`` leaves out."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
if os.path.join(_REPO, ".collections") not in sys.path:
    sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import restic_filter  # noqa: E402
from restic_keys import cheapen_keys  # noqa: E402

# The restic to compare with: Debian 12's by default; RUNBOOK_OPS_TEST_RESTIC=/path/to/restic
# runs the same tests against another version (e.g. Debian 13's 0.18).
RESTIC = os.environ.get("RUNBOOK_OPS_TEST_RESTIC", "restic")
needs_restic = pytest.mark.skipif(shutil.which(RESTIC) is None, reason="restic not installed")
BAD = "bad"


@pytest.mark.parametrize("pattern, name, expected", [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a?b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("*x", "xxx", True),
    ("[]a]", "]", BAD),
    ("[-]", "-", BAD),
    ("[x-]", "x", BAD),
    ("\\", "a", BAD),
    ("[a-b-c]", "a", BAD),
    ("[", "a", BAD),
    ("[^bc", "a", BAD),
    ("a[", "x", BAD),
    ("a/b[", "x", BAD),
])
def test_go_match_agrees_with_go_filepath_match(pattern, name, expected):
    if expected == BAD:
        with pytest.raises(restic_filter.BadPattern):
            restic_filter.go_match(pattern, name)
    else:
        assert restic_filter.go_match(pattern, name) is expected


@given(part=st.text(alphabet="ab*?[]^-\\z", max_size=8), name=st.text(alphabet="ab-]^\\z", max_size=6))
def test_compiled_parts_match_exactly_like_go_match(part, name):
    """Matching uses each glob compiled to a regular expression; Go's algorithm (go_match,
    the port) is the reference, malformed parts included."""
    compiled = restic_filter._compile_part(part)  # pylint: disable=protected-access
    try:
        expected = restic_filter.go_match(part, name)
    except restic_filter.BadPattern:
        assert isinstance(compiled, restic_filter._Malformed)  # pylint: disable=protected-access
        return
    assert restic_filter._part_matches(compiled, name) is expected  # pylint: disable=protected-access


@pytest.mark.parametrize("part, name, expected", [
    ("[z-a]", "m", False),
    ("[^z-a]", "m", True),
    ("[a-c]x[^0-9]", "bxy", True),
    ("\\*", "*", True),
    ("a\\?", "ab", False),
])
def test_compiled_part_corner_cases(part, name, expected):
    compiled = restic_filter._compile_part(part)  # pylint: disable=protected-access
    assert restic_filter._part_matches(compiled, name) is expected  # pylint: disable=protected-access


@pytest.mark.parametrize("patterns, path, expected", [
    (["*.tmp"], "/srv/app/x.tmp", True),
    (["*.tmp"], "/srv/app/x.tmp/inside", True),
    (["*.tmp"], "/srv/app/x.tmpl", False),
    (["cache"], "/srv/app/cache", True),
    (["cache"], "/srv/app/cachedir", False),
    (["/srv/app/cache"], "/srv/app/cache/a/b", True),
    (["/srv/app/cache"], "/other/srv/app/cache", False),
    (["/srv/app/cache/"], "/srv/app/cache", True),
    (["/srv//app/./x/../cache"], "/srv/app/cache", True),
    (["app/cache"], "/srv/app/cache", True),
    (["app/cache"], "/srv/app/x/cache", False),
    (["/srv/*"], "/srv", False),
    (["/srv/*"], "/srv/app", True),
    (["uploads/**/thumb"], "/srv/uploads/thumb", True),
    (["uploads/**/thumb"], "/srv/uploads/2026/01/thumb/a.jpg", True),
    (["uploads/**/thumb"], "/srv/uploads/2026/thumbs", False),
    (["**"], "/srv/a", True),
    (["*.log", "!keep.log"], "/srv/keep.log", False),
    (["*.log", "!keep.log"], "/srv/other.log", True),
    (["!keep.log", "*.log"], "/srv/keep.log", True),
    ([""], "/srv/a", False),
], ids=lambda value: value if isinstance(value, str) else None)
def test_list_matches_follows_restic_rules(patterns, path, expected):
    assert restic_filter.list_matches(restic_filter.parse_patterns(patterns), path) is expected


def is_excluded(parsed, path, root):
    """Whether a backup of ``root`` left ``path`` out: it or a parent from ``root`` down
    matches (the rule restore_plan's walk follows, pruning there)."""
    if not parsed:
        return False
    current = root
    if restic_filter.list_matches(parsed, current):
        return True
    rest = path[len(root):].strip("/")
    for name in rest.split("/") if rest else []:
        current = current.rstrip("/") + "/" + name
        if restic_filter.list_matches(parsed, current):
            return True
    return False


def test_is_excluded_counts_a_matched_parent_even_when_a_negation_takes_the_child_back():
    parsed = restic_filter.parse_patterns(["logs", "!keep.log"])
    assert is_excluded(parsed, "/srv/app/logs/keep.log", "/srv/app")
    assert not is_excluded(parsed, "/srv/app/keep.log", "/srv/app")


@pytest.mark.parametrize("path", ["/srv/a[1]/x*y?", "/srv/back\\slash", "/srv/plain"])
def test_escape_path_matches_exactly_that_path_and_below(path):
    parsed = restic_filter.parse_patterns([restic_filter.escape_path(path)])
    assert restic_filter.list_matches(parsed, path)
    assert restic_filter.list_matches(parsed, path + "/below")
    assert not restic_filter.list_matches(parsed, path + "x")


# --------------------------------------------------------------------------- against real restic

NAMES = ["a", "b", "d", "c.tmp", "keep.tmp", "cache", "x"]
PATTERNS = ["*.tmp", "cache", "!keep.tmp", "/{root}/a/b", "a/**/d", "b/*", "[ab]",
            "**/c.tmp", "/{root}/*/d", "!/{root}/b/cache", "d/**", "x"]


def _trees(depth):
    leaf = st.just(None)
    if depth == 0:
        return leaf
    return st.one_of(leaf, st.dictionaries(st.sampled_from(NAMES), _trees(depth - 1),
                                           max_size=4))


def _materialize(root, tree):
    """Write ``tree`` ({name: subtree or None for a file}) under ``root``; return every path."""
    paths = []
    for name, sub in (tree or {}).items():
        path = os.path.join(root, name)
        paths.append(path)
        if sub is None:
            with open(path, "w") as handle:
                handle.write(name)
        else:
            os.mkdir(path)
            paths += _materialize(path, sub)
    return paths


def _restic(env, *argv, check=True):
    return subprocess.run([RESTIC] + list(argv), env=env, capture_output=True, text=True,
                          check=check, timeout=300)


@pytest.fixture
def restic_repo(tmp_path):
    env = dict(os.environ, RESTIC_REPOSITORY=str(tmp_path / "repo"), RESTIC_PASSWORD="pw",
               XDG_CACHE_HOME=str(tmp_path / "cache"), TZ="UTC")
    _restic(env, "init")
    cheapen_keys(env["RESTIC_REPOSITORY"], "pw")
    return env


@needs_restic
@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.dictionaries(st.sampled_from(NAMES), _trees(2), min_size=1, max_size=5),
       chosen=st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=4))
def test_excluded_paths_are_exactly_the_ones_real_restic_leaves_out(
        tmp_path, restic_repo, tree, chosen):
    root = str(tmp_path / ("src%d" % next(_COUNTER)))
    os.mkdir(root)
    paths = _materialize(root, tree)
    patterns = [pattern.format(root=root.strip("/")) for pattern in chosen]
    argv = ["backup", "--json", "--host", "h"] + list(itertools.chain.from_iterable(
        ("--exclude", pattern) for pattern in patterns)) + [root]
    summary = [json.loads(line) for line in _restic(restic_repo, *argv).stdout.splitlines()
               if '"summary"' in line][0]
    listing = _restic(restic_repo, "ls", "--json", summary["snapshot_id"]).stdout.splitlines()
    in_snapshot = {node["path"] for node in map(json.loads, listing)
                   if node.get("struct_type") == "node" and node["path"].startswith(root + "/")}
    parsed = restic_filter.parse_patterns(patterns)
    predicted = {path for path in paths if not is_excluded(parsed, path, root)}
    assert in_snapshot == predicted, patterns
    shutil.rmtree(root)


_COUNTER = itertools.count()


@needs_restic
@pytest.mark.parametrize("pattern", ["[", "a[b", "[]a]", "[x-]", "ok[a-c]", "*.tmp", "a\\"])
def test_invalid_patterns_are_the_ones_restic_refuses(tmp_path, restic_repo, pattern):
    src = tmp_path / "src"
    src.mkdir()
    done = _restic(restic_repo, "backup", "--exclude", pattern, str(src), check=False)
    refused = done.returncode != 0 and "invalid pattern" in done.stderr
    assert refused is (restic_filter.invalid_patterns([pattern]) == [pattern]), done.stderr
