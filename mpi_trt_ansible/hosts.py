# SPDX-License-Identifier: Apache-2.0
"""Preflight across several machines (cluster_mode hosts and docker_per_host), written once.

Plain Python, no I/O: ``hosts_problems(facts_by_host, settings, nodes)`` compares what the
``hosts_preflight_facts`` module read on every machine and returns every problem at once as
``{variable, value, message, fix}`` dicts, each naming the machine. ``versions_table`` is the
per-host table of the versions that must agree (report and failure message).

A *machine* is what Ansible reaches over SSH: in ``hosts`` mode the node itself, in
``docker_per_host`` mode the docker host that runs the node's container (``node_docker_host``).
"""

from __future__ import annotations

import ipaddress

MODES = ("hosts", "docker_per_host")
# Version components that must be equal on every machine, with the label the table uses.
VERSION_KEYS = (("openmpi", "Open MPI"), ("mpi4py", "mpi4py"), ("mpi4py_mpi", "mpi4py's MPI"),
                ("python", "Python"), ("tensorrt_llm", "TensorRT-LLM"))
_HOSTKEY_NEEDLES = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED",
                    "host key for", "Host key for")


def machine_of(node, mode):
    """Inventory name of the machine a node runs on."""
    if mode == "docker_per_host":
        return node.get("docker_host")
    return node.get("name")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _fmt_bytes(value):
    if value == -1:
        return "unlimited"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            return "%g %s" % (round(value / size, 1), unit)
    return "%d B" % value


def version_row(facts):
    """The versions of one machine's facts: {openmpi, mpi4py, mpi4py_mpi, python, tensorrt_llm} (None: missing)."""
    ompi = facts.get("openmpi") or {}
    py = facts.get("python") or {}
    m4p = py.get("mpi4py") or {}
    return {
        "openmpi": ompi.get("version") if ompi.get("found") else None,
        "mpi4py": m4p.get("version") if m4p.get("found") else None,
        "mpi4py_mpi": m4p.get("mpi_library") if m4p.get("found") else None,
        "python": py.get("version") if py.get("found") else None,
        "tensorrt_llm": py.get("tensorrt_llm"),
    }


