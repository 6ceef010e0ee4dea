#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The floor of issue #8: the plainest bash that reaches the same end state as
# `ansible-playbook site.yml` (up to mpi-hello) for N nodes, with the fewest
# docker/ssh calls:
#
#   up:   1 x docker network create, N x docker run (in parallel),
#         1 x docker exec on node 1 (wait for every sshd, then ONE mpirun with
#         2N ranks, every rank's line counted)           -> N + 2 docker calls
#   down: 1 x docker rm -f (all nodes), 1 x docker network rm
#
# Same end state as ours: a bridge network with a fixed subnet and gateway; N
# containers of the project's node image (its entrypoint installs the mounted
# files and execs sshd as PID 1), static IPs, hostname, peers via --add-host,
# the shared dir, shm 1g, stack ulimit, restart unless-stopped; one ed25519
# user key, one ed25519 host key per node, authorized_keys (from= the subnet),
# known_hosts of every node by name and IP, an ssh_config with strict host key
# checking (and the key exchange the project's default inventory sets), a
# key-only sshd_config, the MPI hostfile and mca-params.conf.
#
# Usage:  bench/floor.sh up N | bench/floor.sh down N
# Env:    BFLOOR_IMAGE   node image              (default mtrt-node:mtrt-bench)
#         BFLOOR_NET     network name            (default bfloor-net)
#         BFLOOR_SUBNET  first three octets      (default 192.168.150)
#         BFLOOR_PREFIX  container name prefix   (default bfl -> bfl1..bflN; keep a non-hex
#                        letter in it: docker takes an unknown name for an ID prefix, and
#                        `docker rm -f bf1` could then remove a container whose ID starts bf1)
#         BFLOOR_DIR     rendered files, mounted read-only (default $TMPDIR/bfloor.<net>)
#         BFLOOR_SLOTS   MPI slots per node      (default 2)
set -euo pipefail

action="${1:?usage: $0 up|down N}"
n="${2:?usage: $0 up|down N}"
image="${BFLOOR_IMAGE:-mtrt-node:mtrt-bench}"
net="${BFLOOR_NET:-bfloor-net}"
sub="${BFLOOR_SUBNET:-192.168.150}"
prefix="${BFLOOR_PREFIX:-bfl}"
dir="${BFLOOR_DIR:-${TMPDIR:-/tmp}/bfloor.$net}"
slots="${BFLOOR_SLOTS:-2}"
np=$((n * slots))

name() { echo "$prefix$1"; }
ip() { echo "$sub.$((10 + $1))"; }

if [ "$action" = down ]; then
    names=()
    for i in $(seq 1 "$n"); do names+=("$(name "$i")"); done
    docker rm -f "${names[@]}" >/dev/null 2>&1 || true
    docker network rm "$net" >/dev/null 2>&1 || true
    rm -rf "$dir"
    exit 0
fi
[ "$action" = up ] || { echo "usage: $0 up|down N" >&2; exit 2; }

# --- keys and rendered files (controller side, no docker) ----------------------
rm -rf "$dir"
mkdir -p -m 0700 "$dir" "$dir/cluster" "$dir/ssh" "$dir/shared"
ssh-keygen -q -t ed25519 -N '' -C bfloor -f "$dir/ssh/id_ed25519"
{
    echo "from=\"$sub.0/24\",no-agent-forwarding,no-X11-forwarding $(cut -d' ' -f1,2 "$dir/ssh/id_ed25519.pub") bfloor"
} >"$dir/cluster/authorized_keys"
: >"$dir/cluster/known_hosts"
: >"$dir/cluster/hostfile"
hosts_line="Host"
for i in $(seq 1 "$n"); do
    h="$(name "$i")"
    mkdir -p -m 0700 "$dir/node/$h"
    ssh-keygen -q -t ed25519 -N '' -C "$h" -f "$dir/node/$h/ssh_host_ed25519_key"
    echo "$h,$(ip "$i") $(cut -d' ' -f1,2 "$dir/node/$h/ssh_host_ed25519_key.pub")" >>"$dir/cluster/known_hosts"
    echo "$h slots=$slots" >>"$dir/cluster/hostfile"
    hosts_line="$hosts_line $h $(ip "$i")"
