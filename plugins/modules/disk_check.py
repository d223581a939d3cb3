#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: disk_check
short_description: Check how full filesystems are and which directories are largest
version_added: 0.1.0
description:
  - Reports, read-only, how full the filesystems holding O(paths) are, as C(df) shows them
    (Use% is used * 100 / (used + available), rounded up, the non-root view), and their inode use
    as C(df -i) shows it.
  - "Classifies each filesystem as C(ok), C(warning) (at or above O(warn_percent) or
    O(inode_warn_percent)) or C(critical) (at or above O(crit_percent) or O(inode_crit_percent))
    and writes the runbook's one-line alert, for example
    C(⚠️ web1 disk WARNING: 72% used (free 14G, threshold 70%))."
  - With O(largest_under), sizes the directories under those trees exactly as
    C(du -x DIR | sort -n | tail -20) does (allocated blocks, hard links counted once,
    symlinks not followed, other filesystems skipped) and returns the biggest. The walk
    runs in a few forked worker processes and is about as fast as C(du) itself.
  - With a history file of daily samples (written by C(runbook-ops disk-check), the
    C(runbook.ops.disk_monitor) role's job), fits the growth per day and the days until the
    thresholds and a full disk.
author:
  - runbook.ops maintainers (@runbook-ops)
extends_documentation_fragment:
  - runbook.ops.attributes.read_only
options:
  paths:
    description:
      - Paths to check. Any path works; the filesystem holding it is reported.
    type: list
    elements: path
    default: ["/"]
  warn_percent:
    description:
      - Used space (df's Use%) at or above which a filesystem is C(warning).
      - Must be between 0 and 100 and lower than O(crit_percent).
    type: int
    default: 70
  crit_percent:
    description:
      - Used space (df's Use%) at or above which a filesystem is C(critical).
    type: int
    default: 85
  inode_warn_percent:
    description:
      - Used inodes (df -i's IUse%) at or above which a filesystem is C(warning).
      - Filesystems without inode counts (btrfs) are never flagged by inodes.
    type: int
    default: 70
  inode_crit_percent:
    description:
      - Used inodes (df -i's IUse%) at or above which a filesystem is C(critical).
    type: int
    default: 85
  largest_under:
    description:
      - Directories whose trees are scanned for the largest directories. Empty means no scan.
      - Each must exist and be a directory. Subdirectories that cannot be read are listed in
        RV(scan.unreadable) and counted with their own size only, as C(du) does.
    type: list
    elements: path
    default: []
  largest_count:
    description:
      - How many of the largest directories to return (over all O(largest_under) trees).
    type: int
    default: 20
  one_file_system:
    description:
      - Skip directories on other filesystems (mount points) during the scan, like C(du -x).
    type: bool
    default: true
  scan_timeout:
    description:
      - Seconds the scan may take over all O(largest_under) trees. Past it the scan returns
        what it measured so far and sets RV(scan.partial).
      - Unset means no limit.
    type: float
  fail_on:
    description:
      - Fail the task when the overall status reaches this level; C(never) only reports.
    type: str
    choices: [never, warning, critical]
    default: never
  history_file:
    description:
      - JSON-lines file of daily samples C({"ts", "mount", "used_bytes", "total_bytes"}).
      - A missing file, or fewer than two samples of a mount spanning a day, gives no trend.
    type: path
    default: /var/lib/runbook-ops/disk-history.jsonl
  host_label:
    description:
      - Name of the host in RV(message). Defaults to the host name.
    type: str
notes:
  - Sizes are allocated bytes (C(st_blocks * 512)), what C(du) shows by default, not
    apparent sizes. A hard link is charged to the directory where C(du) meets it first.
  - Run it with C(become) to read every directory.
seealso:
  - name: The runbook.ops disk_monitor role
    description: Runs this check daily from cron, keeps the history and alerts through Telegram.
    link: https://example.invalid/runbook/ops/roles/disk_monitor
"""

EXAMPLES = r"""
- name: Check the root filesystem against the runbook's thresholds (70% / 85%)
  runbook.ops.disk_check:
  register: disk

- name: Show the alert line
  ansible.builtin.debug:
    msg: "{{ disk.message }}"

- name: Fail when any checked filesystem is critical, and list the 20 largest directories
  runbook.ops.disk_check:
    paths:
      - /
      - /var/lib/docker
    largest_under:
      - /var/lib/eatfit24/media
      - /var/log
    scan_timeout: 60
    fail_on: critical
  become: true

- name: Use stricter inode thresholds on a mail spool
  runbook.ops.disk_check:
    paths: [/var/spool]
    inode_warn_percent: 50
    inode_crit_percent: 75
"""

RETURN = r"""
changed:
  description: Always false; the module only reads.
  returned: always
  type: bool
  sample: false
status:
  description: The worst status over all checked filesystems.
  returned: always
  type: str
  choices: [ok, warning, critical]
  sample: warning
message:
  description: One-line summary in the runbook's alert format, about the worst filesystem.
  returned: always
  type: str
  sample: "⚠️ web1 disk WARNING: 72% used (free 14G, threshold 70%)"
filesystems:
  description: One entry per path in O(paths), in order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path as given.
      type: str
      sample: /
    mount:
      description: Mount point of the filesystem holding the path.
      type: str
      sample: /
    device:
      description: Mounted device or source, from C(/proc/self/mountinfo).
      type: str
      sample: /dev/vda1
    fstype:
      description: Filesystem type.
      type: str
      sample: ext4
    total_bytes:
      description: Size of the filesystem.
      type: int
      sample: 53660876800
    used_bytes:
      description: Used space (df's Used).
      type: int
      sample: 38635831296
    free_bytes:
      description: Space available to non-root users (df's Avail).
      type: int
      sample: 15025045504
    used_percent:
      description: df's Use%, used * 100 / (used + free_bytes) rounded up.
      type: int
      sample: 72
    inodes_total:
      description: Inodes of the filesystem (0 when it has no fixed count).
      type: int
      sample: 3276800
    inodes_used:
      description: Inodes in use.
      type: int
      sample: 412345
    inodes_free:
      description: Free inodes.
      type: int
      sample: 2864455
    inodes_used_percent:
      description: df -i's IUse%; null when the filesystem has no inode counts.
      type: int
      sample: 13
    status:
      description: This filesystem's status, the worse of its space and inode status.
      type: str
      sample: warning
largest:
  description:
    - The largest directories under O(largest_under), biggest first, at most O(largest_count).
    - Each scanned directory itself is included, as in C(du)'s listing.
  returned: always (empty without O(largest_under))
  type: list
  elements: dict
  contains:
    path:
      description: The directory.
      type: str
      sample: /var/lib/eatfit24/media
    bytes:
      description: Allocated bytes of everything under it, as C(du -B1 -x) counts them.
      type: int
      sample: 49283072
scan:
  description: How the largest-directories scan went.
  returned: when O(largest_under) is given
  type: dict
  contains:
    partial:
      description: True when O(scan_timeout) ran out; sizes are then lower bounds.
      type: bool
      sample: false
    unreadable:
      description: Directories that could not be read, with the error.
      type: list
      elements: dict
      sample: [{"path": "/var/lib/private", "error": "Permission denied"}]
    dirs:
      description: Directories measured.
      type: int
      sample: 6019
    files:
      description: Other entries measured (each inode once).
      type: int
      sample: 1000035
    seconds:
      description: Wall time of the scan.
      type: float
      sample: 2.31
    workers:
      description: Worker processes the scan used.
      type: int
      sample: 2
trend:
  description:
    - Per mount point with enough history (two samples spanning at least a day), the growth
      fitted by least squares and the days until the thresholds at that rate.
    - Days are from now; 0 when already there; null when the filesystem is not growing.
  returned: when the history file has enough samples
  type: dict
  sample:
    /:
      growth_bytes_per_day: 52428800
      samples: 30
      span_days: 29.0
      days_until_warn: 12.5
      days_until_crit: 160.3
      days_until_full: 298.1
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.ops.plugins.module_utils._ansible import run_core
from ansible_collections.runbook.ops.plugins.module_utils._ops.disk import (
    DEFAULT_HISTORY_FILE, OPTIONS, check_disks, should_fail,
)
from ansible_collections.runbook.ops.plugins.module_utils._ops.options import module_spec


def main():
    # the module reads the job's history unless told otherwise
    argument_spec = module_spec(OPTIONS, history_file=DEFAULT_HISTORY_FILE)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    result = run_core(module, check_disks, **module.params)
    scan = result.get("scan") or {}
    if scan.get("partial"):
        module.warn("the scan stopped at scan_timeout; largest sizes are lower bounds")
    for entry in scan.get("unreadable", []):
        module.warn("could not read %s: %s" % (entry["path"], entry["error"]))
    if should_fail(result["status"], module.params["fail_on"]):
        module.fail_json(msg=result["message"], **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
