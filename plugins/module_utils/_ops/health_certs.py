# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS certificate expiry for the health monitor, with the standard library's ``ssl``.

One handshake per certificate, as a client would make it: the host's trust store (or the
entry's ``ca_file``), the SNI name, and the name checked against the certificate. A chain
that does not verify or a name mismatch is critical; otherwise the days left decide
(``warning_days``, ``critical_days``). When verification fails a second handshake without
verification reads the certificate anyway, so the days left are still known; its
``notAfter`` is read from the DER bytes (``der_not_after``: ``ssl`` parses a peer's
certificate only after it verified).

``ssl`` is imported only by a run that checks a certificate (it costs 25 ms of a 5-minute
job that aims at under 100 ms). Checked once per ``interval_seconds`` (daily): the time of the last check and its result
are kept in the monitor's state; a certificate whose last result was not ok is checked
again at every run, so a flaky connection must fail ``failures_before_alert`` real
handshakes in a row and a renewed certificate clears the alert at the next run.
"""

from __future__ import annotations

import operator
import re
import socket
import time

from .health_resources import check_result, checked_entry, level_for
from .units import plural, show

CERT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
CERT_DEFAULTS = {
    "port": 443,
    "server_name": "",
    "ca_file": "",
    "timeout_seconds": 10,
}
DAY = 86400


# --------------------------------------------------------------------------- config

def certificate_problems(raw, where):
    """Why ``raw`` is not a valid certificate entry, one ``where.key: VALUE rule`` line each."""
    if not isinstance(raw, dict):
        return ["%s: is not a mapping with host (and port, server_name, ca_file)" % where]
    known = set(CERT_DEFAULTS) | {"name", "host"}
    problems = ["%s.%s: is not an option here (known: %s)" % (where, key, ", ".join(sorted(known)))
                for key in sorted(set(raw) - known)]
    host = raw.get("host")
    if not isinstance(host, str) or not host or any(c.isspace() for c in host) or "/" in host:
        problems.append("%s.host: %s is not a host name or address" % (where, show(host)))
    port = raw.get("port", 443)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        problems.append("%s.port: %s is not a port (1-65535)" % (where, show(port)))
    for key in ("server_name", "ca_file"):
        if not isinstance(raw.get(key, ""), str):
            problems.append("%s.%s: %s is not a string" % (where, key, show(raw[key])))
    if isinstance(raw.get("ca_file"), str) and raw["ca_file"] and not raw["ca_file"].startswith("/"):
        problems.append("%s.ca_file: %s is not an absolute path" % (where, show(raw["ca_file"])))
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not CERT_NAME_RE.match(name)):
        problems.append("%s.name: %s is not a short name of letters, digits, '.', ':', '_' or '-'"
                        % (where, show(name)))
    timeout = raw.get("timeout_seconds", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        problems.append("%s.timeout_seconds: %s is not a number of seconds greater than 0"
                        % (where, show(timeout)))
    return problems


def validate_certificate(raw, index):
    """One ``certificates`` entry with defaults filled in (``name`` defaults to the SNI
    name, or the host, with ``:PORT`` unless 443); ``OpsError`` listing its problems."""
    entry = checked_entry(certificate_problems(raw, "certificates[%d]" % index), CERT_DEFAULTS, raw)
    if not entry.get("name"):
        entry["name"] = (entry["server_name"] or entry["host"]) + (
            "" if entry["port"] == 443 else ":%d" % entry["port"])
    return entry


def signature(entry):
    """What a cached result was checked against: another host, port, name or CA file
    means the cached result does not count."""
    return [entry["host"], entry["port"], entry["server_name"], entry["ca_file"]]


# --------------------------------------------------------------------------- DER

def _tlv(data, offset):
    """``(tag, start of value, end of value)`` of the DER element at ``offset``."""
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[offset:offset + count], "big")
        offset += count
    if offset + length > len(data):
        raise ValueError("DER element runs past the end")
    return tag, offset, offset + length


def der_not_after(der):
    """The ``notAfter`` of a DER X.509 certificate, in seconds since the epoch (UTC).

    Certificate -> tbsCertificate -> [version], serialNumber, signature, issuer,
    validity -> notBefore, notAfter (UTCTime ``YYMMDDHHMMSSZ``, years 50-99 are 19xx, or
    GeneralizedTime ``YYYYMMDDHHMMSSZ``; RFC 5280 4.1.2.5). Raises ``ValueError`` on
    anything else.
    """
    import calendar

    try:
        tag, start, _end = _tlv(der, 0)
        if tag != 0x30:
            raise ValueError("not a certificate")
        tag, start, _end = _tlv(der, start)  # tbsCertificate
        if tag != 0x30:
            raise ValueError("no tbsCertificate")
        position = start
        tag, _value, end = _tlv(der, position)
        if tag == 0xA0:  # explicit version
            position = end
        for _skip in range(3):  # serialNumber, signature, issuer
            _tag, _value, position = _tlv(der, position)
        tag, start, _end = _tlv(der, position)  # validity
        if tag != 0x30:
            raise ValueError("no validity")
        _tag, _value, position = _tlv(der, start)  # notBefore
        tag, start, end = _tlv(der, position)  # notAfter
    except IndexError:
        raise ValueError("truncated certificate")
    text = der[start:end].decode("ascii")
    if tag == 0x17 and len(text) == 13:
        year = int(text[:2])
        text = ("19" if year >= 50 else "20") + text
    elif tag != 0x18 or len(text) != 15:
        raise ValueError("unsupported time in notAfter: %r" % text)
    if not text.endswith("Z"):
        raise ValueError("notAfter is not in UTC: %r" % text)
    return calendar.timegm(time.strptime(text[:14], "%Y%m%d%H%M%S"))


# --------------------------------------------------------------------------- the check

class CAFileError(Exception):
    """The entry's ``ca_file`` cannot be loaded (missing, unreadable, not PEM)."""


