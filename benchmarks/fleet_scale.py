# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller CPU and wall time of the playbooks on 1, 20 and 50 container hosts (#21).

    . scripts/dev-env.sh && python benchmarks/fleet_scale.py [--sizes 1,20,50] [--only check-forced,run]

Starts ``runbook-ops-scale-bench-1..N`` from ``RUNBOOK_OPS_TEST_IMAGE`` on the main engine
(the hosts of tests/integration/test_fleet_scale.py: docker connection, 25 forks,
pipelining, no fact gathering beyond what provision.yml needs) and times, for each size:

- ``check-forced``: ``emergency_disk.yml --check`` forced with a 1% target, every step previewed;
- ``check``: ``emergency_disk.yml --check`` as an operator runs it on healthy hosts;
- ``run``: ``emergency_disk.yml`` for real, not forced: on hosts below the critical threshold
  it only measures and reports (refused when the engine's disk is at 80% or more); the
  hosts have no Docker engine, and Telegram points at a closed port with no network anyway;
- ``provision-again``: a second ``provision.yml`` (the first one, on every host, is untimed).

The controller's CPU is user+sys of the ``ansible-playbook`` process tree (its workers and
their ``docker exec`` clients): ``getrusage(RUSAGE_CHILDREN)`` before and after the run.
Host-tasks are ok+changed+skipped+failed summed over the recap. "CPU per extra host" is
(cpu_N - cpu_1) / (N - 1), compared with the #21 baseline of 0.73 s and its goal of 0.25 s.
The containers are removed at the end, always.

Measured 2026-12-02 12:50 UTC after the #21 changes (Debian 12, 2 cores, dockerd 20.10,
ansible-core 2.19.14, Python 3.11), ``--sizes 1,20,50 --repeat 2`` (the least of two), the
hosts' own work on the same two cores (load average 9-20 during the runs, mostly the 50
containers themselves):

| workload | hosts | wall (s) | controller CPU (s) | CPU per host-task (ms) | CPU per extra host (s) |
|---|---:|---:|---:|---:|---:|
| check-forced | 1 | 1.6 | 1.31 | 437 | - |
| check-forced | 20 | 7.8 | 4.91 | 82 | 0.190 |
| check-forced | 50 | 20.3 | 12.96 | 86 | 0.238 |
| check | 1 | 1.7 | 1.38 | 460 | - |
| check | 20 | 9.0 | 5.79 | 97 | 0.232 |
| check | 50 | 17.0 | 10.93 | 73 | 0.195 |
| run | 1 | 1.4 | 1.14 | 380 | - |
| run | 20 | 6.7 | 4.40 | 73 | 0.172 |
| run | 50 | 17.1 | 10.92 | 73 | 0.200 |

Every emergency workload costs the controller 0.17-0.24 s of CPU per extra host: at or below
the 0.25 s goal, against the 0.73 s baseline (3-4x less). A healthy host runs three tasks
(the settings check, skipped; the module; the table) and ends on a meta task the controller
judges itself. Before the last step (six tasks per host) the same run gave 0.24-0.33 s;
before #21 item 1 (a dozen tasks), 0.59-0.70 s under load.

A second provision.yml, ``--only provision-again --sizes 1,20`` at 13:10-13:28 UTC beside a
full CI run (load average 12-26; the untimed first run on 20 hosts took 473.7 s):

| workload | hosts | wall (s) | controller CPU (s) | host-tasks | CPU per host-task (ms) | CPU per extra host (s) |
|---|---:|---:|---:|---:|---:|---:|
| provision-again | 1 | 65.1 | 10.15 | 90 | 113 | - |
| provision-again | 20 | 353.7 | 138.56 | 1800 | 77 | 6.76 |

Twenty hosts take 5.4x one host (the issue measured 10.8x before item 2 cut provision from 103
to 90 host-tasks and turned pipelining on for the docker connection): about 75 ms of controller
CPU per host-task, so provision's cost is its number of tasks. 50 hosts of provision did not fit
the session.

Mitogen for Ansible was measured with the same script: benchmarks/mitogen.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile

for _tests_dir in ("integration", "harness"):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "tests", _tests_dir))

# its own container names, so it can run beside the scale test
os.environ.setdefault("RUNBOOK_OPS_FLEET_PREFIX", "runbook-ops-scale-bench-")

import test_fleet_scale as fleet  # noqa: E402
from container_hosts import docker, remove_hosts, start_fleet, write_fleet_inventory  # noqa: E402

BASELINE, GOAL = 0.73, 0.25  # controller CPU seconds per extra host (#21)
# name: (playbook, extra vars, --check)
WORKLOADS = {
    "check-forced": ("emergency_disk.yml", fleet.EMERGENCY_CHECK_VARS, True),
    "check": ("emergency_disk.yml", None, True),
    "run": ("emergency_disk.yml", None, False),
    "provision-again": ("provision.yml", None, False),
}


