# SPDX-License-Identifier: Apache-2.0
"""nginx.conf of the serving proxy: Debian's nginx (1.22, open source) in front of rank 0 of
every leader-mode server.

Controller-side (the ``mtrt_nginx_conf`` filter of roles/triton_serve renders it; nothing on a node
needs it). Plain Python, no Ansible imports. What each directive is for (nginx.org/en/docs; docs/serving.md):

- ``least_conn``: generation requests are long and uneven; send each to the server with the
  fewest in flight. ``zone``: the workers share one view of failures.
- passive health - ``max_fails`` failures within ``fail_timeout`` take a server out for
  ``fail_timeout`` (open source nginx has no active health checks); a server being restarted is
  taken out explicitly (``down``) and nginx reloaded, so its requests drain first;
- ``proxy_next_upstream error timeout`` and never ``non_idempotent``: a generate request is a
  POST, which nginx passes to the next server only when it could not be sent (connection refused,
  connect timeout), so no generation runs twice; ``proxy_next_upstream_tries`` = the servers;
- timeouts sized for generation (nginx's 60 s default is too short), ``proxy_buffering off`` for
  the server-sent events of ``generate_stream``;
- the header ``X-Mtrt-Upstream: $upstream_addr`` says which server answered (and which were
  tried), so a load test can count per server.
"""

from __future__ import annotations

UPSTREAM = "mtrt_triton"


def nginx_conf(upstreams, listen_port, down=(), max_fails=1, fail_timeout_s=5, connect_timeout_s=2,
               read_timeout_s=600, worker_processes=1, pid_path="/run/mtrt-serve-nginx.pid",
               error_log="/dev/stderr", access_log="/dev/stdout", cluster=""):
    """The whole nginx.conf. ``upstreams``: ``[{name, address}]``; ``down``: names taken out."""
    if not upstreams:
        raise ValueError("the proxy needs at least one server")
    down = set(down)
    servers = []
    for up in upstreams:
        flags = "max_fails=%d fail_timeout=%ds" % (int(max_fails), int(fail_timeout_s))
        if up["name"] in down:
            flags += " down"
        servers.append("        server %s %s;  # %s%s" % (up["address"], flags, up["name"],
                                                          " (draining: being restarted)" if up["name"] in down else ""))
    read = int(read_timeout_s)
    lines = [
        "# nginx.conf of the serving proxy of cluster %s, written by mpi-trt-ansible (roles/triton_serve)." % cluster,
        "# Rewritten on every change; reloaded (nginx -s reload), never restarted.",
        "worker_processes %s;" % worker_processes,
        "pid %s;" % pid_path,
        "error_log %s warn;" % error_log,
        "events {",
        "    worker_connections 1024;",
        "}",
        "http {",
        "    log_format mtrt '$remote_addr \"$request\" $status upstream=$upstream_addr "
        "upstream_status=$upstream_status $request_time';",
        "    access_log %s mtrt;" % access_log,
        "    client_max_body_size 64m;",
        "    upstream %s {" % UPSTREAM,
        "        zone %s 64k;" % UPSTREAM,
        "        least_conn;",
    ] + servers + [
        "    }",
        "    server {",
        "        listen %d;" % int(listen_port),
        "        proxy_http_version 1.1;",
        "        proxy_set_header Connection \"\";",
        "        proxy_set_header Host $host;",
        "        proxy_connect_timeout %ds;" % int(connect_timeout_s),
        "        proxy_send_timeout %ds;" % read,
        "        proxy_read_timeout %ds;" % read,
        "        proxy_next_upstream error timeout;",
        "        proxy_next_upstream_tries %d;" % len(upstreams),
        "        proxy_next_upstream_timeout %ds;" % (int(connect_timeout_s) * len(upstreams) + 1),
        "        add_header X-Mtrt-Upstream $upstream_addr always;",
        "        location ~ /generate_stream$ {",
        "            proxy_pass http://%s;" % UPSTREAM,
        "            proxy_buffering off;",
        "            proxy_cache off;",
        "        }",
        "        location / {",
        "            proxy_pass http://%s;" % UPSTREAM,
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def live_upstreams(upstreams, checks):
    """The servers the proxy may send to before a change, in the plan's order: ``[{name, address}]``.

    ``upstreams``: the plan's; ``checks``: each server's ``triton_serve_instance`` result of
    ``state=checked`` (``name``, ``would``, ``pid``, ``running_upstream``). A server the check found
    unchanged answers at its plan address; one that runs and will restart answers at the address it
    was started with (a change of its ports takes effect only once it answers there); one that does
    not run is left out. Nothing runs yet (a first start): the plan's, which the servers are about to
    answer at.
    """
    by_name = {c.get("name"): c for c in checks or ()}
    live = []
    for up in upstreams:
        check = by_name.get(up["name"]) or {}
        if check.get("would") == "unchanged":
            live.append(dict(up))
        elif check.get("pid") and check.get("running_upstream"):
            live.append({"name": up["name"], "address": check["running_upstream"]})
    return live or [dict(up) for up in upstreams]


def with_upstream(live, upstreams, name):
    """``live`` with server ``name`` at its plan address (it answers there now), in the plan's order."""
    addresses = {up["name"]: up["address"] for up in live}
    addresses[name] = next(up["address"] for up in upstreams if up["name"] == name)
    return [{"name": up["name"], "address": addresses[up["name"]]} for up in upstreams if up["name"] in addresses]
