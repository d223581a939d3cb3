# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception type the core raises for problems a user can fix."""

from __future__ import annotations


class OpsError(Exception):
    """A user-facing error: bad input, a missing path, a daemon that does not answer.

    The message says what was wrong and how to fix it. It never carries a secret.
    Modules turn it into ``fail_json(msg=...)``; the CLI prints it and exits 2.
    ``details`` holds extra plain data for the module result (never secrets).
    """

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message
