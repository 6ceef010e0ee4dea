# SPDX-License-Identifier: Apache-2.0
"""Shipped inventories say only what they change (issue #12).

Every project default sits at role-defaults precedence (roles/cluster, each stage role's defaults), so an
inventory needs the nodes and their addresses, nothing else. A shipped inventory (inventory/,
molecule/*/inventory, tests/integration/inventories) that sets a value equal to its default only hides
which of its settings matter, and goes stale when the default moves: each such value fails here. The
per-node defaults count (node_slots 1, node_gpus [], node_mpi_host the node's name).

Ansible reads each inventory (any shape it reads), and each default is rendered by Ansible's templar in the
inventory's own context (its other values over the defaults), so `/TRTDir/Models/chatglm2-6b` equals the
default `{{ cluster_shared_mount }}/Models/chatglm2-6b`. An inventory value that is itself a template is
compared as written.
"""

import glob
import pathlib

import pytest
import yaml
from ansible.errors import AnsibleError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import filter_loader, init_plugin_loader
from ansible.template import Templar, is_trusted_as_template, trust_as_template
from conftest import ROOT, project_defaults
from mpi_trt_ansible.inventory import NODE_DEFAULTS, normalize_gpus

SHIPPED = sorted(p for pattern in ("inventory/*/", "molecule/*/inventory/", "tests/integration/inventories/*/")
                 for p in glob.glob(str(ROOT / pattern)))


def _trust(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [_trust(v) for v in value]
    if isinstance(value, dict):
        return {k: _trust(v) for k, v in value.items()}
    return value


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _role_defaults():
    """{variable: default} of every stage role (roles/<role>/defaults/main.yml or main/*.yml)."""
    out = {}
    for role in sorted((ROOT / "roles").iterdir()):
        if role.name == "cluster":
            continue
        for path in sorted(role.glob("defaults/main.yml")) + sorted(role.glob("defaults/main/*.yml")):
            out.update(yaml.safe_load(path.read_text()) or {})
    return out


DEFAULTS = {**_role_defaults(), **project_defaults()}


def _is_template(value):
    return isinstance(value, str) and "{{" in value


def _settings(path):
    """[(scope, host or None, context, {variable: value})]: what each group and host of the inventory sets."""
    inventory = InventoryManager(loader=DataLoader(), sources=[path])
    groups = inventory.groups
    all_vars = dict(groups["all"].get_vars())
    out = [("all: vars", None, all_vars, all_vars)]
    for name, group in sorted(groups.items()):
        if name != "all" and group.get_vars():
            out.append(("%s: vars" % name, None, dict(all_vars, **group.get_vars()), dict(group.get_vars())))
    for host in inventory.get_hosts():
        own = {k: v for k, v in host.get_vars().items() if k not in ("inventory_hostname", "inventory_hostname_short",
                                                                      "group_names", "inventory_file", "inventory_dir")}
        context = dict(all_vars)
        for group in sorted(host.get_groups(), key=lambda g: g.depth):
            context.update(group.get_vars())
        context.update(own)
        out.append(("host %s" % host.name, host.name, context, own))
    return out


_LOADED = []


def _plugins():
    if not _LOADED:
        init_plugin_loader()
        filter_loader.add_directory(str(ROOT / "python_plugins" / "filter"))
        _LOADED.append(True)


def _default_of(name, context):
    """The default ``name`` has in ``context`` (the inventory's other values over the defaults); raises
    AnsibleError when it cannot be rendered without a running play (groups, hostvars, facts)."""
    _plugins()
    variables = _trust(dict(DEFAULTS))
    variables.update({k: (v if not isinstance(v, str) or is_trusted_as_template(v) else trust_as_template(v))
                      for k, v in context.items() if k != name})
    return _plain(Templar(loader=DataLoader(), variables=variables).template(variables[name]))


def equal_to_default(name, value, host, context):
    """Whether ``value`` (what an inventory sets for ``name``, on ``host`` where host-level) is the default."""
    if name == "node_slots":
        return str(value).strip() == str(NODE_DEFAULTS["node_slots"])
    if name == "node_gpus":
        return normalize_gpus(value) == NODE_DEFAULTS["node_gpus"]
    if name == "node_mpi_host":
        return host is not None and value == host
    if name not in DEFAULTS:
        return False
    if _is_template(value):
        return str(value).strip() == str(DEFAULTS[name]).strip()
    try:
        return _default_of(name, context) == _plain(value)
    except AnsibleError:
        return False  # a default that needs a running play (groups, hostvars) is not compared


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(pathlib.Path(p).relative_to(ROOT)))
def test_a_shipped_inventory_sets_no_value_equal_to_its_default(path):
    same = ["%s: %s: %r" % (scope, name, value)
            for scope, host, context, values in _settings(path)
            for name, value in sorted(values.items())
            if equal_to_default(name, value, host, context)]
    assert same == [], "%s sets values equal to their defaults (remove them): %s" % (path, same)


def test_shipped_inventories_are_found():
    names = {str(pathlib.Path(p).relative_to(ROOT)) for p in SHIPPED}
    assert {"inventory/local", "inventory/baremetal", "molecule/default/inventory",
            "tests/integration/inventories/faults"} <= names, names


@pytest.mark.parametrize("name,value,host,context", [
    ("cluster_trtllm_tp_size", 2, None, {}),
    ("cluster_mpi_timeout_s", 120, None, {}),
    ("cluster_serve_loadtest_concurrency", 4, None, {}),
    ("node_slots", 1, "n1", {}),
    ("node_slots", "1", "n1", {}),  # INI
    ("node_gpus", [], "n1", {}),
    ("node_mpi_host", "n1", "n1", {}),
    # Rendered as the plays render it: the default {{ cluster_shared_mount }}/Models/chatglm2-6b.
    ("cluster_trtllm_model_dir", "/TRTDir/Models/chatglm2-6b", None, {}),
    ("cluster_ssh_port", 2233, None, {"cluster_mode": "docker_per_host"}),
    ("mpi_hello_timeout_s", "{{ cluster_mpi_timeout_s }}", None, {}),
])
def test_a_value_equal_to_its_default_is_found(name, value, host, context):
    assert equal_to_default(name, value, host, context)


@pytest.mark.parametrize("name,value,host,context", [
    ("cluster_trtllm_tp_size", 4, None, {}),
    ("node_slots", 2, "n1", {}),
    ("node_gpus", [0], "n1", {}),
    ("node_mpi_host", "simgpu03", "n1", {}),
    ("cluster_trtllm_model_dir", "/TRTDir/Models/chatglm2-6b", None, {"cluster_shared_mount": "/data"}),
    ("cluster_ssh_port", 22, None, {"cluster_mode": "docker_per_host"}),
    ("cluster_network_subnet", "10.9.0.0/24", None, {}),
    ("ansible_user", "root", None, {}),
])
def test_a_value_that_changes_something_is_kept(name, value, host, context):
    assert not equal_to_default(name, value, host, context)
