# SPDX-License-Identifier: Apache-2.0
"""The serving modules end to end on this machine: repositories on disk, a server's start, check,
restart and stop (with a fake mpirun that runs a Triton-like server), the load test, the image
unpack, and the stage's filters."""

import json
import os
import shutil
import socket
import stat
import sys
import time
import zipfile

import node_image_unpack
import pytest
import triton_serve_instance
import triton_serve_loadtest
import triton_serve_repo
from ansible.module_utils import mtrt_serve_image
from conftest import ROOT, ansible_reads_failed
from serve_fakes import FakeTriton, write_fake_mpirun

import mtrt_serve as serve_filters
from mpi_trt_ansible import serving

STANDIN = ROOT / "tests" / "serving" / "standin"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- triton_serve_repo ---------------------------------------------------------------------------
@pytest.fixture
def repo_args(tmp_path):
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "config.json").write_text(json.dumps({"pretrained_config": {"mapping": {"tp_size": 2, "pp_size": 1}}}))
    nodes = [{"name": "n1", "ip": "10.0.0.11", "slots": 4, "gpus": [], "mpi_host": "n1"}]
    plan = serving.serve_plan({"cluster_serve_enabled": True, "cluster_serve_instances": 2,
                               "cluster_serve_repo_root": str(tmp_path / "repos")}, nodes)
    return {"servers": plan["servers"], "engine_dir": str(engine), "tokenizer_dir": str(engine),
            "model_sources": str(STANDIN), "backend": "python", "tp_size": 2, "pp_size": 1,
            "parameters": {"standin_service_ms": 5}}


def test_one_repository_per_server_with_generated_configs_and_copied_code(run_module, repo_args, tmp_path):
    result = run_module(triton_serve_repo, repo_args)
    assert result["changed"] and result["mtrt_kind"] == "triton_serve_repo"
    for name, ids in (("inst0", "0,1"), ("inst1", "2,3")):
        repo = tmp_path / "repos" / name
        text = (repo / "tensorrt_llm" / "config.pbtxt").read_text()
        assert 'string_value: "%s"' % ids in text  # gpu_device_ids differ: one repository each
        assert (repo / "tensorrt_llm" / "1" / "model.py").read_bytes() == \
            (STANDIN / "tensorrt_llm" / "1" / "model.py").read_bytes()
        assert (repo / "ensemble" / "config.pbtxt").is_file() and (repo / "ensemble" / "1").is_dir()
        assert json.loads((repo / "mtrt-serve.json").read_text())["hash"] == result["hashes"][name]
    assert result["hashes"]["inst0"] != result["hashes"]["inst1"]
    assert result["engine"] == {"dir": repo_args["engine_dir"], "tp": 2, "pp": 1}


def test_a_second_write_changes_nothing_and_a_changed_setting_changes_the_hash(run_module, repo_args, tmp_path):
    first = run_module(triton_serve_repo, repo_args)
    again = run_module(triton_serve_repo, repo_args)
    assert not again["changed"] and again["hashes"] == first["hashes"]
    stale = tmp_path / "repos" / "inst0" / "preprocessing" / "1" / "old.py"
    stale.write_text("left over")
    changed = run_module(triton_serve_repo, dict(repo_args, parameters={"standin_service_ms": 6}))
    assert changed["changed"] and changed["hashes"] != first["hashes"] and not stale.exists()
    assert "preprocessing/1/old.py" in changed["repos"][0]["removed"]


def test_check_mode_reports_the_hashes_and_writes_nothing(run_module, repo_args, tmp_path):
    result = run_module(triton_serve_repo, dict(repo_args, _ansible_check_mode=True))
    assert result["changed"] and set(result["hashes"]) == {"inst0", "inst1"}
    assert not (tmp_path / "repos").exists()
    real = run_module(triton_serve_repo, repo_args)
    assert real["hashes"] == result["hashes"]


@pytest.mark.parametrize("over, says", [
    ({"tp_size": 4}, "is tp=2 pp=1, but the servers are placed for cluster_trtllm_tp_size x cluster_trtllm_pp_size = 4 x 1"),
    ({"engine_dir": "/nonexistent/engine"}, "the engine to serve is not there: /nonexistent/engine/config.json"),
    ({"model_sources": "/nonexistent"}, "model code missing: /nonexistent/preprocessing/1/model.py"),
])
def test_a_wrong_engine_or_missing_code_fails_before_anything_is_written(run_module, repo_args, tmp_path, over, says):
    result = run_module(triton_serve_repo, dict(repo_args, **over))
    assert result["failed"] and says in result["msg"]
    assert not (tmp_path / "repos").exists()


