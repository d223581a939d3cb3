# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A second, throw-away Docker engine for tests that prune, remove or fill disks.

``start_isolated_engine(name)`` starts a dockerd with its own data root, exec root,
pidfile, socket, containerd namespace and bridge, so nothing it does reaches the main
engine on /var/run/docker.sock. ``IsolatedEngine.stop()`` kills it and removes every
trace (processes started under its directory, the bridge, mounts, directories).

Never start a second dockerd with ``--bridge none``: on 20.10 that deletes the main
engine's ``docker0`` (see /work/shared/harness-notes.md). The bridge is created here
first with ``ip link add`` and handed over with ``-b``.

Slots: each engine takes a slot N (1..250) by creating ``/tmp/rbo-eng/slots/N``
atomically; N gives the bridge name ``rboeN`` and the subnet ``172.31.N.1/24``. A slot
whose owner process is gone is reclaimed, so concurrent test runs do not collide.

Engines: ``ENGINES`` names what runs. ``"20.10"`` is the machine's own dockerd
(Debian 12, API 1.41). ``"26"`` is Debian 13's dockerd 26 (API 1.45), run by chroot
from the trixie root filesystem that ``scripts/build-test-engine-rootfs`` builds once
and caches: each engine mounts it read-only under an overlay at ``DIR/root``, binds
``DIR`` onto the same path inside (so socket, data root and exec root have the same
paths on both sides, and the data root can be measured from here) and rbinds
``/proc``, ``/sys`` and ``/dev`` (all made private, so unmounting them never reaches
the host's). The overlay is the mount point a container start needs at the root.
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import time

BASE_DIR = "/tmp/rbo-eng"
SLOTS_DIR = os.path.join(BASE_DIR, "slots")
DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
START_TIMEOUT = 60
ENGINES = ("20.10", "26")
ROOTFS_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "scripts", "build-test-engine-rootfs")
_ROOTFS = {}


def _run(argv, check=True):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), proc.returncode,
                                                   proc.stderr.strip()))
    return proc


def _earlier(stamp, seconds):
    """An RFC 3339 time as dockerd writes it, ``seconds`` earlier (the zero time stays)."""
    if not stamp or stamp.startswith("0001-"):
        return stamp
    whole, _dot, rest = stamp.rstrip("Z").partition(".")
    fraction = float("0." + rest) if rest else 0.0
    when = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=fraction - seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _subnets_in_use():
    out = _run(["ip", "-o", "-4", "addr", "show"], check=False).stdout
    return set(int(m) for m in re.findall(r"inet 172\.31\.(\d+)\.", out))


def _mounts_under(path):
    """Mount points at or below ``path``, deepest first (from /proc/self/mountinfo)."""
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].replace("\\040", " ")
            if point == path or point.startswith(path + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def _pids_referring_to(path):
    """Processes whose command line names ``path`` (containerd, shims left behind)."""
    pids = []
    needle = (path.rstrip("/") + "/").encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as fh:
                if needle in fh.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def _unmount_all(path):
    for _round in range(3):
        points = _mounts_under(path)
        if not points:
            return
        for point in points:
            if _run(["umount", point], check=False).returncode != 0:
                _run(["umount", "-l", point], check=False)


def _network_bridges(path):
    """Host bridges of the user-defined networks of the engine whose socket is in ``path``.

    dockerd keeps them when it stops (they outlive restarts by design), and each holds a
    subnet from the host-wide default pools: leaked, they soon leave no pool for any
    engine, the main one included. Empty when the daemon does not answer.
    """
    sock = os.path.join(path, "docker.sock")
    if not os.path.exists(sock):
        return []
    try:
        import docker

        api = docker.APIClient(base_url="unix://" + sock, timeout=10)
        try:
            networks = api.networks()
        finally:
            api.close()
    except Exception:  # noqa: BLE001 - dead daemon: nothing to learn
        return []
    out = []
    for net in networks:
        if net.get("Driver") != "bridge" or net.get("Name") == "bridge":
            continue
        name = (net.get("Options") or {}).get("com.docker.network.bridge.name")
        out.append(name or "br-" + net["Id"][:12])
    return out


def _teardown_dir(path, bridge):
    """Kill what runs under ``path``, unmount it, drop its bridges and the directory."""
    bridges = _network_bridges(path)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _pids_referring_to(path)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _pid_alive(p)]
            time.sleep(0.1)
    _unmount_all(path)
    for name in bridges + [bridge]:
        if name and os.path.exists("/sys/class/net/%s" % name):
            _run(["ip", "link", "del", name], check=False)
    left = _mounts_under(path)
    if left:
        # never delete through a mount: under DIR/root that would be the host's /dev
        raise RuntimeError("isolated engine %s: still mounted, not removed: %s"
                           % (path, ", ".join(left)))
    shutil.rmtree(path, ignore_errors=True)


