# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""run_summary: the cluster, as a result the run report files; the report prints its summary beside it.

Documentation: ``python_plugins/modules/run_summary.py``. The summary lines themselves come from
``mpi_trt_ansible.report.summary_lines``, printed by the run_report callback when this result
arrives (it holds the report of the run so far).
"""

from __future__ import annotations

from mpi_trt_ansible.report.kinds.cluster import cluster_sentence
from mpi_trt_ansible.spec_action import SpecAction

ARGUMENT_SPEC = dict(
    cluster=dict(type="dict", required=True, options=dict(
        name=dict(type="str", required=True),
        mode=dict(type="str", required=True),
        nodes=dict(type="list", elements="dict", default=[]),
        network=dict(type="dict", default={}),
        shared=dict(type="dict", default={}),
        launcher=dict(type="str"),
    )),
)


class ActionModule(SpecAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def compute(self, params, task_vars):
        given = params["cluster"]
        # Each node's address; a node without one (local mode) by the host mpirun reaches it as.
        cluster = dict(given, nodes=[dict({"name": n.get("name"), "ip": n.get("ip")},
                                          **({} if n.get("ip") else {"mpi_host": n.get("mpi_host")}))
                                     for n in given["nodes"] if isinstance(n, dict)])
        return dict(changed=False, mtrt_kind="run_summary", cluster=cluster, msg=cluster_sentence(cluster))
