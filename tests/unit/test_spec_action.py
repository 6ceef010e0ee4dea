# SPDX-License-Identifier: Apache-2.0
"""SpecAction, the base of the in-process actions with an argument spec: unknown arguments refused,
the rest validated with their defaults, compute's keys merged into the result."""

import sys

import pytest
from ansible.errors import AnsibleActionFail

from conftest import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from mpi_trt_ansible.spec_action import SpecAction  # noqa: E402


class Echo(SpecAction):
    ARGUMENT_SPEC = dict(name=dict(type="str", required=True), count=dict(type="int", default=2))

    def compute(self, params, task_vars):
        return dict(changed=False, mtrt_kind="echo", seen=dict(params), var=task_vars.get("x"))


class EchoModule:  # what run_action expects: a plugin module with ActionModule
    ActionModule = Echo


def test_valid_arguments_reach_compute_with_defaults(run_action):
    result = run_action(EchoModule, {"name": "n1", "count": "3"}, task_vars={"x": 1}, name="echo")
    assert result["seen"] == {"name": "n1", "count": 3} and result["var"] == 1 and result["mtrt_kind"] == "echo"
    assert run_action(EchoModule, {"name": "n1"}, name="echo")["seen"]["count"] == 2
    assert Echo._VALID_ARGS == frozenset({"name", "count"})


def test_unknown_or_missing_arguments_are_refused(run_action):
    with pytest.raises(AnsibleActionFail, match="Invalid options for echo: colour"):
        run_action(EchoModule, {"name": "n1", "colour": "red"}, name="echo")
    with pytest.raises(AnsibleActionFail, match="missing required arguments: name"):
        run_action(EchoModule, {}, name="echo")
