#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: triton_serve_loadtest
short_description: Send K concurrent generate requests to a served model and report what came back
description:
  - Sends O(requests) C(POST /v2/models/<model>/generate) requests, O(concurrency) at a time, to O(url)
    (the nginx proxy in front of the leader-mode servers, or rank 0 of one server) and reports how many
    each server answered (from the proxy's C(X-Mtrt-Upstream) header, mapped to instance names with
    O(upstreams)), latency p50/p95/p99, tokens/s (each answer's C(output_log_probs) has one entry per
    generated token) and errors.
  - Bounded - each request by O(timeout_s), the whole test too (requests not started by then count as
    errors). Never changes anything (C(changed=false)). Fails when more than O(max_errors) requests fail,
    naming the first error.
author:
  - mpi-trt-ansible contributors
version_added: "1.0.0"
options:
  url:
    description: Base URL, e.g. C(http://127.0.0.1:8080).
    type: str
    required: true
  model:
    description: The model to call.
    type: str
    default: ensemble
  requests:
    description: Requests in all.
    type: int
    default: 16
  concurrency:
    description: Requests in flight at once.
    type: int
    default: 4
  max_tokens:
    description: C(max_tokens) of each request.
    type: int
    default: 16
  prompt:
    description: C(text_input) of each request.
    type: str
    default: What is MPI?
  timeout_s:
    description: Bound on each request and on the whole test, in seconds.
    type: int
    default: 120
  upstreams:
    description: The proxy's servers, C(name) and C(address) (C(ip:port)), to name who answered.
    type: list
    elements: dict
    default: []
  max_errors:
    description: Failed requests tolerated before the task fails (-1 never fails).
    type: int
    default: 0
  keep_answers:
    description: Return every request's record (C(answers)), not only the figures.
    type: bool
    default: false
  stop_file:
    description: >-
      Stop sending once this file exists, or O(timeout_s) has passed (an open-ended test that another task
      ends, e.g. while a configuration change rolls through the servers); requests left unsent are not
      counted.
    type: path
notes:
  - "Check mode: supported; the requests are sent (they change nothing)."
"""

EXAMPLES = r"""
- name: Load-test the served model through nginx
  triton_serve_loadtest:
    url: http://127.0.0.1:8080
    requests: 32
    concurrency: 8
    upstreams: "{{ triton_serve_plan.proxy.upstreams }}"
  register: triton_serve_load
"""

RETURN = r"""
mtrt_kind:
  description: Always C(triton_serve_loadtest).
  returned: always
  type: str
  sample: triton_serve_loadtest
url:
  description: Where the requests went.
  returned: always
  type: str
requests:
  description: Requests in all.
  returned: always
  type: int
concurrency:
  description: Requests in flight at once.
  returned: always
  type: int
ok:
  description: Answered requests.
  returned: always
  type: int
errors:
  description: Failed requests.
  returned: always
  type: int
error_indexes:
  description: Positions (in sending order) of the failed requests.
  returned: always
  type: list
  elements: int
first_error:
  description: The first failure's message.
  returned: always
  type: str
per_instance:
  description: Instance name (or address) -> answers it gave.
  returned: always
  type: dict
  sample: {inst0: 12, inst1: 12}
longest_gap_s:
  description: >-
    Per instance, the longest time between two of its answers - C(s), and C(from_s)/C(to_s) (seconds
    into the test): how long it was out of rotation.
  returned: always
  type: dict
retried:
  description: Answers nginx got only after trying another server first.
  returned: always
  type: int
wall_s:
  description: Seconds the whole test took.
  returned: always
  type: float
requests_per_s:
  description: Answered requests per second.
  returned: always
  type: float
latency_s:
  description: C(p50), C(p95), C(p99), C(max) of the answered requests.
  returned: always
  type: dict
tokens:
  description: Tokens generated in all (null when the answers do not say).
  returned: always
  type: int
tokens_per_s:
  description: Generated tokens per second of wall time.
  returned: always
  type: float
answers:
  description: >-
    With O(keep_answers), every request - C(index), C(instance), C(status), C(latency_s), C(t_s) (when it
    was answered), C(tokens), C(text), C(error).
  returned: always
  type: list
  elements: dict
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.mtrt_serve_http import generate_body, last_upstream, run_load, summarize

KIND = "triton_serve_loadtest"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            model=dict(type="str", default="ensemble"),
            requests=dict(type="int", default=16),
            concurrency=dict(type="int", default=4),
            max_tokens=dict(type="int", default=16),
            prompt=dict(type="str", default="What is MPI?"),
            timeout_s=dict(type="int", default=120),
            upstreams=dict(type="list", elements="dict", default=[]),
            max_errors=dict(type="int", default=0),
            keep_answers=dict(type="bool", default=False),
            stop_file=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["requests"] < 1 or p["concurrency"] < 1:
        module.fail_json(msg="requests and concurrency must be >= 1", mtrt_kind=KIND)
    names = {u["address"]: u["name"] for u in p["upstreams"] if "address" in u and "name" in u}
    url = p["url"].rstrip("/") + "/v2/models/%s/generate" % p["model"]
    began = time.monotonic()
    stop = None
    if p["stop_file"]:
        def stop():
            return os.path.exists(p["stop_file"]) or time.monotonic() - began > p["timeout_s"]
    records, wall = run_load(url, generate_body(p["prompt"], p["max_tokens"]), p["requests"], p["concurrency"],
                             p["timeout_s"], deadline_s=None if stop else p["timeout_s"], stop=stop)
    figures = summarize(records, wall, names)
    answers = []
    if p["keep_answers"]:
        for rec in records:
            addr = last_upstream(rec["upstream"])
            answers.append({"index": rec["index"], "instance": names.get(addr, addr), "status": rec["status"],
                            "latency_s": rec["latency_s"], "t_s": rec["t_s"], "tokens": rec["tokens"],
                            "text": (rec["text"] or "")[:300], "error": rec["error"]})
    result = dict(mtrt_kind=KIND, changed=False, url=p["url"], concurrency=p["concurrency"], answers=answers,
                  **figures)
    if 0 <= p["max_errors"] < figures["errors"]:
        module.fail_json(msg="%d of %d requests to %s failed (first: %s)"
                             % (figures["errors"], figures["requests"], url, figures["first_error"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
