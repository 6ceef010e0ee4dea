# SPDX-License-Identifier: Apache-2.0
"""Every generated file of the serving stage, checked against the facts (docs/serving.md):
the four config.pbtxt files of the TensorRT-LLM ensemble and the proxy's nginx.conf."""

import re

import pytest
from ansible.module_utils import mtrt_serve_config as cfg
from conftest import FIXTURES

from mpi_trt_ansible.serving_proxy import nginx_conf

SPEC = {"backend": "tensorrtllm", "max_batch_size": 4, "engine_dir": "/TRTDir/engines/e",
        "tokenizer_dir": "/TRTDir/Models/m"}


# --- a small reader of protobuf text format: enough to check structure, not a proto compiler ------
TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*")|([{}\[\]:,;])|([A-Za-z0-9_.+-]+))')


def parse(text):
    """Text format -> nested lists of (name, value); messages in list form become lists of them."""
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        assert m and m.end() > pos, "cannot read %r" % text[pos:pos + 40]
        pos = m.end()
        if m.group(1) or not m.group(0).strip():
            continue
        tokens.append(m.group(2) or m.group(3) or m.group(4))
    items, rest = _fields(tokens, 0, None)
    assert rest == len(tokens)
    return items


def _value(tokens, i):
    tok = tokens[i]
    if tok == "{":
        return _fields(tokens, i + 1, "}")
    if tok == "[":
        out, i = [], i + 1
        while tokens[i] != "]":
            value, i = _value(tokens, i)
            out.append(value)
            if tokens[i] == ",":
                i += 1
        return out, i + 1
    return (tok[1:-1] if tok.startswith('"') else tok), i + 1


def _fields(tokens, i, end):
    out = []
    while i < len(tokens) and tokens[i] != end:
        if tokens[i] in (",", ";"):  # text format allows a separator after a field
            i += 1
            continue
        name = tokens[i]
        i += 1
        if tokens[i] == ":":
            i += 1
        value, i = _value(tokens, i)
        out.append((name, value))
    return out, (i + 1 if end else i)


def get(fields, name):
    return [v for k, v in fields if k == name]


def params(fields):
    """``parameters`` entries -> {key: string_value}, in list form (``parameters [ {...} ]``, ours) or
    repeated (``parameters {...}`` once per key, upstream's)."""
    out = {}
    for value in get(fields, "parameters"):
        for entry in (value if value and isinstance(value[0], list) else [value]):
            out[get(entry, "key")[0]] = get(get(entry, "value")[0], "string_value")[0]
    return out


def names(tensors):
    return [get(t, "name")[0] for t in tensors]


# --- pbtxt ---------------------------------------------------------------------------------------
def test_the_writer_quotes_strings_leaves_enums_bare_and_writes_lists():
    text = cfg.pbtxt([("name", 'a"b'), ("kind", cfg.Enum("KIND_CPU")), ("on", True), ("n", 3),
                      ("dims", [-1, 2]), ("shape", []), ("msg", [("x", 1)])])
    assert text == ('name: "a\\"b"\nkind: KIND_CPU\non: true\nn: 3\ndims: [ -1, 2 ]\nshape: [ ]\n'
                    'msg {\n  x: 1\n}\n')


def test_every_file_of_the_repository_is_well_formed_text_format():
    files = cfg.repository_files(dict(SPEC, gpu_device_ids=[0, 1]))
    assert sorted(files) == ["ensemble/config.pbtxt", "postprocessing/config.pbtxt",
                             "preprocessing/config.pbtxt", "tensorrt_llm/config.pbtxt"]
    for path, text in files.items():
        fields = parse(text)
        assert get(fields, "name") == [path.split("/")[0]]
        assert get(fields, "max_batch_size") == ["4"]