def _handshake(entry, verify):
    """The peer's certificate (DER) after one TLS handshake; raises ``ssl``/``OSError``."""
    import ssl  # 25 ms to import: only in runs that check a certificate

    if verify:
        try:
            context = ssl.create_default_context(cafile=entry["ca_file"] or None)
        except (OSError, ssl.SSLError) as exc:
            raise CAFileError("ca_file %s cannot be read as PEM certificates: %s" % (
                entry["ca_file"], getattr(exc, "strerror", None) or getattr(exc, "reason", None)
                or exc.__class__.__name__))
        # Python 3.13 turns on RFC 5280's strict checks (e.g. a CA without an Authority Key
        # Identifier is refused); curl, browsers and Python up to 3.12 accept such chains, so
        # the same certificate is judged alike on Debian 12 and 13.
        context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    server_name = entry["server_name"] or entry["host"]
    with socket.create_connection((entry["host"], entry["port"]),
                                  timeout=entry["timeout_seconds"]) as sock:
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            return tls.getpeercert(binary_form=True)


def _connect_problem(exc, timeout):
    import ssl

    if isinstance(exc, socket.timeout):
        return "no TLS answer within %g s" % timeout
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve the host name"
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed: %s" % (exc.reason or exc.__class__.__name__)
    return "cannot connect: %s" % (exc.strerror or exc.__class__.__name__)