def test_the_c_backend_needs_no_engine_model_code(run_module, repo_args, tmp_path):
    sources = tmp_path / "sources"
    for model in ("preprocessing", "postprocessing"):
        shutil.copytree(STANDIN / model, sources / model)
    result = run_module(triton_serve_repo, dict(repo_args, backend="tensorrtllm", model_sources=str(sources)))
    assert not result["failed"]
    assert 'backend: "tensorrtllm"' in (tmp_path / "repos" / "inst0" / "tensorrt_llm" / "config.pbtxt").read_text()
    assert not (tmp_path / "repos" / "inst0" / "tensorrt_llm" / "1").exists()


# --- triton_serve_instance (fake mpirun) -----------------------------------------------------------
@pytest.fixture
def instance(tmp_path, monkeypatch):
    port = free_port()
    nodes = [{"name": "n1", "ip": "127.0.0.1", "slots": 2, "gpus": [], "mpi_host": "n1"}]
    server = serving.serve_plan({"cluster_serve_enabled": True, "cluster_name": "t",
                                 "cluster_serve_instances": [{"name": "a", "slots": ["n1:0", "n1:1"],
                                                              "http_port": port}],
                                 "cluster_serve_repo_root": str(tmp_path / "repos")}, nodes)["servers"][0]
    # The bound only matters when a start fails: generous, so that 2 busy cores never decide a test.
    args = {"server": server, "run_dir": str(tmp_path / "run"), "mpirun": write_fake_mpirun(tmp_path),
            "tritonserver": "/bin/true", "config_hash": "h1", "timeout_s": 120, "stop_timeout_s": 5}
    monkeypatch.setenv("MTRT_LAUNCH_DIR", str(tmp_path / "launch"))
    started = []
    yield args, started
    for pid in started:  # never leave a fake server behind (a start that failed has no pid)
        if pid is None:
            continue
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start(run_module, args, started, **over):
    """Start the fake server; the start must succeed (its message says why when it did not)."""
    result = run_module(triton_serve_instance, dict(args, **over))
    started.append(result["pid"])
    assert not result["failed"], result["msg"]
    return result


def test_a_server_starts_detached_answers_and_a_second_run_leaves_it_alone(run_module, instance, tmp_path):
    args, started = instance
    first = start(run_module, args, started)
    assert first["action"] == "started" and first["changed"] and alive(first["pid"])
    assert first["probe_text"] == "fake ping" and first["time_to_ready_s"] > 0
    # Launch keys: mpirun runs detached (rc null) and the module says failed=false itself, or Ansible
    # would read the null rc as a failure; the log since the start is read per rank.
    assert (first["rc"], first["timed_out"], first["detached"], first["ranks_seen"]) == (None, False, True, [0])
    assert "Started HTTPService" in first["stdout_tail"] and first["explained"] == []
    assert list(first["readiness"])[:2] == ["health", "identity"] and "generate" in first["readiness"]
    record = json.loads((tmp_path / "run" / "a" / "launch.json").read_text())
    assert record["pid"] == first["pid"] and record["marker"] == args["server"]["shm_prefix"]
    assert (tmp_path / "run" / "a" / "hostfile").read_text() == "n1 slots=2\n"
    assert "==== mtrt start" in (tmp_path / "run" / "a" / "server.log").read_text()
    again = run_module(triton_serve_instance, args, raw=True)
    assert not ansible_reads_failed(again)
    assert again["action"] == "unchanged" and not again["changed"] and again["pid"] == first["pid"]
    check = run_module(triton_serve_instance, dict(args, state="checked"))
    assert check["would"] == "unchanged" and not check["changed"] and check["conflicts"] == []
    # The address the proxy reaches it at, as the plan said when it started (kept while its ports change).
    assert record["upstream"] == check["running_upstream"] == "127.0.0.1:%d" % args["server"]["http_port"]


def test_a_changed_repository_restarts_it_check_mode_only_says_so(run_module, instance):
    args, started = instance
    first = start(run_module, args, started)
    dry = run_module(triton_serve_instance, dict(args, config_hash="h2", _ansible_check_mode=True))
    assert dry["action"] == "restarted" and dry["changed"] and alive(first["pid"])
    second = start(run_module, args, started, config_hash="h2")
    assert second["action"] == "restarted" and second["pid"] != first["pid"] and not alive(first["pid"])
    assert second["reason"] == "its settings or model repository changed"


