# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The log options of Docker's built-in log drivers, checked the way dockerd checks them.

Modelled on moby's ``daemon/logger`` of Docker 20.10.24, 26.1.5 and 28.5.2 (Debian 12's and
13's engines and the newest): what ``ValidateLogOpts`` (``factory.go``: mode,
max-buffer-size, the cache options) and each driver's ``ValidateLogOpt`` refuse - dockerd
does not start on a daemon.json holding it -, and what each driver's ``New`` refuses when a
container starts - every new container fails: sizes, counts and switches it parses,
``compress`` without two files, regular expressions, the ``tag`` template, files it reads.

A set of options passes when all three engines take it. Where they differ (a key only newer
engines know, one Docker 28 dropped, a parser that grew laxer) the check takes what all take.
``log_options_problem`` returns ``None`` or ``(text, refused_by)``: ``refused_by`` is
``"dockerd"`` (Docker 20.10 does not start), ``"container"`` (20.10 starts, every new
container fails) or ``None`` (20.10 takes it; another engine or this check's caution does not).
Not checked: whether endpoints answer (a TCP syslog, fluentd or splunk that is down fails
containers too), cloud credentials, and whether the host runs journald.
"""

from __future__ import annotations

import os
import re

from .go_syntax import go_regexp_problem, go_tag_template_problem

DEFAULT_DRIVER = "json-file"
_ATTRS = ("env", "env-regex", "labels", "labels-regex", "tag")
# Taken by every driver: dockerd handles them itself (blocking mode, dual-logging cache).
COMMON_LOG_OPTS = ("mode", "max-buffer-size", "cache-disabled", "cache-max-size",
                   "cache-max-file", "cache-compress")
# The keys each driver's ValidateLogOpt takes in Docker 20.10.
LOG_DRIVER_OPTS = {
    "json-file": ("max-size", "max-file", "compress") + _ATTRS,
    "local": ("max-size", "max-file", "compress"),
    "journald": _ATTRS,
    "syslog": ("syslog-address", "syslog-facility", "syslog-format", "syslog-tls-ca-cert",
               "syslog-tls-cert", "syslog-tls-key", "syslog-tls-skip-verify") + _ATTRS,
    "gelf": ("gelf-address", "gelf-compression-type", "gelf-compression-level",
             "gelf-tcp-max-reconnect", "gelf-tcp-reconnect-delay") + _ATTRS,
    "fluentd": ("fluentd-address", "fluentd-async", "fluentd-async-connect",
                "fluentd-buffer-limit", "fluentd-retry-wait", "fluentd-max-retries",
                "fluentd-sub-second-precision", "fluentd-request-ack") + _ATTRS,
    "awslogs": ("awslogs-region", "awslogs-endpoint", "awslogs-group", "awslogs-stream",
                "awslogs-create-group", "awslogs-datetime-format", "awslogs-multiline-pattern",
                "awslogs-credentials-endpoint", "awslogs-force-flush-interval-seconds",
                "awslogs-max-buffered-events", "tag"),
    "splunk": ("splunk-token", "splunk-url", "splunk-source", "splunk-sourcetype",
               "splunk-index", "splunk-capath", "splunk-caname", "splunk-insecureskipverify",
               "splunk-format", "splunk-verify-connection", "splunk-gzip", "splunk-gzip-level",
               "splunk-index-acknowledgment") + _ATTRS,
    "gcplogs": ("gcp-project", "gcp-log-cmd", "gcp-meta-zone", "gcp-meta-name",
                "gcp-meta-id", "env", "env-regex", "labels", "labels-regex"),
    "logentries": ("logentries-token", "line-only") + _ATTRS,
    "none": (),
}
# Drivers and keys some supported engine refuses although Docker 20.10 takes them.
RETIRED_DRIVERS = {"logentries": "was removed in Docker 25 (dockerd 25 and later do not know it)"}
RETIRED_KEYS = {("fluentd", "fluentd-async-connect"): "was removed in Docker 28: use fluentd-async"}
NEWER_KEYS = ("awslogs-create-stream", "awslogs-format", "fluentd-async-reconnect-interval",
              "fluentd-write-timeout")

GO_BOOLS = ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False")
_FACILITIES = ("kern user mail daemon auth syslog lpr news uucp cron authpriv ftp "
               "local0 local1 local2 local3 local4 local5 local6 local7").split()
# A size both go-units parsers read (Docker 20.10's regular expression, 26's suffix parser).
_SIZE_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?) ?(?:([kKmMgGtTpP])(?:[iI][bB]|[bB])?|[bB])?$")
# Docker 20.10's own regular expression (go-units before v0.5.0), which also takes 10mi and 10i:
# Docker 26's suffix parser refuses those.
_SIZE_RE_2010 = re.compile(r"^([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_DURATION_RE = re.compile(r"^[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+$")
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
INT64_MAX = 2 ** 63 - 1
SYSLOG_ADDRESS_RULE = "proto://address (udp, tcp, tcp+tls, unix, unixgram)"


def go_bool(value):
    """Whether Go's ``strconv.ParseBool`` reads ``value``."""
    return value in GO_BOOLS


def go_is_true(value):
    return value in ("1", "t", "T", "TRUE", "true", "True")


def go_int(value, bits=64, signed=True):
    """The integer Go's ``strconv.ParseInt``/``ParseUint``/``Atoi`` reads, or ``None``."""
    if not re.match(r"^[+-]?[0-9]+$" if signed else r"^[0-9]+$", value):
        return None
    number = int(value)
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    return number if low <= number <= high else None


def docker_size(value, binary):
    """Bytes in a size as dockerd reads it (``units.RAMInBytes`` when ``binary``, else
    ``units.FromHumanSize``), truncated to whole bytes like Go's ``int64()``; ``None`` when
    not every supported engine reads it."""
    match = _SIZE_RE.match(value)
    if not match:
        return None
    unit = (match.group(2) or "").lower()
    power = " kmgtp".index(unit) if unit else 0
    return int(float(match.group(1)) * (1024 if binary else 1000) ** power)


def log_options_problem(driver, opts, host_files=True):
    """The first problem of log ``opts`` (strings) for ``driver``, or ``None``.

    Returns ``(text, refused_by)`` (see the module doc); ``text`` names the option.
    ``host_files``: also check files the options name (a unix syslog socket, TLS
    certificates, splunk's CA) on this host.
    """
    if driver == "none":
        return None  # ValidateLogOpts stops here; a container without a logger reads nothing
    if driver in RETIRED_DRIVERS:
        return "log-driver %s %s" % (driver, RETIRED_DRIVERS[driver]), None
    problem = _common_problem(opts)
    if problem:
        return problem
    for key in sorted(opts):
        if key in COMMON_LOG_OPTS:
            continue
        if key not in LOG_DRIVER_OPTS[driver]:
            hint = " (only engines newer than Docker 20.10 know it)" if key in NEWER_KEYS else ""
            return ("log-opts key %r is not an option of log-driver %s%s (%s takes %s, and every "
                    "driver mode, max-buffer-size, cache-*)" % (
                        key, driver, hint, driver, ", ".join(sorted(LOG_DRIVER_OPTS[driver]))),
                    "dockerd")
        if (driver, key) in RETIRED_KEYS:
            return "log-opts %s %s" % (key, RETIRED_KEYS[(driver, key)]), None
    for check in _DRIVER_CHECKS.get(driver, ()):
        problem = check(opts, host_files)
        if problem:
            return problem
    return _attribute_problem(driver, opts)


def _bad(key, value, rule, refused_by="dockerd"):
    return "log-opts %s=%r must be %s" % (key, value, rule), refused_by


def _bad_size(key, value, rule, refused_by="dockerd"):
    """A size no supported engine reads is refused as ``refused_by`` does; one that Docker 20.10
    reads and 26 refuses (``10mi``) is this check's own caution (``refused_by`` None)."""
    match = _SIZE_RE_2010.match(value)
    if match and match.group(1).count(".") <= 1:
        return _bad(key, value, rule + " (Docker 20.10 reads it, 26 and later refuse it)", None)
    return _bad(key, value, rule, refused_by)


def _common_problem(opts):
    mode = opts.get("mode", "")
    if mode not in ("", "blocking", "non-blocking"):
        return _bad("mode", mode, "blocking or non-blocking")
    if "max-buffer-size" in opts:
        if mode != "non-blocking":
            return ("log-opts max-buffer-size needs mode non-blocking (mode is %s)"
                    % (repr(mode) if mode else "not set"), "dockerd")
        if docker_size(opts["max-buffer-size"], binary=True) is None:
            return _bad_size("max-buffer-size", opts["max-buffer-size"], "a size such as 4m")
    disabled = opts.get("cache-disabled", "")
    if disabled and not go_bool(disabled):
        return _bad("cache-disabled", disabled, "true or false")
    return None


# ---------------------------------------------------------------------------- files on disk


def _file_size_problem(opts, _host_files):
    """json-file and local (``New``): max-size, max-file, compress and how they combine."""
    size = opts.get("max-size")
    if size is not None:
        parsed = docker_size(size, binary=False)
        if parsed is None:
            return _bad_size("max-size", size, "a size above 0 such as 10m (one that rounds to whole "
                             "bytes above 0)", "container")
        if parsed <= 0 or parsed > INT64_MAX:
            return _bad("max-size", size, "a size above 0 such as 10m (one that rounds to whole "
                        "bytes above 0)", "container")
    files = opts.get("max-file")
    count = None
    if files is not None:
        count = go_int(files)
        if count is None or count < 1:
            return _bad("max-file", files, "a whole number of 1 or more", "container")
    compress = opts.get("compress")
    if compress is not None and not go_bool(compress):
        return _bad("compress", compress, "true or false", "container")
    return None


def _json_file_problem(opts, _host_files):
    if go_is_true(opts.get("compress", "")):
        if go_int(opts.get("max-file", "1")) < 2 or "max-size" not in opts:
            return ("log-opts compress=%s needs max-file of 2 or more and max-size (json-file "
                    "keeps one file unless max-file says more)" % opts["compress"], "container")
    return None


def _local_problem(opts, _host_files):
    compress = go_is_true(opts.get("compress", "true"))  # local compresses by default
    if compress and go_int(opts.get("max-file", "5")) < 2:
        return ("log-opts max-file=%s with log-driver local needs compress false (local "
                "compresses rotated files unless told not to)" % opts["max-file"], "container")
    return None


# ---------------------------------------------------------------------------- addresses


def _syslog_problem(opts, host_files):
    address = opts.get("syslog-address", "")
    if address:
        match = re.match(r"^(tcp|tcp\+tls|udp|unix|unixgram)://(.*)$", address)
        if not match:
            return _bad("syslog-address", address, SYSLOG_ADDRESS_RULE)
        scheme, rest = match.groups()
        if scheme.startswith("unix"):
            if not rest.startswith("/") or len(rest) < 2:
                return _bad("syslog-address", address, "unix:///absolute/path/of/the/socket")
            if host_files and not os.path.exists(rest):
                return ("log-opts syslog-address %s: %s does not exist on this host" % (address, rest),
                        "dockerd")
        else:
            problem = _host_port_problem("syslog-address", address, rest, port_required=False)
            if problem:
                return problem
    facility = opts.get("syslog-facility", "")
    if facility and facility not in _FACILITIES and not re.match(r"^([0-9]|1[0-9]|2[0-3])$", facility):
        return _bad("syslog-facility", facility, "a syslog facility (daemon, local0 ... local7) or 0-23")
    fmt = opts.get("syslog-format", "")
    if fmt not in ("", "rfc5424", "rfc5424micro", "rfc3164"):
        return _bad("syslog-format", fmt, "rfc5424, rfc5424micro or rfc3164")
    if address.startswith("tcp+tls://") and host_files:
        return _tls_problem(opts)
    return None


def _host_port_problem(key, address, rest, port_required):
    """``host[:port]`` after ``proto://`` (a path after it is ignored, as url.Parse does)."""
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if authority.count(":") > 1 and not authority.startswith("["):
        return _bad(key, address, "proto://host:port (an IPv6 address goes in brackets)")
    match = re.match(r"^(%s)?(?::([0-9]*))?$" % _HOST, authority)
    if not match:
        return _bad(key, address, "proto://host:port with a plain host name or address", None)
    host, port = match.group(1) or "", match.group(2)
    if port is None:
        if port_required:
            return _bad(key, address, "proto://host:port (with a port)")
        if host.startswith("["):
            return _bad(key, address, "proto://[address]:port: Docker 26 cannot add the default "
                        "port to a bracketed address", None)
        return None
    if not port or not 0 < int(port) <= 65535:
        return _bad(key, address, "proto://host:port with a port from 1 to 65535",
                    "container" if port else None)
    return None


def _tls_problem(opts):
    """syslog over tcp+tls (``New``): the CA file, and the client certificate with its key."""
    ca_file = opts.get("syslog-tls-ca-cert", "")
    if ca_file:
        problem = _pem_problem("syslog-tls-ca-cert", ca_file, "CERTIFICATE")
        if problem:
            return problem
    cert, key = opts.get("syslog-tls-cert", ""), opts.get("syslog-tls-key", "")
    if cert or key:
        if not (cert and key):
            return ("log-opts syslog-tls-cert and syslog-tls-key go together (one is set)", "container")
        import ssl

        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key, password=lambda: b"")
        except (OSError, ssl.SSLError) as exc:
            return ("log-opts syslog-tls-cert %s and syslog-tls-key %s are not a readable certificate "
                    "and its unencrypted key (%s)" % (cert, key, exc), "container")
    return None


