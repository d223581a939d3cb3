# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check a dockerd configuration file (daemon.json) before it lands and dockerd restarts.

dockerd refuses to start on a daemon.json whose log settings it cannot take, and on one
that repeats a setting its command line already gives (``--log-opt`` in Debian's
``DOCKER_OPTS``); it starts but fails every new container on options it only reads then
(``compress`` without ``max-file``, a bad ``tag`` template). ``dockerd --validate`` (Docker
23+) loads the file, nothing more. So:

* ``check_daemon_config``: the log settings, against the options of Docker's built-in
  drivers as dockerd checks them (``docker_logopts``), or, for a log driver plugin the user
  opted into, their shape only;
* ``check_daemon_keys``: every top-level key is one Docker 20.10 knows (for engines without
  ``--validate``; a typo in a key set by hand stops dockerd too);
* ``dockerd_flag_sources`` and ``check_flag_conflicts``: the flags the dockerd using this file
  runs with (``/proc/<pid>/cmdline`` of a running one, the docker.service unit's ExecStart
  with its EnvironmentFile and drop-ins) must not give what the file gives;
* ``validate_daemon_file`` runs them all on a file, then ``dockerd --validate`` with those
  flags where the engine has it.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil

from .docker_logopts import (COMMON_LOG_OPTS, DEFAULT_DRIVER, LOG_DRIVER_OPTS,
                             RETIRED_DRIVERS, log_options_problem)
from .errors import OpsError
from .runner import run_command
from .state import load_json

DEFAULT_CONFIG_PATH = "/etc/docker/daemon.json"
DOCKERD_CANDIDATES = ("/usr/bin/dockerd", "/usr/sbin/dockerd", "/usr/local/bin/dockerd")
VALIDATE_TIMEOUT = 60
ENGINES = "Docker 20.10 to 28"
# Every top-level key Docker 20.10's dockerd takes in daemon.json (its flag names, the names
# of options kept under another name, and the keys it skips), read from 20.10.24 and checked
# against its dockerd (tests/integration/test_docker_daemon.py).
DAEMON_JSON_KEYS_20_10 = frozenset("""
add-runtime allow-nondistributable-artifacts api-cors-header authorization-plugin
authorization-plugins bip bridge builder cgroup-parent cluster-advertise cluster-store
cluster-store-opt cluster-store-opts config-file containerd containerd-namespace
containerd-plugins-namespace cpu-rt-period cpu-rt-runtime cri-containerd data-root debug
default-address-pool default-address-pools default-cgroupns-mode default-gateway
default-gateway-v6 default-ipc-mode default-runtime default-shm-size default-ulimit
default-ulimits deprecated-key-path dns dns-opt dns-opts dns-search exec-opt exec-opts
exec-root experimental features fixed-cidr fixed-cidr-v6 graph group help host
host-gateway-ip hosts icc init init-path insecure-registries insecure-registry ip ip-forward
ip-masq ip6tables iptables ipv6 label labels live-restore log-driver log-level log-opt log-opts
max-concurrent-downloads max-concurrent-uploads max-download-attempts metrics-addr mtu
network-control-plane-mtu network-diagnostic-port no-new-privileges node-generic-resource
node-generic-resources oom-score-adjust pidfile raw-logs registry-mirror registry-mirrors
restart rootless runtimes seccomp-profile selinux-enabled shutdown-timeout storage-driver
storage-opt storage-opts swarm-default-advertise-addr tls tlscacert tlscert tlskey tlsverify
userland-proxy userland-proxy-path userns-remap version
""".split())
# dockerd flags whose daemon.json key has another name (the rest: the flag's long name).
FLAG_KEYS = {"H": "hosts", "host": "hosts", "D": "debug", "l": "log-level", "G": "group",
             "b": "bridge", "p": "pidfile", "s": "storage-driver", "g": "graph", "e": "exec-driver",
             "label": "labels", "log-opt": "log-opts", "storage-opt": "storage-opts",
             "dns-opt": "dns-opts", "exec-opt": "exec-opts", "registry-mirror": "registry-mirrors",
             "insecure-registry": "insecure-registries", "default-ulimit": "default-ulimits",
             "authorization-plugin": "authorization-plugins",
             "cluster-store-opt": "cluster-store-opts", "node-generic-resource": "node-generic-resources"}
