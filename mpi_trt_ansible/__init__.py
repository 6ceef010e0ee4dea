# SPDX-License-Identifier: Apache-2.0
"""mpi-trt-ansible's controller-side Python.

- The API: run the pipeline through ansible-runner and get typed results
  (:mod:`mpi_trt_ansible.api`; ``python -m mpi_trt_ansible`` is a small CLI on top).
- What the controller plugins (preflight action, report callback, filters) run:
  the inventory schema, the preflight rules and the report builder.

The API names below are imported on first use, so the plugins that load this
package inside ansible-playbook do not import ansible-runner.
"""

from __future__ import annotations

import importlib

__all__ = [
    "Failure", "HelloResult", "ModuleResult", "RunFinished", "RunHandle", "RunResult", "ServingResult",
    "StageFinished", "StageResult", "StageStarted", "TaskResult", "find_project_dir",
    "latest_report", "run_pipeline", "start_pipeline",
]


def __getattr__(name):
    if name in __all__:
        return getattr(importlib.import_module("mpi_trt_ansible.api"), name)
    raise AttributeError("module 'mpi_trt_ansible' has no attribute %r" % name)


def __dir__():
    return sorted(list(globals()) + __all__)
