# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Options and result keys shared by every project module that launches mpirun (module_utils/mtrt_launch.py)."""

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
notes:
  - The launch goes through the project's one launcher (module_utils/mtrt_launch.py). Besides its own keys,
    every result carries the launch keys C(mtrt_kind), C(command) (the mpirun argv), C(rc) (null when it timed
    out or did not run), C(timed_out), C(duration_s), C(np), C(expected_placement) (rank to host under Open MPI's
    by-slot mapping), C(ranks_seen) and C(ranks_silent) (ranks that printed something, or nothing),
    C(ranks_signalled) (ranks mpirun saw die on a signal, each C(rank), C(host), C(signal)),
    C(rank_tails) (each rank's last lines), C(left_running) (pids that survived the kill; normally empty),
    C(stopped_on_nodes) (after a timeout, per host of the placement what the launch had left there and was
    stopped - C(host), C(stopped) as C(pid) and C(cmd), C(left_running), C(error) when the host did not answer),
    C(explained) (known raw errors with C(raw), C(cause) and C(fix)), C(problems), C(stdout_tail) and
    C(stderr_tail).
  - At O(timeout_s) the whole process tree of the launch is killed (its process group, its session, every
    descendant and whatever still holds its output, the ssh clients of remote daemons included); then, on every
    host of the placement, over the cluster's ssh (each host bounded by a few seconds), what the launch started
    there (Open MPI's daemon by the job id on its command line, the ranks by the C(MTRT_LAUNCH_ID) every rank's
    environment carries) is stopped too. The failure message says which ranks had printed and which never did,
    on which host, and what was stopped where.
  - Supports check mode, in which it reports the command it would run, starts nothing, and returns
    C(rc=null) with C(failed=false).
  - A module that defines C(SPEC) and C(run(module)) (C(mpi_hello), C(mpi_collectives)) is launched directly
    where the connection allows (docker, local; no become, no task environment, not in check mode, and
    C(cluster_mpi_direct_launch) not false), its code run by the launcher's Python without a module run
    (C(mpi_trt_ansible/direct.py)); the result then also carries C(mtrt_direct=true), else C(mtrt_direct=false)
    and C(mtrt_direct_why).
"""

    # extends_documentation_fragment: mtrt_mpirun.contexts - a launch with one application context per
    # rank (module_utils/mtrt_launch.py ContextLaunch), e.g. one tritonserver per rank, started detached.
    CONTEXTS = r"""
options: {}  # the launch's options are in LAUNCH; this fragment adds what a per-rank launch is
notes:
  - The launch goes through the project's one launcher (module_utils/mtrt_launch.py) in its form with one
    application context per rank (C(-n 1 --host host:slots) each, joined by C(:)) and its own hostfile (each
    host once, with as many slots as its ranks take); rank r runs exactly on the host of context r.
  - Besides its own keys, every result carries the launch keys C(mtrt_kind), C(command) (the mpirun argv),
    C(detached) (true), C(rc) (null while mpirun runs or when it did not start; its exit code once it ended),
    C(timed_out), C(duration_s), C(np), C(expected_placement) (rank to host), C(ranks_seen) and C(ranks_silent)
    (ranks that printed something in the log since the start, or nothing), C(rank_tails) (each rank's last
    lines), C(left_running) (pids that survived the kill; normally empty), C(explained) (known raw errors with
    C(raw), C(cause) and C(fix)), C(problems), C(stdout_tail) (the log's last lines, untagged) and
    C(stderr_tail) (mpirun's own lines).
"""

    # extends_documentation_fragment: mtrt_mpirun.launch - the options of every launch, with either of the
    # fragments above (the placement of mtrt_mpirun's, or mtrt_mpirun.contexts' one context per rank).
    LAUNCH = r"""
options:
  mpirun:
    description: mpirun to use; resolved to an absolute path so remote daemons find Open MPI too.
    type: str
    default: mpirun
  timeout_s:
    description:
      - Bound on the launch in seconds. A launch still running then (a detached start not ready by then) is killed
        with its whole process tree, the ssh clients of remote daemons included, and reported as timed out.
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
    description: Extra mpirun arguments, placed before the command (before the first application context).
    type: list
    elements: str
    default: []
  tag_output:
    description:
      - Pass C(--tag-output), so every line (of the output, or of a detached launch's log) says which rank printed
        it; the result then names the ranks that printed nothing (and their hosts) and keeps each rank's last lines.
        The parsed stdout is untagged.
    type: bool
    default: true
"""
