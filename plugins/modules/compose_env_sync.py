#!/usr/bin/python
# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_env_sync
short_description: Recreate the Compose services whose containers hold a stale environment
version_added: 0.1.0
description:
  - Compares, per service of a Docker Compose project, the environment each running container
    holds (C(Config.Env)) with the environment compose resolves now (C(docker compose config
    --format json), which includes C(env_file) contents, raw env files, quoting and escapes, and
    C(${VAR}) interpolation with its defaults from C(.env)).
  - "Values with C($) (bcrypt or htpasswd hashes, generated passwords) compare as the container
    holds them: C(docker compose config) prints every C($) doubled so that its output is a valid
    compose file again, and the module halves every C($$) of that output before comparing. Compose
    2.20.1, 2.21.0 and 2.40.3 were verified to escape this way; an early Compose v2 did not
    (docker/compose#8518). So when the output holds a C($), the module first asks the compose in use
    (C(config) of a one-line probe project) and halves only when it escapes; output with a single
    C($) from a compose that escapes fails the task instead of being guessed."
  - Also notices when the content of files referenced by C(secrets:) and C(configs:) changed,
    which compose's own config hash ignores.
  - Recreates exactly the drifted services with C(docker compose up -d --force-recreate --no-deps
    --scale SERVICE=N), N being the number of containers the service runs (a service scaled by hand
    keeps its size; a warning says when N differs from C(scale)/C(deploy.replicas) of the file), waits
    until each runs and, where it has a healthcheck, is healthy, then verifies the drift is gone and
    the count is unchanged. A service to recreate that also has stopped containers (a stopped or
    crashed replica, which compose would remove or restart) fails the task before anything changes.
    This prevents the C(.env) desync incident, where C(docker compose restart) or a partial
    C(up -d backend) leaves C(celery-worker) with a stale C(AI_PROXY_SECRET).
  - Only keys compose sets count. The expected environment of a container is its image's
    C(Config.Env) overlaid with the resolved service environment. A key compose sets that the
    container lacks is C(added); a different value is C(changed); a key the container holds that
    compose no longer sets, and that the image does not provide with that value, is C(removed).
    Keys from the image's C(ENV) and the runtime keys C(PATH), C(HOSTNAME), C(HOME), C(TERM) never
    count as drift.
  - "A recreate changes only the environment: the project is resolved as its running containers were
    started. Containers of the project started from another directory (a project of the same name
    elsewhere, label C(com.docker.compose.project.working_dir), compared as real paths) fail the task
    before anything changes. Without O(files) and O(env_files), the compose files and env files the
    running containers were started with are used (labels C(com.docker.compose.project.config_files)
    and C(com.docker.compose.project.environment_file)); given ones that differ from those, or
    running containers started with different sets, fail the task naming both."
  - "C(secrets:)/C(configs:) files: after every successful run the module writes
    C(<state_dir>/compose-env-sync/<project>.json) (mode 0600) holding the project's container ids
    and, per referenced file, its keyed digest (HMAC-SHA256 under the host's key) and its inode and
    change time, nothing else. A file whose digest differs from the one recorded for the same
    containers under the same key is drift. When the record was made under another key (the key was
    replaced), a file whose inode or change time differs from the record is drift, and a warning says
    the content could not be compared (also in check mode). Without a record for the same containers,
    a file modified after the service's container was created is drift."
  - Only running (or restarting) containers are compared and recreated. Services whose containers
    are stopped (for example one-shot migration jobs) are listed in RV(not_running) and left alone.
  - Services of a compose profile are compared and recreated only when O(profiles) activates it (or
    C(COMPOSE_PROFILES) does, when O(profiles) is omitted). Running containers of services the
    resolved configuration does not hold are named in a warning and never touched.
  - No environment value ever appears in the result, in error messages, in the diff or in logs.
    Keys that drifted, and keys of O(consistent_keys) that differ between services, are shown as
    fingerprints, the first 12 hex digits of an HMAC-SHA256 under a random per-host key; no other
    key gets one. Without the key a fingerprint tells nothing about the value, not even of a
    4-digit PIN; on one host the same value always has the same fingerprint, on another host a
    different one.
  - "The key is C(<state_dir>/fingerprint.key) (mode 0600, never printed), created by role
    C(runbook.ops.base). On a host where base never ran, the first run that is not in check mode
    creates it the same way. In check mode, when it cannot be created (read-only disk) or when the
    user running the module may not read it (no C(become)), a throw-away key serves the run and a
    warning says its fingerprints match no other run. A key file that is not a regular file of at
    least 32 characters (a link, FIFO, device or directory, never opened) fails the task before
    anything changes."
  - "A key someone else may know is not used: one owned by a user other than the one running the
    module or root, or readable or writable by group or others in a directory they can enter, is
    replaced by a new key (a temporary file renamed over it) with a warning; fingerprints on the host
    change from then on. Check mode changes nothing: it warns and uses a throw-away key. A key open to
    others in a directory nobody else can enter is set to 0600 (in check mode, only reported)."
author:
  - runbook.ops maintainers (@runbook-ops)
requirements:
  - Docker Compose v2 (C(docker compose) plugin or standalone C(docker-compose) 2.x) on the host;
    2.20.1, 2.21.0 and 2.40.3 are tested.
  - The Docker SDK for Python 5.0 or later (Debian/Ubuntu C(python3-docker)) on the host.
attributes:
  check_mode:
    support: full
    description: Reports the drift and the services that would be recreated, changes nothing.
  diff_mode:
    support: full
    description: Shows the drifted keys per service with the fingerprints before and after, never values.
  idempotent:
    support: full
    description: A second run right after a successful one finds no drift and changes nothing.
options:
  project_src:
    description:
      - The compose project directory (where C(compose.yaml) and C(.env) live).
    type: path
    required: true
  files:
    description:
      - Compose files (C(-f)), relative to O(project_src) or absolute.
      - When omitted, the files the project's running containers were started with (for example
        C(compose.yaml) and C(compose.prod.yml) of C(docker compose -f compose.yaml -f compose.prod.yml
        up -d)); compose's defaults when no container runs.
      - Given files must be those the running containers (of O(services), when set) were started
        with, in the same order; otherwise the task fails before anything changes.
    type: list
    elements: path
  env_files:
    description:
      - Environment files used for interpolation (C(--env-file)), relative to O(project_src) or
        absolute.
      - When omitted, the env files the running containers were started with (C(--env-file)), else
        compose's default (C(.env) in the project directory). Given ones must be those the running
        containers were started with, when compose recorded them.
    type: list
    elements: path
  project_name:
    description:
      - The compose project name, when the project is not run under the directory's name.
      - Set it when another directory runs a project of the same name (the task fails naming it).
    type: str
  services:
    description:
      - Limit the comparison and the recreation to these services. All services of the active
        profiles when omitted.
    type: list
    elements: str
  profiles:
    description:
      - Compose profiles to activate (C(--profile)), so that services started with
        C(docker compose --profile NAME up) are compared and recreated.
      - Replaces C(COMPOSE_PROFILES), as C(--profile) does on the command line; when omitted,
        compose's default applies (C(COMPOSE_PROFILES) from C(.env) or the environment).
    type: list
    elements: str
  consistent_keys:
    description:
      - Keys that must have the same value in every service that defines them, for example
        C(AI_PROXY_SECRET). They are compared in the resolved configuration, since recreating
        cannot fix a configuration that disagrees with itself. Running containers that disagree
        are drift, which the module fixes.
    type: list
    elements: str
    default: []
  on_inconsistent:
    description:
      - What to do when a key of O(consistent_keys) differs between services.
      - V(fail) fails the task before anything is recreated; V(warn) warns and syncs anyway.
    type: str
    choices: [fail, warn]
    default: fail
  force:
    description:
      - Recreate the selected running services even when nothing drifted.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for each recreated service to run and, with a healthcheck, to be healthy.
    type: int
    default: 120
  compose_command:
    description:
      - The compose command, for example V(docker compose) or V(/usr/local/bin/docker-compose).
      - Auto-detected when omitted, C(docker compose) first, then C(docker-compose).
    type: list
    elements: str
  docker_host:
    description:
      - The Docker daemon to talk to, for example V(unix:///var/run/docker.sock). Passed to compose
        as C(DOCKER_HOST). The C(DOCKER_HOST) environment variable or the default socket when omitted.
    type: str
  state_dir:
    description:
      - Directory for the per-project state file (C(compose-env-sync/<project>.json), keyed digests
        only) and the host's fingerprint key (C(fingerprint.key)). Keep it equal to role
        C(runbook.ops.base)'s C(runbook_ops_state_dir), so that both use one key.
    type: path
    default: /var/lib/runbook-ops
notes:
  - Run it with C(become) when the Docker socket or O(state_dir) needs root.
  - Compose interpolates C(${VAR}) from C(.env) and from the environment of the process running it;
    variables exported in an interactive shell but not in C(.env) are not seen by this module.
  - Fingerprints compare between services and runs on one host only; the same value has another
    fingerprint on every other host.
seealso:
  - name: docker compose up
    description: The command the module runs to recreate services.
    link: https://docs.docker.com/reference/cli/docker/compose/up/
"""

EXAMPLES = r"""
- name: Recreate every service whose container holds a stale .env
  runbook.ops.compose_env_sync:
    project_src: /opt/eatfit24
    consistent_keys:
      - AI_PROXY_SECRET
  become: true

- name: Only report the drift (check mode), with fingerprints in the diff
  runbook.ops.compose_env_sync:
    project_src: /opt/eatfit24
    services: [backend, celery-worker, celery-beat, bot]
  check_mode: true
  diff: true
  register: env_drift

- name: Also compare the services started with `docker compose --profile workers up -d`
  runbook.ops.compose_env_sync:
    project_src: /opt/app
    profiles: [workers]
  become: true

- name: Force-recreate the workers after a secrets file change, with a longer health wait
  runbook.ops.compose_env_sync:
    project_src: /opt/app
    files: [docker-compose.yml, docker-compose.prod.yml]
    services: [celery-worker, celery-beat]
    force: true
    wait_timeout: 300
    on_inconsistent: warn
"""

RETURN = r"""
drifted:
  description:
    - Per drifted service, the key names compose sets that the container lacks (C(added)), no
      longer sets (C(removed)) or sets to another value (C(changed)), and the changed
      C(secrets:)/C(configs:) files as C(secret:NAME) or C(config:NAME) (C(files)).
    - Always the drift found before the run, also when the services were then recreated.
  returned: always
  type: dict
  sample:
    celery-worker:
      added: []
      removed: []
      changed: [AI_PROXY_SECRET]
      files: []
inconsistent:
  description: Keys of O(consistent_keys) whose values differ between services, with the services defining them.
  returned: always
  type: dict
  sample:
    AI_PROXY_SECRET: [backend, bot]
recreated:
  description: Services recreated (in check mode, the services that would be recreated).
  returned: always
  type: list
  elements: str
  sample: [celery-beat, celery-worker]
fingerprints:
  description:
    - Per service, only the keys that drifted there and the keys of O(consistent_keys) that differ
      between services, each mapped to the first 12 hex digits of the HMAC-SHA256, under the host's
      key, of the value the container holds at the end of the run (V((unset)) for a key without a
      value). Empty when nothing drifted.
    - For comparing by eye between services and runs on one host; never the value, and nothing a
      guess can be checked against without the host's key.
  returned: always
  type: dict
  sample:
    celery-worker:
      AI_PROXY_SECRET: 3f9a1c0b7e2d
    bot:
      AI_PROXY_SECRET: 3f9a1c0b7e2d
not_running:
  description: Selected services without a running container; they were not compared or recreated.
  returned: always
  type: list
  elements: str
  sample: [migrate]
project:
  description: The compose project name.
  returned: always
  type: str
  sample: eatfit24
state_file:
  description: The state file holding container ids and file digests of the project.
  returned: always
  type: str
  sample: /var/lib/runbook-ops/compose-env-sync/eatfit24.json
failed_services:
  description: When recreated services did not come back, their state, health and exit code.
  returned: failure
  type: dict
  sample:
    celery-worker:
      state: exited
      health: null
      exit_code: 1
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.ops.plugins.module_utils._ansible import run_core
from ansible_collections.runbook.ops.plugins.module_utils._ops.compose_env import OPTIONS, sync_compose_env
from ansible_collections.runbook.ops.plugins.module_utils._ops.options import module_spec


def main():
    module = AnsibleModule(argument_spec=module_spec(OPTIONS), supports_check_mode=True)
    result = run_core(module, sync_compose_env, check_mode=module.check_mode, **module.params)
    for warning in result.pop("warnings"):
        module.warn(warning)
    diff = result.pop("diff")
    if module._diff and result["changed"]:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
