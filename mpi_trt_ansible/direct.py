# SPDX-License-Identifier: Apache-2.0
"""Direct launches: a launch module's own ``run()`` on the launcher without an Ansible module run.

A module run costs, before the module does anything, its AnsiballZ payload built on the controller
(every module_utils file it and ``ansible.module_utils.basic`` import, parsed: about 0.25 s here)
and, on the node, a Python that imports ``basic`` from that zip (about 0.3 s). For the launches that
every run makes (the hello) that is a third of the stage. A launch module that opts in - it defines
``SPEC`` (its AnsibleModule keyword arguments) and ``run(module)``, and imports AnsibleModule only in
``main()`` - can instead be sent as source: the controller validates the task's arguments against
``SPEC`` with Ansible's own ArgumentSpecValidator (types, defaults, required, choices), collects the
project module_utils the module imports, and the launcher's Python runs ``direct_boot.py`` on them
(one exec through the task's connection, stdin). ``run()`` then does exactly what it does in a module
run - the same launch (``mtrt_launch``), bounds, pid files, judging - on a stand-in with the calls it
uses, and prints the same result.

The launch action (``mpi_trt_ansible.launch_action``) takes this path only where nothing a module run
would add is asked for (:func:`eligible`): not in check mode, no become, no task environment, no async,
a docker or local connection and a known interpreter path. Anything else is the module run as before.
"""

from __future__ import annotations

import ast
import json
import os
import types

from ansible import constants as C
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

BOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "direct_boot.py")
# Connections that run a command with stdin through one process start on the launcher.
TRANSPORTS = ("community.docker.docker", "local", "ansible.builtin.local")
_PREFIX = "ansible.module_utils."


class NotDirect(Exception):
    """The module cannot be launched directly (the reason says why); it runs as a module."""


def module_utils_dirs():
    """The project's module_utils directories, as ansible.cfg names them (``module_utils``)."""
    return [d for d in (C.DEFAULT_MODULE_UTILS_PATH or []) if os.path.isdir(d)]


def _find(name, dirs):
    for d in dirs:
        path = os.path.join(d, name + ".py")
        if os.path.isfile(path):
            return path
    return None


def imported_names(source):
    """The ``ansible.module_utils.<name>`` a source imports (any depth: imports inside functions count)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "ansible.module_utils":  # from ansible.module_utils import a, b
                names.update(alias.name for alias in node.names)
            elif node.module.startswith(_PREFIX):
                names.add(node.module[len(_PREFIX):].split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name[len(_PREFIX):].split(".")[0] for alias in node.names
                         if alias.name.startswith(_PREFIX))
    return names


def closure(source, dirs):
    """``{name: source}`` of every project module_utils file ``source`` needs, transitively. Names that
    are not the project's (``basic``...) are left out: a direct module imports them only in ``main()``."""
    found, todo = {}, sorted(imported_names(source))
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = _find(name, dirs)
        if path is None:
            continue
        with open(path) as handle:
            found[name] = handle.read()
        todo.extend(sorted(imported_names(found[name]) - set(found)))
    return found


def opted_in(source):
    """True when the module defines ``SPEC`` and ``run`` at its top level (a direct launch may run it)."""
    tree = ast.parse(source)
    names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
             if isinstance(t, ast.Name)}
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    return "SPEC" in names and "run" in functions


def module_spec(name, source, dirs):
    """The module's ``SPEC``, read by importing it here with the project module_utils importable as
    Ansible imports them (``ansible.module_utils.<name>``)."""
    import ansible.module_utils as package

    for d in dirs:
        if d not in package.__path__:
            package.__path__.append(d)
    module = types.ModuleType("mtrt_direct_spec_" + name)
    module.__file__ = name + ".py"
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module.SPEC


def validate(spec, args):
    """``args`` checked and completed as AnsibleModule would (types, defaults, required, choices,
    required_one_of); raises NotDirect naming what is wrong (the module run then reports it as before)."""
    keywords = {k: v for k, v in spec.items() if k != "argument_spec"}
    checked = ArgumentSpecValidator(spec["argument_spec"], **keywords).validate(dict(args))
    if checked.error_messages:
        raise NotDirect("; ".join(checked.error_messages))
    return checked.validated_parameters


def program(name, source, sources, params, check_mode=False):
    """The text the launcher's Python reads on stdin: direct_boot.py and one call of its main()."""
    with open(BOOT) as handle:
        boot = handle.read()
    payload = {"name": name, "module": source, "module_utils": sources, "params": params,
               "check_mode": bool(check_mode)}
    return "%s\nmain(json.loads(%r))\n" % (boot, json.dumps(payload))


def result_of(stdout):
    """The result a direct launch printed (its last JSON line); None when it printed none."""
    for line in reversed((stdout or "").splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                found = json.loads(line)
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
    return None


def eligible(task, connection, play_context, interpreter):
    """Why a direct launch may not run this task (None when it may)."""
    if getattr(task, "check_mode", False):
        return "check mode"
    if getattr(task, "async_val", 0):
        return "async"
    if any(entry for entry in (getattr(task, "environment", None) or [])):  # [{}] when nothing sets one
        return "task environment"
    if getattr(play_context, "become", False):
        return "become"
    if connection.transport not in TRANSPORTS:
        return "connection %s" % connection.transport
    if not isinstance(interpreter, str) or not os.path.isabs(interpreter.split()[0] if interpreter else ""):
        return "interpreter %r" % (interpreter,)
    return None


def prepare(name, module_path, args, check_mode=False, dirs=None):
    """``program`` text for module ``name`` at ``module_path`` with ``args``; raises NotDirect.
    ``dirs``: where the project module_utils are (default: ansible.cfg's ``module_utils``)."""
    with open(module_path) as handle:
        source = handle.read()
    if not opted_in(source):
        raise NotDirect("%s defines no SPEC and run()" % name)
    dirs = module_utils_dirs() if dirs is None else dirs
    params = validate(module_spec(name, source, dirs), args)
    return program(name, source, closure(source, dirs), params, check_mode)

