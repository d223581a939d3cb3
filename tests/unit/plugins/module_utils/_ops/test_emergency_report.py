# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""emergency_report: the summary table written on the host is the playbook's template's, line for line.

The template the playbook rendered on the controller before #21 is kept as a fixture and
rendered here as the ``ansible.builtin.template`` lookup did (``trim_blocks``, then ``trim``
and split into lines); any summary the module can return must read the same both ways.
"""

from __future__ import annotations

import functools
import os
import sys

import jinja2
from ansible.plugins.filter.core import flatten, to_bool
from hypothesis import given, settings
from hypothesis import strategies as st

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import emergency_report  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.units import format_bytes  # noqa: E402

TEMPLATE = os.path.join(_REPO, "tests", "unit", "fixtures", "emergency", "emergency_disk_summary.j2")


@functools.lru_cache(maxsize=1)
def old_template():
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.Undefined)
    env.filters.update({"bool": to_bool, "flatten": flatten, "runbook.ops.iec_bytes": format_bytes})
    with open(TEMPLATE, encoding="utf-8") as handle:
        return env.from_string(handle.read())


def render_template(summary, crit, media_path):
    """The old template, as the playbook's ``lookup('template') | trim | split('\\n')``."""
    text = old_template().render(emergency_disk_summary=summary, __ed_crit=crit, __ed_media_path=media_path,
                                 __ed_advice=emergency_report.ADVICE)
    return text.strip().split("\n")


TEXT = st.text(alphabet=st.sampled_from("ab /.:%-…é{}|_0\t"), min_size=1, max_size=70)
SIZE = st.one_of(st.none(), st.integers(0, 2 ** 42))
STEP = st.fixed_dictionaries({
    "title": TEXT, "ran": st.booleans(), "estimated_bytes": st.integers(0, 2 ** 40), "freed_bytes": SIZE,
    "after_percent": st.integers(0, 100), "note": TEXT,
    "kept": st.lists(st.fixed_dictionaries({
        "kind": st.sampled_from(["container", "volume", "image", "network"]),
        "name": st.text(alphabet="0123456789abcdef", min_size=1, max_size=70), "reason": TEXT}), max_size=3),
    "moved_tags": st.lists(st.fixed_dictionaries({"tag": TEXT, "image": st.one_of(st.none(), TEXT)}), max_size=2)})
GATE = st.one_of(st.none(), st.fixed_dictionaries({
    "activate": st.booleans(), "fired": st.lists(TEXT, max_size=2), "media_bytes": st.integers(0, 2 ** 40),
    "dry_run_command": st.sampled_from(["", "manage.py cleanup --dry-run"])}))
SUMMARY = st.fixed_dictionaries({
    "host": TEXT, "path": TEXT, "mount": TEXT, "active": st.booleans(), "check_mode": st.booleans(),
    "forced": st.booleans(), "preview_all": st.booleans(), "before_percent": st.integers(0, 100),
    "after_percent": st.integers(0, 100), "target_percent": st.integers(1, 100),
    "escalate_percent": st.integers(1, 100), "failed_steps": st.lists(TEXT, max_size=2),
    "estimated_bytes": st.integers(0, 2 ** 42), "freed_bytes": SIZE, "steps": st.lists(STEP, max_size=4),
    "largest": st.lists(st.fixed_dictionaries({"bytes": st.integers(0, 2 ** 42), "path": TEXT}), max_size=3),
    "largest_partial": st.booleans(), "media_gate": GATE, "escalate": st.booleans()})


@settings(max_examples=300, deadline=None)
@given(SUMMARY, st.integers(1, 100), st.sampled_from(["", "/srv/media"]))
def test_the_table_is_the_templates_line_for_line(summary, crit, media_path):
    assert emergency_report.summary_lines(summary, crit, media_path) == render_template(summary, crit, media_path)


def test_a_host_below_critical_is_two_lines():
    summary = {"host": "web1", "path": "/", "mount": "/", "active": False, "check_mode": True,
               "before_percent": 40}
    assert emergency_report.summary_lines(summary, 85, "") == [
        "emergency-disk web1: / (mount /) [CHECK MODE: nothing changed, figures are estimates]",
        "usage 40% is below the critical 85%: nothing to do"]


def test_the_verdict_names_the_failed_steps_then_the_escalation():
    summary = {"host": "web1", "mount": "/", "after_percent": 91, "check_mode": True,
               "failed_steps": ["Docker build cache: failed: no engine"], "escalate": True}
    assert emergency_report.verdict(summary, 80) == (
        "web1: 1 emergency step(s) failed: Docker build cache: failed: no engine; / is still at 91% (projected) "
        "after the emergency cleanup (escalation threshold 80%): " + emergency_report.ADVICE)
    assert emergency_report.verdict(dict(summary, failed_steps=[], escalate=False), 80) == ""
