#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: validate_vars
short_description: Check the variables of runbook.ops roles before anything changes on a host
version_added: 0.1.0
description:
  - "Checks, in one pass and before any change, the variables the play gives the runbook.ops roles
    named in O(roles), and fails with one line per problem naming the variable, its value and the
    rule, for example C(disk_monitor_cron_hour: 25 is not an hour (0-23, */N, lists and ranges as
    cron reads them)). Every problem is reported at once, never a traceback or a spec dump."
  - "The rules: each role's C(meta/argument_specs.yml) (types, element types, choices, required
    options and sub-options, converted as ansible-core's role validation converts them), then the
    semantic rules: cron fields as Debian's cron reads them, warning thresholds below critical ones,
    percentages, absolute paths, Go durations, sizes, job names and timeouts (the rules of
    C(runbook-ops run)), the backup role's repository and password; and paths that must exist on
    the host (C(disk_monitor_paths), C(disk_monitor_largest_under), C(media_baseline_path),
    C(backup_paths), C(backup_compose_project_dir), the media cleanup's paths), looked up with
    M(ansible.builtin.stat)."
  - "A variable with a role's prefix (C(disk_monitor_), C(runbook_ops_) for P(runbook.ops.base#role))
    that the role does not know gets a warning naming the closest known one, for example
    C(disk_monitor_warn_precent: did you mean disk_monitor_warn_percent?)."
  - Values are those the role would see, the role's defaults for what is not set, templated.
  - This is an action plugin; it runs on the controller and calls M(ansible.builtin.stat) on the host.
    The playbook C(playbooks/provision.yml) and every role (through its P(runbook.ops.preflight#role)
    dependency) run it first.
author:
  - runbook.ops maintainers (@runbook-ops)
extends_documentation_fragment:
  - runbook.ops.attributes.read_only
options:
  roles:
    description:
      - Names of the roles whose variables are checked (without the C(runbook.ops.) prefix).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Check every role's variables before provisioning
  runbook.ops.validate_vars:
    roles: [base, disk_monitor, docker_cleanup, backup]

- name: Check one role's variables
  runbook.ops.validate_vars:
    roles: [disk_monitor]
"""

RETURN = r"""
roles:
  description: The roles whose variables were checked.
  returned: always
  type: list
  elements: str
  sample: [base, disk_monitor]
problems:
  description: One line per problem (variable, value, rule); empty when every variable is valid.
  returned: always
  type: list
  elements: str
  sample:
    - "disk_monitor_cron_hour: 25 is not an hour (0-23, */N, lists and ranges as cron reads them)"
    - "disk_monitor_paths: /srv/data does not exist on the host"
msg:
  description: The problems joined with C(; ), or that the variables are valid.
  returned: always
  type: str
  sample: "the variables of runbook.ops.base, runbook.ops.disk_monitor are valid"
"""
