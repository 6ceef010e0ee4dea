# SPDX-License-Identifier: Apache-2.0
"""Cluster rules that the controller and the targets both apply, written once.

This file is the package's ``mpi_trt_ansible.rules`` on the controller and, through the link
``python_plugins/module_utils/mtrt_rules.py``, ``ansible.module_utils.mtrt_rules`` inside the
modules Ansible ships to the nodes. So it imports nothing but the standard library.
"""

from __future__ import annotations

import re

_SLOTS_RE = re.compile(r"^slots\s*=\s*(\d+)$")


class HostfileError(ValueError):
    """A hostfile line that Open MPI would not accept."""


def parse_hostfile(text):
    """Parse an Open MPI hostfile into ``[(host, slots), ...]``.

    Accepts ``host``, ``host slots=N`` and comments. A host without slots
    counts as one slot, as Open MPI does for plain hostfiles.
    """
    hosts = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        slots = 1
        for field in fields[1:]:
            match = _SLOTS_RE.match(field)
            if match:
                slots = int(match.group(1))
            elif not field.startswith("max_slots="):
                raise HostfileError("hostfile line %d: unknown field %r in %r" % (lineno, field, raw))
        if slots < 1:
            raise HostfileError("hostfile line %d: slots must be >= 1 in %r" % (lineno, raw))
        hosts.append((fields[0], slots))
    return hosts


def render_hostfile(hosts_slots):
    """Render ``[(host, slots)]`` as hostfile text."""
    return "".join("%s slots=%d\n" % (host, slots) for host, slots in hosts_slots)


def by_slot_placement(hosts_slots, np):
    """Rank -> host under Open MPI's default by-slot mapping.

    Ranks fill the first host's slots, then the next host's, in hostfile
    order. Returns None when ``np`` exceeds the slots (mpirun would refuse).
    """
    placement = {}
    rank = 0
    for host, slots in hosts_slots:
        for _ in range(slots):
            if rank >= np:
                return placement
            placement[rank] = host
            rank += 1
    if rank < np:
        return None
    return placement


def ranks_per_host(hosts_slots, np):
    """``{host: number of ranks}`` under :func:`by_slot_placement` (hosts with none included)."""
    counts = {host: 0 for host, _ in hosts_slots}
    for host in (by_slot_placement(hosts_slots, min(np, sum(s for _, s in hosts_slots))) or {}).values():
        counts[host] += 1
    return counts


def world_size(tp, pp):
    """Ranks of a tensor-parallel ``tp`` x pipeline-parallel ``pp`` job (integers): one per shard."""
    return tp * pp


def ranges(numbers):
    """``[0, 1, 2, 5]`` -> ``'0-2, 5'``."""
    out, start, prev = [], None, None
    for n in numbers:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(str(start) if start == prev else "%d-%d" % (start, prev))
            start = prev = n
    if start is not None:
        out.append(str(start) if start == prev else "%d-%d" % (start, prev))
    return ", ".join(out)


def ranks_on_hosts(ranks, placement):
    """``'0-1 on node1, 2 on node2'`` for ``ranks`` under ``placement`` ({rank: host}; its keys may be
    ints or, as in a JSON result, strings). Hosts in the order of their first rank; ``?`` for a rank
    the placement does not know."""
    placement = placement or {}
    by_host = {}
    for rank in sorted({int(r) for r in ranks or []}):
        host = placement.get(rank, placement.get(str(rank), "?"))
        by_host.setdefault(host, []).append(rank)
    return ", ".join("%s on %s" % (ranges(rs), host) for host, rs in by_host.items())
