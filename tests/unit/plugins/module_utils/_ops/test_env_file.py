# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""env_file: compose-go's dotenv rules (table), and format_env_line read back exactly (Hypothesis).

The table's expectations are what Docker Compose v2.40.3 (compose-go v2.9) gives in
``docker compose config`` for the same lines; tests/integration/test_env_file_compose.py
checks the writer against the real binary.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ansible_collections.runbook.ops.plugins.module_utils._ops.env_file import (
    format_env_line, parse_env_text, read_env_file)
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError

# (id, file text, expected {key: value})
RULES = [
    ("plain", "A=b\n", {"A": "b"}),
    ("no-final-newline", "A=b", {"A": "b"}),
    ("empty", "A=\nB=x\n", {"A": "", "B": "x"}),
    ("empty-single", "A=''\n", {"A": ""}),
    ("empty-double", 'A=""\n', {"A": ""}),
    ("comment-lines", "# one\n   # indented\n\nA=1\n", {"A": "1"}),
    ("inline-comment", "A=value # comment\n", {"A": "value"}),
    ("hash-without-space", "A=a#b\n", {"A": "a#b"}),
    ("tab-hash-is-not-a-comment", "A=a\t#b\n", {"A": "a\t#b"}),
    ("hash-right-after-equals", "A= #not a comment\n", {"A": "#not a comment"}),
    ("unquoted-trimmed", "A=   spaced value   \n", {"A": "spaced value"}),
    ("crlf", "A=b\r\nB='c'\r\n", {"A": "b", "B": "c"}),
    ("export", "export A=b\nexport\tB=c\n", {"A": "b", "B": "c"}),
    ("export-as-a-key", "export=b\n", {"export": "b"}),
    ("yaml-colon", "A: b\n", {"A": "b"}),
    ("spaces-around-equals", "A = b\n", {"A": "b"}),
    ("key-punctuation", "a.b-c[0]_D=1\n", {"a.b-c[0]_D": "1"}),
    ("single-literal", "A='$B \\n \\\\ \"x\"' # c\n", {"A": '$B \\n \\\\ "x"'}),
    ("single-escaped-quote", "A='it\\'s'\n", {"A": "it's"}),
    ("single-multiline", "A='l1\nl2'\n", {"A": "l1\nl2"}),
    ("double-escapes", 'A="l1\\nl2\\t\\\\ \\" \\$B"\n', {"A": 'l1\nl2\t\\ " $B'}),
    ("double-unknown-escape-kept", 'A="\\q \\c \\x41"\n', {"A": "\\q \\c \\x41"}),
    ("double-octal", 'A="\\0123 \\01 \\0"\n', {"A": "S \\1 \\"}),
    ("double-multiline", 'A="l1\nl2"\n', {"A": "l1\nl2"}),
    ("double-after-quote-comment", 'A="v" # c\nB=1\n', {"A": "v", "B": "1"}),
    ("interpolate-earlier-key", "A=x\nB=${A}-$A\nC=\"$A\"\nD='$A'\n", {"A": "x", "B": "x-x", "C": "x", "D": "$A"}),
    ("interpolate-unset-is-empty", "A=[$NOPE]\n", {"A": "[]"}),
    ("dollar-dollar", "A=a$$b\nB=\"a$$b\"\n", {"A": "a$b", "B": "a$b"}),
    ("dollar-before-other", "A=$1 $ $-\n", {"A": "$1 $ $-"}),
    ("defaults", "E=\nS=s\nA=${U:-d}${E:-d}${S:-d}\nB=${U-d}${E-d}\nC=${U:+a}${E:+a}${S:+a}\nD=${U+a}${E+a}\n",
     {"E": "", "S": "s", "A": "dds", "B": "d", "C": "a", "D": "a"}),
    ("nested-default", "S=s\nA=${U:-${S}x}y\n", {"S": "s", "A": "sxy"}),
    ("inherited-unset-skipped", "A\nB=1\n", {"B": "1"}),
    ("last-line-without-equals", "A=1\nLAST", {"A": "1", "": "LAST"}),
    ("bom", "\ufeffA=1\n", {"A": "1"}),
    ("later-key-wins", "A=1\nA=2\n", {"A": "2"}),
]


