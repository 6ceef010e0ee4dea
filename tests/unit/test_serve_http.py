# SPDX-License-Identifier: Apache-2.0
"""The readiness probe and the load test's client and figures (against a local Triton-like server)."""

import time

import pytest
from ansible.module_utils import mtrt_serve_http as http
from serve_fakes import FakeTriton

PROBE = http.generate_body("ping", 1)
MODELS = ["preprocessing", "tensorrt_llm", "postprocessing", "ensemble"]


def test_the_generate_body_is_the_extension_generate_form():
    assert http.generate_body("hi", 3) == {"text_input": "hi", "max_tokens": 3, "bad_words": "", "stop_words": ""}


def test_ready_means_health_identity_every_model_and_a_real_answer():
    with FakeTriton(id="mtrt-c-a-r0") as fake:
        got = http.wait_ready(fake.url, "mtrt-c-a-r0", MODELS, PROBE, time.monotonic() + 10)
    assert got["ready"] and got["phase"] == "ready" and got["text"] == "fake ping"
    assert list(got["phases"]) == ["health", "identity"] + ["model:%s" % m for m in MODELS] + ["generate"]


def test_health_alone_is_not_ready_a_dead_model_keeps_it_waiting_until_the_deadline():
    with FakeTriton(id="x", unready=["tensorrt_llm"]) as fake:
        got = http.wait_ready(fake.url, "x", MODELS, PROBE, time.monotonic() + 1.0)
    assert not got["ready"] and got["phase"] == "model:tensorrt_llm" and got["status"] == 400
    assert "health" in got["phases"] and "generate" not in got["phases"]


def test_a_failing_generate_is_not_ready():
    with FakeTriton(id="x", fail_generate=True) as fake:
        got = http.wait_ready(fake.url, "x", MODELS, PROBE, time.monotonic() + 1.0)
    assert not got["ready"] and got["phase"] == "generate" and "stub process is not healthy" in got["detail"]


def test_another_server_on_the_port_is_named_at_once():
    with FakeTriton(id="someone-else") as fake:
        t0 = time.monotonic()
        got = http.wait_ready(fake.url, "mtrt-c-a-r0", MODELS, PROBE, t0 + 10)
    assert not got["ready"] and got["phase"] == "identity" and time.monotonic() - t0 < 5
    assert "another server holds this port" in got["detail"]


def test_a_server_that_exits_ends_the_wait():
    got = http.wait_ready("http://127.0.0.1:9", "x", MODELS, PROBE, time.monotonic() + 10, alive=lambda: False)
    assert got["phase"] == "exited" and not got["ready"]


def test_nothing_listening_is_status_0_with_the_error():
    status, _headers, payload = http.request("http://127.0.0.1:9/v2", timeout=1)
    assert status == 0 and b"ConnectionRefusedError" in payload


@pytest.mark.parametrize("values, q, want", [([1, 2, 3, 4], 50, 2.5), ([1, 2, 3, 4], 100, 4), ([5], 99, 5),
                                             ([], 50, None), ([1, 2], 0, 1)])
def test_percentiles_interpolate(values, q, want):
    assert http.percentile(values, q) == want


def test_tokens_are_the_entries_of_output_log_probs_in_any_nesting():
    assert http.answer_tokens(b'{"output_log_probs": [0.0, 0.0, 0.0]}') == 3
    assert http.answer_tokens(b'{"output_log_probs": [[0.0, 0.0]]}') == 2
    assert http.answer_tokens(b'{"output_log_probs": 0.0}') == 1
    assert http.answer_tokens(b'{"text_output": "x"}') is None
    assert http.answer_text(b'{"text_output": ["a", "b"]}') == "ab"
    assert http.answer_text(b"not json") is None


def test_nginx_upstream_lists_name_the_server_that_answered_last():
    assert http.last_upstream("10.0.0.11:8000, 10.0.0.12:8010") == "10.0.0.12:8010"
    assert http.last_upstream("10.0.0.11:8000 : 10.0.0.12:8010") == "10.0.0.12:8010"
    assert http.last_upstream(None) is None


def test_the_load_test_counts_per_instance_retries_gaps_tokens_and_errors():
    records = [
        {"index": 0, "status": 200, "latency_s": 0.1, "t_s": 0.1, "upstream": "a:1", "tokens": 4, "text": "x", "error": None},
        {"index": 1, "status": 502, "latency_s": 0.05, "t_s": 0.2, "upstream": "a:1", "tokens": None, "text": None,
         "error": "HTTP 502: Bad Gateway"},
        {"index": 2, "status": 200, "latency_s": 0.3, "t_s": 0.5, "upstream": "a:1, b:2", "tokens": 4, "text": "y",
         "error": None},
        {"index": 3, "status": 200, "latency_s": 0.2, "t_s": 2.5, "upstream": "b:2", "tokens": 4, "text": "z",
         "error": None},
    ]
    s = http.summarize(records, 2.0, {"a:1": "inst0", "b:2": "inst1"})
    assert (s["requests"], s["ok"], s["errors"], s["error_indexes"]) == (4, 3, 1, [1])
    assert s["per_instance"] == {"inst0": 1, "inst1": 2} and s["retried"] == 1
    assert s["latency_s"]["p50"] == 0.2 and s["latency_s"]["max"] == 0.3
    assert s["tokens"] == 12 and s["tokens_per_s"] == 6.0 and s["requests_per_s"] == 1.5
    assert s["longest_gap_s"]["inst1"] == {"s": 2.0, "from_s": 0.5, "to_s": 2.5}
    assert s["first_error"] == "HTTP 502: Bad Gateway"


def test_run_load_sends_every_request_with_the_concurrency_asked():
    with FakeTriton(id="x", delay_s=0.2, upstream="10.0.0.11:8000") as fake:
        records, wall = http.run_load(fake.url + "/v2/models/ensemble/generate", http.generate_body("q", 5), 8, 4, 10)
    assert len(records) == 8 and all(r["error"] is None for r in records)
    # 8 requests of 0.2 s, 4 at a time: two rounds.
    assert 0.35 < wall < 1.5
    assert {r["upstream"] for r in records} == {"10.0.0.11:8000"} and {r["tokens"] for r in records} == {5}


def test_a_stop_signal_ends_an_open_ended_load_test():
    with FakeTriton(id="x", delay_s=0.05) as fake:
        t0 = time.monotonic()
        records, _wall = http.run_load(fake.url + "/v2/models/ensemble/generate", http.generate_body("q", 1), 100000,
                                       2, 10, stop=lambda: time.monotonic() - t0 > 0.5)
    assert 4 <= len(records) < 100 and all(r["error"] is None for r in records)


def test_requests_past_the_bound_count_as_errors():
    with FakeTriton(id="x", delay_s=0.3) as fake:
        records, _wall = http.run_load(fake.url + "/v2/models/ensemble/generate", http.generate_body("q", 1), 6, 1, 10,
                                       deadline_s=0.4)
    assert any(r["error"] == "not sent: the load test's bound passed" for r in records)
