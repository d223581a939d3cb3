#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_cleanup
short_description: Reclaim Docker disk space without removing anything still in use
version_added: 0.1.0
description:
  - Removes Docker build cache, stopped containers, unused images, unused volumes and
    unused networks, in that order, each step only when enabled.
  - Plans first from one inventory of what the enabled steps need (on Docker 23+ the
    type-filtered C(/system/df); on Docker 20.10, whose C(/system/df) sizes every volume,
    the image, container and volume lists instead), then removes item by item. Check
    mode shows exactly what each step would remove, with sizes and the estimated bytes
    reclaimed, and removes nothing.
  - Never removes an image that any container (running or stopped) uses, nor a parent
    image of one; never removes a volume that any container references, counting the
    containers the same run removes; never removes anything carrying O(keep_label).
  - Stopped containers are aged by when they stopped (C(State.FinishedAt); creation time
    only for one that never ran), by O(containers_until), never by O(until), and never
    younger than a floor no option switches off - 1 hour after a clean stop, 24 hours
    after a crash (exit code not 0, killed for lack of memory, or dead) - so a database
    that crashed a minute ago stays however old the container is. Right before each
    removal the container is inspected again and judged by its state then - one started
    since the plan, or that stopped again since (started, then crashed), stays.
  - A data container stays - a stopped container that another container names in
    C(--volumes-from) (C(HostConfig.VolumesFrom), by name or ID, read again right before
    the removal, so a container created since the plan counts), or that holds an anonymous
    volume a staying container mounts too.
  - What such a rule kept is listed in RV(kept).
  - Ages are measured by the engine's clock (C(SystemTime) of C(/info)) when it differs
    from this host's by more than 5 seconds (a remote engine), with a warning.
  - Images are removed by ID, never by tag. Right before each removal the image's names
    are read again; a planned tag that moved to another image is left alone and listed in
    RV(moved_tags), and an image that gained a name since the plan is kept. An image with
    several names can only be deleted by ID with the engine's C(force), which skips the
    engine's check for stopped containers, so that check is done right before instead;
    the engine still refuses images a running container or a child image uses; a container
    created between that check and the forced removal is listed in RV(errors) right
    after. Nothing else is ever forced.
  - O(volumes=anonymous) removes only volumes that were never named, on every engine
    version (Docker 20.10's own C(volume prune) also removes unused named volumes).
    A volume is anonymous when it carries the engine's C(com.docker.volume.anonymous)
    label (Docker 23+) or, on older engines, when its name is 64 hex digits and it has
    no C(com.docker.compose.volume) label. Only O(volumes=all) removes unused named volumes.
  - Later steps see earlier ones done; for example an image used only by a stopped
    container that O(containers) removes is unused by the time the images step runs.
author:
  - runbook.ops maintainers (@runbook-ops)
attributes:
  check_mode:
    support: full
    description: "The same plan, nothing removed; C(steps[].removed) lists what would be."
  diff_mode:
    support: none
    description: Check mode output (C(steps[].planned)) shows what would go instead.
  idempotent:
    support: full
    description: A second run finds nothing left to remove and reports C(changed=false).
options:
  builder_cache:
    description:
      - Remove BuildKit build cache not used within O(until) (C(docker builder prune -af)).
      - The engine selects the records; the module predicts them for check mode.
        Records carry no labels, so O(keep_label) does not apply to them.
    type: bool
    default: true
  images:
    description:
      - V(unused) removes images no container uses; V(dangling) only those of them with
        neither tag nor digest; V(none) skips the step.
    type: str
    choices: [none, dangling, unused]
    default: unused
  until:
    description:
      - Only remove what is older than this Go duration (C(168h), C(24h), C(90m)) - build
        cache by last use, images, volumes and networks by creation time. V(0s) switches
        this age filter off. It does not apply to stopped containers (O(containers_until)).
      - At most C(2562047h) (Go's, and the engine's, range).
    type: str
    default: 168h
  containers:
    description:
      - Remove stopped (created, exited, dead) containers that stopped longer than
        O(containers_until) ago. Their volumes stay for this run (RV(kept)) and, with
        O(state_dir), for O(containers_until) (at least 1 hour) after it; a later run with
        O(volumes) may remove them once nothing references them.
    type: bool
    default: false
  containers_until:
    description:
      - With O(containers), how long ago (a Go duration) a stopped container must have
        stopped to be removed; its creation time counts only for one that never ran.
      - "A floor applies whatever this says, V(0s) included: 1 hour, and 24 hours after a
        crash (exit code not 0, killed for lack of memory, or dead)."
    type: str
    default: 168h
  state_dir:
    description:
      - Where the module records the volumes of the containers a run removed
        (C(<state_dir>/docker-cleanup/removed-volumes-<engine id>.json), mode 0600), so
        that the next runs keep them for O(containers_until) (at least 1 hour) after the
        removal. Without a record a volume is kept in the removing run only.
      - A directory that cannot be written (a full or read-only disk) gives a warning, never a failure.
      - Set it to the base role's C(runbook_ops_state_dir) when that differs.
    type: path
    default: /var/lib/runbook-ops
  volumes:
    description:
      - V(anonymous) removes unused anonymous volumes; V(all) also unused named volumes
        (for example the data volume of a Compose project that is down); V(none) skips.
    type: str
    choices: [none, anonymous, all]
    default: none
  networks:
    description: Remove user-defined networks no container (running or stopped) is attached to.
    type: bool
    default: false
  keep_label:
    description: Anything carrying this label key (any value) is never removed.
    type: str
    default: runbook.ops.keep
  target_percent:
    description:
      - Stop after the step that brings the file system holding Docker's data root below
        this usage percentage. When usage is already below it, nothing is removed.
      - Usage is df's C(Use%) (rounded up), as M(runbook.ops.disk_check) reports it.
      - Needs the engine's data root to be visible here (a local C(unix://) socket);
        for a remote engine usage is reported as C(null), this option is ignored with a
        warning and every enabled step runs.
      - In check mode the stop is predicted from the estimated bytes.
    type: float
  docker_host:
    description:
      - The engine to clean, for example C(unix:///var/run/docker.sock) or C(tcp://host:2376).
      - Defaults to the E(DOCKER_HOST) environment variable, then the local socket.
        TLS settings come from E(DOCKER_TLS_VERIFY) and E(DOCKER_CERT_PATH).
    type: str
requirements:
  - Docker SDK for Python 5.0 or newer (C(python3-docker) on Debian 12 / Ubuntu 22.04)
  - Docker API 1.39 or newer (Docker 18.09+)
notes:
  - "Estimates: check mode counts each image's own layers and the layers it shares only with
    other removed images (from the image history), stopped containers' writable layers and
    the planned volumes (C(du) of each, so an in-use volume is never walked). Build cache:
    the engine's figure minus records shared with image layers (their data goes with the
    image)."
  - "Reclaimed bytes: a real run on a local engine measures the drop in used bytes of the
    file system holding the data root after each step (other writers on that file system
    count too); for a remote engine, the engine's and the plan's figures."
  - "Docker 20.10 (API 1.41) lists build cache only in the full C(/system/df), which sizes
    every volume (about 0.7 s per 100,000 files). A real run there lets the engine's
    C(/build/prune) pick the records with the same filter and reports what it removed;
    check mode of the build cache step pays for that one full C(/system/df)."
  - "Compared with M(community.docker.docker_prune) on Docker 20.10 with the equivalent
    filters (C(until), C(label!=<keep_label>)): the same build cache, dangling images,
    stopped containers and, for O(volumes=all), volumes are removed. Differences, where
    this module is safer: C(images_filters: {dangling: false}) strips the tag of an unused
    image that is the parent of an image a stopped container uses (the image stays, hidden
    and untagged; this module leaves it alone); C(volumes: true) also removes unused
    named volumes such as a stopped Compose project's data (this module only with
    O(volumes=all)); C(networks: true) removes networks that only stopped containers use,
    which C(docker start) then fails on (this module keeps them); volume prune has no
    C(until) on 20.10 (this module applies O(until) to volumes); container prune's
    C(until) goes by creation time (this module by when a container stopped), and
    removing containers and volumes together takes a container's anonymous volumes in
    the same run (this module keeps them for that run)."
  - Removals are never forced (except an image with several names, see above); an item the
    engine refuses (for example a volume a container created meanwhile mounts) is reported
    in C(errors) and the rest goes on. A step that fails as a whole (the engine stops
    answering, a C(/build/prune) longer than the client's 120 s) is one line in C(errors)
    and the next steps still run. The module then warns; it fails only when nothing could
    run (bad options, no engine, no inventory).
seealso:
  - module: community.docker.docker_prune
    description: The engine's own prune; see the collection docs for where the two differ.
"""

EXAMPLES = r"""
- name: Weekly cleanup as the runbook does it (build cache, unused images older than a week)
  runbook.ops.docker_cleanup:

- name: Show what an emergency cleanup would remove
  runbook.ops.docker_cleanup:
    until: 0s
    volumes: anonymous
  check_mode: true
  register: cleanup_plan

- name: Emergency cleanup, step by step, until the disk is below 80 percent
  runbook.ops.docker_cleanup:
    until: 0s                 # build cache, images, volumes of any age
    containers: true
    containers_until: 24h     # stopped containers: a day (an hour is the floor anyway)
    volumes: anonymous
    target_percent: 80
  register: cleanup

- name: Say how much was freed
  ansible.builtin.debug:
    msg: "freed {{ cleanup.reclaimed_bytes | human_readable }}, disk {{ cleanup.usage_before_percent }}% -> {{ cleanup.usage_after_percent }}%"
"""

RETURN = r"""
steps:
  description:
    - One entry per step, in execution order C(builder_cache), C(containers), C(images),
      C(volumes), C(networks).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The step.
      type: str
    enabled:
      description: Whether the options turned the step on.
      type: bool
    removed:
      description: IDs removed (or, in check mode, that would be); names for volumes and networks.
      type: list
      elements: str
    planned:
      description:
        - The planned removals with C(id), C(name) and C(size_bytes) (and per-type details).
        - C(size_bytes) is C(null) where a real run did not size the item (it measures the
          step instead); build cache on Docker 20.10 lists what the engine removed.
        - Containers carry C(volumes), the volumes they mount.
      type: list
      elements: dict
    estimated_bytes:
      description: Bytes the plan expects the step to free.
      type: int
    reclaimed_bytes:
      description: "Bytes freed, measured like the top-level RV(reclaimed_bytes) (check mode: the estimate)."
      type: int
    skipped:
      description: C(null), C(disabled) or C(target reached).
      type: str
    younger:
      description:
        - How many items the step left only because they are younger than O(until) (build
          cache by last use, images, unused volumes and networks by creation); C(0) when the
          engine decides alone (build cache on Docker 20.10 in a real run).
        - Ages are compared as the engine's C(until) filters do (what is after the cutoff
          stays); a time the engine gives in whole seconds counts as the latest it may be.
          The build cache prune is sent the plan's cutoff (as a duration from then, rounded
          up), so the engine removes no record the plan kept, however long earlier steps took.
      type: int
    errors:
      description:
        - Items the engine refused to remove (for example a volume a container created
          meanwhile mounts), or one line for a step that failed as a whole.
      type: list
      elements: str
    kept:
      description: What a safety rule kept that would otherwise go, as in the top-level RV(kept).
      type: list
      elements: dict
    moved_tags:
      description: Images step only; as in the top-level RV(moved_tags).
      type: list
      elements: dict
  sample:
    - {name: builder_cache, enabled: true, removed: [li7v0vz7us0hxdf1kdfrq83s6], estimated_bytes: 2248720,
       reclaimed_bytes: 2248720, skipped: null, errors: [], kept: [], moved_tags: [],
       planned: [{id: li7v0vz7us0hxdf1kdfrq83s6, name: local source for context, type: source.local, shared: false, size_bytes: 2248720}]}
    - {name: images, enabled: true, removed: ["sha256:b65897d5..."], estimated_bytes: 2207760,
       reclaimed_bytes: 2207760, skipped: null, errors: [], kept: [], moved_tags: [],
       planned: [{id: "sha256:b65897d5...", name: "app:old", tags: ["app:old"], digests: [], depth: 0,
                size_bytes: 2207760}]}
