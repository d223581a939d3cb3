#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: emergency_disk
short_description: The runbook's "Disk Usage Critical" procedure on the host, in one run
version_added: 0.1.0
description:
  - Measures the filesystem holding O(path). When its usage (df's C(Use%)) is at or above
    O(crit_percent), or O(force) is true, takes the runbook's steps in order, measuring after
    each, and stops as soon as usage is below O(target_percent)
    (1. Docker build cache; 2. Docker images no container uses, older than O(until);
    3. stopped containers older than O(containers_until) and anonymous volumes no container
    references, older than O(until); 4. journal entries older than O(journal_vacuum_time) and
    rotated or compressed logs (C(*.gz), C(*.[0-9]), C(*.old)) under O(log_dir) older than
    O(log_retention_days)).
  - The Docker steps are M(runbook.ops.docker_cleanup)'s, with its safety rules - O(keep_label),
    images and volumes in use, named volumes never removed, a stopped container kept for at least
    1 hour, 24 hours after a crash, judged again right before its removal.
  - A step that fails (the engine down, a file that cannot be removed) is recorded in
    RV(summary.failed_steps) and the later steps still run; after a Docker step failed as a whole,
    the later Docker steps are skipped with a note. An O(docker_host) whose socket is missing is a
    failed step (dockerd stopped on the full disk), not a host without Docker. The module itself
    does not fail for a failed step, so the caller can report and alert first.
  - Then sizes the largest directories (media, logs, Docker's data root) as
    M(runbook.ops.disk_check) does, and asks M(runbook.ops.media_cleanup_gate) for its verdict
    when O(media_path) is a directory.
  - Returns the summary that C(runbook.ops.emergency_disk) (the playbook) prints, sends
    to Telegram and judges. A host below O(crit_percent) is only measured.
  - Every option is checked first by the playbook's rules (the C(runbook.ops.emergency_disk_settings)
    filter); a bad value fails the task before anything changes, with one line naming the
    playbook variable (C(emergency_disk_<option>)), its value and the rule.
  - Also returns the summary table as the playbook prints and sends it (RV(lines)) and the line
    it fails a host with (RV(verdict)), written on the host, and sets the fact C(emergency_disk_summary).
author:
  - runbook.ops maintainers (@runbook-ops)
requirements:
  - The Docker SDK for Python 5.0 or later (Debian/Ubuntu C(python3-docker)) on the host, for the Docker steps.
attributes:
  check_mode:
    support: full
    description:
      - The same procedure, nothing removed; each step reports what it would free and the usage is
        projected from those estimates (only the steps that free space on the measured filesystem count).
      - With O(force), every step is previewed, also those a real run would not reach (they are marked).
  diff_mode:
    support: none
    description: Removals have no before and after to show; RV(summary.steps) says what each step did.
  idempotent:
    support: full
    description: Once usage is below O(crit_percent) it only measures.
options:
  path:
    description: A path on the filesystem to measure and relieve.
    type: path
    default: /
  crit_percent:
    description: Usage at or above which the procedure runs.
    type: int
    default: 85
  target_percent:
    description: The steps stop once usage is below this. Must be below O(crit_percent).
    type: int
    default: 70
  escalate_percent:
    description: Usage still above this after the steps sets RV(summary.escalate). At least O(target_percent).
    type: int
    default: 80
  force:
    description: Run the procedure below O(crit_percent) too (a real run still stops at the target).
    type: bool
    default: false
  until:
    description: Images and volumes younger than this (a Go duration) stay.
    type: str
    default: 168h
  containers_until:
    description:
      - Stopped containers that stopped less than this (a Go duration) ago stay; never less than
        1 hour, 24 hours after a crash.
    type: str
    default: 168h
  docker_host:
    description:
      - The Docker engine (C(unix://...), C(tcp://...)). Empty means C(DOCKER_HOST), else the local socket;
        a host without C(/var/run/docker.sock) then skips the Docker steps.
    type: str
    default: ""
  keep_label:
    description: Containers, images and volumes carrying this label key are never removed.
    type: str
    default: runbook.ops.keep
  state_dir:
    description: Where M(runbook.ops.docker_cleanup) remembers the volumes of removed containers.
    type: path
    default: /var/lib/runbook-ops
  log_dir:
    description: Where rotated and compressed logs are removed.
    type: path
    default: /var/log
  log_retention_days:
    description: Rotated logs younger than this many days stay.
    type: int
    default: 14
  journal_vacuum:
    description: Vacuum the systemd journal (C(journalctl --vacuum-time)), where journalctl exists.
    type: bool
    default: true
  journal_vacuum_time:
    description: Journal files older than this go (C(7d), C(12h), C(2w)).
    type: str
    default: 7d
  media_path:
    description: The media directory, sized among the largest directories and given to the media cleanup gate. Empty means none.
    type: path
    default: ""
  media_size_limit:
    description: The media cleanup gate's size limit (C(500MB), C(2GiB)).
    type: str
    default: 500MB
  media_dry_run_command:
    description: The app's dry-run cleanup command, shown when the media gate fires.
    type: str
    default: ""
  largest_count:
    description: How many of the largest directories to report.
    type: int
    default: 10
  scan_timeout:
    description: Seconds the largest-directories scan may take; past it the sizes are lower bounds.
    type: float
    default: 120
  host_label:
    description: The host's name in RV(summary.host). Defaults to the host name.
    type: str
  variables:
    description:
      - The playbook's C(emergency_disk_*) variables as the play has them, by their full names and
        values as written (C(emergency_disk_crit_percent=85%)); the playbook passes every one it sees.
      - Given, they are the settings (an unset one takes its default) and the other options but
        O(host_label) must not be given; checked by the playbook's rules before anything changes,
        a name the playbook does not know is a warning naming the closest known one.
    type: dict
seealso:
  - module: runbook.ops.docker_cleanup
  - module: runbook.ops.disk_check
  - module: runbook.ops.media_cleanup_gate
"""

EXAMPLES = r"""
- name: Preview the emergency procedure on a full disk
  runbook.ops.emergency_disk:
    path: /
    log_dir: /var/log
  check_mode: true
  register: emergency

- name: Run it, stopping at 70%, and fail when a step failed or usage stays above 80%
  runbook.ops.emergency_disk:
    media_path: /var/lib/eatfit24/media
    host_label: "{{ inventory_hostname }}"
  register: emergency
  failed_when: emergency.verdict != ""

- name: Print the summary table
  ansible.builtin.debug:
    msg: "{{ emergency.lines }}"
"""

RETURN = r"""
changed:
  description: Whether a step removed something (in check mode, would remove).
  returned: always
  type: bool
  sample: true
lines:
  description:
    - The summary table, one line each, as the playbook C(runbook.ops.emergency_disk) prints it and
      sends it to Telegram (joined by newlines).
  returned: always
  type: list
  elements: str
  sample:
    - "emergency-disk web1: / (mount /) [CHECK MODE: nothing changed, figures are estimates]"
    - "usage 40% is below the critical 85%: nothing to do"
verdict:
  description:
    - "Why the playbook fails the host, one line (C(<host>: N emergency step(s) failed: ...) and/or
      C(<mount> is still at X% after the emergency cleanup (escalation threshold Y%): <advice>)), or
      empty when no step failed and usage is not above O(escalate_percent)."
  returned: always
  type: str
  sample: ""
ansible_facts:
  description: The fact the playbook's summary is known by afterwards.
  returned: always
  type: dict
  contains:
    emergency_disk_summary:
      description: RV(summary).
      type: dict
summary:
  description: The run, as the playbook C(runbook.ops.emergency_disk) prints and judges it (C(emergency_disk_summary)).
  returned: always
  type: dict
  contains:
    host:
      description: O(host_label).
      type: str
      sample: web1
    path:
      description: O(path).
      type: str
      sample: /
    mount:
      description: The mount point holding O(path).
      type: str
      sample: /
    active:
      description: Whether the procedure ran (usage at or above O(crit_percent), or O(force)).
      type: bool
      sample: true
    forced:
      description: Ran only because of O(force) (usage below O(crit_percent)).
      type: bool
      returned: when active
      sample: false
    preview_all:
      description: A forced check-mode run, which previews every step.
      type: bool
      returned: when active
      sample: false
    check_mode:
      description: Whether this was a preview.
      type: bool
      sample: false
    total_bytes:
      description: Used plus available bytes of the filesystem (df's base for C(Use%)).
      type: int
      returned: when active
      sample: 53660876800
    before_percent:
      description: Usage before the steps.
      type: int
      sample: 91
    after_percent:
      description: Usage after the steps (check mode - projected).
      type: int
      sample: 68
    target_percent:
      description: O(target_percent).
      type: int
      returned: when active
      sample: 70
    escalate_percent:
      description: O(escalate_percent).
      type: int
      returned: when active
      sample: 80
    before_used_bytes:
      description: Used bytes before the steps.
      type: int
      sample: 48830472192
    after_used_bytes:
      description: Used bytes after the steps (check mode - projected).
      type: int
      sample: 36487708672
    freed_bytes:
      description: The measured drop over the steps that ran; null in check mode.
      type: int
      sample: 12342763520
    estimated_bytes:
      description: What the steps reported they freed (check mode - would free).
      type: int
      sample: 12884901888
    steps:
      description:
        - One record per step, in order (C(build_cache), C(images), C(containers_volumes), C(logs)).
        - C(id), C(title), C(ran), C(failed), C(estimated_bytes), C(freed_bytes) (null in check mode),
          C(after_percent), C(note) (what happened, or why not), C(kept) and C(moved_tags) (as
          M(runbook.ops.docker_cleanup) returns them).
      type: list
      elements: dict
      sample:
        - {id: build_cache, title: Docker build cache, ran: true, failed: false, estimated_bytes: 2248720,
           freed_bytes: 2248720, after_percent: 84, note: 3 removed, kept: [], moved_tags: []}
    failed_steps:
      description: "C(title: note) of each step that failed."
      type: list
      elements: str
      sample: ["Docker build cache: failed: no Docker engine at unix:///run/docker.sock (emergency_disk_docker_host): no socket there"]
    largest:
      description: The largest directories under O(media_path), O(log_dir) and Docker's data root, at most two levels down, biggest first.
      type: list
      elements: dict
      sample: [{path: /var/lib/docker, bytes: 21474836480}]
    largest_partial:
      description: True when the scan ran past O(scan_timeout) (sizes are lower bounds).
      type: bool
      returned: when active
      sample: false
    media_gate:
      description:
        - The media cleanup gate's verdict (C(activate), C(fired), C(media_bytes), C(dry_run_command)); null
          without a media directory.
      type: dict
      sample: {activate: true, fired: ["media 612.0 MB > 500.0 MB"], media_bytes: 612000000, dry_run_command: ""}
    escalate:
      description: Usage is still above O(escalate_percent).
      type: bool
      sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.ops.plugins.module_utils._ansible import (
    missing_library_text, run_core,
)
from ansible_collections.runbook.ops.plugins.module_utils._ops.emergency import (
    RUN_OPTIONS, run_emergency_disk, settings_from_variables,
)


def main():
    argument_spec = dict((name, dict(spec)) for name, spec in RUN_OPTIONS.items())
    argument_spec.update(host_label=dict(type="str"), variables=dict(type="dict"))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[("variables", name) for name in RUN_OPTIONS])
    settings = dict((name, module.params[name]) for name in RUN_OPTIONS)
    if module.params["variables"] is not None:
        settings, warnings = run_core(module, settings_from_variables, module.params["variables"])
        for warning in warnings:
            module.warn(warning)
    result = run_core(module, run_emergency_disk, settings, host_label=module.params["host_label"],
                      check_mode=module.check_mode, import_error_text=missing_library_text)
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(ansible_facts={"emergency_disk_summary": result["summary"]}, **result)


if __name__ == "__main__":
    main()
