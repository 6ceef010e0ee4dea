# SPDX-License-Identifier: Apache-2.0
"""The cluster's topology checked before anything is created: nodes, network, SSH, MPI, shared
directory, GPUs and ulimits against the docker host's facts.

Plain Python, no I/O. ``validate(spec)`` returns every problem at once as ``{variable, value,
message, fix}`` dicts; each message names the inventory variable, its host where it has one, and
its value. The spec: ``cluster_name``, ``mode``, ``network {name, subnet, gateway}``, ``nodes
[{name, ip, slots, gpus, docker_host}]`` (``cluster_nodes``), ``ssh {user, port, kex_algorithms}``,
``shared {host_dir, exists, create, mount}``, ``mpi {np, launcher}``, ``ulimits``, and the facts
(``docker_networks``, ``host_routes``, ``docker_hosts {name: {gpus, ulimits}}``).
"""

from __future__ import annotations

import ipaddress
import re

from mpi_trt_ansible.preflight.problems import Problems

# Spec path -> the variable a user edits.
VAR_NAMES = {
    "cluster_name": "cluster_name",
    "mode": "cluster_mode",
    "network.name": "cluster_network_name",
    "network.subnet": "cluster_network_subnet",
    "network.gateway": "cluster_network_gateway",
    "node.name": "inventory_hostname",
    "node.ip": "node_ip",
    "node.gpus": "node_gpus",
    "node.mpi_host": "node_mpi_host",
    "node.slots": "node_slots",
    "node.docker_host": "node_docker_host",
    "nodes": "the nodes group",
    "ssh.user": "cluster_ssh_user",
    "ssh.port": "cluster_ssh_port",
    "ssh.kex_algorithms": "cluster_ssh_kex_algorithms",
    "shared.host_dir": "cluster_shared_host_dir",
    "shared.create": "cluster_shared_host_dir_create",
    "shared.mount": "cluster_shared_mount",
    "mpi.np": "cluster_mpi_np",
    "mpi.launcher": "cluster_mpi_launcher",
    "ulimits": "cluster_ulimits",
}

# `ssh -Q kex` of OpenSSH 7.4 to 9.9 (a KexAlgorithms entry may start with +, - or ^).
SSH_KEX = ("curve25519-sha256", "curve25519-sha256@libssh.org", "diffie-hellman-group1-sha1",
           "diffie-hellman-group14-sha1", "diffie-hellman-group14-sha256", "diffie-hellman-group16-sha512",
           "diffie-hellman-group18-sha512", "diffie-hellman-group-exchange-sha1",
           "diffie-hellman-group-exchange-sha256", "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
           "sntrup761x25519-sha512@openssh.com", "sntrup761x25519-sha512", "mlkem768x25519-sha256",
           "sntrup4591761x25519-sha512@tinyssh.org")
# cluster_mode values: containers on this machine, this machine, several machines over SSH, one
# node container per machine.
MODES = ("docker", "local", "hosts", "docker_per_host")
HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DOCKER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# `docker run --ulimit` names (moby/docker units: setrlimit values, bytes for sizes).
DOCKER_ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                  "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
_SUGGEST_POOLS = ("192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8")


# --------------------------------------------------------------------------- helpers
def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _ipv4(value):
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        return None


def _route_net(route):
    """A route (CIDR string, or dict from parse_proc_net_route / `ip -j route`) -> (net, dev)."""
    if isinstance(route, dict):
        dst, dev = route.get("dst", route.get("cidr")), route.get("dev", route.get("iface"))
    else:
        dst, dev = route, None
    if not dst or dst == "default":
        return None, dev
    try:
        net = ipaddress.ip_network(str(dst), strict=False)
    except ValueError:
        return None, dev
    return (net if net.version == 4 and net.prefixlen > 0 else None), dev


def _docker_network(raw):
    """Normalise a docker network (``docker network inspect`` / docker_host_info verbose
    shape, or ``{name, id, subnets, labels, bridge}``) to ``(name, subnets, gateways, bridge)``."""
    name = raw.get("name", raw.get("Name"))
    net_id = raw.get("id", raw.get("Id")) or ""
    configs = (raw.get("IPAM") or {}).get("Config") or []
    subnets = raw.get("subnets", raw.get("subnet"))
    if subnets is None:
        subnets = [c["Subnet"] for c in configs if c.get("Subnet")]
    elif isinstance(subnets, str):
        subnets = [subnets]
    nets = [n for n in (_route_net(s)[0] for s in subnets) if n is not None]
    gateways = [c["Gateway"] for c in configs if c.get("Gateway")]
    bridge = raw.get("bridge") or (raw.get("Options") or {}).get("com.docker.network.bridge.name")
    if not bridge and net_id and raw.get("Driver", "bridge") == "bridge":
        bridge = "br-" + net_id[:12]
    return name, nets, gateways, bridge


