# SPDX-License-Identifier: Apache-2.0
"""Filters of the serving stage (roles/triton_serve)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

try:
    from mpi_trt_ansible.serving_proxy import live_upstreams, nginx_conf, with_upstream
except ImportError as exc:  # pragma: no cover - the controller's Python lacks the project package
    raise AnsibleFilterError(
        "the mpi_trt_ansible package is not importable by this ansible-playbook (%s): run "
        "scripts/bootstrap.sh and use .venv/bin/ansible-playbook" % exc) from exc

DOCUMENTATION = ""


def mtrt_nginx_conf(proxy, down=(), upstreams=None, **options):
    """The serving proxy's nginx.conf for the plan's ``proxy`` (``mpi_trt_ansible.serving_proxy.nginx_conf``),
    sending to ``upstreams`` (default: the plan's)."""
    return nginx_conf(upstreams or proxy["upstreams"], proxy["listen_port"], down=down or (), **options)


def mtrt_serve_live(upstreams, checks):
    """The servers answering before a change (``mpi_trt_ansible.serving_proxy.live_upstreams``)."""
    return live_upstreams(upstreams, checks)


def mtrt_serve_with_upstream(live, upstreams, name):
    """``live`` with ``name`` at its plan address (``mpi_trt_ansible.serving_proxy.with_upstream``)."""
    return with_upstream(live, upstreams, name)


def mtrt_serve_instance_line(result):
    """One server's result (``triton_serve_instance``) as a summary phrase."""
    ranks = ",".join("%s@%s" % (r.get("rank"), r.get("node")) for r in result.get("ranks") or [])
    line = "%s: ranks %s, http %s, %s" % (result.get("name"), ranks, (result.get("ports") or {}).get("http"),
                                          result.get("action"))
    if result.get("time_to_ready_s") is not None:
        line += ", ready in %ss" % result["time_to_ready_s"]
    return line


def mtrt_serve_loadtest_line(result):
    """A load test's figures (``triton_serve_loadtest``) as a summary phrase."""
    lat = result.get("latency_s") or {}
    per = ", ".join("%s=%s" % kv for kv in sorted((result.get("per_instance") or {}).items()))
    return ("load test: %s/%s ok (%s), p50 %ss p95 %ss p99 %ss, %s tokens/s, %s errors"
            % (result.get("ok"), result.get("requests"), per, lat.get("p50"), lat.get("p95"), lat.get("p99"),
               result.get("tokens_per_s"), result.get("errors")))


def mtrt_serve_stale(previous, current):
    """Servers of an earlier plan that ``current`` has not, or has with rank 0 on another node."""
    now = {(s.get("name"), s.get("host")) for s in current or []}
    return [s for s in previous or [] if (s.get("name"), s.get("host")) not in now]


def mtrt_serve_repo_peers(servers, nodes, launcher):
    """``{server name: [mpi_host, ...]}``: the other machines each server's ranks run on, which need a copy
    of its model repository when no filesystem is shared (the launcher writes them)."""
    me = next((n.get("mpi_host") or n.get("name") for n in nodes or [] if n.get("name") == launcher), launcher)
    out = {}
    for server in servers or []:
        peers = []
        for rank in server.get("ranks") or []:
            host = rank.get("mpi_host") or rank.get("node")
            if host != me and host not in peers:
                peers.append(host)
        out[server["name"]] = peers
    return out


class FilterModule:
    def filters(self):
        return {"mtrt_nginx_conf": mtrt_nginx_conf,
                "mtrt_serve_live": mtrt_serve_live,
                "mtrt_serve_with_upstream": mtrt_serve_with_upstream,
                "mtrt_serve_instance_line": mtrt_serve_instance_line,
                "mtrt_serve_loadtest_line": mtrt_serve_loadtest_line,
                "mtrt_serve_stale": mtrt_serve_stale,
                "mtrt_serve_repo_peers": mtrt_serve_repo_peers}