# Flags that are no setting of the file (or that dockerd merges with it).
FLAGS_NOT_IN_FILE = ("config-file", "validate", "add-runtime", "help", "version")
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system",
             "/usr/lib/systemd/system")


# ---------------------------------------------------------------------------- the file


def check_daemon_config(config, where="daemon.json", host_files=True, plugin_driver=False):
    """Check the log settings of a parsed daemon.json; return ``(driver, opts)``.

    Raises ``OpsError`` with one line naming the first problem and what it would do
    (dockerd does not start, every new container fails, or an engine other than 20.10
    refuses it): not a JSON object, a ``log-driver`` dockerd does not have built in,
    ``log-opts`` not an object of strings, then ``docker_logopts.log_options_problem``.
    ``plugin_driver``: a driver that is no built-in one is taken as a log driver plugin
    (only the shape and dockerd's own options are checked; ``check_log_plugin`` looks for
    it). ``host_files``: also check files the options name on this host. A missing
    ``log-driver`` is dockerd's default, json-file. ``OpsError.details["refused_by"]``:
    ``"dockerd"``, ``"container"`` or ``None`` (see ``docker_logopts``).
    """
    if not isinstance(config, dict):
        raise OpsError("%s must hold a JSON object" % where)
    driver = config.get("log-driver", DEFAULT_DRIVER)
    opts = config.get("log-opts", {})
    builtin = isinstance(driver, str) and driver in LOG_DRIVER_OPTS
    if not builtin and not (plugin_driver and _plugin_name_ok(driver)):
        raise OpsError("%s: log-driver %r is not a built-in Docker log driver (%s); dockerd "
                       "would accept no container with it%s" % (
                           where, driver, ", ".join(sorted(set(LOG_DRIVER_OPTS) - set(RETIRED_DRIVERS))),
                           "" if plugin_driver else " (a log driver plugin needs the plugin "
                           "opt-in)"), refused_by="container")
    if not isinstance(opts, dict):
        raise OpsError("%s: log-opts must be an object of strings, not %r" % (where, opts),
                       refused_by="dockerd")
    for key in sorted(opts):
        _check_string(key, opts[key], where)
    problem = log_options_problem(driver, opts, host_files) if builtin else _plugin_problem(opts)
    if problem:
        text, refused_by = problem
        raise OpsError("%s: %s; %s" % (where, text, _consequence(refused_by, opts)),
                       refused_by=refused_by)
    return driver, dict(opts)


def _consequence(refused_by, opts):
    if refused_by == "dockerd" and opts:
        return "dockerd would refuse to start"
    if refused_by in ("dockerd", "container"):
        return "every new container would fail to start"
    return "refused so that every engine from %s takes the file" % ENGINES


def _check_string(key, value, where):
    if not isinstance(value, str):
        text = str(value).lower() if isinstance(value, bool) else str(value)
        raise OpsError("%s: log-opts %s must be a string (\"%s\"), not %s; dockerd would "
                       "refuse to start" % (where, key, text, json.dumps(value)), refused_by="dockerd")