def test_the_engine_model_uses_the_backends_own_parameter_names():
    fields = parse(cfg.engine_config(dict(SPEC, gpu_device_ids=[2, 3], max_beam_width=2, decoupled=True)))
    assert get(fields, "backend") == ["tensorrtllm"]
    assert get(get(fields, "model_transaction_policy")[0], "decoupled") == ["true"]
    p = params(fields)
    assert p["gpt_model_path"] == "/TRTDir/engines/e"
    assert p["gpt_model_type"] == "inflight_fused_batching"
    assert p["max_beam_width"] == "2"
    assert p["gpu_device_ids"] == "2,3"
    assert p["exclude_input_in_output"] == "true"
    # Keys we do not set are left out (the backend reads them as "not set"), never ${placeholders}.
    assert "participant_ids" not in p and "executor_worker_path" not in p
    assert not any("${" in v for v in p.values())
    # instance_group is fixed: one instance, KIND_CPU (the backend places GPUs by gpu_device_ids).
    assert get(get(fields, "instance_group")[0][0], "kind") == ["KIND_CPU"]


def test_gpu_sets_and_participant_ids_use_the_backends_format():
    assert cfg.id_sets([[0, 1], [2, 3]]) == "0,1;2,3"
    p = params(parse(cfg.engine_config(dict(SPEC, gpu_device_ids=[[0, 1], [2, 3]], participant_ids=[[1, 2], [3, 4]],
                                            instance_count=2, executor_worker_path=cfg.DEFAULT_WORKER))))
    assert p["gpu_device_ids"] == "0,1;2,3" and p["participant_ids"] == "1,2;3,4"
    assert p["executor_worker_path"] == "/opt/tritonserver/backends/tensorrtllm/trtllmExecutorWorker"


def test_extra_parameters_override_generated_ones_and_come_sorted_after_them():
    p = params(parse(cfg.engine_config(dict(SPEC, parameters={"max_beam_width": 4, "z": 1,
                                                              "kv_cache_free_gpu_mem_fraction": 0.5}))))
    keys = list(p)
    assert p["max_beam_width"] == "4" and keys[-2:] == ["kv_cache_free_gpu_mem_fraction", "z"]
    assert p["kv_cache_free_gpu_mem_fraction"] == "0.5"


def test_scalar_inputs_are_reshaped_and_ragged_ones_allowed_as_in_v0_14():
    fields = parse(cfg.engine_config(SPEC))
    inputs = {get(t, "name")[0]: t for t in get(fields, "input")[0]}
    assert get(inputs["input_lengths"], "reshape") == [[("shape", [])]]
    assert get(inputs["input_ids"], "allow_ragged_batch") == ["true"]
    assert get(inputs["input_ids"], "optional") == []
    assert get(inputs["streaming"], "optional") == ["true"]
    required = [n for n, t in inputs.items() if not get(t, "optional")]
    assert required == ["input_ids", "input_lengths", "request_output_len"]


def test_the_ensemble_wires_every_step_to_tensors_that_exist():
    """Each step's input_map keys are inputs of that model and its values tensors the ensemble has by
    then (its own inputs or an earlier step's outputs); each output_map key is an output of the model;
    every ensemble output is produced."""
    files = {p.split("/")[0]: parse(t) for p, t in cfg.repository_files(SPEC).items()}
    ensemble = files["ensemble"]
    available = set(names(get(ensemble, "input")[0]))
    steps = get(get(ensemble, "ensemble_scheduling")[0], "step")[0]
    assert [get(s, "model_name")[0] for s in steps] == ["preprocessing", "tensorrt_llm", "postprocessing"]
    for step in steps:
        model = files[get(step, "model_name")[0]]
        model_inputs, model_outputs = set(names(get(model, "input")[0])), set(names(get(model, "output")[0]))
        for entry in get(step, "input_map"):
            key, value = get(entry, "key")[0], get(entry, "value")[0]
            assert key in model_inputs, key
            assert value in available, value
        for entry in get(step, "output_map"):
            key, value = get(entry, "key")[0], get(entry, "value")[0]
            assert key in model_outputs, key
            available.add(value)
    assert set(names(get(ensemble, "output")[0])) <= available
    assert get(ensemble, "platform") == ["ensemble"]


