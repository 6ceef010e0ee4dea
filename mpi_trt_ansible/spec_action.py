# SPDX-License-Identifier: Apache-2.0
"""The base of the action plugins that work inside the controller process on arguments checked against
a spec (``run_summary``, ``hosts_preflight``; any such action can use it).

A subclass declares ``ARGUMENT_SPEC`` and ``compute(params, task_vars)``, which returns the result keys.
The base refuses arguments the spec does not name, validates the rest as Ansible validates a module's
(types, defaults, required), and merges what ``compute`` returns into the task's result.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase


class SpecAction(ActionBase):
    TRANSFERS_FILES = False
    ARGUMENT_SPEC: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._VALID_ARGS = frozenset(cls.ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        result.update(self.compute(params, task_vars or {}))
        return result

    def compute(self, params, task_vars):
        """The result keys of this action for ``params`` (validated) and the task's variables."""
        raise NotImplementedError
