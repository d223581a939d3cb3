"""The built tarball through the ecosystem's own checkers, as Galaxy and the docs site run
them: galaxy-importer, ansible-lint's production profile, antsibull-docs, antsibull-changelog.

galaxy-importer and antsibull-docs live in their own venv (``scripts/bootstrap ecosystem``,
requirements/ecosystem.txt): they pin libraries below what the test venv's tools need.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from collection_build import REPO, VENV_BIN, run_tool

# galaxy.ansible.com's import: the importer's defaults (ansible-doc, ansible-lint and the
# changelog check on), ansible-test off (Galaxy does not run it either).
IMPORTER_CONFIG = """[galaxy-importer]
run_ansible_test = false
run_ansible_doc = true
run_ansible_lint = true
offline_ansible_lint = true
check_changelog = true
"""
# The importer notes every sanity ignore file; that note is all it may say beyond INFO.
IGNORE_NOTICE = re.compile(r"^WARNING: Ignore files skip ansible-test sanity tests, "
                           r"found (ignore-[0-9.]+\.txt) with (\d+) statement\(s\)$")


@pytest.fixture(scope="module")
def ecosystem_bin():
    """The bin directory of the ecosystem venv, made or refreshed from its pins."""
    run_tool([os.path.join(REPO, "scripts", "bootstrap"), "ecosystem"], cwd=REPO)
    venv = run_tool([os.path.join(REPO, "scripts", "bootstrap"), "--where", "ecosystem"], cwd=REPO).strip()
    return os.path.join(venv, "bin")


def _path_with(bin_dir):
    return {"PATH": bin_dir + os.pathsep + os.environ["PATH"]}


def test_galaxy_importer_accepts_the_tarball_and_warns_of_nothing_unknown(
        collection_tarball, ecosystem_bin, tmp_path):
    config = tmp_path / "galaxy-importer.cfg"
    config.write_text(IMPORTER_CONFIG)
    env = dict(_path_with(ecosystem_bin), GALAXY_IMPORTER_CONFIG=str(config))
    proc = run_tool([os.path.join(ecosystem_bin, "python"), "-m", "galaxy_importer.main", collection_tarball],
                    cwd=tmp_path, env=env, expect_rc=None)
    log = (proc.stdout + proc.stderr).splitlines()
    assert proc.returncode == 0 and "Importer processing completed successfully" in log, "\n".join(log)
    notices = {}
    problems = []
    for line in log:
        match = IGNORE_NOTICE.match(line)
        if match:
            notices[match.group(1)] = int(match.group(2))
        elif line.startswith(("WARNING", "ERROR")):
            problems.append(line)
    assert not problems, "\n".join(log)
    shipped = {}
    for name in os.listdir(os.path.join(REPO, "tests", "sanity")):
        with open(os.path.join(REPO, "tests", "sanity", name), encoding="utf-8") as handle:
            shipped[name] = sum(1 for line in handle if line.strip() and not line.startswith("#"))
    assert notices == shipped
    result = json.loads((tmp_path / "importer_result.json").read_text())
    assert result["requires_ansible"] == ">=2.19.0"
    names = {(c["content_type"], c["name"]) for c in result["contents"]}
    assert {("module", "docker_cleanup"), ("role", "base"), ("playbook", "emergency_disk.yml"), ("playbook", "emergency-disk.yml")} <= names


def test_ansible_lint_production_passes_on_the_installed_collection(installed_collection,
                                                                    installed_collections):
    out = run_tool([os.path.join(VENV_BIN, "ansible-lint"), "--profile", "production", "--offline", "--nocolor"],
                   cwd=installed_collection, env={"ANSIBLE_COLLECTIONS_PATH": str(installed_collections)},
                   expect_rc=None)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-6000:]
    assert "Passed:" in out.stderr and "production" in out.stderr


def test_antsibull_docs_finds_no_error_in_plugin_and_role_docs(installed_collection, installed_collections,
                                                               ecosystem_bin):
    env = dict(_path_with(ecosystem_bin), ANSIBLE_COLLECTIONS_PATH=str(installed_collections))
    out = run_tool([os.path.join(ecosystem_bin, "antsibull-docs"), "lint-collection-docs", "--plugin-docs", "."],
                   cwd=installed_collection, env=env)
    assert out.strip() == ""


def test_antsibull_changelog_lints_the_shipped_fragments_and_changelog(installed_collection):
    changelog = os.path.join(VENV_BIN, "antsibull-changelog")
    assert run_tool([changelog, "lint"], cwd=installed_collection).strip() == ""
    assert run_tool([changelog, "lint-changelog-yaml", "changelogs/changelog.yaml"],
                    cwd=installed_collection).strip() == ""