def _claim_slot():
    """Take a free slot number; reclaim slots whose owner is dead."""
    os.makedirs(SLOTS_DIR, exist_ok=True)
    in_use = _subnets_in_use()
    for n in range(1, 251):
        slot = os.path.join(SLOTS_DIR, str(n))
        if os.path.isdir(slot):
            try:
                with open(os.path.join(slot, "owner")) as fh:
                    owner = int(fh.read().strip() or 0)
            except (OSError, ValueError):
                owner = 0
            if owner and _pid_alive(owner):
                continue
            if owner == 0 and time.time() - os.path.getmtime(slot) < 30:
                continue  # being claimed right now
            _reclaim_slot(n)
        if n in in_use:
            continue
        try:
            os.mkdir(slot)
        except FileExistsError:
            continue
        with open(os.path.join(slot, "owner"), "w") as fh:
            fh.write(str(os.getpid()))
        return n
    raise RuntimeError("no free isolated-engine slot under %s" % SLOTS_DIR)


def _reclaim_slot(n):
    slot = os.path.join(SLOTS_DIR, str(n))
    try:
        with open(os.path.join(slot, "dir")) as fh:
            engine_dir = fh.read().strip()
    except OSError:
        engine_dir = ""
    if engine_dir.startswith(BASE_DIR + "/"):
        _teardown_dir(engine_dir, "rboe%d" % n)
    elif os.path.exists("/sys/class/net/rboe%d" % n):
        _run(["ip", "link", "del", "rboe%d" % n], check=False)
    shutil.rmtree(slot, ignore_errors=True)