def _pem_problem(key, path, kind=None):
    """The file at ``path`` cannot be read on this host, or holds no PEM ``kind`` (when given)."""
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError as exc:
        return ("log-opts %s %s: cannot read it on this host (%s)" % (key, path, exc.strerror or exc),
                "container")
    if kind and b"-----BEGIN " + kind.encode() not in text:
        return ("log-opts %s %s holds no PEM %s" % (key, path, kind.lower()), "container")
    return None


def _gelf_problem(opts, _host_files):
    address = opts.get("gelf-address")
    if address is None:
        return "log-driver gelf needs log-opts gelf-address", "dockerd"
    match = re.match(r"^(udp|tcp)://(.*)$", address)
    if not match:
        return _bad("gelf-address", address, "udp://host:port or tcp://host:port")
    problem = _host_port_problem("gelf-address", address, match.group(2), port_required=True)
    if problem:
        return problem
    udp = match.group(1) == "udp"
    for key in sorted(opts):
        if key.startswith("gelf-compression") and not udp:
            return ("log-opts %s: compression is only supported on UDP (gelf-address is %s)"
                    % (key, address), "dockerd")
        if key.startswith("gelf-tcp") and udp:
            return "log-opts %s is only valid for TCP (gelf-address is %s)" % (key, address), "dockerd"
    level = opts.get("gelf-compression-level")
    if level is not None and (go_int(level) is None or not -1 <= go_int(level) <= 9):
        return _bad("gelf-compression-level", level, "a whole number from -1 to 9")
    kind = opts.get("gelf-compression-type")
    if kind is not None and kind not in ("gzip", "zlib", "none"):
        return _bad("gelf-compression-type", kind, "gzip, zlib or none")
    for key in ("gelf-tcp-max-reconnect", "gelf-tcp-reconnect-delay"):
        if key in opts and (go_int(opts[key]) is None or go_int(opts[key]) < 0):
            return _bad(key, opts[key], "a whole number of 0 or more")
    return None


