# SPDX-License-Identifier: Apache-2.0
"""Make the project's plugins importable the way Ansible loads them.

``python_plugins/module_utils/<name>.py`` becomes ``ansible.module_utils.<name>``
and ``python_plugins/modules`` goes on sys.path, so tests import modules and
their parsers exactly as the controller would.
"""

import importlib.util
import pathlib
import sys

import ansible.module_utils  # noqa: F401  (the package we register into)

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "python_plugins"
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"


# ansible.module_utils.<name> resolves to python_plugins/module_utils/<name>.py, as in the
# modules Ansible ships (imports between them work in any order).
if str(PLUGINS / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(PLUGINS / "module_utils"))
for sub in ("modules", "callback", "filter"):
    path = str(PLUGINS / sub)
    if path not in sys.path:
        sys.path.insert(0, path)


import json  # noqa: E402

import yaml  # noqa: E402


def project_defaults():
    """Every project default (roles/cluster/defaults/main/*.yml, merged in load order)."""
    merged = {}
    for path in sorted((ROOT / "roles" / "cluster" / "defaults" / "main").glob("*.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged

import pytest  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402


def ansible_reads_failed(result):
    """Whether ansible-core takes a module's raw result for a failure.

    ``TaskExecutor._execute``: an explicit ``failed`` wins; without one, an ``rc``
    key whose value is not 0 fails the task (``rc: null`` included).
    """
    if "failed" in result:
        return bool(result["failed"])
    return "rc" in result and result["rc"] not in (0, "0")


@pytest.fixture
def run_module(capsys):
    """Run a module's ``main()`` with ``args``; return its parsed JSON result.

    The result dict gets ``failed`` set when absent (False), unless ``raw=True``:
    then it is exactly what the module printed (see ``ansible_reads_failed``).
    """

    def _run(module, args, raw=False):
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                module.main()
        out = capsys.readouterr().out
        result = json.loads(out)
        if not raw:
            result.setdefault("failed", False)
        return result

    return _run


def load_action(name):
    """``python_plugins/action/<name>.py`` as a module (actions share names with their doc stubs)."""
    key = "mtrt_action_" + name
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, PLUGINS / "action" / (name + ".py"))
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


@pytest.fixture
def run_action():
    """Run an action plugin's ``run()`` on the controller with ``args``; return its result dict.

    The task, connection and loader are the few attributes ActionBase reads, nothing more.
    """
    from types import SimpleNamespace

    def _run(action_module, args, check_mode=False, transport="local", task_vars=None, name=None):
        task = SimpleNamespace(args=dict(args), async_val=0, check_mode=check_mode, diff=False,
                               action=name or action_module.__name__)
        connection = SimpleNamespace(transport=transport, _shell=SimpleNamespace(tmpdir="/nonexistent"))
        action = action_module.ActionModule(task, connection, play_context=None, loader=None, templar=None)
        return action.run(task_vars=task_vars or {})

    return _run
