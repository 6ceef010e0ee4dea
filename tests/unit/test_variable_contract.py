# SPDX-License-Identifier: Apache-2.0
"""The variable contract keeps itself true.

Every cluster_* and role variable that roles, playbooks and scenarios read has a default and an
argument-spec entry; every default is read somewhere; every spec entry has a default. Facts a play
sets (register, set_fact) count as defined where they are set.
"""

import glob
import pathlib
import re

import pytest
import yaml
from conftest import ROOT

ROLES = ROOT / "roles"
WORD = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
PLUGIN_NAMES = {p.stem for sub in ("modules", "action", "filter", "callback", "doc_fragments")
                for p in (ROOT / "python_plugins" / sub).glob("*.py")}
FILTERS = {"cluster_node_list", "node_refs", "node_container_specs", "docker_ulimits"}


def _yaml(path):
    return yaml.safe_load(pathlib.Path(path).read_text()) or {}


def _role_names():
    return sorted(p.name for p in ROLES.iterdir() if (p / "meta" / "main.yml").exists())


def _defaults(role):
    out = {}
    for path in sorted(glob.glob(str(ROLES / role / "defaults" / "main*.yml")) +
                       glob.glob(str(ROLES / role / "defaults" / "main" / "*.yml"))):
        out.update(_yaml(path))
    return out


def _specs(role):
    path = ROLES / role / "meta" / ("contract.yml" if role == "cluster" else "argument_specs.yml")
    if not path.exists():
        return {}
    return {name: entry.get("options") or {} for name, entry in (_yaml(path).get("argument_specs") or {}).items()}


def _set_here(path):
    """Names a task or play file sets: register targets, set_fact keys, task/block/play vars, loop vars."""
    try:
        doc = yaml.safe_load(pathlib.Path(path).read_text())
    except yaml.YAMLError:
        return set()
    names = set()

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if isinstance(node.get("register"), str):
                names.add(node["register"])
            for key in ("ansible.builtin.set_fact", "set_fact", "vars"):
                if isinstance(node.get(key), dict):
                    names.update(k for k in node[key] if isinstance(k, str))
            if isinstance(node.get("loop_control"), dict) and node["loop_control"].get("loop_var"):
                names.add(node["loop_control"]["loop_var"])
            for value in node.values():
                walk(value)

    walk(doc)
    return names


def _sources():
    """{path: text} of everything that reads variables: role tasks/templates/handlers/defaults, playbooks, scenarios."""
    paths = []
    for pattern in ("roles/*/tasks/*.yml", "roles/*/handlers/*.yml", "roles/*/templates/*", "roles/*/defaults/**/*.yml",
                    "playbooks/*.yml", "site.yml", "molecule/*/*.yml", "molecule/*/inventory/*.yml"):
        paths += glob.glob(str(ROOT / pattern), recursive=True)
    return {p: pathlib.Path(p).read_text() for p in sorted(set(paths))}


SOURCES = _sources()
CLUSTER_DEFAULTS = _defaults("cluster")
CLUSTER_SPECS = {**_specs("cluster").get("contract", {}), **_specs("cluster").get("node", {})}
SET_BY_PLAYS = set().union(*(_set_here(p) for p in SOURCES if p.endswith(".yml") and "/defaults/" not in p))
NOT_VARIABLES = PLUGIN_NAMES | FILTERS | set(p.name for p in ROLES.iterdir())


def _reads():
    """Every variable-like word with the files reading it, the line that defines a default left out."""
    reads = {}
    for path, text in SOURCES.items():
        for lineno, line in enumerate(text.splitlines(), 1):
            stripped = re.sub(r"[&*][a-z0-9_]+", "", line.split("#", 1)[0])  # YAML anchors are no variables
            defined = re.match(r"^([a-z0-9_]+):", stripped)
            for word in WORD.findall(stripped):
                if defined and defined.group(1) == word and "/defaults/" in path:
                    continue
                reads.setdefault(word, set()).add("%s:%d" % (pathlib.Path(path).relative_to(ROOT), lineno))
    return reads


READS = _reads()