reclaimed_bytes:
  description:
    - "Total bytes freed: measured on the data root's file system when RV(data_root_measured),
      else the engine's and the plan's figures (check mode: estimated)."
  returned: success
  type: int
  sample: 4456480
kept:
  description:
    - What a safety rule kept that the step's options would otherwise remove, with the
      reason, from every step that ran; C(kind) is C(container), C(volume) or C(image).
    - "A stopped container that stopped too recently (O(containers_until), or the floor of 1 h,
      24 h after a crash), one started or stopped again since the plan (reason
      C(started or stopped since the plan: ...)), or one holding an anonymous volume a staying
      container mounts, or that another container names in C(--volumes-from) (reason
      C(a data container: app takes its volumes (--volumes-from))): C(stopped_at) (unix
      seconds) and C(exit_code) are given too."
    - A volume of a container this run removes (a later run may remove it), or of one an
      earlier run removed, within O(containers_until) (at least 1 h) of that removal.
    - An image that gained a name, or is used by a container created, since the plan.
  returned: success
  type: list
  elements: dict
  sample:
    - {kind: container, id: "4f0c...", name: db-1, stopped_at: 1795450395.1, exit_code: 137,
       reason: "exited 5 min ago (exit 137), younger than 168h"}
    - {kind: container, id: "77ad...", name: worker, stopped_at: 1795450810.4, exit_code: 3,
       reason: "started or stopped since the plan: exited 4 s ago (exit 3), younger than 24h (the minimum after a crash)"}
    - {kind: volume, id: "9b1e...", name: "9b1e...", reason: "data of old-job, which this run removes; a later run may remove it"}
