# SPDX-License-Identifier: Apache-2.0
"""parse_hello (module_utils/mpi_output.py) on hello runs captured from Open MPI 4.1.4 (fixtures/mpi/README.md):
every rank answered, and each way a run falls short - missing, duplicated, singleton, misplaced, unexpected,
malformed."""

from ansible.module_utils.mpi_output import parse_hello
from ansible.module_utils.mtrt_launch import split_tagged
from ansible.module_utils.mtrt_rules import by_slot_placement, parse_hostfile

from conftest import FIXTURES

MPI = FIXTURES / "mpi"
HOSTS = parse_hostfile((MPI / "hostfile_docker_default").read_text())   # node1 slots=2, node2 slots=2
PLACEMENT = by_slot_placement(HOSTS, 4)
DOCKER = (MPI / "hello_docker_node1_node2.stdout").read_text()          # stage 60 on the default cluster


def untagged(name):
    """What the launcher hands the parser: the --tag-output capture with its tags split off."""
    return split_tagged((MPI / name).read_text())[0]


def test_every_rank_on_its_node():
    out = parse_hello(DOCKER, 4, PLACEMENT)
    assert out["ok"] is True and out["problems"] == []
    assert out["world_size"] == out["expected_world_size"] == 4
    assert [r["rank"] for r in out["ranks"]] == [0, 1, 2, 3]
    assert [r["host"] for r in out["ranks"]] == ["node1", "node1", "node2", "node2"]
    assert out["ranks"][2]["local_rank"] == 0 and out["ranks"][2]["allreduce_ok"] is True
    assert out["ranks"][0]["mpi_library"].startswith("Open MPI v4.1.4")
    assert out["ranks_per_host"] == {"node1": 2, "node2": 2}
    for key in ("missing_ranks", "unexpected_ranks", "duplicate_ranks", "size_mismatch_ranks",
                "misplaced_ranks", "malformed_lines", "other_lines"):
        assert out[key] == [], key


def test_tagged_capture_out_of_order_is_read_by_rank():
    """Ranks print in any order; Open MPI's tag can stand at a line's end (rank 3's line in this capture)."""
    text = untagged("hello_np4_vm_tagged.stdout")
    out = parse_hello(text, 4, {r: "vm" for r in range(4)})
    assert out["ok"] is True and [r["rank"] for r in out["ranks"]] == [0, 1, 2, 3]
    assert out["ranks_per_host"] == {"vm": 4} and out["other_lines"] == []


def test_missing_rank_is_named_with_the_node_it_was_placed_on():
    lines = [line for line in DOCKER.splitlines() if '"rank": 2,' not in line]
    out = parse_hello("\n".join(lines) + "\n", 4, PLACEMENT)
    assert out["ok"] is False and out["missing_ranks"] == [2] and out["world_size"] == 3
    assert out["problems"] == ["missing rank(s) 2 of 4 (expected on rank 2 on node2)"]
    assert out["ranks_per_host"] == {"node1": 2, "node2": 1}


def test_a_rank_that_died_first_leaves_every_rank_missing():
    """Rank 2 exited 3 before MPI_Init finished: mpirun aborted the job, nobody printed a hello."""
    assert untagged("hello_rank2_exits_tagged.stdout") == ""
    stderr = untagged("hello_rank2_exits_tagged.stderr")
    assert "rank 2: cannot open /TRTDir/missing.bin" in stderr
    out = parse_hello("", 4, PLACEMENT)
    assert out["missing_ranks"] == [0, 1, 2, 3] and out["world_size"] == 0
    assert out["problems"] == ["missing rank(s) 0-3 of 4 (expected on rank 0 on node1, rank 1 on node1, "
                               "rank 2 on node2, rank 3 on node2)"]


def test_singletons_are_named_as_not_one_job():
    """Each rank started without Open MPI's environment initialised alone: rank 0 of 1, twice."""
    out = parse_hello(untagged("hello_singleton_np2_tagged.stdout"), 2, {0: "vm", 1: "vm"})
    assert out["ok"] is False
    assert out["duplicate_ranks"] == [0] and out["missing_ranks"] == [1] and out["size_mismatch_ranks"] == [0]
    assert out["problems"] == [
        "missing rank(s) 1 of 2 (expected on rank 1 on vm)",
        "rank(s) 0 answered more than once",
        "rank(s) 0 saw a world size of 1 instead of 2: they did not join one MPI job "
        "(mpirun and mpi4py built against different MPI libraries?)",
    ]


def test_misplaced_ranks_name_both_hosts():
    """The same run judged against a hostfile that lists node2 first: every rank is on the other node."""
    swapped = by_slot_placement(list(reversed(HOSTS)), 4)
    out = parse_hello(DOCKER, 4, swapped)
    assert [(m["rank"], m["host"], m["expected_host"]) for m in out["misplaced_ranks"]] == [
        (0, "node1", "node2"), (1, "node1", "node2"), (2, "node2", "node1"), (3, "node2", "node1")]
    assert out["problems"][0] == "rank 0 ran on node1, expected node2"
    assert out["missing_ranks"] == [] and out["ok"] is False


def test_a_domain_suffix_is_not_a_misplacement():
    text = DOCKER.replace('"host": "node2"', '"host": "node2.cluster.local"')
    out = parse_hello(text, 4, PLACEMENT)
    assert out["ok"] is True and out["ranks_per_host"] == {"node1": 2, "node2.cluster.local": 2}


def test_more_ranks_than_launched():
    out = parse_hello(DOCKER, 2, {0: "node1", 1: "node1"})
    assert out["unexpected_ranks"] == [2, 3] and out["size_mismatch_ranks"] == [0, 1, 2, 3]
    assert out["problems"][0] == "rank(s) 2-3 answered but only 2 were launched"


def test_the_notes_hello_line_is_read_too():
    out = parse_hello(untagged("hello_notes_np2_tagged.stdout"), 2, {0: "vm", 1: "vm"})
    assert out["ok"] is True
    assert out["ranks"] == [{"rank": 0, "size": 2, "host": "vm"}, {"rank": 1, "size": 2, "host": "vm"}]


def test_cut_lines_are_malformed_and_other_output_is_kept():
    """A rank killed mid-print leaves half a record; a user's print is kept but judged by no one."""
    first, second, third, fourth = DOCKER.splitlines()
    text = "\n".join([first, second[:80], "loading weights", third, fourth, "Hello, World! I am"]) + "\n"
    out = parse_hello(text, 4, PLACEMENT)
    assert out["missing_ranks"] == [1]
    assert [m["line"] for m in out["malformed_lines"]] == [second[:80], "Hello, World! I am"]
    assert out["other_lines"] == ["loading weights"]
    assert out["problems"][-1] == "2 malformed hello line(s), first: %r" % second[:80]


def test_a_record_without_its_keys_is_malformed():
    out = parse_hello('MTRT-HELLO {"rank": 0, "size": 1}\nMTRT-HELLO [0, 1]\n', 1)
    assert [m["error"] for m in out["malformed_lines"]] == ["record has no 'host'", "record is not an object"]
    assert out["missing_ranks"] == [0]
