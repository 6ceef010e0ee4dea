#!/usr/bin/env bash
# Runs every test: lint (ansible-lint production profile, yamllint), the
# playbooks' syntax, the unit tests, and the integration tests on the local
# docker engine (molecule scenarios and the ansible-runner API).
# Set MTRT_INTEGRATION=0 to skip the docker tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
export MTRT_INTEGRATION="${MTRT_INTEGRATION:-1}"

echo "== lint"
yamllint -s .
ansible-lint --offline
ansible-playbook --syntax-check site.yml playbooks/teardown.yml >/dev/null

echo "== tests"
python -m pytest tests/unit tests/integration -ra