done
cat >"$dir/cluster/ssh_config" <<EOF
$hosts_line
    User root
    IdentityFile ~/.ssh/id_ed25519
    IdentitiesOnly yes
    StrictHostKeyChecking yes
    UserKnownHostsFile /etc/ssh/ssh_known_hosts
    GlobalKnownHostsFile /etc/ssh/ssh_known_hosts
    BatchMode yes
    ConnectTimeout 10
    LogLevel ERROR
    KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org
EOF
cat >"$dir/cluster/sshd_config" <<EOF
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers root
UsePAM no
MaxStartups 200:30:400
MaxSessions 64
EOF
cat >"$dir/cluster/mca-params.conf" <<EOF
btl_tcp_if_include = $sub.0/24
oob_tcp_if_include = $sub.0/24
btl_vader_single_copy_mechanism = none
mpi_yield_when_idle = 1
EOF
cat >"$dir/cluster/hello.py" <<'EOF'
import socket
from mpi4py import MPI
c = MPI.COMM_WORLD
ok = c.allreduce(c.rank) == c.size * (c.size - 1) // 2
print("BFLOOR-HELLO", c.rank, c.size, socket.gethostname(), ok, flush=True)
EOF

# --- docker: the network, then every node in parallel ---------------------------
docker network create --driver bridge --subnet "$sub.0/24" --gateway "$sub.1" "$net" >/dev/null
pids=()
for i in $(seq 1 "$n"); do
    h="$(name "$i")"
    peers=()
    for j in $(seq 1 "$n"); do
        [ "$j" = "$i" ] || peers+=(--add-host "$(name "$j"):$(ip "$j")")
    done
    docker run -d --name "$h" --hostname "$h" --network "$net" --ip "$(ip "$i")" "${peers[@]}" \
        --restart unless-stopped --shm-size 1g --ulimit stack=67108864:67108864 -e MTRT_SSH_USER=root \
        --label bench=floor \
        -v "$dir/shared:/TRTDir:rw" -v "$dir/cluster:/etc/mtrt/cluster:ro" -v "$dir/ssh:/etc/mtrt/ssh:ro" \
        -v "$dir/node/$h:/etc/mtrt/node:ro" "$image" >/dev/null &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

# --- one docker exec: wait for every sshd, then one mpirun over 2N ranks -------
ips=""
for i in $(seq 1 "$n"); do ips="$ips $(ip "$i")"; done
out="$(docker exec "$(name 1)" bash -c '
    deadline=$((SECONDS + 60))
    for ip in '"$ips"'; do
        until (exec 3<>"/dev/tcp/$ip/22") 2>/dev/null; do
            [ $SECONDS -lt $deadline ] || { echo "sshd on $ip not up" >&2; exit 1; }
            sleep 0.05
        done
    done
    exec timeout 120 mpirun --allow-run-as-root --hostfile /etc/mtrt/cluster/hostfile -np '"$np"' \
        python3 /etc/mtrt/cluster/hello.py')"

# Every rank exactly once, all in one job of 2N, all allreduce ok, slots per node.
got="$(grep -c '^BFLOOR-HELLO ' <<<"$out" || true)"
ranks="$(awk '/^BFLOOR-HELLO /{print $2}' <<<"$out" | sort -un | wc -l)"
bad="$(awk -v np="$np" '/^BFLOOR-HELLO / && ($3 != np || $5 != "True")' <<<"$out" | wc -l)"
hosts="$(awk '/^BFLOOR-HELLO /{c[$4]++} END {for (h in c) if (c[h] == '"$slots"') k++; print k + 0}' <<<"$out")"
if [ "$got" != "$np" ] || [ "$ranks" != "$np" ] || [ "$bad" != 0 ] || [ "$hosts" != "$n" ]; then
    echo "floor: mpi hello FAILED: lines=$got unique_ranks=$ranks bad=$bad full_hosts=$hosts (want $np ranks on $n hosts)" >&2
    echo "$out" >&2
    exit 1
fi
echo "floor: mpi hello ok: $np/$np ranks on $n nodes"