def test_the_python_models_carry_the_parameters_their_model_py_reads():
    files = {p.split("/")[0]: parse(t) for p, t in cfg.repository_files(SPEC).items()}
    pre, post = params(files["preprocessing"]), params(files["postprocessing"])
    # v0.14 preprocessing/1/model.py reads these unconditionally.
    assert {"tokenizer_dir", "visual_model_path", "gpt_model_path"} <= set(pre)
    assert pre["tokenizer_dir"] == "/TRTDir/Models/m" and pre["visual_model_path"] == ""
    assert post["tokenizer_dir"] == "/TRTDir/Models/m"
    # Every output its initialize() looks up is declared.
    outputs = set(names(get(files["preprocessing"], "output")[0]))
    assert {"INPUT_ID", "DECODER_INPUT_ID", "REQUEST_INPUT_LEN", "REQUEST_DECODER_INPUT_LEN", "BAD_WORDS_IDS",
            "STOP_WORDS_IDS", "OUT_END_ID", "OUT_PAD_ID", "OUT_PROMPT_TABLE_EXTRA_IDS"} <= outputs


@pytest.mark.parametrize("over, says", [({"backend": "onnx"}, "backend 'onnx'"),
                                        ({"batching_strategy": "static"}, "batching strategy 'static'")])
def test_unknown_backends_and_strategies_are_refused(over, says):
    with pytest.raises(ValueError, match=says):
        cfg.repository_files(dict(SPEC, **over))


def test_the_code_models_follow_the_backend():
    assert cfg.code_models("tensorrtllm") == ("preprocessing", "postprocessing")
    assert cfg.code_models("python") == ("preprocessing", "tensorrt_llm", "postprocessing")


@pytest.mark.parametrize("text, want", [
    ('{"pretrained_config": {"mapping": {"tp_size": 2, "pp_size": 2}}}', (2, 2)),
    ('{"builder_config": {"tensor_parallel": 4}}', (4, 1)),
    ('{"other": 1}', None),
    ("not json", None),
])
def test_the_engines_parallelism_is_read_from_both_config_forms(text, want):
    assert cfg.engine_parallelism(text) == want


def test_the_digest_ignores_order_but_not_content():
    assert cfg.digest({"a": "1", "b": b"2"}) == cfg.digest({"b": b"2", "a": "1"})
    assert cfg.digest({"a": "1"}) != cfg.digest({"a": "2"})


# --- nginx.conf ----------------------------------------------------------------------------------
UPS = [{"name": "inst0", "address": "10.0.0.11:8000"}, {"name": "inst1", "address": "10.0.0.12:8010"}]


def directives(text):
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_the_proxy_balances_by_least_connections_with_passive_health_and_a_shared_zone():
    lines = directives(nginx_conf(UPS, 8080, max_fails=2, fail_timeout_s=7))
    assert "least_conn;" in lines and "zone mtrt_triton 64k;" in lines
    assert "server 10.0.0.11:8000 max_fails=2 fail_timeout=7s;  # inst0" in lines
    assert "server 10.0.0.12:8010 max_fails=2 fail_timeout=7s;  # inst1" in lines
    assert "listen 8080;" in lines


def test_a_server_being_restarted_is_taken_out_with_down():
    lines = directives(nginx_conf(UPS, 8080, down=["inst1"]))
    assert "server 10.0.0.12:8010 max_fails=1 fail_timeout=5s down;  # inst1 (draining: being restarted)" in lines
    assert "server 10.0.0.11:8000 max_fails=1 fail_timeout=5s;  # inst0" in lines


def test_retries_only_where_nothing_was_sent_and_timeouts_sized_for_generation():
    text = nginx_conf(UPS, 8080, connect_timeout_s=2, read_timeout_s=900)
    lines = directives(text)
    assert "proxy_next_upstream error timeout;" in lines
    assert "non_idempotent" not in text and "http_50" not in text
    assert "proxy_next_upstream_tries 2;" in lines
    assert "proxy_connect_timeout 2s;" in lines
    assert "proxy_read_timeout 900s;" in lines and "proxy_send_timeout 900s;" in lines
    assert "health_check" not in text  # NGINX Plus only


