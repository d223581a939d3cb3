# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The README's sections and fenced code blocks, so tests run what a reader types."""

from __future__ import annotations

import os
import re

README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "README.md")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def readme_section(title, path=README):
    """The text under the heading ``title`` (any level) up to the next heading of the same
    or a higher level."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    headings = list(_headings(lines))
    for position, (index, level, text) in enumerate(headings):
        if text == title:
            end = next((other for other, other_level, _text in headings[position + 1:] if other_level <= level),
                       len(lines))
            return "\n".join(lines[index + 1:end])
    raise AssertionError("README.md has no section %r" % title)


def _headings(lines):
    """``(line index, level, text)`` of each Markdown heading outside fenced blocks."""
    fenced = False
    for index, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"^(#+) (.*)$", line)
        if match:
            yield index, len(match.group(1)), match.group(2).strip()


def code_blocks(text, language):
    """The fenced blocks of ``text`` written in ``language``, in order."""
    return [body for lang, body in _FENCE.findall(text) if lang == language]