def suggest_subnet(taken, prefixlen=24):
    """First private IPv4 subnet of ``prefixlen`` that overlaps none of ``taken``."""
    for pool in map(ipaddress.IPv4Network, _SUGGEST_POOLS):
        if prefixlen < pool.prefixlen:
            continue
        for i, cand in enumerate(pool.subnets(new_prefix=prefixlen)):
            if i >= 4096:
                break
            if not any(cand.overlaps(t) for t in taken):
                return cand
    return None


def _free_ip(net, used):
    for i, addr in enumerate(net.hosts()):
        if i >= 4096:
            break
        if addr not in used:
            return addr
    return None


def _hostname_fix(name):
    fixed = re.sub(r"[^a-z0-9-]+", "-", str(name).lower()).strip("-")[:63].strip("-")
    return fixed or "node1"


# --------------------------------------------------------------------------- checks
def _check_identity(spec, c):
    name, mode = spec.get("cluster_name"), spec.get("mode")
    if c.require("cluster_name", name) and not DOCKER_NAME_RE.match(str(name)):
        c.add(c.var("cluster_name"), name,
              "%s %r is not a valid docker object name prefix." % (c.var("cluster_name"), name),
              "Use letters, digits, '_', '.' and '-', starting with a letter or digit (e.g. mtrt).")
    if c.require("mode", mode) and mode not in MODES:
        c.add(c.var("mode"), mode, "%s %r is not one of %s." % (c.var("mode"), mode, ", ".join(MODES)),
              "Set %s: docker (containers on this machine), local (this machine), hosts (several machines "
              "over SSH) or docker_per_host (one node container per machine)." % c.var("mode"))


def _check_nodes(spec, c, docker):
    nodes = [n or {} for n in (spec.get("nodes") or [])]
    if not nodes:
        c.add(c.var("nodes"), [], "The inventory has no nodes: %s is empty or missing." % c.var("nodes"),
              "Add at least one host to the 'nodes' group of the inventory.")
    if not docker and len(nodes) > 1:
        names = [n.get("name") for n in nodes]
        c.add(c.var("nodes"), names,
              "cluster_mode local runs exactly one node, but %s has %d: %s."
              % (c.var("nodes"), len(nodes), ", ".join(map(str, names))),
              "Keep one host in the 'nodes' group, or set cluster_mode: docker.")
    seen, mpi_hosts = {}, {}
    for node in nodes:
        name = node.get("name")
        if not c.require("node.name", name):
            continue
        if not HOSTNAME_RE.match(str(name)):
            c.add(c.var("node.name"), name,
                  "Node name %r (inventory_hostname) is not a valid hostname: RFC 1123 label, "
                  "lower-case letters, digits and '-', at most 63 characters." % name,
                  "Rename the inventory host, e.g. to %r." % _hostname_fix(name), host=name)
        elif docker and HEX_RE.match(str(name)):
            c.add(c.var("node.name"), name,
                  "Node name %r (inventory_hostname) is made of hex digits only: docker also takes such a name "
                  "for a container ID prefix, so a lookup of %r can find another container whose ID starts "
                  "with it (and stop, restart or remove that one)." % (name, name),
                  "Rename the inventory host to a name with a letter outside a-f, e.g. %r." % ("node-" + str(name)),
                  host=name)
        key = str(name).lower()
        twin = key in seen
        if twin:
            c.add(c.var("node.name"), name,
                  "Node names %r and %r (inventory_hostname) are the same hostname "
                  "(hostnames are case-insensitive)." % (seen[key], name),
                  "Rename one of the two inventory hosts (%s or %s)." % (seen[key], name), host=name)
        seen.setdefault(key, name)
        # The hostfile names each node by node_mpi_host (default: its name): two alike are one host to mpirun.
        mpi_host = node.get("mpi_host")
        if isinstance(mpi_host, str) and mpi_host and not twin:
            owner = mpi_hosts.setdefault(mpi_host.lower(), name)
            if owner != name:
                c.add(c.var("node.mpi_host", name), mpi_host,
                      "%s is %r, the hostfile name of node %s too: mpirun would take them for one host and "
                      "start both nodes' ranks there." % (c.var("node.mpi_host", name), mpi_host, owner),
                      "Give hosts %s and %s hostfile names of their own: correct node_mpi_host where it is set "
                      "on one of them, or remove it (its default, the inventory name, is unique)." % (owner, name),
                      host=name)
        slots = node.get("slots")
        if c.require("node.slots", slots, name) and (not _is_int(slots) or slots < 1):
            c.add(c.var("node.slots", name), slots,
                  "%s is %r: %s; a node needs at least 1 MPI slot (one rank per slot)."
                  % (c.var("node.slots", name), slots,
                     "not a whole number" if not _is_int(slots) else "below 1"),
                  "Set node_slots: 1 (or more) on host %s." % name)
        gpus = node.get("gpus")
        if c.require("node.gpus", gpus, name):
            bad = [g for g in gpus if not _is_int(g) or g < 0] if isinstance(gpus, list) else [gpus]
            dups = sorted({g for g in gpus if gpus.count(g) > 1}) if isinstance(gpus, list) else []
            if bad or dups:
                c.add(c.var("node.gpus", name), gpus,
                      "%s is %r: %s." % (c.var("node.gpus", name), gpus,
                                         "GPU ids must be a list of distinct integers >= 0"),
                      "Set node_gpus on host %s to a list like [0, 1], or [] for no GPU." % name)
        if docker:
            c.require("node.docker_host", node.get("docker_host"), name)
    return nodes


