# SPDX-License-Identifier: Apache-2.0
"""Every project module documents itself the way ansible-doc and other services need."""

import ast
import importlib.util
import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULES = sorted((ROOT / "python_plugins" / "modules").glob("*.py"))
FRAGMENTS = ROOT / "python_plugins" / "doc_fragments"


def _docs(path):
    tree = ast.parse(path.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.Constant):
            name = getattr(node.targets[0], "id", None)
            if name in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
                out[name] = yaml.safe_load(node.value.value)
    return out


def _fragment_options(name):
    """Options of a doc fragment: the project's (``mtrt_mpirun``, ``mtrt_mpirun.contexts``) or a collection's
    (``community.docker.docker.api_documentation``: namespace.collection.file[.variable])."""
    parts = name.split(".")
    if (FRAGMENTS / ("%s.py" % parts[0])).is_file() and len(parts) <= 2:  # the project's, [.variable]
        spec = importlib.util.spec_from_file_location(parts[0], FRAGMENTS / ("%s.py" % parts[0]))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        text = getattr(module.ModuleDocFragment, (parts[1] if len(parts) > 1 else "documentation").upper())
    else:
        module = importlib.import_module("ansible_collections.%s.%s.plugins.doc_fragments.%s" % tuple(parts[:3]))
        text = getattr(module.ModuleDocFragment, (parts[3] if len(parts) > 3 else "documentation").upper())
    return yaml.safe_load(text)["options"]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_module_documentation_parses_and_is_complete(path):
    docs = _docs(path)
    doc = docs["DOCUMENTATION"]
    assert doc["module"] == path.stem
    for key in ("short_description", "description", "author"):
        assert doc.get(key), "%s: DOCUMENTATION has no %s" % (path.stem, key)
    options = dict(doc.get("options") or {})
    for fragment in doc.get("extends_documentation_fragment") or []:
        options.update(_fragment_options(fragment))
    for name, option in options.items():
        assert option.get("description") and option.get("type"), "%s: option %s" % (path.stem, name)
    assert isinstance(docs["EXAMPLES"], list) and docs["EXAMPLES"]
    ret = docs["RETURN"]
    assert "mtrt_kind" in ret, "%s: RETURN must describe mtrt_kind" % path.stem
    for key, value in ret.items():
        assert {"description", "returned", "type"} <= set(value), "%s: RETURN %s" % (path.stem, key)
