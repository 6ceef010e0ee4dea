# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""cluster_network: the cluster's docker network, brought to its spec inside the controller process.

Documentation: ``python_plugins/modules/cluster_network.py``. What it does (and how that matches
``community.docker.docker_network`` with stage 20's options) is ``mpi_trt_ansible.network``; the client
is the project's one Docker SDK connection (``mpi_trt_ansible.preflight.facts.docker_client``).
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail

from mpi_trt_ansible import network
from mpi_trt_ansible.preflight import facts
from mpi_trt_ansible.spec_action import SpecAction

_LOCAL = ("local", "ansible.builtin.local")

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    driver=dict(type="str", default="bridge", choices=["bridge"]),
    subnet=dict(type="str", required=True),
    gateway=dict(type="str", required=True),
    labels=dict(type="dict", default={}),
    state=dict(type="str", default="present", choices=["present"]),
    docker_host=dict(type="str"),
    timeout_s=dict(type="int", default=60),
)


class ActionModule(SpecAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def compute(self, params, task_vars):
        if self._connection.transport not in _LOCAL:
            raise AnsibleActionFail("cluster_network asks the controller's docker engine: run it on localhost")
        want = network.wanted(params["name"], params["subnet"], params["gateway"], params["labels"],
                              params["driver"])
        try:
            docker, client = facts.docker_client(params["docker_host"], params["timeout_s"])
        except facts.DockerUnavailable as exc:
            raise AnsibleActionFail("cluster_network: the docker engine cannot be asked: %s" % exc) from exc
        try:
            result = network.ensure(client, want, check_mode=bool(self._task.check_mode),
                                    not_found=docker.errors.NotFound)
        except docker.errors.APIError as exc:
            return dict(failed=True, changed=False, mtrt_kind="cluster_network",
                        msg="cluster_network: docker refused to bring network %s to subnet %s, gateway %s: %s"
                            % (want["name"], want["subnet"], want["gateway"],
                               getattr(exc, "explanation", None) or exc))
        finally:
            client.close()
        if not self._task.diff:
            result.pop("diff")
        return dict(result, mtrt_kind="cluster_network")
