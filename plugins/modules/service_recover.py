#!/usr/bin/python
# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_recover
short_description: Bring a Docker Compose service back from an outage, step by step, stopping once it is healthy
version_added: 0.1.0
description:
  - The runbooks' "Service Down - Complete Outage" (P1) procedure for one Compose project on the host.
  - "Verifies the outage first: each of O(endpoints) is requested (with its Host header, as
    C(curl -H 'Host: ...')) and every container of the selected services is judged (not running,
    a restart loop, unhealthy, or no container at all is a failure; a one-shot run that exited 0 is not).
    A healthy project is only reported."
  - "Then keeps the evidence before anything changes: the failing checks, C(docker ps -a) and the
    last O(log_lines) log lines of every container of each failing service (of every service when
    only endpoints fail), in
    C(<report_dir>/service-down-<project>-<UTC time>.log) (mode 0600)."
  - "Then takes the steps in order, re-checking after each and stopping as soon as health is back:
    when a disk is above O(disk_crit_percent) or memory available is below O(memory_min_bytes), the
    emergency disk procedure's non-destructive steps (Docker build cache, images no container uses
    older than O(cleanup_until), never an image a service of the project is created from, and nothing
    when a service is built again at every start, C(pull_policy: build)) first;
    then C(docker compose restart) of the failing services (a
    service whose containers hold another environment than compose resolves from C(.env) now, as
    M(runbook.ops.compose_env_sync) compares it, or that has no container, is recreated with
    C(up -d --force-recreate --no-deps) instead: a restart keeps a stale secret), waiting up to
    O(wait_seconds); then C(docker compose up -d --force-recreate) of the whole project, or of
    O(services) when given (never C(down -v): volumes stay), waiting up to O(stack_wait_seconds) for the
    containers' health checks; also when every container runs and only endpoints fail (a hung app), if
    each failing endpoint is a loopback URL on a port the project publishes and no one-off container
    (a migration) runs, else the project escalates untouched."
  - A project without any container on the host (a wrong directory or project name) is refused before
    anything starts.
  - A wait ends early once two checks in a row find everything up (no health check still starting).
  - A project still down after the last step, or after O(budget_minutes), is reported with
    RV(escalate) and the runbook's escalation advice in RV(escalation); the module itself does not fail,
    so the caller can report and alert first.
  - Bad input (an unknown service, a directory without a compose project, a bad endpoint) fails the
    task with one line before anything is restarted.
author:
  - runbook.ops maintainers (@runbook-ops)
requirements:
  - Docker Compose v2 (C(docker compose) plugin or standalone C(docker-compose) 2.x) on the host.
  - The Docker SDK for Python 5.0 or later (Debian/Ubuntu C(python3-docker)) on the host.
attributes:
  check_mode:
    support: full
    description: Diagnoses and lists what each step would do; nothing is restarted, written or removed, and nothing is waited for.
  diff_mode:
    support: none
    description: Restarts have no before and after to show; RV(steps) says what each step did.
  idempotent:
    support: full
    description: On a healthy project it changes nothing.