def _fluentd_problem(opts, _host_files):
    address = opts.get("fluentd-address", "")
    if address:
        problem = _fluentd_address_problem(address)
        if problem:
            return problem
    limit = opts.get("fluentd-buffer-limit", "")
    if limit and docker_size(limit, binary=True) is None:
        return _bad_size("fluentd-buffer-limit", limit, "a size such as 8m")
    wait = opts.get("fluentd-retry-wait", "")
    if wait and not _DURATION_RE.match(wait):
        return _bad("fluentd-retry-wait", wait, "a duration such as 1s or 500ms")
    retries = opts.get("fluentd-max-retries", "")
    if retries:
        number = go_int(retries, signed=False)
        if number is None:
            return _bad("fluentd-max-retries", retries, "a whole number of 0 or more")
        if number > 2 ** 31 - 1:
            return _bad("fluentd-max-retries", retries, "at most 2147483647 (Docker 28)", None)
    for key in ("fluentd-async", "fluentd-sub-second-precision", "fluentd-request-ack"):
        if opts.get(key) and not go_bool(opts[key]):
            return _bad(key, opts[key], "true or false")
    return None


def _fluentd_address_problem(address):
    rule = "host:port, tcp://host:port or unix:///path"
    if address.startswith("unix://"):
        if not address[len("unix://"):].lstrip("/"):
            return _bad("fluentd-address", address, rule)
        return None if address.startswith("unix:///") else _bad("fluentd-address", address, rule, None)
    scheme = address.split("://", 1)[0] if "://" in address else "tcp"
    if scheme != "tcp":
        # Docker 20.10 also takes udp, tcp+tls and unixgram, Docker 26 also tls; not both.
        return _bad("fluentd-address", address, rule, None if scheme in (
            "udp", "tcp+tls", "unixgram") else "dockerd")
    authority = address[len("tcp://"):] if address.startswith("tcp://") else address
    if re.search(r"[/?#]", authority):
        return _bad("fluentd-address", address, rule + " (no path)", None)
    match = re.match(r"^(%s)?(?::([0-9]*))?$" % _HOST, authority)
    if not match or authority.count(":") > 1 and not authority.startswith("["):
        return _bad("fluentd-address", address, rule)
    port = match.group(2)
    if port is not None and (not port or not 0 < int(port) <= 65535):
        return _bad("fluentd-address", address, rule + " with a port from 1 to 65535",
                    "dockerd" if not port else None)
    return None


