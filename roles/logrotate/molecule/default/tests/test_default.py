# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour of runbook.ops.logrotate on Debian 12's layout and on Ubuntu's.

logrotate-debian keeps /var/log (root:root 0755) and /etc/logrotate.conf as Debian 12
ships them; logrotate-ubuntu-layout has Ubuntu's (prepare.yml): /var/log root:syslog 0775
and a global "su root adm". On both, the landed file must rotate the job's log in the
host's own run, and the validator must judge a file exactly as that run judges it.
"""

from __future__ import annotations

import contextlib
import re
import shlex

import pytest

NAME = "runbook-ops-sample"
CONF = "/etc/logrotate.d/" + NAME
LOG = "/var/log/%s.log" % NAME
HOST_CONF = "/etc/logrotate.conf"
VALIDATE = "/usr/local/libexec/runbook-ops/logrotate-validate"
CANDIDATE = "/etc/logrotate.d/zz-runbook-ops-candidate"
UNSAFE_DIR = "/srv/group-writable-logs"  # root:adm 0775: insecure to logrotate on any host
INCLUDE = "include /etc/logrotate.d\n"


def on_ubuntu_layout(host):
    return host.backend.get_hostname() == "logrotate-ubuntu-layout"


def block(log, *directives):
    """A logrotate.d file for ``log`` as the role's template writes it."""
    body = directives or ("weekly", "rotate 8", "compress", "missingok", "notifempty")
    return '"%s"\n{\n%s}\n' % (log, "".join("    %s\n" % line for line in body))


def write(host, path, text, mode="0644"):
    host.check_output("printf '%%s' %s > %s && chmod %s %s" % (shlex.quote(text), path, mode, path))


def without_su(text):
    return re.sub(r"(?m)^su .*\n", "", text)


@contextlib.contextmanager
def host_conf_replaced(host, text):
    """/etc/logrotate.conf holds ``text`` for the duration, then its own content again."""
    host.check_output("cp -p %s %s.keep" % (HOST_CONF, HOST_CONF))
    try:
        write(host, HOST_CONF, text)
        yield
    finally:
        host.check_output("mv %s.keep %s" % (HOST_CONF, HOST_CONF))


def test_the_host_has_the_layout_it_stands_for(host):
    var_log = host.file("/var/log")
    shipped = host.file(HOST_CONF).content_string
    if on_ubuntu_layout(host):
        assert (var_log.user, var_log.group, var_log.mode) == ("root", "syslog", 0o775)
        assert "\nsu root adm\n" in shipped
    else:
        assert (var_log.user, var_log.group, var_log.mode) == ("root", "root", 0o755)
        assert not re.search(r"(?m)^\s*su\s", shipped)
    assert INCLUDE in shipped


def test_the_config_landed_as_templated(host):
    conf = host.file(CONF)
    assert (conf.user, conf.group, conf.mode) == ("root", "root", 0o644)
    text = conf.content_string
    assert "# runbook.ops.logrotate: %s\n" % NAME in text
    assert text.endswith(block(LOG))


@pytest.fixture
def job_log(host):
    """The job's log as the runbook-ops wrapper leaves it (root, umask 022), three lines."""
    host.check_output("rm -f %s.*" % LOG)
    write(host, LOG, "one\ntwo\nthree\n")
    host.check_output("chown root:root %s" % LOG)
    yield LOG
    host.run("rm -f %s %s.*" % (LOG, LOG))


@pytest.mark.parametrize("su_line", [None, "su root syslog"], ids=["as-shipped", "su-root-syslog"])
def test_the_host_run_rotates_the_log_keeping_owner_and_mode(host, job_log, su_line):
    """`logrotate -f /etc/logrotate.conf`: the host's run, forced. Ubuntu before 20.04
    wrote "su root syslog" where jammy and noble write "su root adm"."""
    shipped = host.file(HOST_CONF).content_string
    if su_line is None:
        conf = shipped
    elif on_ubuntu_layout(host):
        conf = shipped.replace("\nsu root adm\n", "\n%s\n" % su_line)
    else:
        pytest.skip("the su line variants are Ubuntu's")
    with host_conf_replaced(host, conf):
        run = host.run("logrotate -f %s" % HOST_CONF)
    assert run.rc == 0, run.stdout + run.stderr
    assert "error" not in run.stdout + run.stderr
    rotated = host.file(job_log + ".1.gz")
    assert (rotated.user, rotated.group, rotated.mode) == ("root", "root", 0o644)
    assert host.check_output("zcat %s.1.gz" % job_log) == "one\ntwo\nthree"
    live = host.file(job_log)
    assert (live.user, live.group, live.mode, live.size) == ("root", "root", 0o644, 0)


def host_run_errors(host, log):
    """The errors about ``log`` in a dry run of the host's configuration, which includes
    /etc/logrotate.d and with it CANDIDATE: how logrotate itself judges the file."""
    run = host.run("logrotate -d --state /dev/null %s" % HOST_CONF)
    return [line for line in (run.stdout + run.stderr).splitlines()
            if line.startswith("error:") and log in line]


