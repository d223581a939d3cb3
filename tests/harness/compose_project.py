# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Compose project in a directory of its own on an isolated engine, driven by the real
``docker compose`` (RUNBOOK_OPS_COMPOSE_BIN); the tests subclass it with what they read."""

from __future__ import annotations

import os
import subprocess

COMPOSE_BIN = os.environ.get("RUNBOOK_OPS_COMPOSE_BIN") or ""


class ComposeProject:
    """``compose_yaml % fields`` as compose.yaml in ``directory`` (named after it), with
    ``files`` ({relative path: content}) beside it."""

    def __init__(self, engine, directory, compose_yaml, fields, files=None):
        self.engine = engine
        self.dir = str(directory)
        self.name = os.path.basename(self.dir)
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "compose.yaml"), "w", encoding="utf-8") as handle:
            handle.write(compose_yaml % fields)
        for name, content in (files or {}).items():
            path = os.path.join(self.dir, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(content)

    def compose(self, *args):
        """Run ``docker compose ARGS`` in the project's directory; it must succeed."""
        proc = subprocess.run([COMPOSE_BIN] + list(args), cwd=self.dir, capture_output=True,
                              text=True, env=dict(os.environ, **self.engine.env), timeout=300,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        return proc