def test_streaming_is_not_buffered_and_every_answer_names_its_server():
    text = nginx_conf(UPS, 8080)
    stream = text[text.index("location ~ /generate_stream$"):text.index("location / {")]
    assert "proxy_buffering off;" in stream and "proxy_pass http://mtrt_triton;" in stream
    assert "add_header X-Mtrt-Upstream $upstream_addr always;" in directives(text)
    assert text.count("{") == text.count("}")


def test_the_proxy_needs_a_server():
    with pytest.raises(ValueError):
        nginx_conf([], 8080)


# --- against the upstream templates (tensorrtllm_backend v0.14.0, recorded in fixtures/serve/upstream) --
UPSTREAM = FIXTURES / "serve" / "upstream" / "tensorrtllm_backend-v0.14.0"
UPSTREAM_COMMIT = "9958c21167e1a8e6bbddafc09b284904aaf22ab1"
MODELS = ("preprocessing", "tensorrt_llm", "postprocessing", "ensemble")


def upstream(model):
    """An upstream template, parsed: its ${placeholders} become plain values first."""
    text = (UPSTREAM / model / "config.pbtxt").read_text()
    text = re.sub(r'"\$\{(\w+)\}"', r'"$\1"', text)  # quoted: keep a string
    text = re.sub(r"\$\{(\w+)\}", r"PLACEHOLDER_\1", text)  # bare: a word
    return parse(text)


def tensor_facts(fields, key):
    """{name: (data_type, dims, optional, reshape, allow_ragged_batch)} of a model's inputs or outputs."""
    out = {}
    for tensor in (get(fields, key) or [[]])[0]:
        out[get(tensor, "name")[0]] = (
            get(tensor, "data_type")[0], tuple(get(tensor, "dims")[0]), get(tensor, "optional") == ["true"],
            get(tensor, "reshape") == [[("shape", [])]], get(tensor, "allow_ragged_batch") == ["true"])
    return out


def steps(fields):
    """[(model, {input_map}, {output_map})] of an ensemble's scheduling."""
    out = []
    for step in get(get(fields, "ensemble_scheduling")[0], "step")[0]:
        maps = {}
        for kind in ("input_map", "output_map"):
            maps[kind] = {get(e, "key")[0]: get(e, "value")[0] for e in get(step, kind)}
        out.append((get(step, "model_name")[0], maps["input_map"], maps["output_map"]))
    return out


def test_the_upstream_fixtures_name_their_source_and_commit():
    for model in MODELS:
        head = (UPSTREAM / model / "config.pbtxt").read_text().splitlines()[:4]
        assert "tensorrtllm_backend, tag v0.14.0, commit %s" % UPSTREAM_COMMIT in head[1]
        assert "all_models/inflight_batcher_llm/%s/config.pbtxt" % model in head[2]
        assert get(upstream(model), "name") == [model]


@pytest.mark.parametrize("model", MODELS)
def test_our_tensors_and_their_flags_are_upstreams(model):
    ours = parse(cfg.repository_files(dict(SPEC, gpu_device_ids=[0, 1]))["%s/config.pbtxt" % model])
    theirs = upstream(model)
    for key in ("input", "output"):
        assert tensor_facts(ours, key) == tensor_facts(theirs, key), (model, key)
        # In upstream's order too (clients and the ensemble read them by name, but a diff reads better).
        assert list(tensor_facts(ours, key)) == list(tensor_facts(theirs, key)), (model, key)


def test_our_ensemble_wires_the_steps_as_upstream_does():
    ours = parse(cfg.repository_files(SPEC)["ensemble/config.pbtxt"])
    assert steps(ours) == steps(upstream("ensemble"))
    assert get(ours, "platform") == get(upstream("ensemble"), "platform") == ["ensemble"]


