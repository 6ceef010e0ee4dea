# SPDX-License-Identifier: Apache-2.0
"""TEST DOUBLES for the serving unit tests (tests only): a Triton-like HTTP server, and a fake
``mpirun`` that runs one such server in place of a whole Triton job.

The HTTP routes and answers are those of tritonserver 2.51 (docs/serving.md): ``/v2/health/ready``
(200, or 400 with an empty body), ``GET /v2`` (server metadata, ``name`` = the ``--id``),
``/v2/models/<m>/ready`` and ``POST /v2/models/<m>/generate`` (``text_output``, and
``output_log_probs`` with one entry per token).
"""

import json
import os
import stat
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVER_SOURCE = r'''
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    behaviour = {}

    def log_message(self, *args):
        pass

    def _send(self, status, doc=None, headers=None):
        body = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        b = self.behaviour
        if self.path == "/v2/health/ready":
            return self._send(200 if b.get("health", True) else 400)
        if self.path == "/v2":
            return self._send(200, {"name": b.get("id", "triton"), "version": "2.51.0"})
        if self.path.startswith("/v2/models/") and self.path.endswith("/ready"):
            model = self.path.split("/")[3]
            return self._send(400 if model in b.get("unready", ()) else 200)
        return self._send(404, {"error": "not found"})

    def do_POST(self):
        b = self.behaviour
        length = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(length) or b"{}")
        if b.get("delay_s"):
            time.sleep(b["delay_s"])
        if not self.path.endswith("/generate"):
            return self._send(404, {"error": "not found"})
        if b.get("fail_generate"):
            return self._send(400, {"error": "in ensemble 'ensemble', stub process is not healthy"})
        n = int(req.get("max_tokens", 1))
        headers = {"X-Mtrt-Upstream": b["upstream"]} if b.get("upstream") else None
        return self._send(200, {"model_name": "ensemble", "text_output": "fake %s" % req.get("text_input"),
                                "output_log_probs": [0.0] * n}, headers)
'''

MPIRUN_SOURCE = r'''
# A fake mpirun: runs one Triton-like server on rank 0's --http-port with rank 0's --id, prints
# Open MPI --tag-output lines, and fails as FAKE_MODE says (exit: rank 1 fails to load; hang:
# never ready).
import signal
argv = sys.argv[1:]
port = next(int(a.split("=", 1)[1]) for a in argv if a.startswith("--http-port="))
ident = next(a.split("=", 1)[1] for a in argv if a.startswith("--id="))
mode = os.environ.get("FAKE_MODE", "ok")
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("[1,0]<stderr>:I1201 fake tritonserver starting", flush=True)
if mode == "exit":
    print("[1,1]<stderr>:E1201 model_lifecycle.cc:642] \"failed to load 'tensorrt_llm' version 1: boom\"", flush=True)
    print("-------\nPrimary job  terminated normally, but 1 process returned\na non-zero exit code.\n-------", flush=True)
    print("  Process name: [[4242,1],1]\n  Exit code:    1", flush=True)
    sys.exit(1)
Handler.behaviour = {"id": ident, "health": mode != "hang"}
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
print("[1,0]<stderr>:I1201 \"Started HTTPService at 0.0.0.0:%d\"" % port, flush=True)
server.serve_forever()
'''


def write_fake_mpirun(directory):
    """An executable fake mpirun in ``directory``; returns its path."""
    path = os.path.join(str(directory), "mpirun")
    with open(path, "w") as handle:
        handle.write("#!%s\nimport json, os, sys, time\n%s\n%s" % (sys.executable, SERVER_SOURCE, MPIRUN_SOURCE))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


_namespace = {}
exec(SERVER_SOURCE, _namespace)  # noqa: S102  (the same handler the fake mpirun runs)


class FakeTriton:
    """A Triton-like server on 127.0.0.1 in a thread, for the HTTP client's tests."""

    def __init__(self, **behaviour):
        handler = type("H", (_namespace["Handler"],), {"behaviour": behaviour})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.behaviour = behaviour
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def body(payload):
    return json.dumps(payload).encode()