def _plugin_name_ok(driver):
    """A plugin reference: ``name``, ``repo/name``, with an optional ``:tag``."""
    return isinstance(driver, str) and bool(re.match(r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?$", driver))


def _plugin_problem(opts):
    """A log driver plugin takes any keys; dockerd still reads its own (mode, buffer, cache)."""
    for key in opts:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", key):
            return "log-opts key %r is not an option name" % key, None
    return log_options_problem("json-file", dict(
        (key, value) for key, value in opts.items() if key in COMMON_LOG_OPTS))


def check_daemon_keys(config, where="daemon.json"):
    """Refuse a top-level key Docker 20.10's dockerd does not know (it would not start)."""
    unknown = sorted(key for key in config if key not in DAEMON_JSON_KEYS_20_10)
    if unknown:
        raise OpsError("%s: %s %s no dockerd setting (a typo?); dockerd would refuse to start "
                       "(\"the following directives don't match any configuration option\")" % (
                           where, ", ".join(unknown), "is" if len(unknown) == 1 else "are"),
                       refused_by="dockerd")


def check_log_plugin(driver, docker_host=None):
    """Refuse ``driver`` unless the engine has it as an enabled log driver plugin."""
    from .docker_api import connect

    api, where = connect(docker_host, timeout=30)
    try:
        plugins = api.plugins()
    finally:
        api.close()
    wanted = driver if ":" in driver.rsplit("/", 1)[-1] else driver + ":latest"
    found = [p for p in plugins or () if p.get("Name") in (driver, wanted)]
    types = [t.get("Capability") for p in found
             for t in ((p.get("Config") or {}).get("Interface") or {}).get("Types") or ()]
    if not found or "logdriver" not in types or not found[0].get("Enabled"):
        have = ", ".join(sorted(p.get("Name", "?") for p in plugins or ())) or "none"
        raise OpsError("log-driver %s is not an enabled log driver plugin of the engine at %s "
                       "(its plugins: %s); install it first (docker plugin install ...)"
                       % (driver, where, have), refused_by="container")


# ---------------------------------------------------------------------------- dockerd's flags


def dockerd_flag_sources(target=DEFAULT_CONFIG_PATH, proc="/proc", root="/"):
    """The flags of the dockerd that uses the daemon.json at ``target``.

    Returns ``[{"source", "argv"}]``: each running dockerd reading ``target``
    (``/proc/<pid>/cmdline``), and the docker.service unit's ExecStart with its
    EnvironmentFile and drop-ins (what a restart starts) when its dockerd reads ``target``.
    ``argv`` is the flags after the program. ``proc`` and ``root`` are for tests.
    """
    sources = []
    for pid, argv in _running_dockerds(proc):
        config = _config_file(argv[1:])
        if _same_file(os.path.join(proc, pid, "root") + _absolute(config, proc, pid), target):
            sources.append({"source": "the running dockerd (pid %s)" % pid, "argv": argv[1:]})
    unit = _unit_exec_start(root)
    if unit and _same_file(os.path.join(root, _config_file(unit["argv"]).lstrip("/")),
                           os.path.join(root, target.lstrip("/"))):
        sources.append({"source": unit["source"], "argv": unit["argv"]})
    return sources


def _running_dockerds(proc):
    for entry in sorted(os.listdir(proc)):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as handle:
                argv = [part.decode("utf-8", "replace") for part in handle.read().split(b"\0") if part]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == "dockerd":
            yield entry, argv


def _config_file(flags):
    value = DEFAULT_CONFIG_PATH
    for name, flag_value in _flag_items(flags):
        if name == "config-file":
            value = flag_value
    return value


def _absolute(path, proc, pid):
    if path.startswith("/"):
        return path
    try:
        return os.path.join(os.readlink(os.path.join(proc, pid, "cwd")), path)
    except OSError:
        return "/" + path


def _same_file(one, other):
    return os.path.realpath(one) == os.path.realpath(other)


def _unit_exec_start(root="/"):
    """docker.service's ExecStart as systemd would run it: ``{"source", "argv"}`` or None."""
    unit = next((os.path.join(root, d.lstrip("/"), "docker.service") for d in UNIT_DIRS
                 if os.path.isfile(os.path.join(root, d.lstrip("/"), "docker.service"))), None)
    if unit is None:
        return _sysv_flags(root)
    dropins = {}
    for directory in reversed(UNIT_DIRS):  # a drop-in in /etc replaces one of the same name
        for path in glob.glob(os.path.join(root, directory.lstrip("/"), "docker.service.d", "*.conf")):
            dropins[os.path.basename(path)] = path
    exec_start, env_files, env = [], [], {}
    for path in [unit] + [dropins[name] for name in sorted(dropins)]:
        for key, value in _unit_service_lines(path):
            if key == "ExecStart":
                exec_start = [] if not value else [value]
            elif key == "EnvironmentFile" and value:
                env_files.append(value)
            elif key == "Environment":
                env.update(_assignments(value))
    if not exec_start:
        return None
    for name in env_files:
        env.update(_read_env_file(os.path.join(root, name.lstrip("-").lstrip("/"))))
    argv = _expand_exec(exec_start[-1].lstrip("-@+!:"), env)
    if not argv or os.path.basename(argv[0]) != "dockerd":
        return None
    where = [os.path.relpath(unit, root)] + [n.lstrip("-") for n in env_files]
    return {"source": "docker.service's ExecStart (%s)" % ", ".join("/" + w.lstrip("/") for w in where),
            "argv": argv[1:]}


def _sysv_flags(root):
    """Without a systemd unit, Debian's /etc/init.d/docker runs dockerd with DOCKER_OPTS."""
    if not os.path.isfile(os.path.join(root, "etc/init.d/docker")):
        return None
    env = _read_env_file(os.path.join(root, "etc/default/docker"))
    return {"source": "/etc/init.d/docker with DOCKER_OPTS of /etc/default/docker",
            "argv": shlex.split(env.get("DOCKER_OPTS", ""))}


def _unit_service_lines(path):
    """``(key, value)`` of the [Service] section of a unit file, continuation lines joined."""
    section, pending = None, ""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return
    for raw in lines:
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            yield key.strip(), value.strip()


def _assignments(text):
    out = {}
    for word in shlex.split(text):
        if "=" in word:
            key, value = word.split("=", 1)
            out[key] = value
    return out


def _read_env_file(path):
    """KEY=VALUE lines of an environment file (``#`` comments, shell quoting)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return {}
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):]
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if match:
            try:
                words = shlex.split(match.group(2), comments=True)
            except ValueError:
                words = [match.group(2)]
            env[match.group(1)] = " ".join(words)
    return env


def _expand_exec(command, env):
    """systemd's ExecStart expansion: ``$VAR`` splits into words, ``${VAR}`` stays one."""
    argv = []
    for word in shlex.split(command):
        whole = re.match(r"^\$([A-Za-z_][A-Za-z0-9_]*)$", word)
        if whole:
            argv.extend(env.get(whole.group(1), "").split())
            continue
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return argv


def _flag_items(flags):
    """``(name, value)`` for each flag (``--name value``, ``--name=value``, ``-H value``)."""
    items, index = [], 0
    while index < len(flags):
        word = flags[index]
        index += 1
        match = re.match(r"^--?([A-Za-z0-9-]+)(?:=(.*))?$", word)
        if not match:
            continue
        name, value = match.group(1), match.group(2)
        if value is None and index < len(flags) and not flags[index].startswith("-"):
            value = flags[index]
            index += 1
        items.append((name, value if value is not None else "true"))
    return items


def flag_settings(flags):
    """The daemon.json keys ``flags`` set: ``{key: value}`` (``log-opts`` a dict)."""
    settings = {}
    for name, value in _flag_items(flags):
        if name in FLAGS_NOT_IN_FILE:
            continue
        key = FLAG_KEYS.get(name, name)
        if key == "log-opts":
            option, option_value = (value.split("=", 1) + [""])[:2]
            settings.setdefault("log-opts", {})[option] = option_value
        else:
            settings[key] = value
    return settings


def check_flag_conflicts(config, sources, where="daemon.json"):
    """Refuse a key the file and dockerd's flags both set (dockerd would not start)."""
    for source in sources:
        given = flag_settings(source["argv"])
        both = sorted(set(given) & set(config))
        if both:
            flags = ", ".join(_flag_text(name, value) for name, value in _flag_items(source["argv"])
                              if FLAG_KEYS.get(name, name) in both)
            raise OpsError("%s: %s %s also given as dockerd flags (%s, from %s); dockerd refuses a "
                           "setting given both ways and would not start: drop the flag or the key"
                           % (where, ", ".join(both), "is" if len(both) == 1 else "are", flags,
                              source["source"]), refused_by="dockerd")


def _flag_text(name, value):
    return ("-%s=%s" if len(name) == 1 else "--%s=%s") % (name, value)


def effective_log_config(config, sources):
    """The log settings dockerd ends up with: the file's, or the flags' where the file has none."""
    effective = dict(config)
    for source in sources:
        given = flag_settings(source["argv"])
        for key in ("log-driver", "log-opts"):
            if key in given and key not in config:
                effective[key] = given[key]
    return effective


# ---------------------------------------------------------------------------- the whole check


def find_dockerd():
    """The path of the host's dockerd, or ``None`` when the engine is not installed here."""
    found = shutil.which("dockerd")
    if found:
        return found
    for candidate in DOCKERD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def dockerd_can_validate(dockerd):
    """Whether ``dockerd --help`` lists ``--validate`` (Docker 23 and later)."""
    result = run_command([dockerd, "--help"], timeout=VALIDATE_TIMEOUT)
    return "--validate" in (result.stdout or "") + (result.stderr or "")


def validate_daemon_file(path, dockerd=None, target=None, plugin_driver=False, flag_sources=None,
                         docker_host=None):
    """Check the daemon.json at ``path`` as a whole; return what was checked.

    ``target``: where the file goes (default ``path``): the dockerd reading that file is the
    one whose flags count. ``flag_sources``: those flags (default ``dockerd_flag_sources``).
    ``plugin_driver``: take a non-built-in ``log-driver`` as a plugin, which the engine at
    ``docker_host`` must have. In order: the JSON, the flags against the file, the log
    settings dockerd ends up with, then ``dockerd --validate --config-file path`` with the
    flags where the engine has it, else the top-level keys against Docker 20.10's list.
    Returns ``{"path", "log_driver", "log_opts", "dockerd", "dockerd_validate", "flags"}``;
    ``dockerd_validate`` is ``"ok"``, ``"unsupported"`` (engine older than 23) or
    ``"no dockerd"``. Raises ``OpsError`` (one line) for the first problem found.
    """
    config = load_json(path)
    where = path
    sources = dockerd_flag_sources(target or path) if flag_sources is None else flag_sources
    if not isinstance(config, dict):
        raise OpsError("%s must hold a JSON object" % where)
    check_flag_conflicts(config, sources, where)
    driver, opts = check_daemon_config(effective_log_config(config, sources), where,
                                       plugin_driver=plugin_driver)
    if driver not in LOG_DRIVER_OPTS:
        check_log_plugin(driver, docker_host)
    dockerd = dockerd or find_dockerd()
    verdict = "no dockerd"
    if dockerd:
        verdict = "unsupported"
        if dockerd_can_validate(dockerd):
            for flags in _distinct([s["argv"] for s in sources]) or [[]]:
                _dockerd_validate(dockerd, path, flags)
            verdict = "ok"
    if verdict != "ok":
        check_daemon_keys(config, where)
    return {"path": path, "log_driver": driver, "log_opts": opts, "dockerd": dockerd,
            "dockerd_validate": verdict, "flags": [s["source"] for s in sources]}


def _distinct(lists):
    out = []
    for item in lists:
        if item not in out:
            out.append(item)
    return out


def _dockerd_validate(dockerd, path, flags):
    """``dockerd --validate --config-file path`` with the flags the engine runs with."""
    kept = [_flag_text(name, value) for name, value in _flag_items(flags)
            if name not in ("config-file", "validate")]
    result = run_command([dockerd, "--validate", "--config-file", path] + kept,
                         timeout=VALIDATE_TIMEOUT)
    if not result.ok:
        lines = [line for line in ((result.stderr or "") + (result.stdout or "")).splitlines()
                 if line.strip() and not line.startswith(("See 'dockerd", "Usage:"))]
        raise OpsError("%s: dockerd --validate refused it%s: %s" % (
            path, " with the engine's flags" if kept else "",
            lines[-1] if lines else "exit status %s" % result.rc), refused_by="dockerd")
