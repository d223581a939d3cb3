"""emit(): every subcommand prints JSON with --json and its lines otherwise."""

from __future__ import annotations

import argparse
import json

import pytest

from ansible_collections.runbook.ops.plugins.module_utils._ops.cli_output import emit


@pytest.mark.parametrize("as_json, lines, expected", [
    (False, ["a", "b"], "a\nb\n"),
    (False, "one line", "one line\n"),
    (False, None, ""),
    (False, [], ""),
], ids=["lines", "string", "none", "empty"])
def test_emit_writes_lines_without_json(capsys, as_json, lines, expected):
    emit(argparse.Namespace(json=as_json), {"x": 1}, lines)
    assert capsys.readouterr().out == expected


def test_emit_writes_sorted_json_that_parses_back(capsys):
    emit(argparse.Namespace(json=True), {"b": 2, "a": "é", "when": object}, ["ignored"])
    out = capsys.readouterr().out
    assert out.count("\n") == 1, "one line: playbooks read the last line of the output"
    assert json.loads(out)["a"] == "é" and out.index('"a"') < out.index('"b"')


def test_emit_treats_a_namespace_without_json_as_text(capsys):
    emit(argparse.Namespace(), {"x": 1}, ["text"])
    assert capsys.readouterr().out == "text\n"
