# SPDX-License-Identifier: Apache-2.0
"""What a direct launch runs on the launcher: the module's own ``run()`` with its module_utils, no Ansible.

``mpi_trt_ansible.direct`` sends this file's text, followed by one call of :func:`main` with a JSON
payload, to the launcher's Python on stdin (one ``docker exec``, or one local process). The payload
holds the sources of the module and of the project module_utils it imports, the parameters the
controller validated against the module's own spec, and check mode. Here they are imported as
Ansible would import them (``ansible.module_utils.<name>``, from memory), and the module's
``run(module)`` gets a :class:`DirectModule` in place of an AnsibleModule: the same launch, the
same judging, the same result keys, printed as one JSON line. Plain Python 3.6+, standard library only.
"""

import importlib.abc
import importlib.machinery
import json
import sys
import types

_PREFIX = "ansible.module_utils."


class _Sources(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``ansible.module_utils.<name>`` from the payload's sources (the project's module_utils only)."""

    def __init__(self, sources):
        self.sources = sources

    def find_spec(self, name, path=None, target=None):
        if name.startswith(_PREFIX) and name[len(_PREFIX):] in self.sources:
            return importlib.machinery.ModuleSpec(name, self, origin="module_utils/%s.py" % name[len(_PREFIX):])
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        short = module.__name__[len(_PREFIX):]
        exec(compile(self.sources[short], "module_utils/%s.py" % short, "exec"), module.__dict__)


def _packages():
    """``ansible`` and ``ansible.module_utils`` as the imports need them: the real ones where Ansible is
    installed (local mode runs the controller's Python), else empty packages (a node has no Ansible)."""
    for name in ("ansible", "ansible.module_utils"):
        if name in sys.modules:
            continue
        try:
            __import__(name)
        except ImportError:
            package = types.ModuleType(name)
            package.__path__ = []
            sys.modules[name] = package
            if "." in name:
                setattr(sys.modules[name.rsplit(".", 1)[0]], name.rsplit(".", 1)[1], package)


class DirectModule(object):
    """The part of AnsibleModule a launch module's ``run()`` uses: ``params``, ``check_mode``, ``warn``,
    ``exit_json`` and ``fail_json`` (which print the result as one JSON line and end the process)."""

    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self._warnings = []

    def warn(self, warning):
        self._warnings.append(warning)

    def _emit(self, result):
        result.setdefault("changed", False)
        if self._warnings:
            result["warnings"] = list(result.get("warnings") or []) + self._warnings
        sys.stdout.write("\n" + json.dumps(result, default=str) + "\n")
        sys.stdout.flush()
        sys.exit(0)

    def exit_json(self, **result):
        self._emit(result)

    def fail_json(self, msg, **result):
        result.update(failed=True, msg=msg)
        self._emit(result)


def main(payload):
    """Import the module from the payload's sources and run its ``run(module)``."""
    sys.meta_path.insert(0, _Sources(payload["module_utils"]))
    _packages()
    module = types.ModuleType("mtrt_direct_" + payload["name"])
    module.__file__ = "modules/%s.py" % payload["name"]
    exec(compile(payload["module"], module.__file__, "exec"), module.__dict__)
    module.run(DirectModule(payload["params"], check_mode=bool(payload.get("check_mode"))))
    DirectModule({})._emit({"failed": True, "msg": "%s: run() returned without a result" % payload["name"]})
