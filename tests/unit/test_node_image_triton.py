# SPDX-License-Identifier: Apache-2.0
"""The node image's serving option: off, the Dockerfile is the CPU-only one byte for byte; on, it
installs what the facts say the wheel's tritonserver needs (docs/serving.md)."""

import re

import jinja2
import pytest
import yaml
from conftest import ROOT

TEMPLATE = (ROOT / "roles" / "node_image" / "templates" / "Dockerfile.j2").read_text()
DEFAULTS = yaml.safe_load((ROOT / "roles" / "node_image" / "defaults" / "main.yml").read_text())


def render(source, triton):
    # Ansible's template settings: trim_blocks on, trailing newline kept.
    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True)
    env.filters["bool"] = bool
    return env.from_string(source).render(
        cluster_name="c1", node_image_base_ref="mtrt-base:bookworm-x", node_image_triton=triton,
        **{k: v for k, v in DEFAULTS.items() if k.startswith("node_image_triton_")})


def test_off_the_dockerfile_is_the_cpu_only_one_byte_for_byte():
    without_option = re.sub(r"\{% if node_image_triton \| bool %\}.*?\{% endif %\}\n", "", TEMPLATE, flags=re.S)
    assert without_option != TEMPLATE
    assert render(TEMPLATE, False) == render(without_option, False)
    assert "triton" not in render(TEMPLATE, False) and "nginx" not in render(TEMPLATE, False)


def test_on_it_installs_the_server_its_libraries_and_nginx_and_checks_ldd():
    text = render(TEMPLATE, True)
    assert "COPY tritonserver /opt/mtrt-tritonserver" in text
    assert "ln -s /opt/mtrt-tritonserver /opt/tritonserver" in text
    assert "echo /opt/mtrt-tritonserver/lib > /etc/ld.so.conf.d/mtrt-tritonserver.conf" in text
    assert "for pkg in libpython3.11 python3-numpy" in text and 'missing="$missing nginx"' in text
    assert "ldd /opt/tritonserver/bin/tritonserver" in text and "triton_python_backend_stub" in text
    # A base with its own server (NVIDIA's Triton TensorRT-LLM image) keeps it.
    assert "if [ -e /opt/tritonserver/bin/tritonserver ]" in text
    # The wheel's checksum is part of the Dockerfile, so it is part of the image's fingerprint.
    assert DEFAULTS["node_image_triton_wheel_sha256"] in text


def test_the_wheel_is_pinned_by_version_file_and_checksum():
    assert DEFAULTS["node_image_triton_wheel"] == "nvidia-pytriton==0.7.0"
    assert DEFAULTS["node_image_triton_wheel_file"].startswith("nvidia_pytriton-0.7.0-")
    assert re.match(r"^[0-9a-f]{64}$", DEFAULTS["node_image_triton_wheel_sha256"])


# --- the one fetch of the wheel (roles/node_image/files/fetch_wheel.py, also run by scripts/test.sh) ----
def _fetch_wheel():
    import importlib.util
    path = ROOT / "roles" / "node_image" / "files" / "fetch_wheel.py"
    spec = importlib.util.spec_from_file_location("fetch_wheel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fetch_reads_the_roles_pin_and_caches_outside_the_state_directories(monkeypatch):
    fw = _fetch_wheel()
    assert fw.role_pin() == {"spec": DEFAULTS["node_image_triton_wheel"],
                             "file": DEFAULTS["node_image_triton_wheel_file"],
                             "sha256": DEFAULTS["node_image_triton_wheel_sha256"]}
    monkeypatch.delenv("MTRT_WHEEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/c")
    assert fw.default_cache() == "/c/mpi-trt-ansible/wheels"
    monkeypatch.setenv("MTRT_WHEEL_CACHE", "/w")
    assert fw.default_cache() == "/w"
    # The role's default is the same rule, never under the build or state directory.
    assert "MTRT_WHEEL_CACHE" in DEFAULTS["node_image_triton_wheel_dir"]
    assert "/mpi-trt-ansible/wheels" in DEFAULTS["node_image_triton_wheel_dir"]
    assert "build_dir" not in DEFAULTS["node_image_triton_wheel_dir"]


def test_the_fetch_keeps_a_good_file_refuses_a_wrong_one_and_keeps_nothing_pip_got_wrong(tmp_path):
    import hashlib
    fw = _fetch_wheel()
    good = tmp_path / "w.whl"
    good.write_bytes(b"wheel")
    sha = hashlib.sha256(b"wheel").hexdigest()
    assert fw.fetch("x==1", "w.whl", sha, str(tmp_path), python="/nonexistent/python") == {
        "path": str(good), "changed": False, "sha256": sha}  # pip is not run for a good file
    with pytest.raises(RuntimeError, match="is not the pinned wheel"):
        fw.fetch("x==1", "w.whl", "0" * 64, str(tmp_path))
    assert good.read_bytes() == b"wheel"  # never replaced
    # A "pip" that writes a file with another checksum: nothing is kept, no temporary directory is left.
    fake = tmp_path / "fakepy"
    fake.write_text("#!/bin/sh\nfor a; do d=$p; p=$a; done\nwhile [ $# -gt 0 ]; do [ \"$1\" = --dest ] && d=$2; "
                    "shift; done\necho other > \"$d/n.whl\"\n")
    fake.chmod(0o755)
    dest = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="not the pinned"):
        fw.fetch("n==1", "n.whl", sha, str(dest), python=str(fake))
    assert list(dest.iterdir()) == []
