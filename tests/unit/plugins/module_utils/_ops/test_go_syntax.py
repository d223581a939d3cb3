# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""go_syntax.py: Go's RE2 and text/template as dockerd parses log options.

The regular expressions are Go's own test data (regexp/syntax parse_test.go: invalidRegexps,
onlyPerl, onlyPOSIX, and patterns its parse tests take); the engine itself is the oracle in
tests/integration/test_docker_daemon_oracle.py.
"""

from __future__ import annotations

import os
import sys

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
_COLLECTIONS = os.path.join(_REPO, ".collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible_collections.runbook.ops.plugins.module_utils._ops.go_syntax import (  # noqa: E402
    go_regexp_problem, go_tag_template_problem)

GO_INVALID = [
    "(", ")", "(a", "a)", "(a))", "(a|b|", "a|b|)", "(a|b|))", "(a|b", "a|b)", "(a|b))", "[a-z",
    "([a-z)", "[a-z)", "([a-z]))", "x{1001}", "x{9876543210}", "x{2,1}", "x{1,9876543210}",
    "(?P<name>a", "(?P<name>", "(?P<name", "(?P<x y>a)", "(?P<>a)", "(?<name>a", "(?<name>",
    "(?<name", "(?<x y>a)", "(?<>a)", "[a-Z]", "(?i)[a-Z]", "\\Q\\E*", "a{100000}", "a{100000,}",
    "((((((((((x{2}){2}){2}){2}){2}){2}){2}){2}){2}){2})", "(" * 1000 + ")" * 1000,
    "(?:" * 1000 + ")*" * 1000, "(" + "(xx?)" * 1000 + "){1000}", "(xx?){1000}" * 1000,
    "\\pL" * 27000,
    # onlyPOSIX: Perl syntax (dockerd's) refuses a repetition of a repetition
    "a++", "a**", "a?*", "a+*", "a{1}*", ".{1}{2}.{3}",
    # RE2 has no look-arounds, back-references, atomic groups or \Z
    "(?=x)", "(?!x)", "(?<=x)", "(?<!x)", "(?>x)", "\\1", "(?P=n)", "\\Z", "(?#c)", "(?x)a",
]
GO_VALID = [
    "[a-b-c]", "\\Qabc\\E", "\\Q*+?{[\\E", "\\Q\\\\E", "\\Q\\\\\\E", "(?:a)", "(?P<name>a)",
    "a", "a.", "a.b", "ab", "a.*", "a+", "a?", "a{2}", "a{2,3}", "a{2,}", "a*?", "a+?", "a??",
    "a{2}?", "[[:alpha:]]", "[^[:alpha:]]", "[[:^alpha:]]", "\\pL", "\\p{Greek}", "\\PL",
    "[\\p{Han}]", "(?i)\\W", "\\d", "[\\d]", "[^\\D]", "(?s).", "(?-s).", "(?i-s:a)", "a|b|c",
    "(a|b|)", "x{1000}", "(x{10}){100}", "\\Q\\E", "a\\Q\\E*", "[\\-]", "[]a]", "[^]a]",
    "\\x{10FFFF}", "\\141", "\\0", "(?U)a+", "\\b\\B\\A\\z", "^$", "|", "()", "(|a)", "a|",
    "^com\\.example\\.", "a{,5}", "x{", "\\12",
]


@pytest.mark.parametrize("pattern", GO_INVALID, ids=[p[:24] for p in GO_INVALID])
def test_patterns_go_refuses_are_refused(pattern):
    assert go_regexp_problem(pattern) is not None


@pytest.mark.parametrize("pattern", GO_VALID)
def test_patterns_go_takes_pass(pattern):
    assert go_regexp_problem(pattern) is None


@pytest.mark.parametrize("pattern", ["(?<name>a)", "\\p{Tifinagh}", "\\_", "x" * 1001])
def test_what_some_go_takes_and_the_check_does_not_model_is_refused_as_caution(pattern):
    problem = go_regexp_problem(pattern)
    assert problem is not None and problem[1] is True


@pytest.mark.parametrize("template", [
    "web", "{{.Name}}", "{{.ID}}-{{.ImageName}}", "{{.Name | lower}}", "{{truncate .ID 5}}",
    "{{.ContainerLabels.app}}", '{{index .ContainerLabels "com.example.app"}}', "{{- .Name -}}",
    "{{/* a comment */}}web", '{{printf "%s-%s" .Name .ID}}', '{{join .ContainerArgs ","}}',
    "{{(lower .Name)}}", "{{ . }}", "{{json .ContainerLabels}}", "{{len .ContainerArgs}}",
    "{{pad .Name 1 2}}", "{{.DaemonName}}/{{.Hostname}}", "}} stays text", "{{.Config.env}}",
])
def test_tag_templates_dockerd_runs_pass(template):
    assert go_tag_template_problem(template) is None


@pytest.mark.parametrize("template, words", [
    ("{{.Nam}}", "can't evaluate field Nam"),
    ("{{.Name.First}}", "can't evaluate field First"),
    ('{{truncate .ID "5"}}', "expected int; got string"),
    ("{{upper .ContainerArgs}}", "expected string; got []string"),
    ("{{lower}}", "wrong number of args for lower"),
    ("{{lower .Name .ID}}", "wrong number of args for lower"),
    ("{{nope .Name}}", 'function "nope" not defined'),
    ("{{}}", "missing value for command"),
    ("{{.Name", "unclosed action"),
    ('{{.ID "x"}}', "can't give argument to non-function .ID"),
    ("{{/* open }}", "unclosed comment"),
    ("{{.ExtraAttributes}}", "wrong number of args for ExtraAttributes"),
])
def test_tag_templates_dockerd_cannot_run_are_refused_naming_why(template, words):
    problem = go_tag_template_problem(template)
    assert problem is not None and words in problem[0] and problem[1] is False


@pytest.mark.parametrize("template", ["{{if .Name}}x{{end}}", "{{range .ContainerArgs}}{{.}}{{end}}",
                                      "{{$x := .Name}}{{$x}}", "{{eq .Name \"x\"}}",
                                      "{{.ContainerCreated.Year}}"])
def test_tag_templates_beyond_the_model_are_refused_as_caution(template):
    problem = go_tag_template_problem(template)
    assert problem is not None and problem[1] is True
