# -*- coding: utf-8 -*-
"""cluster_preflight: check the cluster topology inside the controller process.

The checks are plain Python on data the play already has (inventory values, the docker
host's listing, /proc text), so they run here instead of as a module: no payload is
built, shipped or started. Documentation: ``python_plugins/modules/cluster_preflight.py``;
the checks: ``module_utils/mtrt_topology.py``.
"""

from __future__ import annotations

import os
import sys

from ansible.plugins.action import ActionBase

_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _UTILS not in sys.path:
    sys.path.insert(0, _UTILS)
import mtrt_topology  # noqa: E402  (plain Python beside the plugins, see the sys.path line above)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(mtrt_topology.PREFLIGHT_ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=mtrt_topology.PREFLIGHT_ARGUMENT_SPEC)
        result.update(mtrt_topology.preflight(params))
        return result