# ---------------------------------------------------------------------------- the cloud drivers


def _awslogs_problem(opts, _host_files):
    if not opts.get("awslogs-group"):
        return "log-driver awslogs needs log-opts awslogs-group (not empty)", "dockerd"
    if opts.get("awslogs-create-group") and not go_bool(opts["awslogs-create-group"]):
        return _bad("awslogs-create-group", opts["awslogs-create-group"], "true or false")
    for key in ("awslogs-force-flush-interval-seconds", "awslogs-max-buffered-events"):
        value = opts.get(key, "")
        if value and (go_int(value) is None or go_int(value) <= 0):
            return _bad(key, value, "a whole number above 0")
    if "awslogs-datetime-format" in opts and "awslogs-multiline-pattern" in opts:
        return ("log-opts awslogs-datetime-format and awslogs-multiline-pattern cannot go "
                "together", "dockerd")
    pattern = opts.get("awslogs-multiline-pattern", "")
    if opts.get("awslogs-datetime-format"):
        pattern = re.sub(r"%.", lambda m: _STRFTIME.get(m.group(0), ""), opts["awslogs-datetime-format"])
    if pattern:
        problem = go_regexp_problem(pattern)
        if problem:
            return ("log-opts awslogs-%s: Go cannot compile %r: %s" % (
                "datetime-format" if opts.get("awslogs-datetime-format") else "multiline-pattern",
                pattern, problem[0]), "container" if not problem[1] else None)
    return None


