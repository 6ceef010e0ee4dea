# SPDX-License-Identifier: Apache-2.0
"""Parser for mtrt_collectives.py output, on the run captured on 2x H200 (Open MPI 4.1.6)."""

import json

import pytest
from ansible.module_utils.mtrt_collectives import (
    MARKER, OPS, OutputError, bus_factor, describe_failure, find_marked_json, format_table,
    largest_busbw, parse_collectives)
from conftest import FIXTURES

H200 = (FIXTURES / "gpu" / "h200x2_collectives.txt").read_text()


def _doc(**changes):
    doc = json.loads(H200.split(MARKER, 1)[1])
    doc.update(changes)
    return doc


def _text(doc):
    return "some mpirun noise\n" + MARKER + json.dumps(doc) + "\n"


def test_real_run_every_collective_and_op_correct():
    parsed = parse_collectives(H200, expected_world=2)
    assert parsed["problems"] == [] and parsed["failures"] == []
    rows = parsed["results"]
    assert len(rows) == 12 * (4 + 2 * len(OPS))
    assert {(r["collective"], r["op"]) for r in rows if r["op"]} == {
        (c, o) for c in ("reduce", "allreduce") for o in OPS}
    assert all(r["correct"] for r in rows)
    assert set(rows[0]) >= {"collective", "op", "size_bytes", "time_us", "algbw_gbps", "busbw_gbps", "correct"}
    assert parsed["largest_busbw"]["allreduce:SUM"]["size_bytes"] == 64 << 20


def test_bandwidth_recomputed_like_nccl_tests_and_matches_script():
    doc = _doc()
    parsed = parse_collectives(H200)
    for raw, row in zip(doc["rows"], parsed["results"]):
        assert row["busbw_gbps"] == pytest.approx(raw["busbw_gbps"], rel=1e-3, abs=1e-3)
        assert row["algbw_gbps"] == pytest.approx(row["size_bytes"] / row["time_us"] / 1e3, rel=1e-3)


@pytest.mark.parametrize("collective,n,factor", [
    ("allreduce", 2, 1.0), ("allreduce", 4, 1.5), ("allgather", 4, 0.75), ("reducescatter", 8, 0.875),
    ("gather", 2, 0.5), ("scatter", 2, 0.5), ("bcast", 8, 1.0), ("reduce", 8, 1.0), ("allreduce", 1, 0.0)])
def test_bus_factor(collective, n, factor):
    assert bus_factor(collective, n) == pytest.approx(factor)


def test_wrong_value_named_by_collective_op_size_and_rank():
    bad = {"collective": "allreduce", "op": "SUM", "size_bytes": 1024, "rank": 1, "host": "node2",
           "index": 255, "expected": 3.0, "got": 4.0}
    doc = _doc(failures=[bad], failure_count=3)
    doc["rows"][5]["correct"] = False
    parsed = parse_collectives(_text(doc))
    assert parsed["problems"][0] == ("allreduce SUM at 1024 B: rank 1 (node2) got 4.0 at element 255, "
                                     "expected 3.0")
    assert parsed["problems"][1] == "2 more wrong values not listed"


def test_row_marked_wrong_without_details_is_a_problem():
    doc = _doc(failures=[])
    doc["rows"][0]["correct"] = False
    assert "rows marked wrong" in parse_collectives(_text(doc))["problems"][0]


def test_maxloc_failure_shows_value_rank_pair_and_host_from_rank():
    text = describe_failure({"collective": "reduce", "op": "MAXLOC", "size_bytes": 64, "rank": 0,
                             "index": 7, "expected": [7, 0], "got": [7, 1]}, hosts=["node1", "node2"])
    assert text == "reduce MAXLOC at 64 B: rank 0 (node1) got [7, 1] at element 7, expected [7, 0]"


def test_fault_requested_but_not_applied_is_a_problem():
    parsed = parse_collectives(_text(_doc(fault={"spec": "gather:rank1", "applied": 0})))
    assert "'gather:rank1' was requested but no rank" in parsed["problems"][0]


def test_no_marker_line():
    with pytest.raises(OutputError, match="no 'MTRT-COLLECTIVES' line"):
        parse_collectives("ORTE was unable to reliably start one or more daemons\n")


def test_singleton_launch_detected():
    one = MARKER + json.dumps(_doc(world_size=1, hosts=["a"])) + "\n"
    with pytest.raises(OutputError, match="2 processes .* world size 1: every rank ran as its own singleton"):
        parse_collectives(one + one, expected_world=2)


def test_world_size_mismatch():
    with pytest.raises(OutputError, match="saw world size 2, mpirun started 4"):
        parse_collectives(H200, expected_world=4)


@pytest.mark.parametrize("text,match", [
    (MARKER + '{"world_size": 2, "hosts"', "not JSON"),
    (MARKER + "[1, 2]", "not an object"),
    (MARKER + '{"world_size": 2}', "lacks hosts, rows, failures"),
    (MARKER + '{"world_size": 2, "hosts": [], "failures": [], "rows": [{"collective": "alltoall"}]}',
     "not a collective row"),
    (MARKER + '{"world_size": 2, "hosts": [], "failures": [], "rows": [{"collective": "reduce", "op": "XOR"}]}',
     "unknown op 'XOR'"),
    (MARKER + '{"world_size": 2, "hosts": [], "failures": [], "rows": [{"collective": "bcast", '
              '"size_bytes": "8", "time_us": 1}]}', "size_bytes is '8', not a number"),
])
def test_malformed_documents(text, match):
    with pytest.raises(OutputError, match=match):
        parse_collectives(text)


def test_marker_after_a_prefix_on_the_line():
    assert find_marked_json("[1,0]<stdout>:" + MARKER + '{"a": 1}', MARKER) == [{"a": 1}]


def test_largest_busbw_skips_wrong_rows():
    rows = [{"collective": "bcast", "op": None, "size_bytes": 8, "busbw_gbps": 1.0, "correct": True},
            {"collective": "bcast", "op": None, "size_bytes": 64, "busbw_gbps": 9.0, "correct": False}]
    assert largest_busbw(rows) == {"bcast": {"size_bytes": 8, "busbw_gbps": 1.0}}


def test_format_table_only_requested_ops():
    rows = parse_collectives(H200)["results"]
    lines = format_table(rows, ops=(None, "SUM"))
    assert lines[0].split() == ["coll", "op", "size_B", "time_us", "algbw_GBs", "busbw_GBs", "ok"]
    assert len(lines) == 1 + 12 * 6
    assert all(" MAX " not in line for line in lines)
