# -*- coding: utf-8 -*-
"""Options shared by every project module that launches mpirun."""

from __future__ import annotations


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  hostfile:
    description: Open MPI hostfile on the launcher (C(host slots=N) lines). Required unless O(hosts) is given.
    type: path
  hosts:
    description: Hosts as C(name:slots) strings, used as C(--host) when no O(hostfile) is given.
    type: list
    elements: str
  np:
    description: Number of ranks. Defaults to all slots of the hostfile or O(hosts).
    type: int
  python:
    description: Interpreter every rank runs the script with; resolved to an absolute path on the launcher.
    type: str
    default: python3
  mpirun:
    description: mpirun to use; resolved to an absolute path so remote daemons find Open MPI too.
    type: str
    default: mpirun
  timeout_s:
    description: Seconds before the whole launch is killed (its process group) and reported as timed out.
    type: int
  mca:
    description: MCA parameters passed as C(--mca name value).
    type: dict
    default: {}
  env:
    description: Environment variables set for mpirun and exported to every rank with C(-x).
    type: dict
    default: {}
  extra_args:
    description: Extra mpirun arguments, placed before the command.
    type: list
    elements: str
    default: []
"""