# awslogs turns awslogs-datetime-format into a regular expression with this table.
_STRFTIME = {
    "%a": "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)",
    "%A": "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)",
    "%w": "[0-6]", "%d": "(?:0[1-9]|[1,2][0-9]|3[0,1])",
    "%b": "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)",
    "%B": "(?:January|February|March|April|May|June|July|August|September|October|November|December)",
    "%m": "(?:0[1-9]|1[0-2])", "%Y": "\\d{4}", "%y": "\\d{2}",
    "%H": "(?:[0,1][0-9]|2[0-3])", "%I": "(?:0[0-9]|1[0-2])", "%p": "[A,P]M", "%M": "[0-5][0-9]",
    "%S": "[0-5][0-9]", "%f": "\\d{6}", "%z": "[+-]\\d{4}", "%Z": "[A-Z]{1,4}T",
    "%j": "(?:0[0-9][1-9]|[1,2][0-9][0-9]|3[0-5][0-9]|36[0-6])", "%L": "\\.\\d{3}",
}


def _splunk_problem(opts, host_files):
    url = opts.get("splunk-url")
    if url is None:
        return "log-driver splunk needs log-opts splunk-url", "container"
    if not re.match(r"^https?://%s(:[0-9]+)?/?$" % _HOST, url):
        return _bad("splunk-url", url, "http(s)://host:port with no path, query or fragment",
                    "container")
    if "splunk-token" not in opts:
        return "log-driver splunk needs log-opts splunk-token", "container"
    for key in ("splunk-insecureskipverify", "splunk-gzip", "splunk-index-acknowledgment",
                "splunk-verify-connection"):
        if key in opts and not go_bool(opts[key]):
            return _bad(key, opts[key], "true or false", "container")
    level = opts.get("splunk-gzip-level")
    if level is not None and (go_int(level, bits=32) is None or not -1 <= go_int(level) <= 9):
        return _bad("splunk-gzip-level", level, "a whole number from -1 to 9", "container")
    if "splunk-format" in opts and opts["splunk-format"] not in ("inline", "json", "raw"):
        return _bad("splunk-format", opts["splunk-format"], "inline, json or raw", "container")
    if "splunk-capath" in opts and host_files:
        return _pem_problem("splunk-capath", opts["splunk-capath"])
    return None