class IsolatedEngine:
    """A running isolated dockerd. Use ``.host``/``.env``/``.client()``; ``.stop()`` ends it."""

    def __init__(self, name, slot, directory, data_root_size, version="20.10",
                 log_level="warn", tcp=False, config_file=None):
        self.name = name
        self.slot = slot
        self.version = version
        self.dir = directory
        self.root = os.path.join(directory, "root") if version != "20.10" else None
        self.bridge = "rboe%d" % slot
        self.subnet = "172.31.%d.0/24" % slot
        self.bridge_ip = "172.31.%d.1" % slot
        self.data_root = os.path.join(directory, "data")
        self.exec_root = os.path.join(directory, "exec")
        self.pidfile = os.path.join(directory, "docker.pid")
        self.socket = os.path.join(directory, "docker.sock")
        self.log_path = os.path.join(directory, "dockerd.log")
        self.host = "unix://" + self.socket
        self.env = {"DOCKER_HOST": self.host}
        self.data_root_size = data_root_size
        self.config_file = config_file
        self.log_level = log_level
        # a "remote" engine: also on loopback TCP, where its data root is not visible
        self.tcp_host = "tcp://127.0.0.1:%d" % (23750 + slot) if tcp else None
        self.proc = None
        self._stopped = False

    def client(self, **kwargs):
        """A ``docker.DockerClient`` talking to this engine."""
        import docker

        kwargs.setdefault("timeout", 120)
        return docker.DockerClient(base_url=self.host, **kwargs)

    def api(self, **kwargs):
        """A low-level ``docker.APIClient`` talking to this engine."""
        import docker

        kwargs.setdefault("timeout", 120)
        return docker.APIClient(base_url=self.host, **kwargs)

    def docker_cli(self, *args, check=True, env=None, cli="/usr/bin/docker"):
        """Run Debian's docker client (20.10) against this engine; returns CompletedProcess."""
        full_env = dict(os.environ)
        full_env.update(self.env)
        full_env.update(env or {})
        proc = subprocess.run([cli] + list(args), capture_output=True, text=True, env=full_env, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError("docker %s failed (%d): %s" % (" ".join(args), proc.returncode,
                                                              proc.stderr.strip()))
        return proc

    def api_calls(self):
        """``["GET /v1.41/system/df", ...]``: the API calls the engine logged so far
        (only with ``log_level="debug"``, where dockerd logs each one)."""
        calls = []
        try:
            with open(self.log_path, errors="replace") as fh:
                for line in fh:
                    match = re.search(r'msg="Calling ([A-Z]+ [^"]+)"', line)
                    if match:
                        calls.append(match.group(1))
        except OSError:
            pass
        return calls

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return ""

    def _start(self):
        os.makedirs(self.data_root)
        os.makedirs(self.exec_root)
        if self.data_root_size:
            _run(["mount", "-t", "tmpfs", "-o", "size=%s" % self.data_root_size,
                  "rbo-eng-%d" % self.slot, self.data_root])
        if os.path.exists("/sys/class/net/%s" % self.bridge):
            _run(["ip", "link", "del", self.bridge], check=False)
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", self.bridge_ip + "/24", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        self._prefix = [] if self.root is None else self._mount_root()
        self._launch()

    def _launch(self):
        """Start dockerd on this engine's directories and wait until it answers."""
        argv = self._prefix + [DOCKERD if self.root is None else "/usr/sbin/dockerd"]
        argv += [
            "--data-root", self.data_root,
            "--exec-root", self.exec_root,
            "--pidfile", self.pidfile,
            "-H", self.host,
            "-b", self.bridge,
            "--iptables=false", "--ip-masq=false", "--ip-forward=false",
            "--containerd-namespace", "rbo-eng-%d" % self.slot,
            "--containerd-plugins-namespace", "rbo-eng-%d-plugins" % self.slot,
            "--storage-driver", "overlay2",
            "--shutdown-timeout", "2",
            "--log-level", self.log_level]
        if self.tcp_host:
            argv += ["-H", self.tcp_host, "--tls=false"]
        if self.config_file:
            argv += ["--config-file", self.config_file]
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        last_error = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("isolated dockerd %s exited with %s:\n%s"
                                   % (self.name, self.proc.returncode, self.log_tail()))
            if os.path.exists(self.socket):
                try:
                    api = self.api(timeout=5)
                    try:
                        api.ping()
                        api.info()
                        return
                    finally:
                        api.close()
                except Exception as exc:  # noqa: BLE001 - still starting
                    last_error = exc
            time.sleep(0.2)
        raise RuntimeError("isolated dockerd %s did not answer within %d s (%s):\n%s"
                           % (self.name, START_TIMEOUT, last_error, self.log_tail()))

    def _mount_root(self):
        """Mount the cached trixie tree at ``self.root`` (see the module docstring);
        returns the command prefix that runs a program inside it."""
        lower = engine_rootfs(self.version)
        upper, work = os.path.join(self.dir, "root-upper"), os.path.join(self.dir, "root-work")
        for path in (self.root, upper, work):
            os.makedirs(path)
        _run(["mount", "-t", "overlay", "rbo-eng-root-%d" % self.slot, "-o",
              "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work), self.root])
        _run(["mount", "--make-private", self.root])
        inside = os.path.join(self.root, self.dir.lstrip("/"))
        os.makedirs(inside)
        _run(["mount", "--bind", self.dir, inside])
        _run(["mount", "--bind", self.data_root, os.path.join(inside, "data")])  # a tmpfs too
        for fs in ("proc", "sys", "dev"):
            _run(["mount", "--rbind", "/" + fs, os.path.join(self.root, fs)])
        _run(["mount", "--make-rprivate", self.root])
        return ["chroot", self.root]

    def restart(self, config_file=None, while_stopped=None):
        """Stop dockerd and start it again on ``config_file`` (``None``: none), keeping the data
        root, so images stay. ``while_stopped`` (a callable) runs between the two, on the
        data root of a stopped daemon. Raises ``RuntimeError`` with dockerd's last log lines
        when it does not start; the engine can then be restarted again, and ``stop()`` still
        cleans up."""
        if self.proc is not None and self.proc.poll() is None:
            self._kill_containers()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if while_stopped is not None:
            while_stopped()
        with open(self.log_path, "ab") as log:
            log.write(b"--- restart ---\n")
        self.config_file = config_file
        self._launch()

    def backdate_containers(self, seconds_by_name):
        """Make containers look created, started and stopped ``seconds`` earlier than they
        were (``{name: seconds}``): dockerd stops (running containers are killed first, so
        every container ends up stopped), each one's ``Created``, ``State.StartedAt`` and
        ``State.FinishedAt`` in ``config.v2.json`` move back, and dockerd starts again and
        reads them as its own records. Times that were never set stay unset."""
        api = self.api(timeout=30)
        try:
            ids = dict((name, api.inspect_container(name)["Id"]) for name in seconds_by_name)
        finally:
            api.close()

        def rewrite():
            for name, seconds in seconds_by_name.items():
                path = os.path.join(self.data_root, "containers", ids[name], "config.v2.json")
                with open(path) as fh:
                    config = json.load(fh)
                config["Created"] = _earlier(config["Created"], seconds)
                for key in ("StartedAt", "FinishedAt"):
                    config["State"][key] = _earlier(config["State"][key], seconds)
                with open(path, "w") as fh:
                    json.dump(config, fh)

        self.restart(config_file=self.config_file, while_stopped=rewrite)

    def _kill_containers(self):
        """SIGKILL running containers first: dockerd then shuts down without waiting."""
        try:
            api = self.api(timeout=10)
            try:
                for ctr in api.containers(quiet=True):
                    try:
                        api.kill(ctr["Id"])
                    except Exception:  # noqa: BLE001 - already gone
                        pass
            finally:
                api.close()
        except Exception:  # noqa: BLE001 - a dead daemon is fine here
            pass

    def stop(self):
        """Stop dockerd, kill leftovers, remove the bridge, unmount, remove the directory."""
        if self._stopped:
            return
        self._stopped = True
        try:
            bridges = _network_bridges(self.dir)
            if self.proc is not None and self.proc.poll() is None:
                self._kill_containers()
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            _teardown_dir(self.dir, self.bridge)
            for name in bridges:
                if os.path.exists("/sys/class/net/%s" % name):
                    _run(["ip", "link", "del", name], check=False)
        finally:
            shutil.rmtree(os.path.join(SLOTS_DIR, str(self.slot)), ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return "IsolatedEngine(%r, host=%r)" % (self.name, self.host)


def engine_rootfs(version):
    """The cached root filesystem of Docker ``version`` (``"26"``), built on first use."""
    if version not in _ROOTFS:
        if version != "26":
            raise ValueError("no root filesystem for Docker %r; engines: %s"
                             % (version, ", ".join(ENGINES)))
        proc = _run([ROOTFS_SCRIPT])
        _ROOTFS[version] = proc.stdout.strip().splitlines()[-1]
    return _ROOTFS[version]


def start_isolated_engine(name, data_root_size=None, version="20.10", log_level="warn",
                          tcp=False, config_file=None):
    """Start an isolated dockerd and wait until it answers.

    ``name``: a short label (letters, digits, ``-``/``_``) used in the directory name.
    ``data_root_size``: e.g. ``"300m"`` puts the data root on a tmpfs of that size (for
    disk-full scenarios); ``None`` keeps it on the disk under /tmp.
    ``version``: one of ``ENGINES`` (``"26"`` is Debian 13's engine, from its rootfs).
    ``log_level``: dockerd's; ``"debug"`` logs every API call (``IsolatedEngine.api_calls``).
    ``tcp``: also listen on ``IsolatedEngine.tcp_host`` (loopback, no TLS), to play a
    remote engine.
    ``config_file``: a daemon.json for ``--config-file`` (it must not repeat the settings
    given as flags here: data-root, exec-root, pidfile, hosts, bridge, iptables, ...).
    Returns an ``IsolatedEngine``; on any failure everything started is torn down first.
    """
    if version not in ENGINES:
        raise ValueError("version %r: engines are %s" % (version, ", ".join(ENGINES)))
    if version != "20.10":
        engine_rootfs(version)  # build (minutes, once) before taking a slot
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", name)[:24] or "engine"
    slot = _claim_slot()
    directory = os.path.join(BASE_DIR, "%s-%d" % (safe, slot))
    slot_dir = os.path.join(SLOTS_DIR, str(slot))
    try:
        if os.path.exists(directory):
            _teardown_dir(directory, "rboe%d" % slot)
        os.makedirs(directory)
        with open(os.path.join(slot_dir, "dir"), "w") as fh:
            fh.write(directory)
        engine = IsolatedEngine(safe, slot, directory, data_root_size, version, log_level, tcp,
                                config_file)
    except BaseException:
        shutil.rmtree(slot_dir, ignore_errors=True)
        raise
    try:
        engine._start()
    except BaseException:
        engine.stop()
        raise
    atexit.register(engine.stop)  # a crashed script still leaves nothing behind
    return engine


# --- pytest fixtures (registered by tests/conftest.py) ---------------------------------

try:
    import pytest
except ImportError:  # the harness is also usable from plain scripts (benchmarks/)
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session")
    def isolated_engine():
        """One isolated engine (data root on disk) shared by the whole test session."""
        engine = start_isolated_engine("session")
        try:
            yield engine
        finally:
            engine.stop()

    @pytest.fixture
    def isolated_engine_factory():
        """``factory(name, data_root_size=None, version="20.10", log_level="warn",
        tcp=False, config_file=None)`` -> a fresh engine, stopped after the test."""
        engines = []

        def factory(name="test", data_root_size=None, version="20.10", log_level="warn",
                    tcp=False, config_file=None):
            engine = start_isolated_engine(name, data_root_size=data_root_size,
                                           version=version, log_level=log_level, tcp=tcp,
                                           config_file=config_file)
            engines.append(engine)
            return engine

        try:
            yield factory
        finally:
            for engine in reversed(engines):
                engine.stop()


# --- command line: an engine that outlives its starter (Molecule scenarios) -------------

def _container_exists(name):
    """Whether the main engine still has container ``name`` (a read-only inspect)."""
    import docker

    api = docker.APIClient(base_url="unix:///var/run/docker.sock", timeout=10)
    try:
        api.inspect_container(name)
        return True
    except docker.errors.NotFound:
        return False
    except Exception:  # noqa: BLE001 - main engine busy: assume it is still there
        return True
    finally:
        api.close()


def serve(name, state_file, watch_container=None, max_seconds=1800, data_root_size=None,
          version="20.10"):
    """Start an engine (``version``: one of ``ENGINES``), write ``state_file`` (JSON: host, dir, data_root, pid), keep it
    until the file is removed, ``watch_container`` (on the main engine) is gone after
    having existed, ``max_seconds`` pass, or SIGTERM/SIGINT arrives; then stop it."""
    import json

    engine = start_isolated_engine(name, data_root_size=data_root_size, version=version)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    try:
        tmp = state_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"host": engine.host, "dir": engine.dir, "data_root": engine.data_root,
                       "socket": engine.socket, "pid": os.getpid()}, fh)
        os.rename(tmp, state_file)
        deadline = time.monotonic() + max_seconds
        seen = False
        while not stop and time.monotonic() < deadline and os.path.exists(state_file):
            if watch_container:
                exists = _container_exists(watch_container)
                if seen and not exists:
                    break
                seen = seen or exists
            time.sleep(3)
    finally:
        engine.stop()
        if os.path.exists(state_file):
            os.unlink(state_file)


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description="isolated Docker engine for tests")
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("serve", help="start an engine and keep it until told to stop")
    srv.add_argument("name")
    srv.add_argument("--state-file", required=True)
    srv.add_argument("--watch-container", help="stop once this main-engine container is gone")
    srv.add_argument("--max-seconds", type=float, default=1800)
    srv.add_argument("--data-root-size")
    srv.add_argument("--version", default="20.10", choices=ENGINES)
    stp = sub.add_parser("stop", help="stop an engine started by serve")
    stp.add_argument("--state-file", required=True)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.name, args.state_file, args.watch_container, args.max_seconds,
              args.data_root_size, args.version)
    else:
        import json

        try:
            with open(args.state_file) as fh:
                pid = json.load(fh)["pid"]
        except (OSError, ValueError, KeyError):
            return 0
        os.unlink(args.state_file)
        for _attempt in range(200):
            if not _pid_alive(pid):
                break
            time.sleep(0.1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
