# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""restic's ``--exclude`` patterns, matched the way restic matches them.

An in-place restore must leave alone exactly what the backup left out, so it needs
restic's own rules, not shell globbing. Ported from restic's ``internal/filter``
(identical in 0.14, Debian 12, and 0.18, Debian 13) and Go's ``filepath.Match``:

- a pattern is cleaned like Go's ``filepath.Clean`` and split at ``/``; each part is a
  ``filepath.Match`` glob (``*`` ``?`` ``[a-z]`` ``[^a]`` ``\\x``), ``**`` stands for
  any number of whole path components;
- an absolute pattern (``/srv/app/cache``) matches a path that starts with it;
  a relative one (``*.tmp``, ``cache/tmp``) matches any run of components;
- ``!pattern`` takes back what earlier patterns matched;
- a backup never walks into an excluded directory, so a path is excluded when it
  or one of its parents, from the backup root down, matches (restore_plan's walk stops
  there).
"""

from __future__ import annotations

import re


class BadPattern(ValueError):
    """A pattern Go's ``filepath.Match`` (and so restic) rejects."""


# --------------------------------------------------------------------------- Go filepath.Match

def go_match(pattern, name):
    """Go's ``filepath.Match(pattern, name)`` (Go 1.16+); raises ``BadPattern``."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return "/" not in name
        rest, ok = _match_chunk(chunk, name)
        if ok and (not rest or pattern):
            name = rest
            continue
        if star:
            found = False
            i = 0
            while i < len(name) and name[i] != "/":
                rest, ok = _match_chunk(chunk, name[i + 1:])
                if ok and not (not pattern and rest):
                    name, found = rest, True
                    break
                i += 1
            if found:
                continue
        while pattern:  # a mismatch still reports a malformed remainder
            _star, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def _scan_chunk(pattern):
    star = False
    while pattern.startswith("*"):
        pattern, star = pattern[1:], True
    in_range, i = False, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif char == "[":
            in_range = True
        elif char == "]":
            in_range = False
        elif char == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk, text):
    """Match the star-free ``chunk`` at the start of ``text``: ``(rest, ok)``."""
    failed = False
    while chunk:
        if not failed and not text:
            failed = True
        head = chunk[0]
        if head == "[":
            char = ""
            if not failed:
                char, text = text[0], text[1:]
            chunk = chunk[1:]
            negated = chunk.startswith("^")
            if negated:
                chunk = chunk[1:]
            matched, ranges = False, 0
            while True:
                if chunk.startswith("]") and ranges > 0:
                    chunk = chunk[1:]
                    break
                low, chunk = _get_esc(chunk)
                high = low
                if chunk[0] == "-":
                    high, chunk = _get_esc(chunk[1:])
                if low <= char <= high and char:
                    matched = True
                ranges += 1
            if matched == negated:
                failed = True
        elif head == "?":
            if not failed:
                if text[0] == "/":
                    failed = True
                text = text[1:]
            chunk = chunk[1:]
        else:
            if head == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise BadPattern("trailing backslash")
            if not failed:
                if chunk[0] != text[0]:
                    failed = True
                text = text[1:]
            chunk = chunk[1:]
    return ("", False) if failed else (text, True)


def _get_esc(chunk):
    if not chunk or chunk[0] in "-]":
        raise BadPattern("bad character range")
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise BadPattern("trailing backslash")
    char, rest = chunk[0], chunk[1:]
    if not rest:
        raise BadPattern("unclosed character class")
    return char, rest


# --------------------------------------------------------------------------- restic filter

def go_clean(path):
    """Go's ``filepath.Clean`` for ``/`` paths (``//a/./b/../c/`` -> ``/a/c``)."""
    rooted = path.startswith("/")
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _split_path(path):
    parts = path.split("/")
    if parts[0] == "":
        parts[0] = "/"
    return parts


_DOUBLE = object()  # a '**' part: any number of whole components


