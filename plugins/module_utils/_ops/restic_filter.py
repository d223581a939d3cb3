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
  or one of its parents, from the backup root down, matches (``is_excluded``).
"""

from __future__ import annotations


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


def parse_patterns(patterns):
    """restic's ``ParsePatterns``: ``[(negated, parts)]``; ``""`` in parts stands for ``**``."""
    parsed = []
    for pattern in patterns:
        if not pattern:
            continue
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        parts = ["" if part == "**" else part for part in _split_path(go_clean(body))]
        parsed.append((negated, parts))
    return parsed


def invalid_patterns(patterns):
    """The patterns restic refuses (``ValidatePatterns``: each part matched against itself)."""
    bad = []
    for pattern in patterns:
        for _negated, parts in parse_patterns([pattern]):
            try:
                for part in parts:
                    go_match(part, part)
            except BadPattern:
                bad.append(pattern)
    return bad


def _simple(part):
    return not any(char in part for char in "\\[]*?")


def _part_matches(part, component):
    return part == component if _simple(part) else go_match(part, component)


def _match_parts(parts, components):
    if "" in parts:  # '**': try it as 0, 1, 2, ... whole components
        pos = parts.index("")
        for count in range(len(components) - len(parts) + 2):
            if _match_parts(parts[:pos] + ["*"] * count + parts[pos + 1:], components):
                return True
        return False
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
    has_negated = any(negated for negated, _parts in parsed)
    matched = False
    for negated, parts in parsed:
        hit = _match_parts(parts, components)
        if negated:
            matched = matched and not hit
        else:
            matched = matched or hit
            if matched and not has_negated:
                break
    return matched


def is_excluded(parsed, path, root):
    """Whether a backup of ``root`` left ``path`` out: it or a parent from ``root`` down matches."""
    if not parsed:
        return False
    current = root
    if list_matches(parsed, current):
        return True
    rest = path[len(root):].strip("/")
    for name in rest.split("/") if rest else []:
        current = current.rstrip("/") + "/" + name
        if list_matches(parsed, current):
            return True
    return False


def escape_path(path):
    """An absolute pattern that matches exactly ``path`` and what is below it."""
    return "".join("\\" + char if char in "\\[]*?" else char for char in path)