def _check_network(spec, nodes, c):
    network = spec.get("network") or {}
    name, subnet, gateway = network.get("name"), network.get("subnet"), network.get("gateway")
    v_name, v_sub, v_gw = c.var("network.name"), c.var("network.subnet"), c.var("network.gateway")
    if c.require("network.name", name) and not DOCKER_NAME_RE.match(str(name)):
        c.add(v_name, name, "%s %r is not a valid docker network name." % (v_name, name),
              "Use [a-zA-Z0-9][a-zA-Z0-9_.-]*, e.g. %s: network_my." % v_name)
    net = None
    if c.require("network.subnet", subnet):
        try:
            net = ipaddress.ip_network(str(subnet), strict=True)
        except ValueError:
            try:
                loose = ipaddress.ip_network(str(subnet), strict=False)
            except ValueError:
                c.add(v_sub, subnet, "%s %r is not a valid CIDR subnet." % (v_sub, subnet),
                      "Set %s to an IPv4 network in CIDR form, e.g. 192.168.123.0/24." % v_sub)
            else:
                c.add(v_sub, subnet, "%s %s has host bits set; it is not a network address."
                      % (v_sub, subnet), "Set %s: %s." % (v_sub, loose))
        if net is not None and net.version != 4:
            c.add(v_sub, subnet, "%s %s is IPv6; the cluster network is IPv4." % (v_sub, subnet),
                  "Set %s to an IPv4 subnet, e.g. 192.168.123.0/24." % v_sub)
            net = None
        if net is not None and net.num_addresses - 3 < len(nodes):
            c.add(v_sub, subnet, "%s %s has room for %d node IPs (besides gateway, network and "
                  "broadcast address); there are %d nodes." % (v_sub, subnet,
                                                               max(net.num_addresses - 3, 0), len(nodes)),
                  "Use a larger subnet, e.g. a /24.")
    gw = None
    if c.require("network.gateway", gateway):
        gw = _ipv4(gateway)
        if gw is None:
            c.add(v_gw, gateway, "%s %r is not a valid IPv4 address." % (v_gw, gateway),
                  "Set %s to an address inside %s, e.g. its first host." % (v_gw, v_sub))
        elif net is not None and (gw not in net or gw in (net.network_address, net.broadcast_address)):
            what = "is outside" if gw not in net else "is the network or broadcast address of"
            c.add(v_gw, gateway, "%s %s %s %s %s." % (v_gw, gateway, what, v_sub, net),
                  "Set %s: %s." % (v_gw, next(net.hosts())))
    if net is not None:
        _check_node_ips(nodes, net, gw, c)
        _check_overlaps(spec, name, net, gw, c)