class Pattern:
    """One parsed pattern: ``negated`` and its parts, each a literal string, a compiled
    glob (Go's ``filepath.Match`` as a regular expression) or ``_DOUBLE``."""

    __slots__ = ("text", "negated", "parts", "literals", "_expanded")

    def __init__(self, text):
        self.text = text
        self.negated = text.startswith("!")
        body = text[1:] if self.negated else text
        # Go's Clean turns "/" into ["/", ""]: restic then takes the empty part for '**'.
        self.parts = [_DOUBLE if part in ("", "**") else _compile_part(part)
                      for part in _split_path(go_clean(body))]
        # every literal part must equal some component: a cheap way to rule most paths out
        self.literals = frozenset(part for part in self.parts if isinstance(part, str)
                                  and not isinstance(part, _Malformed) and part != "/")
        self._expanded = {}

    def expansions(self, length):
        """The part lists with every '**' spelled as 0, 1, ... single-component wildcards,
        as restic tries them for a path of ``length`` components (cached per length)."""
        if length not in self._expanded:
            self._expanded[length] = _expand(self.parts, length)
        return self._expanded[length]


def _expand(parts, length):
    if _DOUBLE not in parts:
        return [parts]
    pos = parts.index(_DOUBLE)
    found = []
    for count in range(length - len(parts) + 2):
        found += _expand(parts[:pos] + [_ANY] * count + parts[pos + 1:], length)
    return found


def _compile_part(part):
    """A literal part stays a string; a glob becomes a regular expression (Go semantics);
    a malformed one stays a string for ``go_match`` (restic refuses those up front)."""
    if not any(char in part for char in "\\[]*?"):
        return part
    try:
        return re.compile(_glob_regex(part), re.DOTALL)
    except (IndexError, re.error):
        return _Malformed(part)


class _Malformed(str):
    """A part Go's ``filepath.Match`` rejects: matching it raises ``BadPattern``."""


def _glob_regex(part):
    out, i = [], 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\":
            i += 1
            out.append(re.escape(part[i]))
        elif char == "[":
            regex, i = _class_regex(part, i + 1)
            out.append(regex)
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _class_regex(part, i):
    """``[...]`` starting after the bracket at ``part[i]``: (regex, index after ``]``)."""
    negated = part[i] == "^"
    i += 1 if negated else 0
    items, count = [], 0
    while not (part[i] == "]" and count > 0):
        low, i = _class_char(part, i)
        high = low
        if part[i] == "-":
            high, i = _class_char(part, i + 1)
        if low <= high:
            items.append(re.escape(low) + ("-" + re.escape(high) if high != low else ""))
        count += 1
    if not items:
        return ("[^/]" if negated else "(?!)"), i + 1
    return "[%s%s]" % ("^" if negated else "", "".join(items)), i + 1


def _class_char(part, i):
    if part[i] in "-]":
        raise IndexError(i)
    if part[i] == "\\":
        i += 1
    return part[i], i + 1


_ANY = _compile_part("*")


def parse_patterns(patterns):
    """restic's ``ParsePatterns``: a ``Pattern`` per non-empty pattern, in order."""
    return [Pattern(pattern) for pattern in patterns if pattern]


def invalid_patterns(patterns):
    """The patterns restic refuses (``ValidatePatterns``: each part matched against itself)."""
    bad = []
    for pattern in patterns:
        body = pattern[1:] if pattern.startswith("!") else pattern
        if not pattern:
            continue
        try:
            for part in _split_path(go_clean(body)):
                go_match(part, part)
        except BadPattern:
            bad.append(pattern)
    return bad


def _part_matches(part, component):
    if isinstance(part, _Malformed):
        return go_match(part, component)
    if isinstance(part, str):
        return part == component
    return part.fullmatch(component) is not None


def _match_fixed(parts, components):
    """restic's window match of a '**'-free part list against a path's components."""
    if not parts:
        return not components
    if len(parts) > len(components):
        return False
    lowest, highest = 0, len(components) - len(parts)
    if parts[0] == "/":
        highest = 0
    elif components[0] == "/":
        lowest = 1
    for offset in range(highest, lowest - 1, -1):
        if all(_part_matches(parts[i], components[offset + i])
               for i in range(len(parts) - 1, -1, -1)):
            return True
    return False


def list_matches(parsed, path):
    """restic's ``filter.List``: does ``path`` (absolute, clean) match the pattern list?"""
    if not parsed:
        return False
    components = _split_path(path)
    present = set(components)
    has_negated = any(pattern.negated for pattern in parsed)
    matched = False
    for pattern in parsed:
        hit = pattern.literals <= present and any(
            _match_fixed(parts, components) for parts in pattern.expansions(len(components)))
        if pattern.negated:
            matched = matched and not hit
        else:
            matched = matched or hit
            if matched and not has_negated:
                break
    return matched


def escape_path(path):
    """An absolute pattern that matches exactly ``path`` and what is below it."""
    return "".join("\\" + char if char in "\\[]*?" else char for char in path)
