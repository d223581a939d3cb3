#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: media_cleanup_gate
short_description: Decide whether an application's media cleanup should be activated
version_added: 0.1.0
description:
  - Evaluates the activation triggers of a media (photo) cleanup, read-only, and says
    whether any of them fires.
  - C(size) fires when the media directory (measured as C(du -s) counts it, one file
    system) is larger than O(size_limit).
  - C(growth) fires when the media directory grows by more than O(growth_limit_per_week).
    The rate comes from the baseline samples in O(baseline_file) (written monthly by the
    C(runbook.ops.media_baseline) role); it compares the newest sample against the oldest one within
    four weeks of it, else against the newest older sample (a month gap is fine; the
    rate is per elapsed time). Samples less than a day before the newest are not used.
    With fewer than two usable samples the trigger reports that instead of guessing.
    A shrinking directory gives a negative rate, which never fires.
  - C(records) fires when the application's record count (O(record_count), or the integer
    printed by O(record_count_command)) is above O(record_limit). Without either it is
    skipped.
  - C(disk) fires when the disk holding O(disk_path) is at or above O(disk_limit_percent)
    used, or when the trend of the disk-check history (O(disk_history_file)) reaches that
    level within O(disk_trend_days) days.
  - Limits are exclusive for size, growth and records (the runbook says "more than") and
    inclusive for the disk percentage.
author:
  - runbook.ops maintainers (@runbook-ops)
extends_documentation_fragment:
  - runbook.ops.attributes.read_only
options:
  media_path:
    description: The media directory to measure, for example the app's uploads directory.
    type: path
    required: true
  size_limit:
    description:
      - Size above which the C(size) trigger fires.
      - Bytes as an integer, or a string with a unit; decimal units are powers of 1000
        (C(500MB)), binary units powers of 1024 (C(1.5GiB)). Anything else is an error.
    type: str
    default: 500MB
  growth_limit_per_week:
    description: Weekly growth above which the C(growth) trigger fires; same format as O(size_limit).
    type: str
    default: 100MB
  baseline_file:
    description: JSON-lines file of baseline samples C({"ts", "path", "bytes", "files"}).
    type: path
    default: /var/lib/runbook-ops/media-baseline.jsonl
  record_count:
    description: The application's record count, if already known. Wins over O(record_count_command).
    type: int
  record_count_command:
    description:
      - Command printing the record count as an integer on its last line of output,
        for example a Django shell one-liner run with C(docker compose exec -T).
      - A string runs with C(/bin/sh -c) (so C(cd) and pipes work); a list runs as argv.
      - A failing command or output that is not an integer is an error.
    type: raw
  record_count_timeout:
    description: Seconds O(record_count_command) may take.
    type: int
    default: 120
  record_limit:
    description: Record count above which the C(records) trigger fires.
    type: int
    default: 1000
  chdir:
    description: Working directory for O(record_count_command) (the Compose project directory).
    type: path
  disk_path:
    description: A path on the disk whose usage is watched.
    type: path
    default: /
  disk_limit_percent:
    description: Disk usage (percent, as C(df) shows it) at or above which the C(disk) trigger fires.
    type: int
    default: 70
  disk_trend_days:
    description: The C(disk) trigger also fires when the disk-check history's trend reaches O(disk_limit_percent) within this many days.
    type: int
    default: 90
  disk_history_file:
    description: JSON-lines history of the disk check C({"ts", "mount", "used_bytes", "total_bytes"}).
    type: path
    default: /var/lib/runbook-ops/disk-history.jsonl
seealso:
  - module: runbook.ops.disk_check
    description: Writes the disk history the C(disk) trigger reads.
notes:
  - The size is counted like C(du -s -x) (allocated blocks, hard links once, one file system) by the
    collection's own walker; no external command runs except O(record_count_command).
"""

EXAMPLES = r"""
- name: Check the runbook's activation triggers
  runbook.ops.media_cleanup_gate:
    media_path: /var/lib/eatfit24/media/uploads
  register: media_gate

- name: Tell the operator which triggers fired
  ansible.builtin.debug:
    msg: "{{ media_gate.triggers | selectattr('hit') | map(attribute='detail') | list }}"
  when: media_gate.activate

- name: Count MealPhoto records with a Django one-liner
  runbook.ops.media_cleanup_gate:
    media_path: /var/lib/eatfit24/media/uploads
    chdir: /opt/eatfit24
    record_count_command: >-
      docker compose exec -T backend python manage.py shell -c
      "from apps.nutrition.models import MealPhoto; print(MealPhoto.objects.count())"
    size_limit: 1.5GiB
    disk_limit_percent: 80
"""

RETURN = r"""
activate:
  description: True when at least one trigger fires.
  returned: always
  type: bool
  sample: false
triggers:
  description:
    - One entry per trigger, in the order C(size), C(growth), C(records), C(disk).
    - C(value) is C(null) when there is nothing to compare (too few baselines, no record count).
    - C(disk) also has C(days_to_limit), the trend's days until O(disk_limit_percent) (C(null) when not growing).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: C(size), C(growth), C(records) or C(disk).
      type: str
    value:
      description: The measured value (bytes, bytes per week, records, percent).
      type: raw
    limit:
      description: The limit it is compared with (bytes, bytes per week, records, percent).
      type: raw
    hit:
      description: Whether this trigger fires.
      type: bool
    unit:
      description: Unit of value and limit.
      type: str
    detail:
      description: One human sentence saying what was found.
      type: str
  sample:
    - {name: size, value: 47000000, limit: 500000000, hit: false, unit: bytes, detail: "media is 47.0 MB, limit 500.0 MB"}
    - {name: growth, value: null, limit: 100000000, hit: false, unit: bytes/week,
       detail: "not enough baselines: 1 baseline sample; growth needs 2 samples at least a day apart"}
    - {name: records, value: 8, limit: 1000, hit: false, unit: records, detail: "8 records, limit 1000"}
    - {name: disk, value: 22.0, limit: 70, hit: false, unit: percent, days_to_limit: null,
       detail: "disk 22.0% used, limit 70%; no trend yet: the disk-check history has 1 sample of /, a trend needs 2 samples at least a day apart"}
media_bytes:
  description: Size of O(media_path) in bytes, as C(du -s) counts it.
  returned: always
  type: int
  sample: 47000000
media_files:
  description: Number of files under O(media_path).
  returned: always
  type: int
  sample: 142
media_path:
  description: The absolute media path measured.
  returned: always
  type: str
  sample: /var/lib/eatfit24/media/uploads
growth:
  description: How the weekly growth was computed (C(status) C(ok) or C(insufficient), the samples used).
  returned: always
  type: dict
  sample: {status: ok, bytes_per_week: 7000000, method: previous, from_ts: "2026-01-01T06:05:00Z",
           to_ts: "2026-02-01T06:05:00Z", from_bytes: 47000000, to_bytes: 78000000, days: 31.0, samples: 2}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.ops.plugins.module_utils._ansible import run_core
from ansible_collections.runbook.ops.plugins.module_utils._ops.media import GATE_OPTIONS, evaluate_gate
from ansible_collections.runbook.ops.plugins.module_utils._ops.options import module_spec


def main():
    module = AnsibleModule(argument_spec=module_spec(GATE_OPTIONS), supports_check_mode=True)
    params = dict(module.params)
    if params["record_count_command"] in ("", []):
        params["record_count_command"] = None
    result = run_core(module, evaluate_gate, **params)
    if result.pop("media_partial", False):
        module.warn("some entries under %s could not be read; media_bytes is a lower bound"
                    % result["media_path"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
