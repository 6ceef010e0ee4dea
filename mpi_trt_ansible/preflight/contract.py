# SPDX-License-Identifier: Apache-2.0
"""The inventory contract: every variable's type, choices and range, and one value per cluster variable.

Plain Python. The types and choices come from argument specs: the project's cluster-wide variables (``cluster_*``,
entry point ``contract`` of ``roles/cluster/meta/contract.yml``), the per-node ones (entry point
``node``) and each stage role's variables (entry point ``main`` of its ``meta/argument_specs.yml``), so
what preflight checks and what a role accepts are one list. Ranges, which argument specs cannot say, are in
:data:`RANGES`. Every problem names the variable, the host it was set on where that matters, the
value, and the fix, and comes back with all the others.
"""

from __future__ import annotations

import copy
import functools
import os
import re

import yaml

# Least and most value of numeric variables (None: no bound).
RANGES = {
    "cluster_ssh_port": (1, 65535),
    "cluster_mpi_timeout_s": (1, 7 * 24 * 3600),
    "cluster_trtllm_gpus_per_node": (0, None),
    "cluster_trtllm_tp_size": (1, None),
    "cluster_trtllm_pp_size": (1, None),
    "cluster_trtllm_max_batch_size": (1, None),
    "cluster_trtllm_max_input_len": (1, None),
    "cluster_trtllm_engine_max_output_len": (1, None),
    "cluster_trtllm_max_output_len": (1, None),
    "cluster_trtllm_num_beams": (1, None),
    "cluster_trtllm_build_timeout_s": (1, 7 * 24 * 3600),
    "cluster_trtllm_run_timeout_s": (1, 7 * 24 * 3600),
}
# Any other integer variable whose name says it is a bound in seconds, or a port.
_SUFFIX_RANGES = (("_timeout_s", (1, 7 * 24 * 3600)), ("_port", (1, 65535)))
_SIZE_RE = re.compile(r"^\d+(\.\d+)?\s*[bkmgtBKMGT]?[bB]?$")
_BOOL_WORDS = {"yes": True, "on": True, "true": True, "1": True, "y": True, "t": True,
               "no": False, "off": False, "false": False, "0": False, "n": False, "f": False}
_INT_RE = re.compile(r"^\s*[-+]?\d+\s*$")
_FLOAT_RE = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")

# The contract's values that are sizes in docker's notation (--shm-size).
SIZE_VARIABLES = ("cluster_shm_size",)