def versions_table(facts_by_host):
    """Markdown table: one row per reachable machine, one column per version component."""
    header = ["host"] + [label for _, label in VERSION_KEYS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for host in sorted(facts_by_host):
        facts = facts_by_host[host] or {}
        if facts.get("unreachable") or facts.get("failed"):
            lines.append("| %s | %s |" % (host, " | ".join(["unreachable" if facts.get("unreachable") else "failed"]
                                                           * len(VERSION_KEYS))))
            continue
        row = version_row(facts)
        lines.append("| %s | %s |" % (host, " | ".join(str(row[k]) if row[k] else "-" for k, _ in VERSION_KEYS)))
    return "\n".join(lines)


class _Problems:
    def __init__(self):
        self.items = []

    def add(self, variable, value, message, fix):
        self.items.append({"variable": variable, "value": value, "message": message, "fix": fix})


def _reachability(facts_by_host, machines, p):
    """Machines that answered with usable facts; a problem for every other one."""
    usable = []
    for host in machines:
        facts = facts_by_host.get(host)
        if facts is None:
            p.add("inventory_hostname", host, "Host %s gave no facts (it was not reached by the preflight play)." % host,
                  "Keep every machine of the cluster in the run (no --limit that leaves %s out)." % host)
            continue
        msg = str(facts.get("msg") or "")
        if facts.get("unreachable"):
            if any(n in msg for n in _HOSTKEY_NEEDLES):
                p.add("inventory_hostname", host,
                      "Host %s refused: its SSH host key is not the one the controller pins in known_hosts "
                      "(the key changed, or another machine answers at its address): %s" % (host, _last_line(msg)),
                      "If %s was reinstalled, check its new key out of band (console: ssh-keygen -lf "
                      "/etc/ssh/ssh_host_ed25519_key.pub), then replace its known_hosts line (ssh-keygen -R "
                      "<ansible_host>) and add the new one. Host key checking stays on." % host)
            else:
                p.add("inventory_hostname", host, "Host %s is unreachable over SSH: %s" % (host, _last_line(msg)),
                      "Check that sshd runs on %s and ansible_host, ansible_port, ansible_user and the "
                      "bastion (ansible_ssh_common_args) are right for it." % host)
            continue
        if facts.get("failed"):
            p.add("inventory_hostname", host, "Reading the facts of host %s failed: %s" % (host, _last_line(msg)),
                  "Make python3 available to Ansible on %s (ansible_python_interpreter) and sudo work for "
                  "ansible_user there (become)." % host)
            continue
        usable.append(host)
    return usable


def _last_line(text):
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def _groups(values):
    """{value: [hosts]} for a {host: value} dict, hosts sorted."""
    out = {}
    for host, value in sorted(values.items()):
        out.setdefault(value, []).append(host)
    return out


def _describe(groups):
    return "; ".join("%s on %s" % (value if value else "missing", ", ".join(hosts))
                     for value, hosts in sorted(groups.items(), key=lambda kv: (-len(kv[1]), str(kv[0]))))


def _check_stack(facts_by_host, usable, settings, p):
    """Open MPI, mpi4py, Python, TensorRT-LLM: present where required and the same everywhere."""
    install = bool(settings.get("install_mpi"))
    python = settings.get("python") or "python3"
    rows = {host: version_row(facts_by_host[host]) for host in usable}
    for host in usable:
        facts = facts_by_host[host]
        py = facts.get("python") or {}
        row = rows[host]
        if not py.get("found"):
            p.add("cluster_mpi_python", python,
                  "Host %s has no interpreter %r for the ranks: %s" % (host, python, py.get("error") or "not found"),
                  "Install Python 3 on %s or set cluster_mpi_python to an interpreter every host has." % host)
        missing = [name for name, key in (("Open MPI (mpirun, ompi_info)", "openmpi"), ("mpi4py", "mpi4py"))
                   if not row[key]]
        if "mpi4py" in missing and py.get("found") and py.get("venv"):
            # The distribution's python3-mpi4py serves the system interpreter only: installing it cannot help.
            missing.remove("mpi4py")
            p.add("cluster_mpi_python", python,
                  "Host %s: the ranks' interpreter %s is a virtual environment without mpi4py; the package "
                  "cluster_hosts_install_mpi installs (python3-mpi4py) serves the system python3 only."
                  % (host, py.get("path") or python),
                  "Install mpi4py into that environment on %s, built against the machine's Open MPI (%s -m pip "
                  "install --no-binary mpi4py mpi4py, with mpicc on PATH), or create it with "
                  "--system-site-packages so that it sees python3-mpi4py." % (host, py.get("path") or python))
        if missing and not install:
            p.add("cluster_hosts_install_mpi", False,
                  "Host %s lacks %s%s, and cluster_hosts_install_mpi is false." % (
                      host, " and ".join(missing),
                      " (%s)" % ((facts.get("openmpi") or {}).get("error")) if not row["openmpi"]
                      and (facts.get("openmpi") or {}).get("error") else ""),
                  "Install them on %s (Debian/Ubuntu: apt-get install %s), or set cluster_hosts_install_mpi: true "
                  "to let the mpi_hosts stage install them." % (host, " ".join(settings.get("mpi_packages") or
                                                                               ["openmpi-bin", "python3-mpi4py"])))
        if row["openmpi"] and row["mpi4py_mpi"] and "Open MPI" in row["mpi4py_mpi"] \
                and row["openmpi"] not in row["mpi4py_mpi"]:
            p.add("cluster_mpi_python", python,
                  "On host %s mpi4py %s is linked to %s, but mpirun is Open MPI %s: ranks would not join one job."
                  % (host, row["mpi4py"], row["mpi4py_mpi"], row["openmpi"]),
                  "Build mpi4py against the Open MPI of mpirun on %s (pip install --no-binary mpi4py mpi4py with "
                  "its mpicc on PATH) or use the distribution's python3-mpi4py." % host)
        elif row["mpi4py_mpi"] and "Open MPI" not in row["mpi4py_mpi"]:
            p.add("cluster_mpi_python", python,
                  "On host %s mpi4py is linked to %s, not Open MPI: mpirun (Open MPI) cannot start its ranks as one "
                  "job." % (host, row["mpi4py_mpi"]),
                  "Install an mpi4py built against Open MPI on %s (python3-mpi4py)." % host)
    for key, label in VERSION_KEYS:
        values = {host: rows[host][key] for host in usable}
        present = {h: v for h, v in values.items() if v}
        if key == "tensorrt_llm":
            # Absent everywhere is fine (the TensorRT-LLM stages skip); present somewhere means everywhere.
            if not present:
                continue
        elif len(present) < len(values):
            continue  # missing ones are reported above (or will be installed)
        groups = _groups(values)
        if len(groups) > 1:
            majority = max(groups.items(), key=lambda kv: (len(kv[1]), bool(kv[0])))[0]
            odd = sorted(h for h, v in values.items() if v != majority)
            p.add(key, {h: values[h] for h in sorted(values)},
                  "%s differs between hosts: %s. Every rank must run the same %s (host%s %s differ%s)." % (
                      label, _describe(groups), label, "s" if len(odd) > 1 else "", ", ".join(odd),
                      "" if len(odd) > 1 else "s"),
                  "Install %s %s on %s, so that every host has the same." % (label, majority or "(the same)",
                                                                           ", ".join(odd)))


def _check_host_keys(facts_by_host, usable, p):
    """hosts mode pins every machine's own sshd host keys: a machine where none was read cannot be pinned."""
    for host in usable:
        facts = facts_by_host[host]
        if facts.get("host_keys"):
            continue
        files = facts.get("host_key_files") or {}
        named = files.get("paths") or []
        where = ("the HostKey files sshd -T names (%s) have no readable .pub half" % ", ".join(named) if named
                 else "sshd -T named none and /etc/ssh/ssh_host_{ed25519,ecdsa,rsa}_key.pub are missing or unreadable")
        p.add("inventory_hostname", host,
              "No SSH host key was read on host %s: %s. known_hosts cannot pin %s, so every login of the ranks "
              "to it would be refused (host key checking stays on)." % (host, where, host),
              "Create the host keys on %s (ssh-keygen -A, then restart its sshd), or put each HostKey's public "
              "half beside it (ssh-keygen -y -f <key> > <key>.pub), then run again." % host)


def _check_fabric(facts_by_host, usable, settings, nodes, p):
    mode = settings.get("mode")
    subnet = settings.get("fabric_subnet")
    try:
        net = ipaddress.ip_network(str(subnet), strict=False) if subnet else None
    except ValueError:
        net = None
        p.add("cluster_network_subnet", subnet, "cluster_network_subnet %r is not a CIDR network; in %s mode it is "
              "the fabric network every node_ip is in." % (subnet, mode),
              "Set cluster_network_subnet to the fabric network, e.g. 10.0.0.0/24.")
    host_network = mode == "hosts" or settings.get("container_network", "host") == "host"
    for node in nodes:
        name, ip, machine = node.get("name"), node.get("ip"), machine_of(node, mode)
        try:
            addr = ipaddress.ip_address(str(ip))
        except ValueError:
            p.add("node_ip (%s)" % name, ip, "node_ip of %s is %r, not an IPv4 address: it must be the fabric "
                  "address of %s." % (name, ip, machine),
                  "Set node_ip on %s to its address on the fabric network (see ip -4 addr on %s)." % (name, machine))
            continue
        if net is not None and addr not in net:
            p.add("node_ip (%s)" % name, ip, "node_ip %s of %s is outside cluster_network_subnet %s (the fabric "
                  "network Open MPI, NCCL and the cluster key are pinned to)." % (ip, name, net),
                  "Set cluster_network_subnet to the fabric network that holds every node_ip, or fix node_ip on %s."
                  % name)
        if not host_network or machine not in usable:
            continue
        fabric = (facts_by_host[machine].get("fabric") or {})
        have = sorted({a.get("address") for a in facts_by_host[machine].get("addresses") or []})
        if not fabric.get("present"):
            p.add("node_ip (%s)" % name, ip, "node_ip %s of %s is not an address of host %s (it has %s)." % (
                ip, name, machine, ", ".join(have) or "no IPv4 address"),
                "Set node_ip on %s to one of %s's own fabric addresses (node_ip is the fabric address, "
                "ansible_host the management one)." % (name, machine))
            continue
        want_if = node.get("fabric_ifname")
        if want_if and fabric.get("ifname") != want_if:
            p.add("node_fabric_ifname (%s)" % name, want_if,
                  "node_fabric_ifname of %s is %s, but host %s holds %s on %s." % (
                      name, want_if, machine, ip, fabric.get("ifname")),
                  "Set node_fabric_ifname: %s on %s, or leave it unset (the interface holding node_ip is used)."
                  % (fabric.get("ifname"), name))


def _check_probes(facts_by_host, usable, settings, nodes, p):
    """The launcher's machine reaches every other node's node_ip on the SSH port."""
    mode = settings.get("mode")
    launcher = next((n for n in nodes if n.get("name") == settings.get("launcher")), None)
    if launcher is None:
        return
    origin = machine_of(launcher, mode)
    if origin not in usable:
        return
    ours = mode == "docker_per_host" or settings.get("sshd") == "dedicated"
    port = settings.get("ssh_port")
    who = launcher.get("name") if origin == launcher.get("name") else "%s (on %s)" % (launcher.get("name"), origin)
    for probe in facts_by_host[origin].get("probes") or []:
        state, name = probe.get("state"), probe.get("name")
        if state == "open" or (state == "refused" and ours):
            continue  # refused: our own sshd is not started yet (it is, at stage 40/45)
        where = "%s:%s" % (probe.get("ip"), probe.get("port", port))
        if state == "refused":
            p.add("cluster_ssh_port", port,
                  "The launcher %s reaches %s of node %s, but nothing listens there (connection refused)."
                  % (who, where, name),
                  "Start sshd on %s listening on port %s at %s, or set cluster_ssh_port to its port "
                  "(or cluster_hosts_sshd: dedicated for a cluster sshd on its own port)." % (name, port,
                                                                                           probe.get("ip")))
        else:
            p.add("node_ip (%s)" % name, probe.get("ip"),
                  "The launcher %s cannot reach node %s at %s: %s%s." % (
                      who, name, where, state,
                      " (%s)" % probe["detail"] if probe.get("detail") else ""),
                  "Open TCP port %s between the fabric addresses (firewall), and check node_ip of %s and its route "
                  "from %s." % (probe.get("port", port), name, origin))


def _check_limits(facts_by_host, usable, settings, nodes, p):
    mode = settings.get("mode")
    memlock_min = settings.get("memlock_min")
    shm_min = settings.get("shm_min_bytes")
    gpu_machines = sorted({machine_of(n, mode) for n in nodes if n.get("gpus")})
    for host in usable:
        facts = facts_by_host[host]
        if mode == "hosts" and _is_int(memlock_min) and memlock_min != 0 and host in gpu_machines:
            soft = (facts.get("memlock") or {}).get("soft")
            if _is_int(soft) and soft != -1 and (memlock_min == -1 or soft < memlock_min):
                p.add("cluster_hosts_memlock_min", memlock_min,
                      "Host %s lets processes lock %s of memory (ulimit -l); its GPU ranks need %s (NCCL, RDMA "
                      "registration)." % (host, _fmt_bytes(soft), _fmt_bytes(memlock_min)),
                      "Raise memlock on %s (/etc/security/limits.d/: '* - memlock unlimited', and LimitMEMLOCK= for "
                      "a systemd-started sshd), or lower cluster_hosts_memlock_min." % host)
        shm_checked = mode == "hosts" or settings.get("ipc_mode") == "host"
        if shm_checked and _is_int(shm_min) and shm_min > 0:
            shm = facts.get("shm") or {}
            size = shm.get("size_bytes")
            if not shm.get("exists"):
                p.add("cluster_hosts_shm_min", shm_min, "Host %s has no /dev/shm (NCCL and Open MPI's shared "
                      "memory need it)." % host, "Mount a tmpfs on /dev/shm on %s." % host)
            elif _is_int(size) and size < shm_min:
                p.add("cluster_hosts_shm_min", shm_min, "Host %s has a /dev/shm of %s; at least %s is needed."
                      % (host, _fmt_bytes(size), _fmt_bytes(shm_min)),
                      "Grow /dev/shm on %s (mount -o remount,size=... /dev/shm, or in /etc/fstab), or lower "
                      "cluster_hosts_shm_min." % host)
        if mode == "docker_per_host":
            grant = ((facts.get("docker") or {}).get("grantable") or {})
            for limit, value in sorted((settings.get("ulimits") or {}).items()):
                hard = _ulimit_hard(value)
                have = grant.get(limit)
                if hard is not None and _is_int(have) and have != -1 and (hard == -1 or hard > have):
                    p.add("cluster_ulimits.%s" % limit, value,
                          "cluster_ulimits.%s is %s, but the docker daemon of host %s grants at most %d." % (
                              limit, value, host, have),
                          "Lower cluster_ulimits.%s to %d, or raise the docker daemon's hard limit on %s "
                          "(Limit%s= in docker.service)." % (limit, have, host, limit.upper()))


def _ulimit_hard(value):
    text = str(value).strip()
    try:
        return int(text.split(":")[-1])
    except ValueError:
        return None


def _check_gpus(facts_by_host, usable, settings, nodes, p):
    mode = settings.get("mode")
    for node in nodes:
        gpus, machine, name = node.get("gpus") or [], machine_of(node, mode), node.get("name")
        if not isinstance(gpus, list):
            continue
        if not gpus or machine not in usable:
            continue
        hook = ((facts_by_host[machine].get("docker") or {}).get("gpu_hook") or {})
        if mode == "docker_per_host" and hook.get("checked") and not hook.get("path"):
            p.add("node_gpus (%s)" % name, gpus,
                  "Node %s asks for GPUs %s, but the docker daemon of host %s cannot give a container GPUs: "
                  "nvidia-container-runtime-hook is not on its PATH (%s), so docker would refuse the node "
                  "container's GPU request (could not select device driver \"\" with capabilities: [[gpu]])."
                  % (name, ", ".join(map(str, gpus)), machine, hook.get("search_path")),
                  "Install the NVIDIA Container Toolkit (nvidia-container-toolkit) on %s and restart docker there "
                  "(systemctl restart docker), or set node_gpus: [] on %s." % (machine, name))
        have = facts_by_host[machine].get("gpus") or []
        missing = [g for g in gpus if g not in have]
        if missing:
            p.add("node_gpus (%s)" % name, gpus, "node_gpus of %s asks for GPU %s, but host %s has %s." % (
                name, ", ".join(map(str, missing)), machine,
                "GPUs %s" % ", ".join(map(str, have)) if have else "no GPU nvidia-smi can list"),
                "Use GPU ids of %s (nvidia-smi --query-gpu=index --format=csv) in node_gpus on %s, or [] for none."
                % (machine, name))


def _check_dirs(facts_by_host, usable, settings, p):
    """The same model / engine directories on every machine (content hash) where no filesystem is shared."""
    shared = bool(settings.get("shared_fs"))
    for path in settings.get("same_dirs") or []:
        seen = {h: ((facts_by_host[h].get("dirs") or {}).get(path) or {}) for h in usable}
        have = sorted(h for h, d in seen.items() if d.get("exists"))
        if not have:
            continue  # nowhere yet: the stage that needs it says so
        missing = sorted(set(seen) - set(have))
        if missing:
            p.add("cluster_shared_fs", shared, "%s exists on %s but not on %s%s." % (
                path, ", ".join(have), ", ".join(missing),
                "" if shared else " (no shared filesystem: cluster_shared_fs is false)"),
                "Copy %s to the same path on %s (e.g. rsync -a from %s), or put it on a filesystem every host mounts "
                "and set cluster_shared_fs: true." % (path, ", ".join(missing), have[0]))
            continue
        if shared:
            continue
        hashes = {h: seen[h].get("sha256") for h in have}
        groups = _groups(hashes)
        if len(groups) > 1:
            majority = max(groups.items(), key=lambda kv: len(kv[1]))
            odd = sorted(h for h, v in hashes.items() if v != majority[0])
            p.add("cluster_shared_fs", shared, "%s differs between hosts: %s." % (
                path, "; ".join("sha256 %s... (%d files) on %s" % (
                    (value or "?")[:12], seen[hosts[0]].get("files", 0), ", ".join(hosts))
                    for value, hosts in sorted(groups.items(), key=lambda kv: -len(kv[1])))),
                "Copy %s again from %s to %s (rsync -a --delete), so that every host has the same files."
                % (path, majority[1][0], ", ".join(odd)))


def _check_identity(facts_by_host, usable, settings, nodes, p):
    mode = settings.get("mode")
    user = settings.get("ssh_user")
    if mode == "hosts":
        for node in nodes:
            name = node.get("name")
            if name not in usable:
                continue
            hostname = str(facts_by_host[name].get("hostname") or "")
            want = str(node.get("mpi_host") or name)
            if hostname and want not in ("localhost", "127.0.0.1") and hostname.split(".")[0] != want.split(".")[0]:
                p.add("node_mpi_host (%s)" % name, want,
                      "Host %s calls itself %s, but the hostfile names it %s: ranks report their hostname, so the "
                      "placement check of every MPI stage would fail." % (name, hostname, want),
                      "Set node_mpi_host: %s on %s (its ssh_config entry maps that name to node_ip), or rename the "
                      "inventory host to %s." % (hostname.split(".")[0], name, hostname.split(".")[0]))
        uids = {}
        for host in usable:
            account = facts_by_host[host].get("user") or {}
            if not account.get("exists"):
                if not settings.get("create_user", True):
                    p.add("cluster_hosts_create_user", False,
                          "The MPI account %s does not exist on host %s, and cluster_hosts_create_user is false."
                          % (user, host),
                          "Create %s on %s, or set cluster_hosts_create_user: true." % (user, host))
                continue
            if account.get("uid") == 0 and user != "root":
                p.add("cluster_ssh_user", user, "The MPI account %s on host %s has UID 0." % (user, host),
                      "Use an unprivileged account for MPI (cluster_ssh_user).")
            uids[host] = account.get("uid")
        groups = _groups(uids)
        if settings.get("shared_fs") and len(groups) > 1:
            p.add("cluster_hosts_mpi_uid", settings.get("mpi_uid"),
                  "The MPI account %s has different UIDs on a shared filesystem: %s." % (user, _describe(groups)),
                  "Give %s the same UID on every host (usermod -u), or set cluster_hosts_mpi_uid before it is "
                  "created." % user)
    if mode == "docker_per_host":
        per_machine = {}
        for node in nodes:
            per_machine.setdefault(machine_of(node, mode), []).append(node.get("name"))
        for machine, names in sorted(per_machine.items(), key=lambda kv: str(kv[0])):
            if machine is None:
                p.add("node_docker_host", None, "Node%s %s name%s no docker host (node_docker_host)." % (
                    "s" if len(names) > 1 else "", ", ".join(names), "" if len(names) > 1 else "s"),
                    "Set node_docker_host on %s to an inventory host of group docker_hosts." % ", ".join(names))
            elif len(names) > 1 and settings.get("container_network", "host") == "host":
                p.add("node_docker_host", machine,
                      "Nodes %s all run on docker host %s with host networking: they would share one IP address "
                      "and one sshd port, which breaks Open MPI's wire-up." % (", ".join(names), machine),
                      "Put one node container per machine (node_docker_host), giving it all of that machine's "
                      "GPUs and slots.")
        unknown = sorted({m for m in per_machine if m is not None} - set(settings.get("docker_hosts") or []))
        for machine in unknown:
            p.add("node_docker_host", machine, "Docker host %s (node_docker_host of %s) is not in group docker_hosts."
                  % (machine, ", ".join(per_machine[machine])),
                  "Add %s to the docker_hosts group of the inventory, with ansible_host and ansible_user." % machine)


def machines(nodes, mode):
    """Machines of the cluster in node order, each once."""
    out = []
    for node in nodes:
        machine = machine_of(node, mode)
        if machine is not None and machine not in out:
            out.append(machine)
    return out


def hosts_problems(facts_by_host, settings, nodes):
    """Every problem of a cluster spread over several machines, each naming the host.

    ``facts_by_host``: machine -> the ``hosts_preflight_facts`` result (or Ansible's unreachable/failed result).
    ``settings``: mode, launcher, ssh_user, ssh_port, sshd, install_mpi, create_user, mpi_packages,
    python, fabric_subnet, memlock_min, shm_min_bytes, same_dirs, shared_fs, container_network, ipc_mode,
    ulimits, docker_hosts, mpi_uid. ``nodes``: cluster_nodes entries (name, ip, slots, gpus,
    mpi_host, fabric_ifname, docker_host).
    """
    p = _Problems()
    mode = settings.get("mode")
    if mode not in MODES:
        return []
    usable = _reachability(facts_by_host, machines(nodes, mode), p)
    if mode == "hosts":
        _check_stack(facts_by_host, usable, settings, p)
        _check_host_keys(facts_by_host, usable, p)
    _check_identity(facts_by_host, usable, settings, nodes, p)
    _check_fabric(facts_by_host, usable, settings, nodes, p)
    _check_probes(facts_by_host, usable, settings, nodes, p)
    _check_limits(facts_by_host, usable, settings, nodes, p)
    _check_gpus(facts_by_host, usable, settings, nodes, p)
    _check_dirs(facts_by_host, usable, settings, p)
    return p.items


def node_handoff(facts_by_host, nodes, mode):
    """What later stages need from the facts, per node: host keys, fabric interface, hostname."""
    out = {}
    for node in nodes:
        facts = facts_by_host.get(machine_of(node, mode)) or {}
        fabric = facts.get("fabric") or {}
        out[node.get("name")] = {
            "host_keys": list(facts.get("host_keys") or []),
            "fabric_ifname": node.get("fabric_ifname") or fabric.get("ifname") or "",
            "hostname": facts.get("hostname") or "",
        }
    return out


def openmpi_major(facts_by_host):
    """The Open MPI major version every machine has (None when unknown or mixed)."""
    majors = {(f.get("openmpi") or {}).get("major") for f in facts_by_host.values()
              if isinstance(f, dict) and (f.get("openmpi") or {}).get("found")}
    return majors.pop() if len(majors) == 1 else None