def test_stop_signals_its_own_mpirun_and_leaves_nothing(run_module, instance, tmp_path):
    args, started = instance
    first = start(run_module, args, started)
    stopped = run_module(triton_serve_instance, dict(args, state="stopped"))
    assert stopped["action"] == "stopped" and stopped["changed"] and stopped["leftovers"] == []
    assert not alive(first["pid"])
    assert json.loads((tmp_path / "run" / "a" / "launch.json").read_text())["pid"] is None
    absent = run_module(triton_serve_instance, dict(args, state="stopped"))
    assert absent["action"] == "absent" and not absent["changed"]


def test_a_port_held_by_another_process_fails_the_check_naming_it(run_module, instance):
    args, _started = instance
    squatter = socket.socket()
    squatter.bind(("0.0.0.0", args["server"]["http_port"]))
    squatter.listen(1)
    try:
        result = run_module(triton_serve_instance, dict(args, state="checked"))
    finally:
        squatter.close()
    assert result["failed"] and result["conflicts"][0]["port"] == args["server"]["http_port"]
    assert "instance a: port http_port=%d on n1 already in use (port %d held by pid %d:" % (
        args["server"]["http_port"], args["server"]["http_port"], os.getpid()) in result["msg"]


def test_a_rank_that_fails_to_load_fails_the_start_naming_rank_host_and_lines(run_module, instance, monkeypatch):
    args, _started = instance
    monkeypatch.setenv("FAKE_MODE", "exit")
    result = run_module(triton_serve_instance, args)
    assert result["failed"] and result["pid"] is None
    assert "instance a: mpirun exited with 1 before the server was ready (rank 1 on n1 exited with code 1)" \
        in result["msg"]
    assert "failed to load 'tensorrt_llm' version 1: boom" in result["msg"]
    assert result["failed_rank"]["rank"] == 1 and result["failed_rank"]["host"] == "n1"
    # The shared launch keys of the one launcher: how it ended, who printed, the known cause explained.
    assert (result["rc"], result["timed_out"], result["detached"]) == (1, False, True)
    assert result["ranks_seen"] == [0, 1] and result["ranks_silent"] == []
    assert result["expected_placement"] == {"0": "n1", "1": "n1"}
    assert result["explained"][0]["cause"] == "Triton could not load model tensorrt_llm: boom"
    assert "Cause: Triton could not load model tensorrt_llm: boom" in result["msg"]
    assert "Process name: [[4242,1],1]" in result["stderr_tail"]  # mpirun's own lines
    assert result["rank_tails"]["1"][-1].endswith("version 1: boom\"")
    assert result["command"][0] == args["mpirun"] and "--tag-output" in result["command"]


def test_a_server_never_ready_is_stopped_at_the_bound(run_module, instance, tmp_path, monkeypatch):
    args, started = instance
    monkeypatch.setenv("FAKE_MODE", "hang")
    t0 = time.monotonic()
    result = run_module(triton_serve_instance, dict(args, timeout_s=2))
    assert result["failed"] and time.monotonic() - t0 < 15
    assert "instance a: not ready within 2s (cluster_serve_ready_timeout_s) - stuck at health" in result["msg"]
    assert result["timed_out"] and result["rc"] is not None and result["left_running"] == []
    # Only rank 0 printed (the fake runs rank 0's server alone): rank 1 is named as silent, with its host.
    assert result["ranks_seen"] == [0] and result["ranks_silent"] == [1]
    assert "rank(s) 1 on n1 never printed anything" in result["msg"]
    record = json.loads((tmp_path / "run" / "a" / "launch.json").read_text())
    assert record["pid"] is None


def test_a_missing_tritonserver_is_named(run_module, instance):
    args, _started = instance
    result = run_module(triton_serve_instance, dict(args, tritonserver="/nonexistent/tritonserver"))
    assert result["failed"] and "/nonexistent/tritonserver is not on n1 (rank 0's node)" in result["msg"]
    assert "cluster_image_triton: true" in result["msg"]


def test_a_server_dict_that_is_not_a_plan_entry_is_refused(run_module, tmp_path):
    result = run_module(triton_serve_instance, {"server": {"name": "x"}, "run_dir": str(tmp_path)})
    assert result["failed"] and "lacks ranks" in result["msg"]