# Host configurations as variants of the one the host ships, and whether su applies to
# the files of /etc/logrotate.d (None: as shipped, on Ubuntu's layout only).
VARIANTS = {
    "as-shipped": (lambda text: text, None),
    "no-su": (without_su, False),
    "su-root-syslog": (lambda text: without_su(text).replace(INCLUDE, "su root syslog\n" + INCLUDE), True),
    "su-after-the-include": (lambda text: without_su(text).replace(INCLUDE, INCLUDE + "su root adm\n"), False),
    "su-in-a-log-block": (
        lambda text: without_su(text).replace(INCLUDE, "/var/log/other.log {\n    su root adm\n}\n" + INCLUDE),
        False),
}


@pytest.fixture
def unsafe_dir(host):
    host.check_output("mkdir -p %s && chown root:adm %s && chmod 0775 %s"
                      % (UNSAFE_DIR, UNSAFE_DIR, UNSAFE_DIR))
    yield UNSAFE_DIR
    host.run("rm -rf %s %s" % (UNSAFE_DIR, CANDIDATE))


@pytest.mark.parametrize("log_dir", ["/var/log", UNSAFE_DIR])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_validator_judges_a_file_as_the_host_run_does(host, unsafe_dir, variant, log_dir):
    """Same verdict as logrotate's own run of the host configuration, for every variant:
    a log in a group-writable directory passes only where a global su reaches the file."""
    transform, su_applies = VARIANTS[variant]
    if variant == "su-root-syslog" and not on_ubuntu_layout(host):
        pytest.skip("Debian has no syslog group")
    if su_applies is None:
        su_applies = on_ubuntu_layout(host)
    log = "%s/runbook-ops-candidate.log" % log_dir
    write(host, CANDIDATE, block(log))
    with host_conf_replaced(host, transform(host.file(HOST_CONF).content_string)):
        judged = host.run("%s %s" % (VALIDATE, CANDIDATE))
        host_errors = host_run_errors(host, log)
    group_writable = log_dir == UNSAFE_DIR or on_ubuntu_layout(host)
    expected = su_applies or not group_writable
    assert (not host_errors) == expected, host_errors
    assert (judged.rc == 0) == expected, judged.stderr
    if not expected:
        assert "because parent directory has insecure permissions" in judged.stderr


@pytest.mark.parametrize("directives, refusal", [
    (("weekly", "rotate 8", "compres"), "unknown option 'compres'"),
    (("weekly", "rotate eight"), "bad rotation count"),
    (("weekly", "su nosuchuser adm"), "nosuchuser"),
], ids=["unknown-directive", "bad-value", "unknown-user"])
def test_the_validator_still_refuses_what_logrotate_d_lets_through(host, directives, refusal):
    """The checks kept from before: `logrotate -d` exits 0 after an unknown directive
    (for a log that exists or with missingok); every "error:" refuses the file."""
    write(host, CANDIDATE, block("/var/log/runbook-ops-candidate.log", *directives))
    try:
        judged = host.run("%s %s" % (VALIDATE, CANDIDATE))
    finally:
        host.run("rm -f %s" % CANDIDATE)
    assert judged.rc == 1
    assert refusal in judged.stderr


def test_the_validator_refuses_a_block_left_open_and_accepts_a_log_not_there_yet(host):
    write(host, CANDIDATE, block("/var/log/runbook-ops-candidate.log")[:-2])
    try:
        left_open = host.run("%s %s" % (VALIDATE, CANDIDATE))
        write(host, CANDIDATE, block("/var/log/not-there-yet.log", "weekly", "nomissingok"))
        not_there = host.run("%s %s" % (VALIDATE, CANDIDATE))
    finally:
        host.run("rm -f %s" % CANDIDATE)
    assert left_open.rc == 1 and "unbalanced braces (1 '{', 0 '}')" in left_open.stderr
    assert not_there.rc == 0, not_there.stderr


def test_the_validator_names_an_error_of_the_host_configuration_by_its_line(host):
    """A broken global line of the host's configuration refuses the file, and says where."""
    shipped = host.file(HOST_CONF).content_string
    broken = shipped.replace(INCLUDE, "su root nosuchgroup\n" + INCLUDE)
    line = broken.splitlines().index("su root nosuchgroup") + 1
    with host_conf_replaced(host, broken):
        judged = host.run("%s %s" % (VALIDATE, CONF))
    assert judged.rc == 1
    assert "error: %s:%d unknown group 'nosuchgroup'" % (HOST_CONF, line) in judged.stderr
    assert "/tmp/" not in judged.stderr


def test_the_validator_ignores_the_other_files_of_logrotate_d(host):
    """A broken neighbour in /etc/logrotate.d is not the new file's fault."""
    write(host, "/etc/logrotate.d/aa-broken-neighbour", block("/var/log/neighbour.log", "compres"))
    try:
        judged = host.run("%s %s" % (VALIDATE, CONF))
    finally:
        host.run("rm -f /etc/logrotate.d/aa-broken-neighbour")
    assert judged.rc == 0, judged.stderr