# --------------------------------------------------------------------------- specs
# libyaml's parser where PyYAML has it (its wheels do): the specs are read on every run, and the pure
# Python parser took two thirds of preflight's time.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path):
    """One YAML document of the project (safe loading)."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader


def load_entry_points(path):
    """``{entry point: {option: spec}}`` of one ``meta/argument_specs.yml`` ({} when it is missing)."""
    try:
        doc = load_yaml(path) or {}
    except OSError:
        return {}
    return {name: (entry or {}).get("options") or {} for name, entry in (doc.get("argument_specs") or {}).items()}


def _spec_files(roles_dir):
    """``(path, mtime_ns, size)`` of every spec file, in order (what :func:`load_specs` reads)."""
    paths = [os.path.join(roles_dir, "cluster", "meta", "contract.yml")]
    for role in sorted(os.listdir(roles_dir)) if os.path.isdir(roles_dir) else []:
        if role != "cluster":
            paths.append(os.path.join(roles_dir, role, "meta", "argument_specs.yml"))
    out = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        out.append((path, stat.st_mtime_ns, stat.st_size))
    return tuple(out)


def load_specs(roles_dir):
    """The project's variables and their specs: ``{"cluster": {...}, "node": {...}, "docker_host": {...},
    "roles": {var: (role, spec)}}``. Read once per process while the files are unchanged (a copy each call)."""
    return copy.deepcopy(_load_specs(roles_dir, _spec_files(roles_dir)))


@functools.lru_cache(maxsize=4)
def _load_specs(roles_dir, _files):
    cluster = load_entry_points(os.path.join(roles_dir, "cluster", "meta", "contract.yml"))
    roles = {}
    for role in sorted(os.listdir(roles_dir)) if os.path.isdir(roles_dir) else []:
        if role == "cluster":
            continue
        for name, spec in load_entry_points(os.path.join(roles_dir, role, "meta", "argument_specs.yml")).get(
                "main", {}).items():
            roles[name] = (role, spec)
    return {"cluster": cluster.get("contract", {}), "node": cluster.get("node", {}),
            "docker_host": cluster.get("docker_host", {}), "roles": roles}


# --------------------------------------------------------------------------- one value
def _kind(value):
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping", type(None): "null"}.get(type(value), type(value).__name__)


def _as_int(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.match(value):
        return int(value)
    return None


def _as_float(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _FLOAT_RE.match(value):
        return float(value)
    return None


def _as_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, str)):
        return _BOOL_WORDS.get(str(value).strip().lower())
    return None


def type_error(value, spec):
    """Why ``value`` does not fit ``spec`` (an argument spec option), or None when it does."""
    kind = spec.get("type", "str")
    if value is None:
        return None if not spec.get("required") else "it is required"
    if kind in ("str", "path"):
        if isinstance(value, (dict, list, bool)):
            return "it must be a string, not %s" % _kind(value)
    elif kind == "int" and _as_int(value) is None:
        return "it must be a whole number, not %s" % _kind(value)
    elif kind == "float" and _as_float(value) is None:
        return "it must be a number, not %s" % _kind(value)
    elif kind == "bool" and _as_bool(value) is None:
        return "it must be true or false, not %s" % _kind(value)
    elif kind == "list":
        if not isinstance(value, (list, tuple)):
            return "it must be a list, not %s" % _kind(value)
        elements = spec.get("elements")
        if elements:
            for i, item in enumerate(value):
                why = type_error(item, {"type": elements})
                if why:
                    return "item %d (%r): %s" % (i, item, why.replace("it must", "each item must"))
    elif kind == "dict" and not isinstance(value, dict):
        return "it must be a mapping (name: value), not %s" % _kind(value)
    choices = spec.get("choices")
    if choices and value not in choices and str(value) not in [str(c) for c in choices]:
        return "it must be one of %s" % ", ".join(map(str, choices))
    return None


def range_of(name):
    if name in RANGES:
        return RANGES[name]
    for suffix, bounds in _SUFFIX_RANGES:
        if name.endswith(suffix):
            return bounds
    return None


def range_error(name, value):
    """Why ``value`` lies outside ``name``'s range, or None."""
    bounds = range_of(name)
    number = _as_float(value)
    if bounds is None or number is None:
        return None
    low, high = bounds
    if low is not None and number < low:
        return "it must be %s or more" % low
    if high is not None and number > high:
        return "it must be at most %s" % high
    return None


def _fix(name, spec, where):
    kind = spec.get("type", "str")
    example = {"int": "a whole number", "float": "a number", "bool": "true or false", "list": "a list",
               "dict": "a mapping", "path": "a path", "str": "a string"}.get(kind, kind)
    if spec.get("choices"):
        example = "one of %s" % ", ".join(map(str, spec["choices"]))
    elif name in SIZE_VARIABLES:
        example = "a size such as 1g or 512m"
    bounds = range_of(name)
    if bounds and kind in ("int", "float"):
        example += " (%s)" % ("%s..%s" % bounds if bounds[1] is not None else ">= %s" % bounds[0])
    return "Set %s to %s %s (its default and meaning: roles/%s)." % (name, example, where, spec.get("_role", "cluster"))


