# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""health_certs.py against real TLS servers on loopback.

Each test server presents a certificate made here with ``cryptography``: signed by a test
CA (trusted through ``ca_file``) to expire in a chosen number of days, self-signed, signed
by a CA nobody trusts, already expired, or for another name. They carry no Authority Key
Identifier, as many internal CAs' do not: Python 3.13's strict mode would refuse them,
curl and Python 3.11 accept them, and so does the check on every Python. The servers count their
handshakes, so "checked daily" is checked by what reaches them.
"""

from __future__ import annotations

import datetime
import os
import socket
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))
sys.path.insert(0, os.path.join(_REPO, "tests", "fakes"))

from fake_telegram import telegram_runtime  # noqa: E402
from fake_tls import FakeTLS  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import (  # noqa: E402
    health, health_certs)
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import (  # noqa: E402
    merge_runtime)

TOKEN = "777:certs-token"
DAY = 86400
NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(common):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject, issuer, key, issuer_key, not_after, names=(), ca=False,
                 not_before=None):
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before or NOW - datetime.timedelta(days=30))
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA (its PEM as ``ca_file``) and a CA nobody trusts."""
    directory = tmp_path_factory.mktemp("pki")
    keys = {"ca": _key(), "rogue": _key()}
    ca = _certificate("runbook-ops test CA", "runbook-ops test CA", keys["ca"], keys["ca"],
                      NOW + datetime.timedelta(days=3650), ca=True)
    rogue = _certificate("rogue CA", "rogue CA", keys["rogue"], keys["rogue"],
                         NOW + datetime.timedelta(days=3650), ca=True)
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return {"dir": directory, "ca": (ca, keys["ca"]), "rogue": (rogue, keys["rogue"]),
            "ca_file": str(ca_file)}


def _tls_server(directory, certificate, key):
    """A started FakeTLS (tests/fakes/fake_tls.py) presenting ``certificate``; it counts its
    handshakes (a client that rejects the certificate ends one before the server sees it complete)."""
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return FakeTLS(cert_file, key_file).start()


@pytest.fixture
def serve(pki, tmp_path):
    """``serve(days, kind="trusted", names=("app.test",))`` starts a server whose
    certificate expires in ``days`` days: ``trusted`` (the test CA), ``self-signed`` or
    ``rogue`` (a CA nobody trusts)."""
    servers = []

    def start(days, kind="trusted", names=("app.test",)):
        key = _key()
        not_after = NOW + datetime.timedelta(days=days)
        not_before = min(NOW - datetime.timedelta(days=30), not_after - datetime.timedelta(days=1))
        if kind == "self-signed":
            cert = _certificate(names[0], names[0], key, key, not_after, names,
                                not_before=not_before)
        else:
            issuer, issuer_key = pki["ca" if kind == "trusted" else "rogue"]
            cert = _certificate(names[0], issuer.subject.rfc4514_string()[3:], key, issuer_key,
                                not_after, names, not_before=not_before)
        directory = tmp_path / ("server%d" % len(servers))
        directory.mkdir()
        server = _tls_server(directory, cert, key)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _entry(server, pki, **extra):
    raw = {"host": "127.0.0.1", "port": server.port, "server_name": "app.test",
           "ca_file": pki["ca_file"]}
    raw.update(extra)
    return health_certs.validate_certificate(raw, 0)


@pytest.mark.parametrize("days, level, problem", [
    (90, "ok", ""),
    (23, "ok", ""),
    (22, "warning", "certificate expires in 21 days (warning at 21 days)"),
    (14, "warning", "certificate expires in 13 days (warning at 21 days)"),
    (9, "warning", "certificate expires in 8 days (warning at 21 days)"),
    (8, "critical", "certificate expires in 7 days (critical at 7 days)"),
    (3, "critical", "certificate expires in 2 days (critical at 7 days)"),
], ids=["90", "23", "22", "14", "9", "8", "3"])
def test_days_left_decide_the_level(serve, pki, days, level, problem):
    server = serve(days)
    result = health_certs.check_certificate(_entry(server, pki), NOW.timestamp() + 60)
    assert (result["level"], result["problem"]) == (level, problem)
    assert result["verified"] is True
    assert result["days_left"] == days - 1  # a minute later: whole days left
    assert result["not_after"] == (NOW + datetime.timedelta(days=days)).timestamp()


