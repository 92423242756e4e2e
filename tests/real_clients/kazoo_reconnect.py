"""A kazoo session that loses its connection, run by tests/real_clients.rs.

Usage: python3 kazoo_reconnect.py HOST:PORT reconnect|expire

HOST:PORT is a fault-injection proxy in front of the server. The script
sets watches and an ephemeral node, prints READY and waits for a line on
stdin. Meanwhile the caller breaks the connection (the script prints
SUSPENDED when kazoo notices), changes nodes (`reconnect`) or lets the
session expire (`expire`), repairs the network and sends GO. The script
then checks what kazoo saw (session kept or renewed, recipes updated) and prints KAZOO-RECONNECT-OK or
KAZOO-EXPIRE-OK (exit 0), or a traceback (exit 1).
"""

import sys
import threading
import time
import traceback

from kazoo.client import KazooClient
from kazoo.protocol.states import EventType, KazooState
from kazoo.retry import KazooRetry

WAIT = 30.0


def wait_until(what, pred, limit=WAIT):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def main(hosts, mode):
    states = []

    def listener(state):
        states.append(state)
        print(state, flush=True)

    retry = KazooRetry(max_tries=-1, delay=0.1, backoff=1.5, max_delay=1.0)
    timeout = 20.0 if mode == "reconnect" else 4.0
    c = KazooClient(hosts=hosts, timeout=timeout, connection_retry=retry)
    c.add_listener(listener)
    c.start(timeout=15)
    session = c.client_id[0]

    c.ensure_path("/kr")
    c.create("/kr/w", b"w0")
    c.create("/kr/eph", b"e", ephemeral=True)
    fired = []
    c.get("/kr/w", watch=fired.append)
    c.exists("/kr/w2", watch=fired.append)
    kids = []
    c.ChildrenWatch("/kr/w", lambda children: kids.append(sorted(children)))
    values = []
    c.DataWatch("/kr/w", lambda data, stat: values.append(data))
    wait_until("the recipes' first calls", lambda: kids and values)
    print("READY session=0x%x" % session, flush=True)

    line = sys.stdin.readline().strip()
    assert line == "GO", line
    assert KazooState.SUSPENDED in states, states

    if mode == "reconnect":
        wait_until("CONNECTED again", lambda: states[-1] == KazooState.CONNECTED)
        assert KazooState.LOST not in states, states
        assert c.client_id[0] == session, "a new session: 0x%x" % c.client_id[0]
        # kazoo ends its one-shot watches when the connection drops (each
        # is called once with a NONE event) rather than re-sending them;
        # its recipes fetch again (and set new watches) on reconnecting.
        wait_until("the one-shot watchers' NONE events", lambda: len(fired) == 2)
        kinds = [(e.type, e.path) for e in fired]
        assert kinds == [(EventType.NONE, None)] * 2, kinds
        wait_until("DataWatch w1", lambda: values[-1] == b"w1")
        wait_until("ChildrenWatch [k]", lambda: kids[-1] == ["k"])
        assert c.exists("/kr/eph").ephemeralOwner == session
        print("KAZOO-RECONNECT-OK", flush=True)
    else:
        wait_until("LOST", lambda: KazooState.LOST in states)
        wait_until("CONNECTED with a new session", lambda: states[-1] == KazooState.CONNECTED)
        assert c.client_id[0] != session, "the expired session came back"
        assert c.exists("/kr/eph") is None, "the expired session's ephemeral is still there"
        c.create("/kr/eph", b"again", ephemeral=True)
        assert c.exists("/kr/eph").ephemeralOwner == c.client_id[0]
        print("KAZOO-EXPIRE-OK", flush=True)
    c.stop()
    c.close()


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2])
    except Exception:  # noqa: BLE001 - report everything, exit non-zero
        traceback.print_exc()
        sys.stdout.flush()
        sys.exit(1)
    sys.exit(0)
