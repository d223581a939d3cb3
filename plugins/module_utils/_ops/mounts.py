# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paths as the mount table writes them: one decoder for /proc/self/mountinfo and fstab.

The kernel (and fstab) write a space, tab, newline or backslash in a path as a three-digit
octal escape (``\\040``); the disk check, the restore's quarantine and the backup's mount
checks all read paths from there.
"""

from __future__ import annotations


def unescape_mount(field):
    """``field`` with its octal escapes (``\\040`` for a space) decoded."""
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and set(code) <= set("01234567"):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