def _check_node_ips(nodes, net, gw, c):
    ips = {_ipv4(n.get("ip")): n.get("name") for n in nodes if _ipv4(n.get("ip"))}
    used = set(ips) | {gw}
    owners = {}
    for node in nodes:
        name, ip = node.get("name"), node.get("ip")
        var = c.var("node.ip", name)
        if not c.require("node.ip", ip, name):
            continue
        addr = _ipv4(ip)
        free = _free_ip(net, used)
        fix = "Give %s a free address in %s%s." % (name, net, ", e.g. node_ip: %s" % free if free else "")
        if addr is None:
            c.add(var, ip, "%s %r is not a valid IPv4 address." % (var, ip), fix)
            continue
        if addr not in net:
            c.add(var, ip, "%s %s is outside %s %s." % (var, ip, c.var("network.subnet"), net), fix)
        elif addr == gw:
            c.add(var, ip, "%s %s equals %s (the bridge itself)." % (var, ip, c.var("network.gateway")),
                  fix)
        elif addr in (net.network_address, net.broadcast_address):
            c.add(var, ip, "%s %s is the %s address of %s." % (
                var, ip, "network" if addr == net.network_address else "broadcast", net), fix)
        if addr in owners:
            c.add(var, ip, "%s %s is already used by node %s." % (var, ip, owners[addr]), fix)
        owners.setdefault(addr, name)


def _check_overlaps(spec, name, net, gw, c):
    v_sub = c.var("network.subnet")
    docker_nets = [_docker_network(n) for n in (spec.get("docker_networks") or [])]
    routes = [_route_net(r) for r in (spec.get("host_routes") or [])]
    taken = [n for _, nets, _, _ in docker_nets for n in nets] + [r for r, _ in routes if r]
    alt = suggest_subnet(taken + [net], net.prefixlen)
    fix_alt = ("Set %s to a free subnet, e.g. %s (and move %s and every node_ip into it)"
               % (v_sub, alt, c.var("network.gateway"))) if alt else "Choose a free %s" % v_sub
    bridges = {b for _, _, _, b in docker_nets if b}
    for other, nets, gateways, _ in docker_nets if name is not None else []:
        if other == name:
            if net not in nets:
                found = ", ".join(map(str, nets)) or "no IPv4 subnet"
                c.add(v_sub, str(net), "Docker network %r already exists with %s, not %s %s."
                      % (name, found, v_sub, net),
                      "Remove it (docker network rm %s, after stopping its containers) or set %s: %s "
                      "(with %s and every node_ip inside it)."
                      % (name, v_sub, nets[0] if nets else net, c.var("network.gateway")))
            elif gw is not None and gateways and str(gw) not in gateways:
                c.add(c.var("network.gateway"), str(gw),
                      "Docker network %r already exists with gateway %s, not %s %s."
                      % (name, ", ".join(gateways), c.var("network.gateway"), gw),
                      "Remove it (docker network rm %s) or set %s: %s."
                      % (name, c.var("network.gateway"), gateways[0]))
            continue
        for other_net in nets:
            if net.overlaps(other_net):
                c.add(v_sub, str(net), "%s %s overlaps docker network %r (%s)."
                      % (v_sub, net, other, other_net),
                      fix_alt + ("." if other == "bridge" else  # docker's default bridge stays
                                 ", or remove docker network %r if it is unused." % other))
    for route, dev in routes:
        if route is not None and dev not in bridges and net.overlaps(route):
            hint = (" (%s looks like a docker bridge: pass docker_networks so preflight can tell "
                    "whether it is %r)" % (dev, name)) if str(dev).startswith(("br-", "docker")) else ""
            c.add(v_sub, str(net), "%s %s overlaps host route %s%s; node traffic would be misrouted%s."
                  % (v_sub, net, route, " (dev %s)" % dev if dev else "", hint), fix_alt + ".")


def _host_gpus(facts):
    gpus = facts.get("gpus")
    if _is_int(gpus):
        return list(range(gpus))
    return list(gpus or [])