def test_every_cluster_variable_read_has_a_default_and_a_spec_entry():
    role_prefixes = tuple(r + "_" for r in _role_names() if r != "cluster")
    missing = {}
    for word, where in READS.items():
        if not word.startswith("cluster_") or word in NOT_VARIABLES:
            continue
        if word.startswith(role_prefixes) and word not in CLUSTER_DEFAULTS:
            continue  # a role's own variable (cluster_network_*), checked below
        if word in SET_BY_PLAYS:
            continue
        if word not in CLUSTER_DEFAULTS or word not in CLUSTER_SPECS:
            missing[word] = sorted(where)[:3]
    assert missing == {}, "cluster variables read without a default or a spec entry: %s" % missing


def test_every_node_variable_read_has_a_spec_entry():
    missing = {w: sorted(p)[:3] for w, p in READS.items()
               if w.startswith("node_") and w not in CLUSTER_SPECS and not w.startswith(
                   tuple(r + "_" for r in _role_names())) and w not in NOT_VARIABLES and w not in SET_BY_PLAYS}
    assert missing == {}, "node variables read without a spec entry: %s" % missing


@pytest.mark.parametrize("role", [r for r in _role_names() if r != "cluster"])
def test_every_role_variable_read_has_a_default_and_a_spec_entry(role):
    defaults, spec = _defaults(role), _specs(role).get("main", {})
    prefix = role + "_"
    missing = {}
    for word, where in READS.items():
        if not word.startswith(prefix) or word in NOT_VARIABLES or word in SET_BY_PLAYS or word in CLUSTER_DEFAULTS:
            continue
        if word not in defaults or word not in spec:
            missing[word] = sorted(where)[:3]
    assert missing == {}, "%s variables read without a default or a spec entry: %s" % (role, missing)
    assert sorted(set(spec) - set(defaults)) == [], "%s: spec entries without a default" % role
    assert sorted(set(defaults) - set(spec)) == [], "%s: defaults without a spec entry" % role


def test_every_default_is_read_somewhere():
    unread = {}
    for role in _role_names():
        for name in _defaults(role):
            if name not in READS:
                unread.setdefault(role, []).append(name)
    assert unread == {}, "defaults nobody reads: %s" % unread


def test_every_cluster_spec_entry_has_a_default_except_the_node_variables():
    node_vars = set(_specs("cluster").get("node", {}))
    assert sorted(set(_specs("cluster").get("contract", {})) - set(CLUSTER_DEFAULTS)) == []
    assert sorted(set(CLUSTER_DEFAULTS) - set(CLUSTER_SPECS)) == []
    assert node_vars == {"node_ip", "node_slots", "node_gpus", "node_mpi_host"} | (node_vars - {
        "node_ip", "node_slots", "node_gpus", "node_mpi_host"})


def test_node_settings_with_defaults_are_read_only_through_cluster_nodes():
    """node_slots, node_gpus and node_mpi_host have their defaults and spellings in mpi_trt_ansible/inventory.py,
    which hostvars never see: a template reads them through cluster_nodes / cluster_node, not by name."""
    direct = re.compile(r"\bnode_(slots|gpus|mpi_host)\b")
    found = []
    for path, text in SOURCES.items():
        for block in _expressions(path, text):
            if direct.search(block):
                found.append("%s: %s" % (pathlib.Path(path).relative_to(ROOT), " ".join(block.split())[:120]))
    assert found == []


_CONDITIONS = ("when", "that", "failed_when", "changed_when", "until")


def _expressions(path, text):
    """The Jinja a file evaluates: {{ }} and {% %} blocks, and the conditions (when, that, ...) of its tasks."""
    out = re.findall(r"\{\{.*?\}\}|\{%.*?%\}", text, re.S)
    if path.endswith(".yml"):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            doc = None

        def walk(node):
            if isinstance(node, list):
                for item in node:
                    walk(item)
            elif isinstance(node, dict):
                for key, value in node.items():
                    if key in _CONDITIONS:
                        out.extend(str(v) for v in (value if isinstance(value, list) else [value]))
                    walk(value)

        walk(doc)
    return out
