# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""triton_serve_instance runs as its module on rank 0's node; a failed start is diagnosed on the controller
(the silent or killed ranks' nodes, their state and log: mpi_trt_ansible.launch_action), as every mpirun is."""

from mpi_trt_ansible.launch_action import LaunchAction as ActionModule  # noqa: F401