# --- triton_serve_loadtest -----------------------------------------------------------------------
def test_the_load_test_reports_per_instance_and_fails_on_errors(run_module):
    with FakeTriton(id="x", upstream="10.0.0.11:8000") as fake:
        ok = run_module(triton_serve_loadtest, {"url": fake.url, "requests": 6, "concurrency": 3, "max_tokens": 4,
                                                "upstreams": [{"name": "inst0", "address": "10.0.0.11:8000"}],
                                                "keep_answers": True})
    assert not ok["failed"] and not ok["changed"] and ok["per_instance"] == {"inst0": 6} and ok["tokens"] == 24
    assert [a["instance"] for a in ok["answers"]] == ["inst0"] * 6
    with FakeTriton(id="x", fail_generate=True) as fake:
        bad = run_module(triton_serve_loadtest, {"url": fake.url, "requests": 2, "concurrency": 1})
    assert bad["failed"] and "2 of 2 requests" in bad["msg"] and bad["errors"] == 2


def test_the_load_test_stops_when_its_stop_file_appears(run_module, tmp_path):
    flag = tmp_path / "stop"
    flag.write_text("")
    with FakeTriton(id="x") as fake:
        result = run_module(triton_serve_loadtest, {"url": fake.url, "requests": 1000, "stop_file": str(flag)})
    assert result["requests"] == 0 and not result["failed"]


# --- node_image_unpack ---------------------------------------------------------------------------
def fake_wheel(path, stubs=("3.11",)):
    elf = open(sys.executable, "rb").read()
    needed = mtrt_serve_image.elf_needed(elf)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pytriton/tritonserver/bin/tritonserver", elf)
        zf.writestr("pytriton/tritonserver/backends/python/libtriton_python.so", elf)
        zf.writestr("pytriton/tritonserver/backends/python/triton_python_backend_utils.py", "# utils\n")
        zf.writestr("pytriton/tritonserver/caches/local/libtritoncache_local.so", b"not an elf")
        for version in stubs:
            zf.writestr("pytriton/tritonserver/python_backend_stubs/%s/triton_python_backend_stub" % version, elf)
        for soname in needed:
            zf.writestr("nvidia_pytriton.libs/" + soname, b"grafted " + soname.encode())
        zf.writestr("nvidia_pytriton.libs/libpython3-419a3a08.13.so.1.0", b"not needed")
        zf.writestr("pytriton/__init__.py", "")
    return needed


def test_elf_needed_reads_the_dynamic_section_as_readelf_does():
    needed = mtrt_serve_image.elf_needed(open(sys.executable, "rb").read())
    assert any(n.startswith("libc.so") for n in needed)
    with pytest.raises(mtrt_serve_image.ElfError):
        mtrt_serve_image.elf_needed(b"#!/bin/sh\n" + b"\0" * 64)


def test_the_unpack_keeps_the_server_the_stub_beside_the_backend_and_only_needed_libraries(run_module, tmp_path):
    needed = fake_wheel(tmp_path / "w.whl")
    dest = tmp_path / "ctx" / "tritonserver"
    result = run_module(node_image_unpack, {"wheel": str(tmp_path / "w.whl"), "dest": str(dest)})
    assert result["changed"] and result["libs"] == sorted(needed)
    assert stat.S_IMODE(os.stat(dest / "bin" / "tritonserver").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(dest / "backends" / "python" / "triton_python_backend_stub").st_mode) == 0o755
    assert (dest / "backends" / "python" / "triton_python_backend_utils.py").is_file()
    assert (dest / "caches" / "local" / "libtritoncache_local.so").is_file()
    assert not (dest / "lib" / "libpython3-419a3a08.13.so.1.0").exists()
    assert not (dest / "python_backend_stubs").exists() and not (dest / "__init__.py").exists()
    (dest / "lib" / "stale.so").write_text("x")
    again = run_module(node_image_unpack, {"wheel": str(tmp_path / "w.whl"), "dest": str(dest)})
    assert again["changed"] and again["written"] == [] and again["removed"] == ["lib/stale.so"]
    third = run_module(node_image_unpack, {"wheel": str(tmp_path / "w.whl"), "dest": str(dest)})
    assert not third["changed"]


def test_a_wheel_without_the_stub_names_the_versions_it_has(run_module, tmp_path):
    fake_wheel(tmp_path / "w.whl", stubs=("3.10", "3.12"))
    result = run_module(node_image_unpack, {"wheel": str(tmp_path / "w.whl"), "dest": str(tmp_path / "d")})
    assert result["failed"] and "stubs in it: 3.10, 3.12" in result["msg"]


