# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CPU cost of one health monitor run: ``runbook-ops health-check`` with 5 endpoints.

Lays the core out as the base role does on a host (``<tmp>/lib/runbook_ops/*.py`` and a
``#!/usr/bin/python3`` launcher), serves 5 healthy endpoints from this process on
127.0.0.1, then runs the CLI N times with the host's ``/usr/bin/python3`` and reads the
children's CPU time (user + system) from ``resource.getrusage(RUSAGE_CHILDREN)``. The
endpoint server's own CPU is this process's, so it is not counted.

Prints ms of CPU per run for: the bare interpreter (``python3 -c pass``), the check
alone, and the check as cron runs it (through ``runbook-ops run --job``). The CLI imports
only the module of the subcommand it runs. The target is under 100 ms per run for the check. CPU time grows on a busy machine (cold
caches), so the load average is printed with the figures.

    /usr/bin/python3 benchmarks/health_monitor_cpu.py [--runs 50] [--endpoints 5]

Figures: see the README's benchmark section (latest run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CORE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins", "module_utils",
                    "_ops")
PYTHON = "/usr/bin/python3"


class _Healthy(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        return

    def do_GET(self):  # noqa: N802
        body = b'{"status": "healthy"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def host_layout(root):
    """The base role's layout under ``root``; returns the launcher's path."""
    package = os.path.join(root, "lib", "runbook_ops")
    os.makedirs(package)
    for name in os.listdir(CORE):
        if name.endswith(".py"):
            shutil.copy(os.path.join(CORE, name), package)
    launcher = os.path.join(root, "runbook-ops")
    with open(launcher, "w") as handle:
        handle.write("#!%s\nimport sys\nsys.path.insert(0, %r)\nfrom runbook_ops.cli import main\n"
                     "sys.exit(main())\n" % (PYTHON, os.path.join(root, "lib")))
    os.chmod(launcher, 0o755)
    return launcher


def cpu_ms_per_run(argv, runs):
    """Children's user+system CPU per run of ``argv``, in ms (each run must exit 0)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _run in range(runs):
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        if done.returncode != 0:
            raise SystemExit("%s exited %d: %s" % (" ".join(argv[:3]), done.returncode,
                                                   done.stderr.decode()[-400:]))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used * 1000.0 / runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--endpoints", type=int, default=5)
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/health/" % server.server_address[1]

    root = tempfile.mkdtemp(prefix="rbo-health-bench-")
    try:
        launcher = host_layout(root)
        runtime = os.path.join(root, "runtime.json")
        with open(runtime, "w") as handle:  # no chat id: alerts are decided, never sent
            json.dump({"host_label": "bench", "state_dir": os.path.join(root, "state"),
                       "log_dir": root}, handle)
        config = os.path.join(root, "health-monitor.json")
        with open(config, "w") as handle:
            json.dump({"endpoints": [{"name": "ep%d" % i, "url": url, "host_header": "app.example",
                                      "expected_text": "healthy"}
                                     for i in range(args.endpoints)]}, handle)
        check = [launcher, "--runtime", runtime, "health-check", "--config", config]
        wrapped = [launcher, "--runtime", runtime, "run", "--job", "health-monitor", "--"] + check

        cpu_ms_per_run(check, 3)  # warm the page cache and write the .pyc files
        bare = cpu_ms_per_run([PYTHON, "-c", "pass"], args.runs)
        alone = cpu_ms_per_run(check, args.runs)
        through = cpu_ms_per_run(wrapped, args.runs)
    finally:
        server.shutdown()
        shutil.rmtree(root, ignore_errors=True)

    print("health monitor CPU per run (%s, %d runs, %d endpoints on loopback, %d CPUs, "
          "load average %.1f):" % (PYTHON, args.runs, args.endpoints, os.cpu_count() or 0,
                                   os.getloadavg()[0]))
    print("  python3 -c pass                               %6.1f ms" % bare)
    print("  runbook-ops health-check                      %6.1f ms   (target < 100 ms)" % alone)
    print("  through runbook-ops run --job (as cron)       %6.1f ms" % through)
    return 0 if alone < 100 else 1


if __name__ == "__main__":
    sys.exit(main())
