# SPDX-License-Identifier: Apache-2.0
"""The variable contract keeps itself true.

Every cluster_* and role variable that roles, playbooks, scenarios and the controller-side plugins read has a
default and an argument-spec entry; every default is read by the project (roles, playbooks, plugins, the
package); every spec entry has a default; every per-node and per-docker-host variable read has a spec entry.

What counts:
- a read is a variable-like word in a role's tasks, handlers, templates or defaults, a playbook, a molecule
  scenario's playbooks, or a lookup of a name in a controller-side plugin (``task_vars["x"]``,
  ``values.get("x")``, ``host.get("x")``); inventories are no reads (they set values, they do not use them);
- a name a play sets (``register``, ``set_fact``, a loop variable, a role task's own ``vars:``) needs no default;
  a value an inventory or a playbook's ``vars:`` gives does not excuse a missing default.

``test_deleting_*`` prove the checks can fail: each default (and its spec entry) is deleted in turn and the
checks must name it.
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
NOT_VARIABLES = PLUGIN_NAMES | FILTERS | set(p.name for p in ROLES.iterdir())

PROJECT_YAML = ("roles/*/tasks/*.yml", "roles/*/handlers/*.yml", "roles/*/templates/*", "roles/*/defaults/**/*.yml",
                "playbooks/*.yml", "site.yml")
SCENARIO_YAML = ("molecule/*/*.yml", "molecule/*/tasks/*.yml")
PROJECT_PYTHON = ("python_plugins/action/*.py", "python_plugins/callback/*.py", "python_plugins/filter/*.py",
                  "mpi_trt_ansible/**/*.py")
# A controller-side plugin reads a variable by looking its name up: task_vars["x"], values.get("x") (the
# contract values preflight templated), host.get("x") / raw["x"] (a host's inventory values), _var(task_vars, "x").
PY_READ = re.compile(r"""(?:\b(?:task_vars|values|host|hv|raw)\s*(?:\.get\(\s*|\[\s*)|_var\(\s*task_vars\s*,\s*)"""
                     r"""["']([a-z][a-z0-9]*(?:_[a-z0-9]+)+)["']""")
# A host's own variable read where it may be unset: through hostvars, or with a default of its own (a
# name, not an attribute or a filter's result, before | default(...)).
HOSTVAR_READ = re.compile(r"""hostvars\[[^\]]+\]\[\s*['"]([a-z][a-z0-9_]*)['"]\s*\]|hostvars\[[^\]]+\]\.([a-z][a-z0-9_]*)"""
                          r"""|(?<![\w.'"\]|])(?<!\|\s)([a-z][a-z0-9_]*)\s*\|\s*d(?:efault)?\(""")
_CONDITIONS = ("when", "that", "failed_when", "changed_when", "until")


def _yaml(path):
    return yaml.safe_load(pathlib.Path(path).read_text()) or {}


def _glob(patterns):
    paths = []
    for pattern in patterns:
        paths += glob.glob(str(ROOT / pattern), recursive=True)
    return sorted(p for p in set(paths) if pathlib.Path(p).is_file() and not p.endswith("/molecule.yml"))


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
    """Names a task or play file sets: register targets, set_fact keys, loop vars, and in a role's own task
    files the task and block vars named for that role. A playbook's, scenario's or other role's vars: give a
    role its input: no excuse."""
    try:
        doc = yaml.safe_load(pathlib.Path(path).read_text())
    except yaml.YAMLError:
        return set()
    relative = pathlib.Path(path).relative_to(ROOT).parts
    own = relative[1] + "_" if relative[0] == "roles" and relative[2] in ("tasks", "handlers") else None
    names = set()

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if isinstance(node.get("register"), str):
                names.add(node["register"])
            for key in ("ansible.builtin.set_fact", "set_fact"):
                if isinstance(node.get(key), dict):
                    names.update(k for k in node[key] if isinstance(k, str))
            if own and isinstance(node.get("vars"), dict):
                names.update(k for k in node["vars"] if isinstance(k, str) and k.startswith(own))
            if isinstance(node.get("loop_control"), dict) and node["loop_control"].get("loop_var"):
                names.add(node["loop_control"]["loop_var"])
            for value in node.values():
                walk(value)

    walk(doc)
    return names


def _word_reads(paths):
    """{word: {file:line}} of every variable-like word in YAML/templates, the line that defines a default left out."""
    reads = {}
    for path in paths:
        for lineno, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
            stripped = re.sub(r"[&*][a-z0-9_]+", "", line.split("#", 1)[0])  # YAML anchors are no variables
            defined = re.match(r"^([a-z0-9_]+):", stripped)
            for word in WORD.findall(stripped):
                if defined and defined.group(1) == word and "/defaults/" in path:
                    continue
                reads.setdefault(word, set()).add("%s:%d" % (pathlib.Path(path).relative_to(ROOT), lineno))
    return reads


def _python_reads(paths):
    reads = {}
    for path in paths:
        for lineno, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
            for word in PY_READ.findall(line):
                reads.setdefault(word, set()).add("%s:%d" % (pathlib.Path(path).relative_to(ROOT), lineno))
    return reads


def _merge(*reads):
    out = {}
    for r in reads:
        for word, where in r.items():
            out.setdefault(word, set()).update(where)
    return out


def _hostvar_reads(paths):
    """{name: {file:line}} of host variables read where they may be unset (hostvars[h]['x'], x | default(...))."""
    reads = {}
    for path in paths:
        for lineno, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
            for groups in HOSTVAR_READ.findall(line.split("#", 1)[0]):
                name = next(g for g in groups if g)
                reads.setdefault(name, set()).add("%s:%d" % (pathlib.Path(path).relative_to(ROOT), lineno))
    return reads


PROJECT_FILES, SCENARIO_FILES, PYTHON_FILES = _glob(PROJECT_YAML), _glob(SCENARIO_YAML), _glob(PROJECT_PYTHON)
PROJECT_READS = _merge(_word_reads(PROJECT_FILES), _python_reads(PYTHON_FILES))
READS = _merge(PROJECT_READS, _word_reads(SCENARIO_FILES))
HOSTVAR_READS = _merge(_hostvar_reads(PROJECT_FILES), {w: p for w, p in _python_reads(PYTHON_FILES).items()})
SET_BY_PLAYS = set().union(*(_set_here(p) for p in PROJECT_FILES + SCENARIO_FILES
                             if p.endswith(".yml") and "/defaults/" not in p))


def project_model():
    """{role: (defaults, spec entry points)} of every role, roles/cluster's entry points contract, node, docker_host."""
    return {role: (_defaults(role), _specs(role)) for role in _role_names()}


def violations(model):
    """{check: {name: where}}: every way the contract is broken in ``model`` (see project_model)."""
    cluster_defaults, cluster_specs = model["cluster"]
    contract = cluster_specs.get("contract", {})
    host_specs = {**cluster_specs.get("node", {}), **cluster_specs.get("docker_host", {})}
    role_prefixes = {role + "_": role for role in model if role != "cluster"}
    out = {"cluster read without a default or a spec entry": {}, "role variable read without a default or a spec "
           "entry": {}, "node variable read without a spec entry": {}, "host variable read without a spec entry": {},
           "spec entry without a default": {}, "default without a spec entry": {}, "default nobody reads": {}}

    def role_of(word):
        return next((role for prefix, role in role_prefixes.items() if word.startswith(prefix)), None)

    for word, where in READS.items():
        if word in NOT_VARIABLES or word in SET_BY_PLAYS:
            continue
        role = role_of(word)
        if word.startswith("cluster_") and (role is None or word in cluster_defaults):
            if word not in cluster_defaults or word not in contract:
                out["cluster read without a default or a spec entry"][word] = sorted(where)[:3]
        elif role is not None and word not in cluster_defaults:
            defaults, specs = model[role]
            if word not in defaults or word not in specs.get("main", {}):
                out["role variable read without a default or a spec entry"][word] = sorted(where)[:3]
        elif word.startswith("node_") and word not in host_specs:
            out["node variable read without a spec entry"][word] = sorted(where)[:3]
    every_default = set().union(*(set(d) for d, _ in model.values()))
    every_spec = set(host_specs) | set().union(*(set(s.get("main", {})) for r, (_, s) in model.items() if r != "cluster"))
    for word, where in HOSTVAR_READS.items():
        if word.startswith("ansible_") or word in SET_BY_PLAYS or word in every_default or word in every_spec:
            continue
        if word in ("item", "lookup", "omit", "groups", "hostvars", "inventory_hostname"):
            continue
        out["host variable read without a spec entry"][word] = sorted(where)[:3]
    for role, (defaults, specs) in model.items():
        spec = contract if role == "cluster" else specs.get("main", {})
        for name in sorted(set(spec) - set(defaults)):
            out["spec entry without a default"]["%s: %s" % (role, name)] = []
        for name in sorted(set(defaults) - set(spec)):
            out["default without a spec entry"]["%s: %s" % (role, name)] = []
        for name in defaults:
            if name not in PROJECT_READS:
                out["default nobody reads"]["%s: %s" % (role, name)] = []
    return out


VIOLATIONS = violations(project_model())


@pytest.mark.parametrize("check", sorted(VIOLATIONS))
def test_the_contract_holds(check):
    assert VIOLATIONS[check] == {}, "%s: %s" % (check, VIOLATIONS[check])


def test_every_cluster_spec_entry_has_a_default_except_the_host_variables():
    specs = _specs("cluster")
    assert sorted(set(specs["contract"]) ^ set(_defaults("cluster"))) == []
    assert {"node_ip", "node_slots", "node_gpus", "node_mpi_host"} <= set(specs["node"])
    assert set(specs["docker_host"]) == {"docker_dir", "docker_url"}


def _without(model, role, name, entry_point):
    defaults, specs = model[role]
    specs = {ep: {k: v for k, v in opts.items() if not (ep == entry_point and k == name)} for ep, opts in specs.items()}
    return dict(model, **{role: ({k: v for k, v in defaults.items() if k != name}, specs)})


def _named(found, name):
    return any(key == name or key.endswith(": " + name) for check in found.values() for key in check)


MODEL = project_model()
DEFAULTS = [(role, name) for role, (defaults, _) in MODEL.items() for name in sorted(defaults)]


@pytest.mark.parametrize("role,name", DEFAULTS, ids=["%s:%s" % d for d in DEFAULTS])
def test_deleting_a_default_and_its_spec_entry_is_caught(role, name):
    """Delete the default and its spec entry together (deleting one of them alone breaks their pairing)."""
    found = violations(_without(MODEL, role, name, "contract" if role == "cluster" else "main"))
    assert _named(found, name), "deleting %s's %s went unnoticed" % (role, name)


@pytest.mark.parametrize("role,name", DEFAULTS, ids=["%s:%s" % d for d in DEFAULTS])
def test_deleting_a_default_alone_is_caught(role, name):
    defaults, specs = MODEL[role]
    found = violations(dict(MODEL, **{role: ({k: v for k, v in defaults.items() if k != name}, specs)}))
    assert _named(found, name)


HOST_SPECS = [(ep, name) for ep in ("node", "docker_host") for name in sorted(MODEL["cluster"][1][ep])]


@pytest.mark.parametrize("entry_point,name", HOST_SPECS, ids=["%s:%s" % h for h in HOST_SPECS])
def test_deleting_a_host_variable_spec_entry_is_caught(entry_point, name):
    found = violations(_without(MODEL, "cluster", name, entry_point))
    assert _named(found, name), "deleting the %s spec entry %s went unnoticed" % (entry_point, name)


def test_inventories_neither_define_nor_read():
    """An inventory sets values: it neither excuses a missing default nor counts as a read."""
    inventories = [p for p in PROJECT_FILES + SCENARIO_FILES
                   if {"inventory", "inventories"} & set(pathlib.Path(p).relative_to(ROOT).parts)]
    assert inventories == []


def test_node_settings_with_defaults_are_read_only_through_cluster_nodes():
    """node_slots, node_gpus and node_mpi_host have their defaults and spellings in mpi_trt_ansible/inventory.py,
    which hostvars never see: a template reads them through cluster_nodes / cluster_node, not by name."""
    direct = re.compile(r"\bnode_(slots|gpus|mpi_host)\b")
    found = []
    for path in PROJECT_FILES + SCENARIO_FILES:
        for block in _expressions(path, pathlib.Path(path).read_text()):
            if direct.search(block):
                found.append("%s: %s" % (pathlib.Path(path).relative_to(ROOT), " ".join(block.split())[:120]))
    assert found == []


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


def test_every_variable_the_docs_name_is_one():
    """A variable the README, docs/ or a role's README names (`cluster_*`, `node_*`, a role's) is a default, a
    spec entry or a fact a play sets: nothing documented is unknown to the project (or refused by preflight)."""
    known = set(SET_BY_PLAYS) | NOT_VARIABLES
    for defaults, specs in MODEL.values():
        known |= set(defaults) | set().union(*(set(options) for options in specs.values()))
    prefixes = tuple(role + "_" for role in MODEL) + ("node_",)
    unknown = {}
    for path in [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md")) + sorted(ROLES.glob("*/README.md")):
        for word in set(re.findall(r"`([a-z][a-z0-9_]*[a-z0-9])`", path.read_text())):
            if word.startswith(prefixes) and word not in known:
                unknown.setdefault(str(path.relative_to(ROOT)), []).append(word)
    assert unknown == {}
