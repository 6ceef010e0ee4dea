#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what the project needs on a fresh Debian machine with Python, pip
# and Docker: mmdebstrap (offline node base image) and a virtualenv in .venv
# with the pinned controller and test requirements. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mmdebstrap >/dev/null 2>&1; then
    echo "bootstrap: installing mmdebstrap (apt)"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

req=requirements-dev.txt
stamp=.venv/.requirements.sha256
want="$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "bootstrap: creating .venv from $req"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r "$req"
    .venv/bin/pip install -q --no-deps -e .
    echo "$want" > "$stamp"
fi
echo "bootstrap: ready ($(.venv/bin/ansible --version | head -1))"