def _check_gpus(spec, nodes, c):
    hosts = spec.get("docker_hosts") or {}
    pinned = {}
    for node in nodes:
        name, gpus, host = node.get("name"), node.get("gpus"), node.get("docker_host") or "localhost"
        if not isinstance(gpus, list) or not gpus:
            continue
        var = c.var("node.gpus", name)
        for gpu in sorted(set(g for g in gpus if _is_int(g))):
            if (host, gpu) in pinned:
                c.add(var, gpus, "%s %r pins GPU %d of docker host %s, already pinned to node %s."
                      % (var, gpus, gpu, host, pinned[(host, gpu)]),
                      "Give each node its own GPUs on %s (node_gpus on host %s)." % (host, name))
            pinned.setdefault((host, gpu), name)
        if host not in hosts:
            continue  # facts not gathered for this host: nothing to compare with
        have = _host_gpus(hosts[host] or {})
        if not have:
            c.add(var, gpus, "%s %r asks for GPUs, but docker host %s reports none (no NVIDIA driver "
                  "or nvidia-container-toolkit)." % (var, gpus, host),
                  "Install the NVIDIA driver and nvidia-container-toolkit on %s, or set node_gpus: [] "
                  "on host %s." % (host, name))
            continue
        missing = [g for g in gpus if _is_int(g) and g >= 0 and g not in have]
        if missing:
            c.add(var, gpus, "%s %r asks for GPU %s, but docker host %s has GPUs %s."
                  % (var, gpus, ", ".join(map(str, missing)), host, ", ".join(map(str, have))),
                  "Use GPU ids from %r in node_gpus on host %s." % (have, name))


def _check_mpi(spec, nodes, c):
    mpi = spec.get("mpi") or {}
    names = [n.get("name") for n in nodes]
    slots = [(n.get("name"), n.get("slots")) for n in nodes if _is_int(n.get("slots")) and n["slots"] > 0]
    total = sum(s for _, s in slots)
    hostfile = ", ".join("%s:%d" % hs for hs in slots) or "no slots"
    np, v_np = mpi.get("np"), c.var("mpi.np")
    if np is not None:
        if not _is_int(np) or np < 1:
            c.add(v_np, np, "%s is %r; mpirun needs at least 1 rank." % (v_np, np),
                  "Set %s to 1..%d, or leave it unset to use every slot." % (v_np, total))
            np = None
        elif np > total:
            c.add(v_np, np, "%s requests %d ranks; the hostfile gives %d (%s)." % (v_np, np, total, hostfile),
                  "Lower %s to %d or raise node_slots in the inventory." % (v_np, total))
            np = None
    launcher = mpi.get("launcher")
    if c.require("mpi.launcher", launcher) and names and launcher not in names:
        c.add(c.var("mpi.launcher"), launcher, "%s %r is not a node (nodes: %s)."
              % (c.var("mpi.launcher"), launcher, ", ".join(map(str, names))),
              "Set %s to one of: %s." % (c.var("mpi.launcher"), ", ".join(map(str, names))))
    return (np if np is not None else total), hostfile


def _check_ssh(spec, c):
    ssh = spec.get("ssh") or {}
    user, port = ssh.get("user"), ssh.get("port")
    v_user, v_port = c.var("ssh.user"), c.var("ssh.port")
    if c.require("ssh.user", user) and not USER_RE.match(str(user)):
        c.add(v_user, user, "%s %r is not a valid user name." % (v_user, user),
              "Use lower-case letters, digits, '_' and '-' (at most 32, not starting with a digit "
              "or '-'), e.g. %s: root." % v_user)
    if c.require("ssh.port", port) and (not _is_int(port) or not 1 <= port <= 65535):
        c.add(v_port, port, "%s %r is not a TCP port (1..65535)." % (v_port, port),
              "Set %s: 22 (or another port in 1..65535)." % v_port)
    kex = ssh.get("kex_algorithms")
    v_kex = c.var("ssh.kex_algorithms")
    if kex is not None:
        names = kex if isinstance(kex, list) else [kex]
        bad = [k for k in names if not isinstance(k, str) or k.lstrip("+-^") not in SSH_KEX]
        if not isinstance(kex, list) or bad:
            c.add(v_kex, kex, "%s %r %s." % (v_kex, kex, "is not a list" if not isinstance(kex, list) else
                                              "names key exchanges OpenSSH does not know: %s" % ", ".join(map(repr, bad))),
                  "Set %s to a list of names from `ssh -Q kex` (e.g. [curve25519-sha256]), or [] for OpenSSH's "
                  "default." % v_kex)


def _check_shared(spec, c):
    shared = spec.get("shared") or {}
    host_dir, mount = shared.get("host_dir"), shared.get("mount")
    v_dir, v_mount, v_create = c.var("shared.host_dir"), c.var("shared.mount"), c.var("shared.create")
    if c.require("shared.host_dir", host_dir):
        if not str(host_dir).startswith("/"):
            c.add(v_dir, host_dir, "%s %r is not an absolute path." % (v_dir, host_dir),
                  "Set %s to an absolute host path." % v_dir)
        elif shared.get("exists") is False and not shared.get("create"):
            c.add(v_dir, host_dir, "%s %s does not exist and %s is false."
                  % (v_dir, host_dir, v_create),
                  "Create %s on the docker host, or set %s: true." % (host_dir, v_create))
    if c.require("shared.mount", mount) and (not str(mount).startswith("/") or str(mount) == "/"):
        c.add(v_mount, mount, "%s %r is not an absolute path below / inside the container."
              % (v_mount, mount), "Set %s to an absolute path such as /TRTDir." % v_mount)


