# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""node_containers_settled: record what stages 10-40 left for the inputs preflight hashed, so that the next
run's preflight can find them settled and skip them (``mpi_trt_ansible.settled``).

Documentation: ``python_plugins/modules/node_containers_settled.py``. In-process: one docker listing (the
Docker SDK, as preflight reads it) and the state directory's files; nothing on any node.
"""

from __future__ import annotations

import json
import os

from ansible.errors import AnsibleActionFail

from mpi_trt_ansible import settled
from mpi_trt_ansible.fileio import atomic_write
from mpi_trt_ansible.preflight import facts
from mpi_trt_ansible.spec_action import SpecAction

ARGUMENT_SPEC = dict(
    digest=dict(type="str", required=True),
    cluster=dict(type="str", required=True),
    state_dir=dict(type="path", required=True),
    image=dict(type="str", required=True),
    base=dict(type="str", default=""),
    network=dict(type="str", required=True),
    nodes=dict(type="list", elements="str", required=True),
)


class ActionModule(SpecAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def compute(self, params, task_vars):
        result = dict(changed=False, mtrt_kind="node_containers_settled", path=settled.record_path(params["state_dir"]))
        if self._task.check_mode:
            return dict(result, msg="check mode: nothing recorded")
        try:
            listing = facts.docker_listing(params["cluster"])
        except facts.DockerUnavailable as exc:
            raise AnsibleActionFail("node_containers_settled: the docker engine cannot be asked: %s" % exc)
        record = settled.make_record(params["digest"], listing, params["image"], params["network"],
                                     params["nodes"], params["state_dir"], params["base"])
        if settled.same_record(settled.read_record(params["state_dir"]), record):
            return dict(result, msg="already recorded")
        os.makedirs(params["state_dir"], mode=0o700, exist_ok=True)
        atomic_write(result["path"], (json.dumps(record, indent=1, sort_keys=True) + "\n").encode(), 0o600)
        return dict(result, changed=True, msg="recorded %d containers and %d files" % (
            len(record["docker"]["containers"]), len(record["files"])))