_DRIVER_CHECKS = {
    "json-file": (_file_size_problem, _json_file_problem),
    "local": (_file_size_problem, _local_problem),
    "syslog": (_syslog_problem,),
    "gelf": (_gelf_problem,),
    "fluentd": (_fluentd_problem,),
    "awslogs": (_awslogs_problem,),
    "splunk": (_splunk_problem,),
}


# The drivers whose New compiles labels-regex and env-regex (syslog takes them and never looks).
REGEX_DRIVERS = ("json-file", "journald", "gelf", "fluentd", "splunk", "gcplogs")


def _attribute_problem(driver, opts):
    """``New`` of every driver that takes them: the regular expressions and the tag."""
    for key in ("labels-regex", "env-regex"):
        if opts.get(key) and key in LOG_DRIVER_OPTS[driver]:
            problem = go_regexp_problem(opts[key])
            if problem:
                return ("log-opts %s=%r: Go cannot compile it: %s" % (key, opts[key], problem[0]),
                        None if problem[1] or driver not in REGEX_DRIVERS else "container")
    tag = opts.get("tag", "")
    if tag and "tag" in LOG_DRIVER_OPTS[driver]:
        problem = go_tag_template_problem(tag)
        if problem:
            return ("log-opts tag=%r is not a tag template dockerd can run: %s" % (tag, problem[0]),
                    None if problem[1] else "container")
    return None
