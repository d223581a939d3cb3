# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""logrotate-validate --print-globals: which lines of the host's logrotate.conf a new
/etc/logrotate.d file is judged with.

logrotate hands a file of /etc/logrotate.d the global directives (and global scripts) set
before `include /etc/logrotate.d`, and nothing from log blocks, from after that include or
(here, by choice) from other includes. The validator keeps exactly those lines and blanks
the rest, so that logrotate's messages keep the host file's line numbers. Real logrotate
runs in the Molecule scenario of the role; this checks the extraction against a model.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROLE = os.path.join(os.path.dirname(__file__), *[".."] * 5, "roles", "logrotate")
VALIDATOR = os.path.join(ROLE, "files", "logrotate-validate")


def print_globals(tmp_path, text):
    conf = tmp_path / "logrotate.conf"
    conf.write_text(text, encoding="utf-8")
    done = subprocess.run(["sh", VALIDATOR, "--host-config", str(conf), "--print-globals"],
                          capture_output=True, text=True, check=True)
    return done.stdout


DEBIAN_12 = """\
# see "man logrotate" for details

# global options do not affect preceding include directives

# rotate log files weekly
weekly

# keep 4 weeks worth of backlogs
rotate 4

# create new (empty) log files after rotating old ones
create

# use date as a suffix of the rotated file
#dateext

# uncomment this if you want your log files compressed
#compress

# packages drop log rotation information into this directory
include /etc/logrotate.d

# system-specific logs may also be configured here.
"""

# The text the role's Molecule scenario installs to emulate Ubuntu jammy and noble.
with open(os.path.join(ROLE, "molecule", "default", "files", "logrotate.conf.ubuntu"),
          encoding="utf-8") as ubuntu:
    UBUNTU_NOBLE = ubuntu.read()

UBUNTU_BIONIC = """\
# see "man logrotate" for details
# rotate log files weekly
weekly

# use the syslog group by default, since this is the owning group
# of /var/log/syslog.
su root syslog

# keep 4 weeks worth of backlogs
rotate 4

# create new (empty) log files after rotating old ones
create

# uncomment this if you want your log files compressed
#compress

# packages drop log rotation information into this directory
include /etc/logrotate.d

# no packages own wtmp, or btmp -- we'll rotate them here
/var/log/wtmp {
    missingok
    monthly
    create 0664 root utmp
    rotate 1
}

# system-specific logs may be configured here
"""


def kept(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("conf, globals_", [
    (DEBIAN_12, ["weekly", "rotate 4", "create"]),
    (UBUNTU_NOBLE, ["weekly", "su root adm", "rotate 4", "create"]),
    (UBUNTU_BIONIC, ["weekly", "su root syslog", "rotate 4", "create"]),
], ids=["debian-12", "ubuntu-jammy-noble", "ubuntu-bionic"])
def test_the_shipped_configurations_give_their_global_directives(tmp_path, conf, globals_):
    printed = print_globals(tmp_path, conf)
    assert kept(printed) == globals_
    assert len(printed.splitlines()) == len(conf.splitlines())


def test_a_global_after_the_include_a_block_and_another_include_are_left_out(tmp_path):
    conf = ("include /etc/logrotate.local\n/var/log/a.log {\n    su root adm\n}\n"
            "include /etc/logrotate.d/\nsu root adm\n")
    assert kept(print_globals(tmp_path, conf)) == []


def test_without_the_include_every_global_is_kept(tmp_path):
    assert kept(print_globals(tmp_path, "weekly\n/var/log/a.log {\n  daily\n}\nsu root adm\n")) \
        == ["weekly", "su root adm"]


# A model of a logrotate.conf: a list of elements, each (lines, kind). The kinds say what
# logrotate makes of them; the generator knows, the validator has to find out.
INDENT = st.sampled_from(["", "  ", "\t", " \t "])
DIRECTIVES = st.sampled_from([
    "weekly", "rotate 4", "create", "create 0640 root adm", "su root adm", "su root syslog",
    "compress", "olddir /var/log/old", "dateext", "tabooext + .bak", "missingok",
    "maxsize 100M", "mail root@example.org", "compresscmd /usr/bin/xz", "su = root adm",
])
SCRIPTS = st.sampled_from(["prerotate", "postrotate", "firstaction", "lastaction", "preremove"])
SCRIPT_LINES = st.lists(st.sampled_from([
    "    echo {", "    echo }", "    test -f /run/x && kill -HUP $(cat /run/x) }",
    '    printf "%s\\n" "${X}"', "    # } not the end", "    /var/log/x.log {",
]), max_size=3)
PATTERNS = st.sampled_from(['/var/log/a.log', '"/var/log/b c.log"', "'/var/log/c.log'",
                            "~/d.log", "/var/log/e/*.log /var/log/f.log"])
COMMENTS = st.sampled_from(["# comment", "#include /etc/logrotate.d", "  # { not a block }",
                            "# }", "\t# postrotate", ""])
OTHER_INCLUDES = st.sampled_from(["include /etc/logrotate.local", "include /etc/other.d/",
                                  "include /etc/logrotate.d.local", 'include "/etc/logrotate.d"',
                                  "include /etc/logrotate.d/extra.conf"])
THE_INCLUDE = st.sampled_from(["include /etc/logrotate.d", "include /etc/logrotate.d/",
                               "\tinclude   /etc/logrotate.d//", "include=/etc/logrotate.d",
                               "include /etc/logrotate.d  "])


@st.composite
def global_directive(draw):
    return [draw(INDENT) + draw(DIRECTIVES)], "kept"


@st.composite
def global_script(draw):
    return [draw(INDENT) + draw(SCRIPTS)] + draw(SCRIPT_LINES) + ["endscript"], "kept"


@st.composite
def log_block(draw):
    patterns = draw(st.lists(PATTERNS, min_size=1, max_size=2))
    body = []
    for kind in draw(st.lists(st.sampled_from(["directive", "comment", "script"]), max_size=3)):
        if kind == "directive":
            body.append("    " + draw(DIRECTIVES))
        elif kind == "comment":
            body.append(draw(COMMENTS))
        else:
            body += ["    " + draw(SCRIPTS)] + draw(SCRIPT_LINES) + ["    endscript"]
    if not body and draw(st.booleans()):
        return ["%s { %s }" % (" ".join(patterns), draw(DIRECTIVES))], "block"
    if draw(st.booleans()):
        head = [" ".join(patterns) + " {"]
    else:
        head = patterns + [draw(COMMENTS), "{"]
    return head + body + ["}"], "block"


ELEMENTS = st.one_of(
    global_directive(), global_script(), log_block(),
    COMMENTS.map(lambda line: ([line], "kept")),
    OTHER_INCLUDES.map(lambda line: ([line], "blanked")),
    THE_INCLUDE.map(lambda line: ([line], "the include")),
)


def model_globals(elements):
    """What logrotate gives a file of /etc/logrotate.d, line for line."""
    out, included = [], False
    for lines, kind in elements:
        keep = kind == "kept" and not included
        out += [line if keep else "" for line in lines]
        included = included or kind == "the include"
    return out


@given(st.lists(ELEMENTS, max_size=12))
def test_print_globals_keeps_what_logrotate_hands_to_logrotate_d(tmp_path_factory, elements):
    conf = "".join(line + "\n" for lines, kind in elements for line in lines)
    printed = print_globals(tmp_path_factory.mktemp("conf"), conf)
    assert printed.splitlines() == model_globals(elements)