def test_check_mode_unpacks_nothing(run_module, tmp_path):
    fake_wheel(tmp_path / "w.whl")
    result = run_module(node_image_unpack, {"wheel": str(tmp_path / "w.whl"), "dest": str(tmp_path / "d"),
                                            "_ansible_check_mode": True})
    assert result["changed"] and not (tmp_path / "d").exists()


def real_wheel():
    """The pinned nvidia-pytriton wheel: MTRT_PYTRITON_WHEEL, else the controller's wheel cache, where
    scripts/test.sh fetches it (roles/node_image/files/fetch_wheel.py, the role's own fetch)."""
    if os.environ.get("MTRT_PYTRITON_WHEEL"):
        return os.environ["MTRT_PYTRITON_WHEEL"]
    sys.path.insert(0, str(ROOT / "roles" / "node_image" / "files"))
    try:
        import fetch_wheel
    finally:
        sys.path.pop(0)
    return os.path.join(fetch_wheel.default_cache(), fetch_wheel.role_pin()["file"])


def test_the_real_wheel_needs_all_its_grafted_libraries_but_the_bundled_libpython():
    wheel = real_wheel()
    if not os.path.isfile(wheel):
        why = "%s is missing: scripts/test.sh fetches it (roles/node_image/files/fetch_wheel.py)" % wheel
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with zipfile.ZipFile(wheel) as zf:
        plan = mtrt_serve_image.plan_unpack(zf.namelist(), zf.read, "3.11")
        libs = {p for p in plan if p.startswith("lib/")}
        grafted = {n for n in zf.namelist() if n.startswith("nvidia_pytriton.libs/") and not n.endswith("/")}
    assert len(libs) == len(grafted) - 1 and not any("libpython" in p for p in libs)


# --- filters ---------------------------------------------------------------------------------------
def test_servers_dropped_or_moved_since_the_last_plan_are_stale():
    previous = [{"name": "a", "host": "n1"}, {"name": "b", "host": "n1"}, {"name": "c", "host": "n2"}]
    current = [{"name": "a", "host": "n1"}, {"name": "b", "host": "n2"}]
    assert serve_filters.mtrt_serve_stale(previous, current) == [{"name": "b", "host": "n1"},
                                                                 {"name": "c", "host": "n2"}]


def test_the_summary_lines_say_what_each_server_did_and_what_the_load_test_measured():
    line = serve_filters.mtrt_serve_instance_line({"name": "inst0", "ranks": [{"rank": 0, "node": "n1"},
                                                                             {"rank": 1, "node": "n2"}],
                                                   "ports": {"http": 8000}, "action": "restarted",
                                                   "time_to_ready_s": 3.2})
    assert line == "inst0: ranks 0@n1,1@n2, http 8000, restarted, ready in 3.2s"
    load = serve_filters.mtrt_serve_loadtest_line({"ok": 4, "requests": 4, "per_instance": {"b": 2, "a": 2},
                                                   "latency_s": {"p50": 0.1, "p95": 0.2, "p99": 0.3},
                                                   "tokens_per_s": 9.5, "errors": 0})
    assert load == "load test: 4/4 ok (a=2, b=2), p50 0.1s p95 0.2s p99 0.3s, 9.5 tokens/s, 0 errors"


def test_without_a_shared_filesystem_each_repository_goes_to_the_other_machines_of_its_ranks():
    nodes = [{"name": "gpu01", "ip": "10.0.0.11", "slots": 2, "gpus": [0, 1], "mpi_host": "gpu01"},
             {"name": "gpu02", "ip": "10.0.0.12", "slots": 2, "gpus": [0, 1], "mpi_host": "simgpu02"},
             {"name": "gpu03", "ip": "10.0.0.13", "slots": 2, "gpus": [0, 1], "mpi_host": "gpu03"}]
    plan = serving.serve_plan({"cluster_serve_enabled": True, "cluster_mode": "hosts", "cluster_serve_instances": [
        {"name": "a", "slots": ["gpu01:0", "gpu02:1"]}, {"name": "b", "slots": ["gpu02:0", "gpu03:1"]},
        {"name": "c", "slots": ["gpu03:0", "gpu01:1"]}]}, nodes)
    # The launcher (gpu01) wrote every repository; the peers are named as ssh knows them (mpi_host).
    assert serve_filters.mtrt_serve_repo_peers(plan["servers"], nodes, "gpu01") == {
        "a": ["simgpu02"], "b": ["simgpu02", "gpu03"], "c": ["gpu03"]}
