"""kazoo against an ensemble whose leader dies, run by tests/real_clients.rs.

Usage: python3 kazoo_failover.py HOST:PORT,HOST:PORT,...

The script takes a Lock, creates an ephemeral node and sets a DataWatch,
prints READY and waits for a line on stdin. Meanwhile the caller kills the
ensemble's leader (every member closes its connections while it elects)
and waits for a new one, then sends GO. The script then checks that kazoo
kept its session (never LOST), its lock and its ephemeral, that it can
write, and that its DataWatch saw the write; it prints KAZOO-FAILOVER-OK
(exit 0) or a traceback (exit 1).
"""

import sys
import time
import traceback

from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState
from kazoo.retry import KazooRetry

WAIT = 60.0


def wait_until(what, pred, limit=WAIT):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def main(hosts):
    states = []
    c = KazooClient(hosts=hosts, timeout=20.0, connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0))
    c.add_listener(lambda s: states.append(s))
    c.start(timeout=30)
    session = c.client_id[0]
    c.ensure_path("/kf")
    lock = c.Lock("/kf/lock", "holder")
    assert lock.acquire(timeout=30), "the lock"
    c.create("/kf/eph", b"", ephemeral=True)
    seen = []
    c.DataWatch("/kf", lambda data, stat: seen.append(data))
    print("READY session=%x" % session, flush=True)
    sys.stdin.readline()
    retry = KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0, deadline=WAIT)
    retry(c.set, "/kf", b"after")
    assert c.client_id[0] == session, "kazoo got a new session"
    assert KazooState.LOST not in states, "kazoo lost its session: %r" % states
    stat = retry(c.exists, "/kf/eph")
    assert stat is not None and stat.ephemeralOwner == session, "the ephemeral went: %r" % (stat,)
    assert lock.is_acquired, "kazoo thinks it lost the lock"
    holders = retry(lock.contenders)
    assert holders == ["holder"], "the lock's holders: %r" % holders
    wait_until("the DataWatch sees the write", lambda: seen and seen[-1] == b"after")
    lock.release()
    c.stop()
    print("KAZOO-FAILOVER-OK states=%r" % [str(s) for s in states], flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception:
        traceback.print_exc()
        sys.stdout.flush()
        sys.exit(1)
