# SPDX-License-Identifier: Apache-2.0
"""Static guards: the project never weakens SSH, never sets passwords, never asks for privileges.

These scan the product files (roles, playbooks, inventories, plugins), so a
change that disables host key checking or adds a password fails the unit tests.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PRODUCT = ["roles", "playbooks", "inventory", "group_vars", "python_plugins", "site.yml", "molecule"]

FORBIDDEN = {
    r"StrictHostKeyChecking[ =]+(no|off|accept-new)": "host key checking disabled",
    r"UserKnownHostsFile[ =]+/dev/null": "known_hosts thrown away",
    r"PasswordAuthentication[ =]+yes": "password authentication enabled",
    r"\bchpasswd\b|\bpasswd\s+\w": "a password being set",
    r"privileged:\s*true": "a privileged container",
    r"network_mode:\s*[\"']?host\b": "the host network",
    r"host_key_checking\s*=\s*False": "Ansible host key checking disabled",
}


def _product_files():
    for entry in PRODUCT:
        path = ROOT / entry
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            if "__pycache__" not in file.parts and "reports" not in file.parts:
                yield file


@pytest.mark.parametrize("pattern,what", sorted(FORBIDDEN.items()))
def test_no_product_file_weakens_security(pattern, what):
    regex = re.compile(pattern, re.IGNORECASE)
    hits = []
    for file in _product_files():
        try:
            text = file.read_text()
        except UnicodeDecodeError:
            continue
        hits += ["%s:%d" % (file.relative_to(ROOT), n) for n, line in enumerate(text.splitlines(), 1)
                 if regex.search(line) and "mtrt: allow" not in line]
    assert hits == [], "%s in %s" % (what, hits)


def test_sshd_config_is_key_only():
    text = (ROOT / "roles/ssh_keys/templates/sshd_config.j2").read_text()
    for line in ("PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitEmptyPasswords no",
                 "PubkeyAuthentication yes", "StrictModes yes"):
        assert line in text.splitlines()
    assert re.search(r"^PermitRootLogin \{\{ 'prohibit-password' if .* else 'no' \}\}$", text, re.M)


def test_ssh_client_config_pins_host_keys():
    text = (ROOT / "roles/ssh_keys/templates/ssh_config.j2").read_text()
    assert "    StrictHostKeyChecking yes" in text.splitlines()
    assert "    BatchMode yes" in text.splitlines()


def test_keys_are_generated_by_the_controller_side_action():
    """Keys come from ssh_keys (0600 files, 0700 dirs: tests/unit/test_ssh_keys.py), nowhere else."""
    tasks = (ROOT / "roles/ssh_keys/tasks/main.yml").read_text()
    assert tasks.count("\n  ssh_keys:\n") == 1
    for file in _product_files():
        if file.suffix in (".yml", ".yaml", ".j2", ".sh"):
            assert "ssh-keygen" not in file.read_text(), file
