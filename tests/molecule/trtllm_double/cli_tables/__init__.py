# SPDX-License-Identifier: Apache-2.0
"""Recorded option tables of TensorRT-LLM's command lines, one JSON file per version.

TEST DATA ONLY (tests/, never product code). Each ``<version>.json`` holds, per tool, the options
that version's argparse defines (flags, dest, type, choices, default, nargs, const, action, required)
and the checks its script runs on the parsed arguments, written from the upstream source named in
``source``/``read`` (the commit of every file read; see README.md beside this file). Where a value
could not be read at a named commit the option says so (``default_unrecorded``,
``choices_unrecorded``, ``type_unrecorded``: the reason) and takes any value there.
:func:`parser` rebuilds that argparse parser; the unit tests and the test double
(tests/molecule/trtllm_double) both use it, so the double accepts exactly what the table (and so the
real tool) accepts. Nothing else in the double may build a parser (tests/unit/test_trtllm_cli.py).

Tools: ``build.py:<family>`` (legacy), ``convert_checkpoint.py:<family>``, ``trtllm-build``, ``run.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
TYPES = {"int": int, "float": float, "str": str, "Path": Path,
         "yesno": lambda s: s.lower() in ("yes", "true", "t", "1")}
ACTIONS = {"BooleanOptionalAction": argparse.BooleanOptionalAction}
# Keys of an option entry that argparse receives as they are.
_PLAIN = ("dest", "nargs", "const", "required", "choices")


def versions():
    """Recorded versions, e.g. ['0.7.1', '0.9.0', '1.2']."""
    return sorted((f[:-5] for f in os.listdir(HERE) if f.endswith(".json")),
                  key=lambda v: tuple(int(p) for p in v.split(".")))


def table(version):
    with open(os.path.join(HERE, version + ".json"), encoding="utf-8") as handle:
        return json.load(handle)


def tool_table(version, tool):
    """{source, options, asserts} of ``tool`` at ``version``; KeyError when not recorded."""
    return table(version)["tools"][tool]


def tools(version):
    return sorted(table(version)["tools"])


class ArgumentError(Exception):
    """argparse refused the line (the real tool exits 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ArgumentError(message)


def add_argument_kwargs(opt):
    """The keyword arguments ``add_argument`` gets for one recorded option."""
    kwargs = {key: opt[key] for key in _PLAIN if key in opt}
    if "action" in opt:
        kwargs["action"] = ACTIONS.get(opt["action"], opt["action"])
    if "default" in opt:
        kwargs["default"] = opt["default"]
    if opt.get("suppress"):
        kwargs["default"] = argparse.SUPPRESS
    if "type" in opt and opt.get("action") not in ("store_true", "store_false"):
        kwargs["type"] = TYPES[opt["type"]]
    return kwargs


def parser(version, tool, raising=True):
    """The argparse parser of ``tool`` at ``version``, built from the table (and from nothing else)."""
    cls = _Parser if raising else argparse.ArgumentParser
    prs = cls(prog=tool.split(":")[0], allow_abbrev=True)
    for opt in tool_table(version, tool)["options"]:
        prs.add_argument(*opt["flags"], **add_argument_kwargs(opt))
    return prs


def _set(value):
    """An argument the user gave: not None and not False (0.0 and '' count as given)."""
    return value is not None and value is not False


def post_parse_problems(version, tool, args):
    """What the real script checks on its arguments (exit 1 there); [] when fine.

    Kinds: eq_product (a == b * c), not_both (a and b both given), power_of_two, eq_const (a == value,
    else the recorded message), not_context_logits_with_draft, enabled_and_set (a == "enable" while b
    is given), requires (a given needs b), streaming_beams_py_session (1.2 run.py turns on
    return_all_generated_tokens for streaming beams, which its Python session refuses).
    """
    out = []
    for check in tool_table(version, tool).get("asserts", []):
        names, kind = check[0].split(","), check[1]
        vals = [getattr(args, n, None) for n in names]
        if kind == "eq_product" and vals[0] != math.prod(getattr(args, n) for n in check[2]):
            out.append("assert %s == %s failed" % (names[0], " * ".join(check[2])))
        elif kind == "not_both" and all(_set(v) for v in vals):
            out.append("assert not (%s) failed" % " and ".join(names))
        elif kind == "power_of_two" and not math.log2(vals[0]).is_integer():
            out.append("assert log2(%s) is an integer failed" % names[0])
        elif kind == "eq_const" and vals[0] != check[2]:
            out.append(check[3])
        elif kind == "not_context_logits_with_draft" and vals[0] and (vals[1] or 0) > 0:
            out.append("RuntimeError: gather context logits is not supported with draft len > 0")
        elif kind == "enabled_and_set" and vals[0] == "enable" and vals[1] is not None:
            out.append(check[2])
        elif kind == "requires" and _set(vals[0]) and not vals[1]:
            out.append(check[2])
        elif kind == "streaming_beams_py_session" and vals[0] and (vals[1] or 1) > 1 and vals[2]:
            out.append("ValueError: Returning all the generated tokens at each step is not supported in "
                       "the Python session, use C++ session instead.")
    return out


def parse(version, tool, argv):
    """Parse ``argv`` (without the program) as the real tool would: (namespace, problems).

    Raises ArgumentError where argparse itself refuses (exit 2)."""
    args = parser(version, tool).parse_args(list(argv))
    return args, post_parse_problems(version, tool, args)