def timed_run(playbook, inventory, extra_vars, check):
    """One ansible-playbook run; returns (wall s, controller CPU s, host-tasks, recap)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    rc, output, seconds, recap = fleet.run_playbook(playbook, inventory, extra_vars, check=check)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    bad = [h for h, r in recap.items() if r["failed"] or r["unreachable"]]
    if rc != 0 or bad or not recap:
        print(output[-4000:], file=sys.stderr)
        raise SystemExit("%s failed (rc %d) on %s" % (playbook, rc, bad or "no recap"))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tasks = sum(r["ok"] + r["changed"] + r["skipped"] + r["failed"] for r in recap.values())
    return seconds, cpu, tasks, recap


def use_ansible(bin_dir, strategy):
    """Run another venv's ansible-playbook, optionally with Mitogen's strategy plugins."""
    if bin_dir:
        fleet.ANSIBLE_PLAYBOOK = os.path.join(bin_dir, "ansible-playbook")
    if strategy:
        python = os.path.join(os.path.dirname(fleet.ANSIBLE_PLAYBOOK), "python")
        code = "import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))"
        package = fleet.subprocess.run([python, "-c", code], capture_output=True, text=True,
                                       check=True).stdout.strip()
        fleet.FLEET_ENV["ANSIBLE_STRATEGY_PLUGINS"] = os.path.join(package, "plugins", "strategy")
        fleet.FLEET_ENV["ANSIBLE_STRATEGY"] = strategy


def check_disk_is_healthy():
    """The real run must only measure: refuse it when the hosts' disk is nearly critical."""
    root = docker("info", "--format", "{{.DockerRootDir}}").stdout.strip()
    usage = shutil.disk_usage(root)
    percent = 100.0 * usage.used / usage.total
    if percent >= 80:
        raise SystemExit("%s is at %.0f%%: the real emergency run would act; use --only" % (root, percent))


def measure(names, workloads, sizes, tmp, connection=None, repeat=1):
    """{workload: [(size, wall, cpu, host-tasks)]} (the least of ``repeat`` runs), emergency runs first, on fresh hosts."""
    results = {}
    host_vars = {name: {"ansible_connection": connection} for name in names} if connection else None
    inventories = {size: write_fleet_inventory(os.path.join(tmp, "hosts-%d.yml" % size), names[:size], host_vars)
                   for size in sizes}
    # warm-up: Python's caches on the control node and in the image's layers
    timed_run("emergency_disk.yml", inventories[sizes[0]], fleet.EMERGENCY_CHECK_VARS, True)
    for name in workloads:
        playbook, extra_vars, check = WORKLOADS[name]
        if name == "provision-again":
            seconds = timed_run(playbook, inventories[sizes[-1]], None, False)[0]
            print("provision.yml first run on %d hosts (untimed setup): %.1f s" % (sizes[-1], seconds), flush=True)
        rows = results[name] = []
        for size in sizes:
            runs = [timed_run(playbook, inventories[size], extra_vars, check) for _run in range(repeat)]
            if any(len(run[3]) != size for run in runs):
                raise SystemExit("%s: not %d hosts in the recap" % (name, size))
            seconds, cpu, tasks = min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2]
            rows.append((size, seconds, cpu, tasks))
            print("%-15s %3d hosts: %6.1f s wall, %6.2f s CPU, %4d host-tasks, load %.1f"
                  % (name, size, seconds, cpu, tasks, os.getloadavg()[0]), flush=True)
    return results


def table(name, rows):
    """A markdown table of one workload's rows."""
    playbook, extra_vars, check = WORKLOADS[name]
    lines = ["%s: `%s%s`%s" % (name, playbook, " --check" if check else "",
                               " -e '%s'" % json.dumps(extra_vars) if extra_vars else ""), "",
             "| hosts | wall (s) | controller CPU (s) | CPU per host (s) | host-tasks | CPU per host-task (ms) "
             "| CPU per extra host (s) |",
             "|------:|---------:|-------------------:|-----------------:|-----------:|-----------------------:"
             "|-----------------------:|"]
    cpu_1 = rows[0][2] if rows[0][0] == 1 else None
    for size, seconds, cpu, tasks in rows:
        extra = "%.3f" % ((cpu - cpu_1) / (size - 1)) if cpu_1 is not None and size > 1 else "-"
        lines.append("| %5d | %8.1f | %18.2f | %16.3f | %10d | %22.1f | %22s |"
                     % (size, seconds, cpu, cpu / size, tasks, 1000 * cpu / tasks, extra))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,20,50", help="fleet sizes, comma-separated (include 1)")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="workloads, comma-separated: %s" % ", ".join(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=1, help="runs per size and workload (the least wall and CPU count)")
    parser.add_argument("--ansible-bin", help="another venv's bin directory (e.g. one with Mitogen)")
    parser.add_argument("--strategy", help="a Mitogen strategy from that venv, e.g. mitogen_linear")
    parser.add_argument("--connection", help="the hosts' connection instead of community.docker.docker (Mitogen: docker)")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    workloads = [w for w in WORKLOADS if w in args.only.split(",")]
    if not workloads:
        parser.error("--only names none of: %s" % ", ".join(WORKLOADS))
    use_ansible(args.ansible_bin, args.strategy)
    if "run" in workloads:
        check_disk_is_healthy()
    names = start_fleet(sizes[-1])
    try:
        with tempfile.TemporaryDirectory(prefix="rbo-fleet-bench-") as tmp:
            results = measure(names, workloads, sizes, tmp, args.connection, args.repeat)
    finally:
        remove_hosts(names)
    print("\nansible-playbook: %s, strategy %s, connection %s" % (
        fleet.ANSIBLE_PLAYBOOK, args.strategy or "linear", args.connection or "community.docker.docker"))
    for name, rows in results.items():
        print("\n" + table(name, rows))
    print("\nCPU per extra host: #21 baseline %.2f s, goal <= %.2f s" % (BASELINE, GOAL))
    print("load average at the end: %s (others' jobs share this machine)"
          % " ".join("%.2f" % x for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