@pytest.mark.parametrize("text, expected", [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_compose_rules(text, expected):
    assert parse_env_text(text) == expected


def test_environ_answers_before_the_file_and_fills_bare_keys():
    assert parse_env_text("A=file\nB=$A\nC\n", environ={"A": "env", "C": "c"}) == {"A": "file", "B": "env", "C": "c"}


# (id, file text) compose refuses; the message names the line and never the value
REFUSED = [
    ("space-in-key", "A B=secret1\n"),
    ("bad-key-character", "A@B=secret1\n"),
    ("unterminated-single", "A='secret1\n"),
    ("unterminated-double", 'A="secret1\n'),
    ("invalid-interpolation", "A=${secret1\n"),
    ("required-unset", "A=${B:?secret1}\n"),
]


@pytest.mark.parametrize("text", [r[1] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_what_compose_refuses_is_an_ops_error_without_the_value(text):
    with pytest.raises(OpsError) as info:
        parse_env_text("OK=1\n" + text)
    assert str(info.value).startswith("line ") and "secret1" not in str(info.value)


def test_an_unreadable_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(OpsError) as info:
        read_env_file(str(tmp_path / "missing.env"))
    assert str(info.value) == "cannot read env file %s (No such file or directory)" % (tmp_path / "missing.env")


def test_a_file_is_read_byte_for_byte(tmp_path):
    """No newline translation (a lone \\r stays) and bytes that are not UTF-8 survive."""
    path = tmp_path / "app.env"
    path.write_bytes(b"A='a\rb'\nB=\xff\n")
    assert read_env_file(str(path)) == {"A": "a\rb", "B": "\udcff"}
    assert os.fsencode(read_env_file(str(path))["B"]) == b"\xff"


@pytest.mark.parametrize("key", ["", "A B", "A=B", "A:B", "A#", "A\n"])
def test_a_key_no_reader_takes_is_refused_by_name(key):
    with pytest.raises(OpsError, match="env file key"):
        format_env_line(key, "secret1")


@pytest.mark.parametrize("value, line", [
    ("plain", "K='plain'"),
    ("", "K=''"),
    ("a $b #c \"d\" \\e", "K='a $b #c \"d\" \\e'"),
    ("it's", 'K="it\'s"'),
    ("ends\\", 'K="ends\\\\"'),
    ("l1\nl2", 'K="l1\\nl2"'),
    ("$x \"\\", 'K="\\$x \\"\\\\"'),
], ids=["plain", "empty", "specials-single", "quote", "trailing-backslash", "newline", "escapes"])
def test_format_chooses_single_quotes_unless_the_value_needs_escapes(value, line):
    assert format_env_line("K", value) == line


KEYS = st.text(st.characters(whitelist_categories=("Lu", "Ll", "Lo", "Nd"), whitelist_characters="_.-[]"),
               min_size=1, max_size=12)
TRICKY = st.lists(st.sampled_from(list("ab'\" #$\\\n\r\t{}=:-") + ["${A}", "$$", " #", "\\'", '\\"', "\\0123"]),
                  max_size=20).map("".join)
VALUES = st.one_of(TRICKY, st.text(st.characters(blacklist_categories=("Cs",)), max_size=30))


@given(KEYS, VALUES)
@example("K", "ends in a quote'")
@example("K", 'ends in a quote"')
@example("K", "  lead and trail  ")
@example("K", "\\")
def test_every_value_format_writes_reads_back_exactly(key, value):
    assert parse_env_text(format_env_line(key, value) + "\n") == {key: value}


@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_a_file_of_formatted_lines_reads_back_as_the_same_dict(values):
    """Lines after one another: a quoted value never swallows the next line, and ``$``
    is never interpolated from an earlier key."""
    text = "".join(format_env_line(k, v) + "\n" for k, v in values.items())
    assert parse_env_text(text) == values


# --------------------------------------------------------------------------- users of the reader

def test_compose_env_redaction_gets_values_as_compose_reads_them_and_as_written(tmp_path):
    """compose_env.read_env_file_values: a multi-line and an escaped value as compose reads
    them, each line as written, and nothing (no error) for a file that is not there."""
    from ansible_collections.runbook.ops.plugins.module_utils._ops.compose_env import read_env_file_values
    path = tmp_path / ".env"
    path.write_text('A="first\nsecond"\nB="q\\"uote"\nC=\'x\'\n', encoding="utf-8")
    values = read_env_file_values(str(path))
    assert {"first\nsecond", 'q"uote', "x", "'x'"} <= set(values)
    assert read_env_file_values(str(tmp_path / "missing")) == []
    path.write_text("A@B=broken-secret\n", encoding="utf-8")
    assert "broken-secret" in read_env_file_values(str(path))