def check_values(values, specs, where="in the inventory or with -e", host=None):
    """Problems of ``values`` ({variable: value}) against ``specs`` ({variable: option spec})."""
    problems = []
    for name in sorted(values):
        spec = specs.get(name)
        if spec is None:
            continue
        value = values[name]
        why = type_error(value, spec) or (range_error(name, value) if spec.get("type") in ("int", "float") else None)
        if why is None and name in SIZE_VARIABLES and not _SIZE_RE.match(str(value)):
            why = "it must be a size such as 1g, 512m or 1073741824"
        if why is None:
            continue
        variable = "%s (%s)" % (name, host) if host else name
        problems.append({"variable": variable, "value": value,
                         "message": "%s is %r: %s." % (variable, value, why),
                         "fix": _fix(name, spec, where)})
    return problems


# --------------------------------------------------------------------------- docker hosts
# What `docker -H` takes (docker's own host URL schemes).
DOCKER_URL_SCHEMES = ("ssh://", "tcp://", "unix://", "fd://")


def docker_host_problems(values_by_host, specs):
    """Problems of the docker hosts' own settings (``docker_dir``, ``docker_url``; entry point ``docker_host``).

    ``values_by_host``: {docker host: {variable: value}} as each sets them. Types come from the spec; what a
    spec cannot say (an absolute directory, a URL docker -H takes) is checked here.
    """
    problems = []
    for host in sorted(values_by_host):
        values = values_by_host[host]
        found = check_values(values, specs, where="on host %s" % host, host=host)
        problems += found
        if found:
            continue
        directory, url = values.get("docker_dir"), values.get("docker_url")
        if isinstance(directory, str) and not directory.startswith("/"):
            problems.append({"variable": "docker_dir (%s)" % host, "value": directory,
                             "message": "docker_dir (%s) is %r: it must be an absolute path on that machine."
                                        % (host, directory),
                             "fix": "Set docker_dir on host %s to an absolute path (e.g. /etc/mtrt/<cluster_name>), "
                                    "or remove it to use cluster_hosts_dir." % host})
        if isinstance(url, str) and not url.startswith(DOCKER_URL_SCHEMES):
            problems.append({"variable": "docker_url (%s)" % host, "value": url,
                             "message": "docker_url (%s) is %r: docker -H takes a URL starting with %s."
                                        % (host, url, ", ".join(DOCKER_URL_SCHEMES)),
                             "fix": "Set docker_url on host %s to e.g. ssh://<user>@<address>, or remove it to "
                                    "use ssh://<ansible_user>@<ansible_host>." % host})
    return problems


# --------------------------------------------------------------------------- one view of the cluster
def one_view(host_values, defaults):
    """Cluster-wide variables (``cluster_*``) that do not have one value for every host.

    ``host_values``: {host: {variable: value}} as each host's inventory (and -e) sets them, for every
    host a play targets (the nodes, the docker hosts, the controller: ``inventory.play_hosts``); ``defaults``: the project defaults, which a host that
    sets nothing gets. One problem per variable, naming every value
    and the hosts that have it.
    """
    problems = []
    names = sorted({name for values in host_values.values() for name in values})
    for name in names:
        by_value = {}
        for host in sorted(host_values):
            values = host_values[host]
            if name in values:
                value, source = values[name], host
            elif name in defaults:
                value, source = defaults[name], "%s (project default)" % host
            else:
                continue
            by_value.setdefault(repr(value), (value, []))[1].append(source)
        if len(by_value) < 2:
            continue
        # Values a host sets first, the project default last.
        ordered = sorted(by_value.values(), key=lambda item: all(h.endswith("(project default)") for h in item[1]))
        by_value = {repr(value): (value, hosts) for value, hosts in ordered}
        shown = "; ".join("%r on %s" % (value, ", ".join(hosts)) for value, hosts in by_value.values())
        problems.append({
            "variable": name, "value": [value for value, _ in by_value.values()],
            "message": "%s differs between hosts: %s. Every play must see one value (the network is built "
                       "from one, mpirun would use another)." % (name, shown),
            "fix": "Set %s once for the whole cluster: under all: vars: in the inventory (or with -e), not "
                   "under a group's vars (nodes: vars:, docker_hosts: vars:) or on one host." % name})
    return problems