options:
  project_src:
    description: The compose project directory.
    type: path
    required: true
  files:
    description:
      - Compose files (C(-f)), relative to O(project_src) or absolute. The files the running containers
        were started with when omitted (as M(runbook.ops.compose_env_sync) does).
    type: list
    elements: path
  project_name:
    description: The compose project name, when it is not the directory's name.
    type: str
  services:
    description:
      - Only these services are judged and restarted. All services of the project when omitted.
      - When every container runs but an endpoint is down, these are the services the service step restarts.
    type: list
    elements: str
  endpoints:
    description:
      - HTTP endpoints that must answer, as in P(runbook.ops.health_monitor#role)'s C(health_monitor_endpoints)
        (C(name), C(url), C(host_header), C(expected_status), C(expected_text), C(timeout_seconds),
        C(latency_limit_ms), C(validate_certs)). Empty judges by the containers alone.
    type: list
    elements: dict
    default: []
  wait_seconds:
    description: Seconds to wait after restarting the failing services before the verdict.
    type: int
    default: 30
  stack_wait_seconds:
    description: Seconds to wait for the containers' health checks after restarting the whole project.
    type: int
    default: 60
  budget_minutes:
    description: Escalate when the project is still down this long after the run began, even with steps left.
    type: float
    default: 15
  log_lines:
    description: Log lines of each failing container kept in the evidence file (the runbook's C(docker logs --tail 200)).
    type: int
    default: 200
  report_dir:
    description: Directory of the evidence files (created mode 0700).
    type: path
    default: /var/lib/runbook-ops/service-down
  disk_paths:
    description: Filesystems to measure (Docker's data root is added when the engine is local).
    type: list
    elements: path
    default: [/]
  disk_crit_percent:
    description: A disk above this frees space first (the runbook's 95%).
    type: int
    default: 95
  memory_min_bytes:
    description: Memory available below this frees space first (the runbook's 100 MB).
    type: int
    default: 104857600
  cleanup_until:
    description: Images unused for this long (a Go duration) go when space is freed (the emergency procedure's 168h); the project's own images stay.
    type: str
    default: 168h
  compose_command:
    description: The compose command, for example V(docker compose); C(docker compose) then C(docker-compose) when omitted.
    type: list
    elements: str
  docker_host:
    description: The Docker daemon, for example V(unix:///var/run/docker.sock); C(DOCKER_HOST) or the default socket when omitted.
    type: str
  state_dir:
    description:
      - The runtime's state directory, for the health monitor's failure record (C(health.json)), from which the
        downtime is counted, and the cleanup's record of removed volumes.
    type: path
    default: /var/lib/runbook-ops
notes:
  - Run it with C(become) when the Docker socket or O(report_dir) needs root.
  - The evidence file holds container logs, which may hold secrets; it is readable by root only.
seealso:
  - module: runbook.ops.compose_env_sync
  - module: runbook.ops.docker_cleanup
"""

EXAMPLES = r"""
- name: Bring the shop back (restart, then the whole project, then escalate)
  runbook.ops.service_recover:
    project_src: /opt/shop
    endpoints:
      - name: backend
        url: http://127.0.0.1:8000/health/
        host_header: shop.example.com
        expected_text: healthy
  become: true
  register: outage

- name: Only diagnose and list what each step would do
  runbook.ops.service_recover:
    project_src: /opt/shop
    services: [backend, celery-worker]
  check_mode: true
"""

RETURN = r"""
project:
  description: The compose project name.
  returned: always
  type: str
  sample: shop
healthy_before:
  description: Whether everything was up before any step (then nothing was done).
  returned: always
  type: bool
  sample: false
recovered:
  description: Whether a step brought health back.
  returned: always
  type: bool
  sample: true
fixed_by:
  description: The id of the step after which health was back (C(free_resources), C(restart_services), C(restart_project)).
  returned: always
  type: str
  sample: restart_services
downtime_seconds:
  description:
    - Seconds from the start of the outage to the recovery, when recovered. The start is the health monitor's first failed
      check of this project or its endpoints (C(health.json)) when it has one, else this run's first check (RV(down_since_source)).
  returned: always
  type: int
  sample: 41
downtime:
  description: RV(downtime_seconds) in words (C(41 s), C(12 min), C(1 h 5 min)), when recovered.
  returned: always
  type: str
  sample: 41 s
down_since:
  description: When the outage began (epoch seconds), when recovered.
  returned: always
  type: float
  sample: 1796180102.0
down_since_source:
  description: Where RV(down_since) comes from.
  returned: always
  type: str
  sample: this run's first check
escalate:
  description: Whether the project is still down after its steps or the budget (never in check mode).
  returned: always
  type: bool
  sample: false
escalation:
  description: The escalation text (what is still down, after which steps, the runbook's advice), when escalating.
  returned: always
  type: str
  sample: "shop is still down after its steps (...): escalate now (runbook P1: ...)"
problems:
  description: What failed when the run began.
  returned: always
  type: list
  elements: str
  sample: ["endpoint web (http://127.0.0.1:8080/health): connection refused", "web: exited, exit code 137"]
drifted:
  description: Services whose containers hold another environment than compose resolves now (recreated, not restarted).
  returned: always
  type: list
  elements: str
  sample: [worker]
steps:
  description:
    - The steps taken (in check mode, those a real run could take), each with C(id), C(title), C(note) (what it did or
      would do), C(error), C(healthy_after) (null in check mode), C(problems_after), and for the service step
      C(restart) and C(recreate) (service names).
  returned: always
  type: list
  elements: dict
  sample: [{"id": restart_services, "title": restart the failing services, "note": restarted web, "error": null,
            "healthy_after": true, "problems_after": [], "restart": [web], "recreate": []}]
services:
  description: The last judgement per service (C(level), C(problem), C(missing), C(containers)).
  returned: always
  type: dict
  sample: {"web": {"level": "ok", "problem": "", "missing": false, "settling": false, "containers": []}}
endpoints:
  description: The last result per endpoint (C(name), C(target), C(level), C(problem), C(status), C(latency_ms)).
  returned: always
  type: list
  elements: dict
  sample: [{"name": web, "target": "http://127.0.0.1:8080/health", "level": ok, "problem": "", "status": 200}]
resources:
  description: Memory (bytes), each measured disk (C(mount), C(used_percent), C(free_bytes)), load averages and CPUs.
  returned: always
  type: dict
  sample: {"memory": {"available_bytes": 1288490188, "total_bytes": 4080218931}, "disks": [], "load": [0.5, 0.4, 0.3], "cpus": 2}
resource_problems:
  description: Why space was (or would be) freed first; empty when resources are fine.
  returned: always
  type: list
  elements: str
  sample: ["disk / at 97% (above 95%)"]
report_file:
  description: The evidence file (in check mode, the one a real run would write); null when nothing was down.
  returned: always
  type: str
  sample: /var/lib/runbook-ops/service-down/service-down-shop-20261202T031502Z.log
report_error:
  description: Why the evidence file could not be written (a full disk), else null.
  returned: always
  type: str
  sample: null
elapsed_seconds:
  description: How long the run took.
  returned: always
  type: float
  sample: 12.4
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.ops.plugins.module_utils._ansible import run_core
from ansible_collections.runbook.ops.plugins.module_utils._ops.service_down import recover_service


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_src=dict(type="path", required=True),
            files=dict(type="list", elements="path"),
            project_name=dict(type="str"),
            services=dict(type="list", elements="str"),
            endpoints=dict(type="list", elements="dict", default=[]),
            wait_seconds=dict(type="int", default=30),
            stack_wait_seconds=dict(type="int", default=60),
            budget_minutes=dict(type="float", default=15),
            log_lines=dict(type="int", default=200),
            report_dir=dict(type="path", default="/var/lib/runbook-ops/service-down"),
            disk_paths=dict(type="list", elements="path", default=["/"]),
            disk_crit_percent=dict(type="int", default=95),
            memory_min_bytes=dict(type="int", default=104857600),
            cleanup_until=dict(type="str", default="168h"),
            compose_command=dict(type="list", elements="str"),
            docker_host=dict(type="str"),
            state_dir=dict(type="path", default="/var/lib/runbook-ops"),
        ),
        supports_check_mode=True,
    )
    result = run_core(module, recover_service, check_mode=module.check_mode, **module.params)
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
