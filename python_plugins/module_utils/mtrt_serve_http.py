# SPDX-License-Identifier: Apache-2.0
"""HTTP side of serving: the readiness probe of one server and the load test through the proxy.

Plain Python (standard library; no Ansible imports). Triton's health answers can say ready while
a backend is dead (a Python stub that died leaves ``/v2/health/ready`` at 200), so readiness here
is, in order and within one deadline: the server's ``/v2/health/ready``, its identity (``GET /v2``
names the server id it was started with, so a foreign server on the port is not taken for it),
each model's ``/v2/models/<m>/ready``, then one real generate request that must return text.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from urllib.parse import urlsplit

UPSTREAM_HEADER = "X-Mtrt-Upstream"


def request(url, method="GET", body=None, timeout=10.0):
    """One HTTP request: ``(status, headers, body bytes)``; status 0 with the error on a failure."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    path = parts.path + ("?" + parts.query if parts.query else "")
    try:
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path or "/", body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return 0, {}, ("%s: %s" % (type(exc).__name__, exc)).encode()
    finally:
        conn.close()


def generate_body(prompt, max_tokens, extra=None):
    """Body of ``POST /v2/models/ensemble/generate`` (the extension_generate form)."""
    body = {"text_input": prompt, "max_tokens": int(max_tokens), "bad_words": "", "stop_words": ""}
    body.update(extra or {})
    return body


def answer_text(payload):
    """``text_output`` of a generate answer (a list of texts joined), or None."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    text = doc.get("text_output") if isinstance(doc, dict) else None
    if isinstance(text, list):
        text = "".join(str(t) for t in text)
    return text


def answer_tokens(payload):
    """Tokens an answer generated: the length of ``output_log_probs`` (one per token), else None."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    probs = doc.get("output_log_probs") if isinstance(doc, dict) else None
    if isinstance(probs, list):
        flat = probs
        while flat and isinstance(flat[0], list):
            flat = flat[0]
        return len(flat)
    if isinstance(probs, (int, float)):
        return 1
    return None


def wait_ready(base, server_id, models, probe_body, deadline, alive=lambda: True, interval=0.25,
               generate_model="ensemble"):
    """Poll until the server answers a real request, or the deadline (time.monotonic) passes.

    ``alive()`` is asked between polls (e.g. whether mpirun still runs); when it says no the wait
    ends. Returns ``{ready, phase, phases: {name: seconds}, status, detail, text}``: ``phase`` is
    the step reached (health, identity, model:<name>, generate, ready, or exited).
    """
    started = time.monotonic()
    phases = {}
    steps = [("health", "GET", "/v2/health/ready", None)]
    steps.append(("identity", "GET", "/v2", None))
    steps += [("model:%s" % m, "GET", "/v2/models/%s/ready" % m, None) for m in models]
    steps.append(("generate", "POST", "/v2/models/%s/generate" % generate_model, probe_body))
    result = {"ready": False, "phase": steps[0][0], "phases": phases, "status": None, "detail": "", "text": None}
    for name, method, path, body in steps:
        result["phase"] = name
        while True:
            if not alive():
                result.update(phase="exited", detail="the server exited while %s was checked" % name)
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return result
            status, _headers, payload = request(base + path, method, body, timeout=max(0.5, min(remaining, 30.0)))
            result.update(status=status, detail=payload[:400].decode("utf-8", "replace"))
            ok = status == 200
            if ok and name == "identity":
                try:
                    ok = json.loads(payload).get("name") == server_id
                except ValueError:
                    ok = False
                if not ok:
                    result["detail"] = "GET /v2 names %s, not %s: another server holds this port" % (
                        payload[:200].decode("utf-8", "replace"), server_id)
                    return result
            if ok and name == "generate":
                text = answer_text(payload)
                ok = bool(text)
                result["text"] = text
            if ok:
                phases[name] = round(time.monotonic() - started, 3)
                break
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    result.update(ready=True, phase="ready")
    return result