@pytest.mark.parametrize("kind, days, extra, problem", [
    ("self-signed", 60, {}, "certificate not trusted: self-signed certificate (expires in 59 days)"),
    ("rogue", 60, {}, "certificate not trusted: unable to get local issuer certificate "
                      "(expires in 59 days)"),
    ("trusted", 60, {"ca_file": ""}, "certificate not trusted: unable to get local issuer "
                                     "certificate (expires in 59 days)"),
    ("trusted", -2, {}, "certificate not trusted: certificate has expired (expired 3 days ago)"),
    ("trusted", 60, {"server_name": "other.test"}, "name mismatch: not valid for other.test "
                                                   "(expires in 59 days)"),
], ids=["self-signed", "untrusted-ca", "system-store-only", "expired", "name-mismatch"])
def test_an_invalid_chain_or_a_name_mismatch_is_critical_with_the_days_left(
        serve, pki, kind, days, extra, problem):
    server = serve(days, kind)
    result = health_certs.check_certificate(_entry(server, pki, **extra), NOW.timestamp() + 60)
    assert (result["level"], result["problem"], result["verified"]) == ("critical", problem, False)
    assert server.handshakes == 2  # the verified one failed; the second only reads the date


def test_connection_problems_are_critical(pki):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    entry = health_certs.validate_certificate({"host": "127.0.0.1", "port": port}, 0)
    assert health_certs.check_certificate(entry)["problem"] == "connection refused"
    quiet = socket.socket()  # listens, never answers the handshake
    quiet.bind(("127.0.0.1", 0))
    quiet.listen(1)
    try:
        entry = health_certs.validate_certificate(
            {"host": "127.0.0.1", "port": quiet.getsockname()[1], "timeout_seconds": 0.5}, 0)
        assert health_certs.check_certificate(entry)["problem"] == "no TLS answer within 0.5 s"
    finally:
        quiet.close()
    entry = health_certs.validate_certificate(
        {"host": "127.0.0.1", "port": port, "ca_file": "/nonexistent/ca.pem"}, 0)
    assert health_certs.check_certificate(entry)["problem"].startswith(
        "ca_file /nonexistent/ca.pem cannot be read as PEM certificates")


def test_checked_daily_not_every_run_and_every_run_while_bad(serve, pki, tmp_path):
    good, expiring = serve(90), serve(5)
    config = health.validate_config({"resource_checks": False, "certificates": [
        {"name": "good", "host": "127.0.0.1", "port": good.port, "server_name": "app.test",
         "ca_file": pki["ca_file"]},
        {"name": "expiring", "host": "127.0.0.1", "port": expiring.port,
         "server_name": "app.test", "ca_file": pki["ca_file"]}]})
    runtime = merge_runtime({"host_label": "web1", "state_dir": str(tmp_path)})
    start = NOW.timestamp()
    seen = []
    for minute in (0, 5, 10, 24 * 60 - 10, 24 * 60 + 1):
        summary = health.run_health_check(config, runtime, now=start + minute * 60,
                                          notify=lambda *a, **k: {"sent": True})
        seen.append((good.handshakes, expiring.handshakes))
        days = {r["name"]: r["days_left"] for r in summary["results"]}
    assert seen == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 5)]
    assert days == {"good": 88, "expiring": 3}


