# SPDX-License-Identifier: Apache-2.0
"""The project's variables templated as Ansible does, for the unit tests of the modes over several machines.

``templated(mode, roles=(...), **inventory)`` merges the project defaults (roles/cluster/defaults/main/*.yml)
and the named roles' defaults, sets a two-node inventory (n1 on docker host dh1, n2 on dh2) and returns a
function that templates one variable by name, lookups and filters included.
"""

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import filter_loader, init_plugin_loader
from ansible.template import Templar, trust_as_template
from conftest import ROOT

NODES = {"n1": {"node_ip": "10.0.0.11", "node_docker_host": "dh1"},
         "n2": {"node_ip": "10.0.0.12", "node_docker_host": "dh2"}}


def trust(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trust(v) for v in value]
    if isinstance(value, dict):
        return {k: trust(v) for k, v in value.items()}
    return value


def templated(mode, localhost=None, roles=(), inventory_hostname="n1", nodes=None, **inventory):
    init_plugin_loader()
    filter_loader.add_directory(str(ROOT / "python_plugins" / "filter"))
    merged = {}
    for path in sorted((ROOT / "roles" / "cluster" / "defaults" / "main").glob("*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    for role in roles:
        merged.update(yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {})
    variables = trust(merged)
    nodes = NODES if nodes is None else nodes
    variables.update(cluster_mode=mode, groups={"nodes": list(nodes)}, inventory_hostname=inventory_hostname,
                     hostvars=dict(nodes, localhost=localhost or {}), **inventory)
    templar = Templar(loader=DataLoader(), variables=variables)

    def value(name):
        return templar.template(variables[name])

    value.render = lambda text: templar.template(trust_as_template(text))
    return value
