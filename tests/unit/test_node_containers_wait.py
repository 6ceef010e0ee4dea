# SPDX-License-Identifier: Apache-2.0
"""node_containers' wait for the sshd of the containers it (re)started (``wait_port``): stage 40 ends only when
every new sshd accepts connections, so the hello can ssh at once (docker mode runs no separate mesh check)."""

import socket
import time

import node_containers  # python_plugins/modules (conftest puts it on sys.path)


def test_a_listening_port_is_found_at_once():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    try:
        port = server.getsockname()[1]
        started = time.monotonic()
        assert node_containers.wait_for_port([("n1", "127.0.0.1"), ("n2", "127.0.0.1")], port,
                                             time.monotonic() + 5) == []
        assert time.monotonic() - started < 1
    finally:
        server.close()


def test_a_port_that_opens_late_is_waited_for_and_one_that_never_opens_is_named():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    started = time.monotonic()
    assert node_containers.wait_for_port([("n2", "127.0.0.1")], port, time.monotonic() + 0.5) == [("n2", "127.0.0.1")]
    assert 0.5 <= time.monotonic() - started < 3  # bounded by the deadline

    late = socket.socket()
    late.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def open_later():
        time.sleep(0.3)
        late.bind(("127.0.0.1", port))
        late.listen(1)

    import threading
    opener = threading.Thread(target=open_later)
    opener.start()
    try:
        assert node_containers.wait_for_port([("n1", "127.0.0.1")], port, time.monotonic() + 5) == []
    finally:
        opener.join()
        late.close()
