"""runbook.ops for AWX / Automation Controller, from the built tarball: ansible-builder's
build context and introspection (no image build: no registry here), project sync's
collections/requirements.yml, and a job run through ansible-runner as AWX runs one.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys

import pytest
import yaml

from collection_build import REPO, VENV_BIN, run_tool
from readme import code_blocks, readme_section
from tmpfs import mounted_tmpfs


def awx_section_blocks():
    """The README's AWX section: the project's playbook, then its collections/requirements.yml."""
    playbook, requirements = code_blocks(readme_section("From AWX / Automation Controller"), "yaml")
    return playbook, requirements


def test_builder_creates_a_context_that_installs_the_collection(installed_collection, collection_tarball,
                                                                tmp_path):
    example = tmp_path / "ee"
    shutil.copytree(installed_collection / "examples" / "execution-environment", example)
    (example / "requirements.yml").write_text(yaml.safe_dump(
        {"collections": [{"name": str(collection_tarball), "type": "file"}]}))
    run_tool([os.path.join(VENV_BIN, "ansible-builder"), "create", "-f", "execution-environment.yml",
              "--context", "context", "--output-filename", "Containerfile"], cwd=example)
    containerfile = (example / "context" / "Containerfile").read_text()
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" \
        in containerfile
    assert "introspect.py introspect --write-bindep=/tmp/src/bindep.txt --write-pip=/tmp/src/requirements.txt" \
        in containerfile
    assert 'ANSIBLE_INSTALL_REFS="ansible-core>=2.19.0,<2.22 ansible-runner"' in containerfile
    copied = yaml.safe_load((example / "context" / "_build" / "requirements.yml").read_text())
    assert copied["collections"][0]["name"] == str(collection_tarball)


def test_introspection_gives_the_ee_the_docker_sdk(installed_collections):
    out = run_tool([os.path.join(VENV_BIN, "ansible-builder"), "introspect", "--sanitize", installed_collections],
                   cwd=installed_collections)
    data = yaml.safe_load(out[out.index("---"):])
    assert data["python"] == ["docker>=5.0.0  # from collection runbook.ops",
                              "requests>=2.26.0  # from collection runbook.ops"]
    assert data["system"] == []


def test_project_sync_requirements_name_this_collection(installed_collections):
    """AWX installs collections/requirements.yml; offline it resolves to the installed tarball.
    The README's AWX section shows the same requirements."""
    with open(os.path.join(REPO, "collections", "requirements.yml"), encoding="utf-8") as handle:
        assert yaml.safe_load(awx_section_blocks()[1]) == yaml.safe_load(handle)
    out = run_tool([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "--offline",
                    "-r", os.path.join(REPO, "collections", "requirements.yml"), "-p", installed_collections],
                   cwd=installed_collections)
    assert "Nothing to do. All requested collections are already installed." in out


@pytest.fixture
def quiet_disk(tmp_path):
    """A 1 MiB tmpfs at 69% with two rotated logs from 2001 (the logs step's work)."""
    with mounted_tmpfs(tmp_path / "disk") as mount:
        (mount / "data").write_bytes(b"\0" * 500 * 1024)
        logs = mount / "log"
        logs.mkdir()
        for name in ("app.log.1.gz", "app.log.2.gz"):
            (logs / name).write_bytes(b"\1" * 100 * 1024)
            os.utime(logs / name, (0, 1000000000))
        yield mount


def test_ansible_runner_runs_the_readme_project_playbook_in_check_mode(installed_collections, quiet_disk,
                                                                       isolated_engine, tmp_path):
    """An AWX job: the README's one-line project playbook, run by ansible-runner."""
    private = tmp_path / "runner"
    (private / "inventory").mkdir(parents=True)
    (private / "project").mkdir()
    (private / "project" / "emergency_disk.yml").write_text(awx_section_blocks()[0])
    (private / "env").mkdir()
    (private / "inventory" / "hosts").write_text(
        "localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    (private / "env" / "extravars").write_text(json.dumps({
        "emergency_disk_path": str(quiet_disk), "emergency_disk_force": True,
        "emergency_disk_target_percent": 50, "emergency_disk_docker_host": isolated_engine.host,
        "emergency_disk_log_dir": str(quiet_disk / "log"), "emergency_disk_journal_vacuum": False,
        "emergency_disk_telegram": False}))
    (private / "env" / "cmdline").write_text("--check")
    (private / "env" / "envvars").write_text(json.dumps({"ANSIBLE_COLLECTIONS_PATH": str(installed_collections)}))
    run_tool([os.path.join(VENV_BIN, "ansible-runner"), "run", private, "-p", "emergency_disk.yml",
              "--ident", "check"],
             cwd=tmp_path, env={"PATH": VENV_BIN + os.pathsep + os.environ["PATH"]})
    artifacts = private / "artifacts" / "check"
    assert (artifacts / "status").read_text() == "successful"
    assert (artifacts / "rc").read_text() == "0"
    events = [json.loads(open(path, encoding="utf-8").read())
              for path in sorted(glob.glob(str(artifacts / "job_events" / "*.json")))]
    summaries = [e["event_data"]["res"]["msg"] for e in events
                 if e["event"] == "runner_on_ok" and e["event_data"].get("task") == "Print the summary"]
    assert len(summaries) == 1, [e["event"] for e in events]
    table = summaries[0]
    assert table[0] == ("emergency-disk localhost: %s (mount %s) [CHECK MODE: nothing changed, figures are "
                        "estimates]" % (quiet_disk, quiet_disk))
    assert table[1] == ("usage 69% -> 49% (projected), target below 50%, escalate above 80% "
                        "(forced: below critical) (forced preview: every step, past the target too)")
    assert table[2].startswith("would free ")  # the old logs, and whatever the shared engine holds
    steps = {line.split("  ")[0].strip(): line for line in table[4:8]}
    assert " to remove" in steps["Docker build cache"]  # previewed, forced
    assert "2 old log files, 0 archived journal files (journal vacuum off)" in steps["Journal and rotated logs"]
    assert sorted(os.listdir(quiet_disk / "log")) == ["app.log.1.gz", "app.log.2.gz"]  # --check removed nothing