def days_left(not_after, now):
    """Whole days until ``not_after`` (negative once it passed)."""
    return int((not_after - now) // DAY)


def expiry_words(days):
    if days < 0:
        return "expired %s ago" % plural(-days, "day")
    return "expires in %s" % plural(days, "day")


def check_certificate(entry, now=None, warning_days=21, critical_days=7):
    """Handshake with one endpoint and judge its certificate; return a health result.

    ``{"key": "certificate:NAME", "kind": "certificate", "name", "target", "level",
    "problem", "not_after", "days_left", "verified", "checked_at"}``: critical when the
    chain does not verify (untrusted, self-signed, expired) or the name does not match,
    when no handshake is possible, or with ``critical_days`` or fewer left; warning with
    ``warning_days`` or fewer left.
    """
    import ssl

    now = time.time() if now is None else now
    server_name = entry["server_name"] or entry["host"]
    target = "%s:%d" % (entry["host"], entry["port"]) + (
        "" if server_name == entry["host"] else " (SNI %s)" % server_name)
    result = check_result("certificate:" + entry["name"], "certificate", entry["name"], target,
                          not_after=None, days_left=None, verified=False, checked_at=now,
                          signature=signature(entry))
    distrust = ""
    try:
        der = _handshake(entry, verify=True)
        result["verified"] = True
    except ssl.SSLCertVerificationError as exc:
        distrust = exc.verify_message or str(exc)
        if exc.verify_code == 62 or "mismatch" in distrust.lower():  # X509_V_ERR_HOSTNAME_MISMATCH
            distrust = "name mismatch: not valid for %s" % server_name
        else:
            distrust = "certificate not trusted: %s" % distrust
        try:
            der = _handshake(entry, verify=False)
        except (OSError, ssl.SSLError):
            der = None
    except CAFileError as exc:
        result.update(level="critical", problem=str(exc))
        return result
    except (OSError, ssl.SSLError) as exc:
        result.update(level="critical", problem=_connect_problem(exc, entry["timeout_seconds"]))
        return result
    if der:
        try:
            result["not_after"] = der_not_after(der)
            result["days_left"] = days_left(result["not_after"], now)
        except ValueError:
            pass
    return judge_certificate(result, distrust, warning_days, critical_days)


def judge_certificate(result, distrust, warning_days, critical_days):
    """Level and problem of a certificate result from its trust and days left."""
    days = result["days_left"]
    expiry = expiry_words(days) if days is not None else "expiry unknown"
    if distrust:
        result.update(level="critical", problem="%s (%s)" % (distrust, expiry))
    elif days is None:
        result.update(level="critical", problem="cannot read the certificate's expiry")
    else:
        level, limit = level_for(days, warning_days, critical_days, operator.le)
        if limit is not None:
            result.update(level=level, problem="certificate %s (%s at %d days)" % (expiry, level, limit))
    return result


def certificate_due(cached, entry, now, interval_seconds):
    """Whether the certificate must be checked in this run: never checked, checked
    against other settings, last result not ok, or the last check ``interval_seconds``
    ago or more (or in the future: the clock went back)."""
    if (not isinstance(cached, dict) or cached.get("signature") != signature(entry)
            or cached.get("level") != "ok"):
        return True
    checked = cached.get("checked_at")
    if not isinstance(checked, (int, float)) or checked > now:
        return True
    return now - checked >= interval_seconds


def refresh_cached(cached, now, warning_days, critical_days):
    """A cached result as of ``now``: days left counted again from its ``notAfter``; an ok
    one judged again, so a certificate that crosses ``warning_days`` between two daily
    checks is a warning at once (and, no longer ok, checked again at the next run)."""
    result = dict(cached)
    if result.get("not_after") is not None:
        result["days_left"] = days_left(result["not_after"], now)
        if cached.get("level") == "ok":
            result.update(level="ok", problem="")
            judge_certificate(result, "", warning_days, critical_days)
    return result


def describe_certificate(result):
    """``(status, detail)`` of a certificate result for the job log and the morning check."""
    days = result.get("days_left")
    status = ("%d days left" % days if days is not None and days >= 0 else
              "expired" if days is not None else "unknown")
    detail = result.get("problem") or (expiry_words(days) if days is not None else "")
    if result.get("not_after") is not None:
        detail += ", %s" % time.strftime("%Y-%m-%d", time.gmtime(result["not_after"]))
    if result.get("checked_at") is not None:
        detail += " (checked %s)" % time.strftime("%Y-%m-%d %H:%M UTC",
                                                  time.gmtime(result["checked_at"]))
    return status, detail
