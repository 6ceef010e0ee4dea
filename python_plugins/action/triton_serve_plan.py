# SPDX-License-Identifier: Apache-2.0
"""triton_serve_plan: the serving placement, worked out inside the controller process.

The rules are plain Python on inventory values (mpi_trt_ansible.serving), so they run here
instead of as a module. Documentation: ``python_plugins/modules/triton_serve_plan.py``.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from mpi_trt_ansible.serving import ServeError, serve_plan

ARGUMENT_SPEC = dict(
    settings=dict(type="dict", required=True),
    nodes=dict(type="list", elements="dict", required=True),
)


def format_problems(problems):
    lines = ["Serving found %d problem%s (nothing was changed):" % (len(problems), "" if len(problems) == 1 else "s")]
    for i, prob in enumerate(problems, 1):
        lines.append("%2d. %s=%r: %s\n    Fix: %s" % (i, prob["variable"], prob["value"], prob["message"], prob["fix"]))
    return "\n".join(lines)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        result.update(mtrt_kind="triton_serve_plan", changed=False, problems=[], plan={})
        try:
            plan = serve_plan(params["settings"], params["nodes"])
        except ServeError as exc:
            result.update(failed=True, problems=exc.problems, msg=format_problems(exc.problems))
            return result
        result.update(plan=plan, msg="%d %s server(s): %s" % (
            len(plan["servers"]), plan["mode"],
            "; ".join("%s on %s (ranks %s)" % (s["name"], s["host"], ", ".join(
                "%d@%s" % (r["rank"], r["node"]) for r in s["ranks"])) for s in plan["servers"])))
        return result
