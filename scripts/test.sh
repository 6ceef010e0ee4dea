#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every test: lint (ansible-lint production profile, yamllint), the
# playbooks' syntax, the unit tests, and the integration tests on the local
# docker engine (molecule scenarios and the ansible-runner API).
# Set MTRT_INTEGRATION=0 to skip the docker tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

# Test-only host packages: the collectives, GPU-probe and all-reduce scripts also
# run under a real local mpirun (tests/unit/test_collectives_script.py,
# test_mpi_gpu_modules.py; the all-reduce on CPU through torch's gloo backend).
if ! command -v mpirun >/dev/null 2>&1 || ! /usr/bin/python3 -c 'import mpi4py, torch.distributed' 2>/dev/null; then
    echo "test: installing openmpi-bin, python3-mpi4py and python3-torch (apt) for the local mpirun tests"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
        openmpi-bin python3-mpi4py python3-torch >/dev/null
fi
export MTRT_INTEGRATION="${MTRT_INTEGRATION:-1}"

# The pinned nvidia-pytriton wheel, into the controller's wheel cache (outside every
# state directory), with the node_image role's own fetch and sha256 check: the unit
# test of the real wheel reads it there, and the serving scenario's image build too.
echo "== nvidia-pytriton wheel"
python roles/node_image/files/fetch_wheel.py

echo "== lint"
yamllint -s .
ansible-lint --offline
ansible-playbook --syntax-check site.yml playbooks/teardown.yml >/dev/null

echo "== tests"
python -m pytest tests/unit tests/integration -ra --durations=25