moved_tags:
  description:
    - Planned tags that pointed to another image (C(image), C(null) when none) when their
      planned image (C(planned_image)) was removed; the tag and its new image were left alone.
  returned: success
  type: list
  elements: dict
  sample:
    - {tag: "app:1", planned_image: "sha256:b65897d5...", image: "sha256:0ac3e1f2..."}
estimated_bytes:
  description:
    - Total bytes the whole plan expects to free, whether or not every step ran.
    - A real run on a local engine does not size what it removes (it measures instead), so
      there this counts only what the inventory sized for free; check mode sizes everything.
  returned: success
  type: int
  sample: 4456480
usage_before_percent:
  description:
    - Usage (df's C(Use%), rounded up) of the file system holding Docker's data root before
      the run; C(null) for a remote engine.
  returned: success
  type: int
  sample: 87
usage_after_percent:
  description: "Usage after the run (check mode: predicted), as RV(usage_before_percent); C(null) for a remote engine."
  returned: success
  type: int
  sample: 72
target_reached:
  description: With O(target_percent), whether usage ended below it; C(null) otherwise.
  returned: success
  type: bool
  sample: true
until:
  description: The O(until) the run judged ages by (for the RV(steps[].younger) counts).
  returned: success
  type: str
  sample: 168h
data_root:
  description: The engine's data root (C(DockerRootDir)).
  returned: success
  type: str
  sample: /var/lib/docker
data_root_measured:
  description: Whether usage could be measured (the data root is visible on this host).
  returned: success
  type: bool
  sample: true
docker_host:
  description: The engine that was cleaned.
  returned: success
  type: str
  sample: unix:///var/run/docker.sock
server_version:
  description: The engine's version.
  returned: success
  type: str
  sample: 20.10.24+dfsg1
api_version:
  description: The API version spoken with the engine (1.42 and later get the type-filtered inventory).
  returned: success
  type: str
  sample: "1.41"
errors:
  description: All per-item refusals and failed steps of every step (C(steps[].errors)).
  returned: success
  type: list
  elements: str
  sample: ["builder_cache: the step failed: UnixHTTPConnectionPool(host='localhost', port=None): Read timed out. (read timeout=120)"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.runbook.ops.plugins.module_utils._ansible import run_core
from ansible_collections.runbook.ops.plugins.module_utils._ops.docker_cleanup import OPTIONS, run_docker_cleanup
from ansible_collections.runbook.ops.plugins.module_utils._ops.options import module_spec


def main():
    # the module remembers removals in the runtime's state directory
    module = AnsibleModule(argument_spec=module_spec(OPTIONS, state_dir="/var/lib/runbook-ops"),
                           supports_check_mode=True)
    result = run_core(module, run_docker_cleanup, dict(module.params),
                      check_mode=module.check_mode)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if result["errors"]:
        module.warn("%d removal(s) or step(s) failed: %s"
                    % (len(result["errors"]), "; ".join(result["errors"][:5])))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