def test_a_certificate_alert_goes_out_daily_not_hourly(serve, pki, tmp_path):
    server = serve(10)
    config = health.validate_config({"resource_checks": False, "certificates": [
        {"host": "127.0.0.1", "port": server.port, "server_name": "app.test",
         "ca_file": pki["ca_file"]}]})
    with telegram_runtime(tmp_path, TOKEN) as (runtime, fake):
        start = NOW.timestamp() + 60
        counts = []
        for minute in (0, 5, 65, 125, 24 * 60 + 5):
            health.run_health_check(config, runtime, now=start + minute * 60)
            counts.append(fake.message_count())
        texts = [m["text"] for m in fake.messages]
    assert counts == [0, 1, 1, 1, 2]
    assert texts[0] == ("⚠️ web1 WARNING: health check degraded (app.test:%d: certificate "
                        "expires in 9 days (warning at 21 days)), for 5 min" % server.port)
    assert "certificate expires in 8 days" in texts[1]


def test_the_morning_check_lists_days_left_from_the_monitor(serve, pki, tmp_path):
    server = serve(40)
    config = health.validate_config({"resource_checks": False, "certificates": [
        {"name": "shop", "host": "127.0.0.1", "port": server.port, "server_name": "app.test",
         "ca_file": pki["ca_file"]},
        {"name": "blog", "host": "127.0.0.1", "port": server.port, "server_name": "blog.test"}]})
    runtime = merge_runtime({"host_label": "web1", "state_dir": str(tmp_path)})
    start = NOW.timestamp() + 60
    health.run_health_check(config, runtime, now=start, notify=lambda *a, **k: {"sent": True})
    report = health.build_report(config, runtime, docker=_NoDocker(), now=start + 2 * DAY,
                                 backup={"available": False, "age_hours": None,
                                         "level": "ok", "detail": "n/a"})
    rows = {r["name"]: r for r in report["rows"] if r["section"] == "cert"}
    assert (rows["shop"]["status"], rows["shop"]["level"]) == ("37 days left", "ok")
    assert rows["shop"]["detail"].startswith("expires in 37 days, %s (checked " % (
        (NOW + datetime.timedelta(days=40)).strftime("%Y-%m-%d")))
    assert rows["blog"]["level"] == "critical"
    assert rows["blog"]["detail"].startswith("certificate not trusted: ")
    assert server.handshakes == 3  # the report itself connected nowhere


class _NoDocker:
    class containers:  # noqa: N801 - the SDK's attribute
        @staticmethod
        def list(all=False):  # noqa: A002
            return []


@settings(max_examples=200, deadline=None)
@given(seconds=st.integers(-631152000, 253402300799))  # 1950-01-01 .. 9999-12-31
def test_der_not_after_reads_what_cryptography_wrote(seconds):
    """UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280), as cryptography chooses."""
    key = _CACHED_KEY
    not_after = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    cert = _certificate("x", "x", key, key, not_after,
                        not_before=datetime.datetime(1950, 1, 1, tzinfo=datetime.timezone.utc))
    der = cert.public_bytes(serialization.Encoding.DER)
    assert health_certs.der_not_after(der) == seconds


_CACHED_KEY = _key()


@pytest.mark.parametrize("raw, line", [
    ({}, "certificates[0].host: null is not a host name or address"),
    ({"host": "a b"}, "certificates[0].host: \"a b\" is not a host name or address"),
    ({"host": "x", "port": 0}, "certificates[0].port: 0 is not a port (1-65535)"),
    ({"host": "x", "ca_file": "ca.pem"}, "certificates[0].ca_file: ca.pem is not an absolute path"),
    ({"host": "x", "sni": "y"}, "certificates[0].sni: is not an option here (known: ca_file, "
                                "host, name, port, server_name, timeout_seconds)"),
], ids=["no-host", "space", "port", "relative-ca", "typo"])
def test_a_bad_certificate_entry_is_refused_in_one_line(raw, line):
    with pytest.raises(OpsError) as caught:
        health_certs.validate_certificate(raw, 0)
    assert caught.value.message == line


def test_names_default_to_the_sni_name_and_the_port():
    assert health_certs.validate_certificate({"host": "10.0.0.5", "server_name": "shop.example"},
                                             0)["name"] == "shop.example"
    assert health_certs.validate_certificate({"host": "shop.example", "port": 8443},
                                             0)["name"] == "shop.example:8443"
