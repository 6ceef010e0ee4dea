# SPDX-License-Identifier: Apache-2.0
"""The cluster rules both sides apply (mpi_trt_ansible/rules.py, shipped as module_utils/mtrt_rules.py):
hostfile, by-slot placement, ranks per host, rank ranges, ranks on hosts, world size."""

import os
import sys

import pytest

from conftest import FIXTURES, PLUGINS, ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from mpi_trt_ansible import rules  # noqa: E402
from mpi_trt_ansible.rules import (HostfileError, by_slot_placement, parse_hostfile, ranges,  # noqa: E402
                                   ranks_on_hosts, ranks_per_host, render_hostfile, world_size)

# The hostfile stage 35 rendered for the default cluster (inventory/local: 2 nodes x 2 slots).
DEFAULT_HOSTFILE = (FIXTURES / "mpi" / "hostfile_docker_default").read_text()


def test_the_module_utils_name_is_the_same_file():
    """The nodes get this very file (a link), not a copy that could drift."""
    link = PLUGINS / "module_utils" / "mtrt_rules.py"
    assert link.is_symlink() and os.path.samefile(link, rules.__file__)


def test_parse_the_rendered_hostfile():
    assert DEFAULT_HOSTFILE.startswith("# Managed by mpi-trt-ansible")
    assert parse_hostfile(DEFAULT_HOSTFILE) == [("node1", 2), ("node2", 2)]


def test_parse_comments_blank_lines_max_slots_and_plain_hosts():
    text = ("# cluster\n\n"
            "gpu01 slots=8 max_slots=8   # two sockets\n"
            "gpu02\n"
            "  gpu03   slots=4\n"
            "10.0.0.4 slots=1\n")
    # a host without slots counts one, as Open MPI does for a plain hostfile
    assert parse_hostfile(text) == [("gpu01", 8), ("gpu02", 1), ("gpu03", 4), ("10.0.0.4", 1)]


@pytest.mark.parametrize("line, message", [
    ("node1 slots=0", r"hostfile line 2: slots must be >= 1 in 'node1 slots=0'"),
    ("node1 cpus=2", r"hostfile line 2: unknown field 'cpus=2' in 'node1 cpus=2'"),
    ("node1 slots=two", r"hostfile line 2: unknown field 'slots=two'"),
    ("node1 slots = 2", r"hostfile line 2: unknown field 'slots' in 'node1 slots = 2'"),
])
def test_bad_hostfile_lines_name_line_and_field(line, message):
    with pytest.raises(HostfileError, match=message):
        parse_hostfile("node0 slots=1\n%s\n" % line)


def test_render_is_what_parse_reads():
    hosts = [("node1", 2), ("node2", 3)]
    assert render_hostfile(hosts) == "node1 slots=2\nnode2 slots=3\n"
    assert parse_hostfile(render_hostfile(hosts)) == hosts
    assert parse_hostfile("") == [] and render_hostfile([]) == ""


def test_by_slot_placement_fills_each_host_in_order():
    hosts = parse_hostfile(DEFAULT_HOSTFILE)
    assert by_slot_placement(hosts, 4) == {0: "node1", 1: "node1", 2: "node2", 3: "node2"}
    assert by_slot_placement(hosts, 3) == {0: "node1", 1: "node1", 2: "node2"}
    assert by_slot_placement(hosts, 1) == {0: "node1"}
    assert by_slot_placement(hosts, 0) == {}
    assert by_slot_placement([("a", 1), ("b", 3)], 3) == {0: "a", 1: "b", 2: "b"}


def test_by_slot_placement_refuses_more_ranks_than_slots():
    assert by_slot_placement(parse_hostfile(DEFAULT_HOSTFILE), 5) is None
    assert by_slot_placement([], 1) is None


def test_ranks_per_host_counts_every_host():
    hosts = [("node1", 2), ("node2", 2), ("node3", 1)]
    assert ranks_per_host(hosts, 4) == {"node1": 2, "node2": 2, "node3": 0}
    assert ranks_per_host(hosts, 5) == {"node1": 2, "node2": 2, "node3": 1}
    # more ranks than slots: the slots that exist, never a crash (preflight refuses np itself)
    assert ranks_per_host(hosts, 9) == {"node1": 2, "node2": 2, "node3": 1}
    assert ranks_per_host(hosts, 0) == {"node1": 0, "node2": 0, "node3": 0}


@pytest.mark.parametrize("numbers, text", [
    ([], ""), ([5], "5"), ([0, 1], "0-1"), ([0, 1, 2, 5], "0-2, 5"), ([0, 2, 4], "0, 2, 4"),
    ([1, 2, 3, 7, 8, 10], "1-3, 7-8, 10"),
])
def test_ranges(numbers, text):
    assert ranges(numbers) == text


def test_ranks_on_hosts_reads_int_and_json_keys():
    placement = by_slot_placement(parse_hostfile(DEFAULT_HOSTFILE), 4)
    as_json = {str(r): h for r, h in placement.items()}  # how a module result carries it
    assert ranks_on_hosts([3, 0, 1, 2], placement) == "0-1 on node1, 2-3 on node2"
    assert ranks_on_hosts(["2", "3"], as_json) == "2-3 on node2"
    assert ranks_on_hosts([1, 1, 3], as_json) == "1 on node1, 3 on node2"
    assert ranks_on_hosts([0, 7], placement) == "0 on node1, 7 on ?"
    assert ranks_on_hosts([], placement) == "" and ranks_on_hosts([0], None) == "0 on ?"


@pytest.mark.parametrize("tp, pp, ranks", [(1, 1, 1), (2, 1, 2), (1, 2, 2), (2, 2, 4), (8, 2, 16)])
def test_world_size(tp, pp, ranks):
    assert world_size(tp, pp) == ranks