@pytest.mark.parametrize("model", MODELS)
def test_our_parameter_keys_are_upstreams_and_the_fixed_fields_match(model):
    spec = dict(SPEC, gpu_device_ids=[[0, 1], [2, 3]], participant_ids=[[1, 2], [3, 4]], instance_count=2,
                executor_worker_path=cfg.DEFAULT_WORKER)
    ours = parse(cfg.repository_files(spec)["%s/config.pbtxt" % model])
    theirs = upstream(model)
    if model != "ensemble":
        assert set(params(ours)) <= set(params(theirs)), set(params(ours)) - set(params(theirs))
        # instance_group: the kind upstream fixes (KIND_CPU: the backend places GPUs by gpu_device_ids).
        assert get(get(ours, "instance_group")[0][0], "kind") == get(get(theirs, "instance_group")[0][0], "kind")
    for field in ("backend", "platform"):
        mine, upstream_value = get(ours, field), get(theirs, field)
        if upstream_value and not upstream_value[0].startswith("$"):
            assert mine == upstream_value, (model, field)
    if model == "tensorrt_llm":
        assert [k for k, _v in get(ours, "model_transaction_policy")[0]] == ["decoupled"]
        assert [k for k, _v in get(theirs, "model_transaction_policy")[0]] == ["decoupled"]
        # The executor worker path upstream fixes (orchestrator mode) is the one we write.
        assert params(ours)["executor_worker_path"] == params(theirs)["executor_worker_path"]


# --- the proxy while servers change (mpi_trt_ansible.serving_proxy.live_upstreams / with_upstream) ---------

PLAN_UPSTREAMS = [{"name": "inst0", "address": "10.0.0.11:8000"}, {"name": "inst1", "address": "10.0.0.12:8020"}]


def test_the_proxy_sends_to_the_old_address_of_a_server_until_it_answers_at_its_new_one():
    from mpi_trt_ansible.serving_proxy import live_upstreams, with_upstream
    # inst0 unchanged; inst1 runs on 8010 and will restart on 8020 (its ports changed).
    checks = [{"name": "inst0", "would": "unchanged", "pid": 11, "running_upstream": "10.0.0.11:8000"},
              {"name": "inst1", "would": "restarted", "pid": 12, "running_upstream": "10.0.0.12:8010"}]
    live = live_upstreams(PLAN_UPSTREAMS, checks)
    assert live == [{"name": "inst0", "address": "10.0.0.11:8000"}, {"name": "inst1", "address": "10.0.0.12:8010"}]
    # inst1 restarted and answers on 8020: only then does the proxy send there.
    assert with_upstream(live, PLAN_UPSTREAMS, "inst1") == PLAN_UPSTREAMS


def test_a_server_that_does_not_run_gets_no_traffic_until_it_answers():
    from mpi_trt_ansible.serving_proxy import live_upstreams, with_upstream
    checks = [{"name": "inst0", "would": "unchanged", "pid": 11},
              {"name": "inst1", "would": "started", "pid": None}]  # its mpirun is gone
    live = live_upstreams(PLAN_UPSTREAMS, checks)
    assert live == PLAN_UPSTREAMS[:1]
    assert with_upstream(live, PLAN_UPSTREAMS, "inst1") == PLAN_UPSTREAMS  # plan order kept
    # A running server started before its record named its address: left out until it answers again.
    assert live_upstreams(PLAN_UPSTREAMS, [checks[0], {"name": "inst1", "would": "restarted", "pid": 12}]) == \
        PLAN_UPSTREAMS[:1]


def test_a_first_start_points_the_proxy_at_the_plan():
    from mpi_trt_ansible.serving_proxy import live_upstreams
    checks = [{"name": "inst0", "would": "started", "pid": None}, {"name": "inst1", "would": "started", "pid": None}]
    assert live_upstreams(PLAN_UPSTREAMS, checks) == PLAN_UPSTREAMS
    assert live_upstreams(PLAN_UPSTREAMS, []) == PLAN_UPSTREAMS