def percentile(values, q):
    """The q-th percentile (0-100) of ``values`` with linear interpolation; None when empty."""
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def run_load(url, body, requests, concurrency, timeout_s, deadline_s=None, stop=None):
    """Send ``requests`` POSTs with ``concurrency`` at once; one record per request, in order sent.

    Each record: ``{index, status, latency_s, t_s, upstream, tokens, text, error}``; ``t_s`` is
    when it was answered (seconds into the test); ``upstream`` is the proxy's ``X-Mtrt-Upstream``
    header (the servers it tried, the last one answered). Requests not started before
    ``deadline_s`` seconds are errors ("not sent"). ``stop()``, asked before each request, ends the
    test early when it says so; the requests it leaves unsent are not recorded.
    """
    records = [None] * requests
    lock = threading.Lock()
    counter = {"next": 0}
    started = time.monotonic()

    def worker():
        while True:
            with lock:
                if stop is not None and stop():
                    return
                index = counter["next"]
                if index >= requests:
                    return
                counter["next"] += 1
            if deadline_s is not None and time.monotonic() - started > deadline_s:
                records[index] = {"index": index, "status": None, "latency_s": None, "t_s": None, "upstream": None,
                                  "tokens": None, "text": None, "error": "not sent: the load test's bound passed"}
                continue
            t0 = time.monotonic()
            status, headers, payload = request(url, "POST", body, timeout=timeout_s)
            latency = time.monotonic() - t0
            text = answer_text(payload) if status == 200 else None
            error = None
            if status != 200:
                error = "HTTP %s: %s" % (status, payload[:200].decode("utf-8", "replace"))
            elif not text:
                error = "HTTP 200 without text_output"
            records[index] = {"index": index, "status": status, "latency_s": round(latency, 4),
                              "t_s": round(time.monotonic() - started, 4),
                              "upstream": headers.get(UPSTREAM_HEADER.lower()),
                              "tokens": answer_tokens(payload) if status == 200 else None,
                              "text": text, "error": error}

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(concurrency, requests)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r for r in records if r is not None], round(time.monotonic() - started, 4)


def last_upstream(header):
    """The server that answered: the last address of nginx's ``$upstream_addr`` list."""
    if not header:
        return None
    return header.replace(" : ", ", ").split(",")[-1].strip() or None


def summarize(records, wall_s, upstreams=None):
    """Figures of a load test: counts per instance, latency percentiles, tokens/s, errors.

    ``upstreams`` maps ``ip:port`` to an instance name. A request that nginx retried on another
    server (its header lists several) counts once, for the server that answered, and in
    ``retried``. ``longest_gap_s`` is, per instance, the longest time between two of its answers
    (when it was out of rotation or restarting, ``from_s``/``to_s`` say when).
    """
    upstreams = upstreams or {}
    ok = [r for r in records if r and r["error"] is None]
    failed = [r for r in records if r and r["error"] is not None]
    per_instance = {}
    answered_at = {}
    retried = 0
    for rec in ok:
        addr = last_upstream(rec["upstream"])
        name = upstreams.get(addr, addr or "direct")
        per_instance[name] = per_instance.get(name, 0) + 1
        answered_at.setdefault(name, []).append(rec.get("t_s") or 0.0)
        if rec["upstream"] and "," in rec["upstream"].replace(" : ", ","):
            retried += 1
    gaps = {}
    for name, times in answered_at.items():
        times = sorted(times)
        best = (0.0, times[0], times[0])
        for before, after in zip(times, times[1:]):
            if after - before > best[0]:
                best = (after - before, before, after)
        gaps[name] = {"s": round(best[0], 3), "from_s": round(best[1], 3), "to_s": round(best[2], 3)}
    lat = [r["latency_s"] for r in ok]
    tokens = [r["tokens"] for r in ok if r["tokens"] is not None]
    first_error = failed[0]["error"] if failed else None
    return {
        "requests": len(records), "ok": len(ok), "errors": len(failed),
        "error_indexes": [r["index"] for r in failed], "first_error": first_error,
        "per_instance": dict(sorted(per_instance.items())), "retried": retried,
        "longest_gap_s": dict(sorted(gaps.items())),
        "wall_s": wall_s, "requests_per_s": round(len(ok) / wall_s, 3) if wall_s else None,
        "latency_s": {"p50": _round(percentile(lat, 50)), "p95": _round(percentile(lat, 95)),
                      "p99": _round(percentile(lat, 99)), "max": _round(max(lat) if lat else None)},
        "tokens": sum(tokens) if tokens else None,
        "tokens_per_s": round(sum(tokens) / wall_s, 2) if tokens and wall_s else None,
    }


def _round(value):
    return None if value is None else round(value, 4)
