"""The built collection tarball: only what an installed collection uses, and it works once
installed elsewhere."""

from __future__ import annotations

import json
import os
import re
import tarfile

import yaml

from collection_build import REPO, VENV_BIN, run_tool
from readme import README, readme_section

# Everything at the top of the tarball. Clone-only files (ansible.cfg pointing at
# ./.collections, inventory/localhost.yml, docs/, .config/, collections/requirements.yml,
# the test harness, scripts, requirements/) stay out through galaxy.yml's build_ignore.
TOP_LEVEL = {
    "MANIFEST.json", "FILES.json", "README.md", "LICENSE", ".ansible-lint", ".ansible-lint-ignore",
    "requirements.txt", "bindep.txt", "changelogs", "examples", "meta", "playbooks", "plugins",
    "roles", "tests",
}


def test_tarball_carries_only_what_an_installed_collection_uses(collection_tarball):
    with tarfile.open(collection_tarball) as tar:
        names = tar.getnames()
    assert {name.split("/")[0] for name in names} == TOP_LEVEL
    assert {n.split("/")[1] for n in names if n.startswith("tests/") and n.count("/") >= 1} == {"sanity"}
    clutter = [n for n in names if "/molecule" in n or "__pycache__" in n or n.endswith((".pyc", ".tar.gz"))]
    assert clutter == []
    assert "plugins/module_utils/_ops/cli.py" in names
    assert "roles/base/tasks/main.yml" in names
    assert "meta/execution-environment.yml" in names


# A path of the collection as the README names it (`examples/hosts.yml`, `meta/...`).
_PATH = re.compile(r"\b(?:examples|playbooks|meta|roles|plugins|scripts|docs|benchmarks|tests)/[\w./-]*")


def test_the_shipped_readme_names_only_files_that_ship(collection_tarball):
    """Outside its "From a clone" section (and sentences pointing at the source repository),
    every file the README names is in the tarball: an installed collection's README makes
    sense without the clone."""
    with tarfile.open(collection_tarball) as tar:
        names = tar.getnames()
    with open(README, encoding="utf-8") as handle:
        text = handle.read().replace(readme_section("From a clone (development)"), "")
    paragraphs = [p for p in text.split("\n\n") if "source repository" not in p]
    named = {m.rstrip("./") for p in paragraphs for m in _PATH.findall(p)}
    assert named, "the README names no file of the collection"
    missing = [path for path in sorted(named)
               if not any(n == path or n.startswith(path + "/") or n.endswith("/" + path) for n in names)]
    assert missing == []


def test_installed_collection_documents_every_module(installed_collections):
    modules = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "plugins", "modules"))
                     if name.endswith(".py") and name != "__init__.py")
    assert modules, "the collection ships no module"
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed_collections)}
    listing = json.loads(run_tool([os.path.join(VENV_BIN, "ansible-doc"), "-t", "module", "-l", "runbook.ops",
                                   "--json"], cwd=installed_collections, env=env))
    assert sorted(name.split(".")[-1] for name in listing) == modules


def test_installed_collection_runs_a_module_outside_the_checkout(installed_collections, tmp_path):
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed_collections), "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    out = run_tool([os.path.join(VENV_BIN, "ansible"), "localhost", "-c", "local", "-e",
                    "ansible_python_interpreter=%s" % os.path.join(VENV_BIN, "python"),
                    "-m", "runbook.ops.disk_check", "-a", "paths=%s" % tmp_path, "-o"], cwd=tmp_path, env=env)
    assert "SUCCESS" in out and '"used_percent"' in out


def test_installed_roles_find_the_core_they_ship_to_hosts(installed_collection):
    core = (installed_collection / "roles" / "base" / ".." / ".." / "plugins" / "module_utils" / "_ops").resolve()
    assert (core / "cli.py").is_file() and (core / "jobs.py").is_file()


def test_installed_playbooks_run_by_collection_name(installed_collection, installed_collections, tmp_path):
    """Every playbook is runnable as runbook.ops.<name>; each hyphenated file the runbooks
    name is one import of its underscore twin (collection playbook names hold no hyphen)."""
    playbooks = installed_collection / "playbooks"
    names = sorted(p.stem for p in playbooks.glob("*.yml"))
    fqcn_names = [n for n in names if "-" not in n]
    assert {"provision", "restore", "env_sync", "health_check"} <= set(fqcn_names)
    for alias in (n for n in names if "-" in n):
        twin = alias.replace("-", "_")
        assert twin in fqcn_names, alias
        plays = yaml.safe_load((playbooks / (alias + ".yml")).read_text())
        assert [play["ansible.builtin.import_playbook"] for play in plays] == [twin + ".yml"]
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed_collections), "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    for name in fqcn_names:
        out = run_tool([os.path.join(VENV_BIN, "ansible-playbook"), "--syntax-check", "runbook.ops." + name],
                       cwd=tmp_path, env=env)
        assert "playbook: %s" % (playbooks / (name + ".yml")) in out, out