def _check_ulimits(spec, nodes, c, docker):
    ulimits = spec.get("ulimits") or {}
    hosts = spec.get("docker_hosts") or {}
    used_hosts = sorted({n.get("docker_host") for n in nodes if n.get("docker_host") in hosts})
    for name, value in sorted(ulimits.items()):
        var = "%s.%s" % (c.var("ulimits"), name)
        if name not in DOCKER_ULIMITS:
            c.add(var, value, "%s = %r: %r is not a ulimit docker knows." % (var, value, name),
                  "Use one of: %s." % ", ".join(DOCKER_ULIMITS))
            continue
        pair = _ulimit_pair(value)
        if pair is None:
            c.add(var, value, "%s is %r; it must be a number or \"soft:hard\" (-1 = unlimited)."
                  % (var, value), "Set %s to e.g. 65536, \"1024:65536\" or -1." % var)
            continue
        soft, hard = pair
        if hard != -1 and (soft == -1 or soft > hard):
            c.add(var, value, "%s %r has a soft limit above its hard limit." % (var, value),
                  "Set %s to \"%s:%s\" or lower the soft limit." % (var, hard, hard))
        for host in used_hosts if docker else []:
            grant = ((hosts[host] or {}).get("ulimits") or {}).get(name)
            if _is_int(grant) and grant != -1 and (hard == -1 or hard > grant):
                c.add(var, value, "%s is %s, but docker host %s grants at most %d (hard limit)."
                      % (var, "-1 (unlimited)" if value == -1 else repr(value), host, grant),
                      "Lower %s to %d, or raise the hard limit for the docker daemon on %s "
                      "(e.g. Limit%s= in docker.service)." % (var, grant, host, name.upper()))


def _ulimit_pair(value):
    """``65536`` / ``"65536"`` / ``"1024:65536"`` / ``-1`` -> ``(soft, hard)``; None when invalid."""
    if _is_int(value):
        parts = [value]
    elif isinstance(value, str) and re.match(r"^-?\d+(:-?\d+)?$", value.strip()):
        parts = [int(p) for p in value.strip().split(":")]
    else:
        return None
    soft, hard = parts[0], parts[-1]
    return (soft, hard) if soft >= -1 and hard >= -1 else None


# --------------------------------------------------------------------------- API
def validate(spec):
    """Return every problem of ``spec`` (see module docs) as a list of dicts."""
    c = Problems(VAR_NAMES)
    mode = spec.get("mode", "docker")
    docker = mode == "docker"
    _check_identity(spec, c)
    # Several machines (hosts, docker_per_host): the fabric, the machines and their stacks are checked
    # by the preflight across hosts (mpi_trt_ansible/hosts.py), on facts read from every machine.
    nodes = _check_nodes(spec, c, mode != "local")
    if docker:
        _check_network(spec, nodes, c)
    if mode != "local":
        _check_ssh(spec, c)
    _check_gpus(spec, nodes, c)
    _check_mpi(spec, nodes, c)
    _check_shared(spec, c)
    _check_ulimits(spec, nodes, c, docker)
    return c.problems


def checked(spec):
    """What validate() looked at, as counts (for the module result)."""
    nodes = [n or {} for n in (spec.get("nodes") or [])]
    slots = sum(n["slots"] for n in nodes if _is_int(n.get("slots")) and n["slots"] > 0)
    np = (spec.get("mpi") or {}).get("np")
    return {
        "mode": spec.get("mode"),
        "nodes": len(nodes),
        "slots": slots,
        "np": np if _is_int(np) else slots,
        "gpus": sum(len(n["gpus"]) for n in nodes if isinstance(n.get("gpus"), list)),
        "docker_networks": len(spec.get("docker_networks") or []),
        "host_routes": len(spec.get("host_routes") or []),
        "docker_hosts": sorted(spec.get("docker_hosts") or {}),
        "ulimits": len(spec.get("ulimits") or {}),
    }
