# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install the runbook-ops core from the manifest the base role ships (name -> source).

Usage: install-core.py MANIFEST PACKAGE_DIR. Writes each file whose content differs
(atomically, 0644), removes ``*.py`` files the manifest no longer lists, and prints
``changed: NAMES`` or ``unchanged`` so the role reports the truth. One task per host
instead of one copy per file keeps provisioning a fleet fast.
"""

import json
import os
import sys
import tempfile


def main(manifest_path, package_dir):
    with open(manifest_path, encoding="utf-8") as handle:
        files = json.load(handle)
    os.makedirs(package_dir, exist_ok=True)
    changed = []
    for name, text in sorted(files.items()):
        path = os.path.join(package_dir, name)
        data = text.encode("utf-8")
        try:
            with open(path, "rb") as handle:
                if handle.read() == data:
                    continue
        except FileNotFoundError:
            pass
        fd, tmp = tempfile.mkstemp(dir=package_dir, prefix=".install-")
        try:
            os.write(fd, data)
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        changed.append(name)
    for name in sorted(os.listdir(package_dir)):
        if name.endswith(".py") and name not in files:
            os.unlink(os.path.join(package_dir, name))
            changed.append(name)
    sys.stdout.write(("changed: " + " ".join(changed)) if changed else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
