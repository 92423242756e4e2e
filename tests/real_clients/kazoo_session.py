"""One kazoo session against a ZooKeeper server, run by tests/real_clients.rs.

Usage: python3 kazoo_session.py HOST:PORT

Connects two kazoo clients and exercises four-letter words (server_version,
ruok), create/get/set/delete, one-shot watches, DataWatch, ChildrenWatch,
ephemeral and sequential nodes, transactions, digest ACLs, the Lock, Counter,
Semaphore, LockingQueue and TreeCache recipes, and session close. Prints one
`OK <step>` line per step and `KAZOO-ALL-OK` at the end, leaves the node
/kazoo/left = b"from-kazoo" for the caller to check, and exits 0; on any
failure it prints a traceback and exits 1.
"""

import sys
import threading
import time
import traceback

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    LockTimeout,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.protocol.states import EventType, KazooState
from kazoo.recipe.cache import TreeCache
from kazoo.security import make_digest_acl

WAIT = 10.0


def ok(step, detail=""):
    print("OK %s %s" % (step, detail), flush=True)


def wait_until(what, pred, limit=WAIT):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def client(hosts):
    c = KazooClient(hosts=hosts, timeout=10.0)
    c.start(timeout=15)
    assert c.state == KazooState.CONNECTED, c.state
    return c


def main(hosts):
    c1 = client(hosts)
    c2 = client(hosts)
    assert c1.client_id[0] != c2.client_id[0], "two distinct sessions"
    ok("connect", "session=0x%x" % c1.client_id[0])

    # Four-letter words as kazoo uses them (server_version parses `envi`).
    version = c1.server_version()
    assert len(version) >= 2 and version[0] == 3, version
    assert c1.command(b"ruok") == "imok"
    ok("fourletter", ".".join(str(v) for v in version))

    # Plain CRUD, under a fresh /kazoo.
    if c1.exists("/kazoo") is not None:
        c1.delete("/kazoo", recursive=True)
    c1.ensure_path("/kazoo")
    assert c1.create("/kazoo/node", b"v0") == "/kazoo/node"
    data, stat = c1.get("/kazoo/node")
    assert (data, stat.version, stat.dataLength, stat.ephemeralOwner) == (b"v0", 0, 2, 0), (data, stat)
    stat = c1.set("/kazoo/node", b"v1", version=0)
    assert stat.version == 1, stat
    try:
        c1.set("/kazoo/node", b"v2", version=0)
        raise AssertionError("set with a stale version succeeded")
    except BadVersionError:
        pass
    try:
        c1.create("/kazoo/node", b"")
        raise AssertionError("duplicate create succeeded")
    except NodeExistsError:
        pass
    try:
        c1.get("/kazoo/missing")
        raise AssertionError("get of a missing node succeeded")
    except NoNodeError:
        pass
    assert c2.get("/kazoo/node")[0] == b"v1"
    assert c1.exists("/kazoo/missing") is None
    ok("crud")

    # One-shot data watch fired by the other session.
    fired = []
    got = threading.Event()

    def on_data(event):
        fired.append(event)
        got.set()

    c1.get("/kazoo/node", watch=on_data)
    c2.set("/kazoo/node", b"from-c2")
    assert got.wait(WAIT), "data watch did not fire"
    assert fired[0].type == EventType.CHANGED and fired[0].path == "/kazoo/node", fired
    # Exists watch on a missing node fires on its creation.
    created = threading.Event()
    events = []

    def on_exists(event):
        events.append(event)
        created.set()

    assert c1.exists("/kazoo/later", watch=on_exists) is None
    c2.create("/kazoo/later", b"")
    assert created.wait(WAIT), "exists watch did not fire"
    assert events[0].type == EventType.CREATED and events[0].path == "/kazoo/later", events
    ok("watch", "%s %s" % (fired[0].type, events[0].type))

    # DataWatch recipe: sees the initial value and each change.
    seen = []

    @c1.DataWatch("/kazoo/node")
    def data_watch(data, stat):
        seen.append(data)

    wait_until("DataWatch initial value", lambda: seen[-1:] == [b"from-c2"])
    c2.set("/kazoo/node", b"dw-1")
    wait_until("DataWatch change", lambda: seen[-1:] == [b"dw-1"])
    ok("datawatch", repr(seen))

    # ChildrenWatch recipe: follows creates and deletes by the other session.
    c1.ensure_path("/kazoo/kids")
    kids = []

    @c1.ChildrenWatch("/kazoo/kids")
    def children_watch(children):
        kids.append(sorted(children))

    wait_until("ChildrenWatch initial list", lambda: kids[-1:] == [[]])
    c2.create("/kazoo/kids/a", b"")
    c2.create("/kazoo/kids/b", b"")
    wait_until("ChildrenWatch a,b", lambda: kids[-1:] == [["a", "b"]])
    c2.delete("/kazoo/kids/a")
    wait_until("ChildrenWatch b", lambda: kids[-1:] == [["b"]])
    try:
        c1.delete("/kazoo/kids")
        raise AssertionError("deleting a parent with children succeeded")
    except NotEmptyError:
        pass
    ok("childrenwatch", repr(kids))

    # Ephemeral and sequential nodes; ephemerals go with their session.
    # The suffix is the parent's cversion (3 children were created so far).
    cversion = c1.exists("/kazoo").cversion
    assert cversion == 3, cversion
    s1 = c1.create("/kazoo/seq-", b"", sequence=True)
    s2 = c1.create("/kazoo/seq-", b"", sequence=True)
    assert (s1, s2) == ("/kazoo/seq-0000000003", "/kazoo/seq-0000000004"), (s1, s2)
    eph = c2.create("/kazoo/eph-", b"e", ephemeral=True, sequence=True)
    assert eph.startswith("/kazoo/eph-") and len(eph) == len("/kazoo/eph-") + 10, eph
    assert c1.exists(eph).ephemeralOwner == c2.client_id[0]
    ok("sequential", "%s %s %s" % (s1, s2, eph))

    # A transaction: all or nothing.
    t = c1.transaction()
    t.check("/kazoo/node", 3)
    t.create("/kazoo/tx", b"tx")
    t.set_data("/kazoo/node", b"in-tx")
    results = t.commit()
    assert results[0] is True and results[1] == "/kazoo/tx", results
    assert c1.get("/kazoo/node")[0] == b"in-tx"
    t = c1.transaction()
    t.create("/kazoo/tx-never", b"")
    t.check("/kazoo/node", 99)
    results = t.commit()
    assert isinstance(results[1], BadVersionError), results
    assert c1.exists("/kazoo/tx-never") is None
    ok("transaction")

    # Digest ACLs: the other session is refused until it authenticates.
    acl = make_digest_acl("kaz", "pw", all=True)
    c1.add_auth("digest", "kaz:pw")
    c1.create("/kazoo/secret", b"s3cret", acl=[acl])
    assert c1.get("/kazoo/secret")[0] == b"s3cret"
    try:
        c2.get("/kazoo/secret")
        raise AssertionError("read without auth succeeded")
    except NoAuthError:
        pass
    c2.add_auth("digest", "kaz:pw")
    assert c2.get("/kazoo/secret")[0] == b"s3cret"
    acls, _ = c1.get_acls("/kazoo/secret")
    assert acls[0].id.scheme == "digest" and acls[0].id.id.startswith("kaz:"), acls
    ok("acl", acls[0].id.id)

    # Lock recipe: mutual exclusion across sessions, and a waiter woken by
    # the holder's release (through the recipe's watches).
    l1 = c1.Lock("/kazoo/lock", "holder-1")
    l2 = c2.Lock("/kazoo/lock", "holder-2")
    assert l1.acquire(timeout=WAIT)
    try:
        l2.acquire(timeout=0.5)
        raise AssertionError("second lock holder got in")
    except LockTimeout:
        pass
    assert l1.contenders() == ["holder-1"], l1.contenders()
    acquired = threading.Event()

    def waiter():
        if l2.acquire(timeout=WAIT):
            acquired.set()

    th = threading.Thread(target=waiter, daemon=True)
    th.start()
    wait_until("the waiter's lock node", lambda: len(c1.get_children("/kazoo/lock")) == 2)
    assert not acquired.is_set()
    l1.release()
    assert acquired.wait(WAIT), "waiter not woken by release"
    th.join(WAIT)
    assert l1.contenders() == ["holder-2"], l1.contenders()
    l2.release()
    ok("lock")

    # Closing a session deletes its ephemerals, and c1's watch sees it.
    gone = threading.Event()
    c1.exists(eph, watch=lambda e: gone.set() if e.type == EventType.DELETED else None)
    c2.stop()
    c2.close()
    assert gone.wait(WAIT), "ephemeral of the closed session not deleted"
    c3 = client(hosts)
    assert c1.exists(eph) is None
    ok("session-close")

    # Counter recipe: optimistic read-modify-write with versions.
    counter = c1.Counter("/kazoo/counter")
    counter += 5
    counter -= 2
    assert counter.value == 3 and c1.get("/kazoo/counter")[0] == b"3", counter.value
    ok("counter")

    # Semaphore: two leases, the third contender waits.
    sems = [c.Semaphore("/kazoo/sem", identifier="s%d" % i, max_leases=2) for i, c in enumerate([c1, c1, c3])]
    assert sems[0].acquire(timeout=WAIT) and sems[1].acquire(timeout=WAIT)
    try:
        sems[2].acquire(timeout=0.5)
        raise AssertionError("a third semaphore lease was granted")
    except LockTimeout:
        pass
    assert sorted(sems[0].lease_holders()) == ["s0", "s1"], sems[0].lease_holders()
    sems[0].release()
    assert sems[2].acquire(timeout=WAIT)
    sems[1].release()
    sems[2].release()
    ok("semaphore")

    # LockingQueue: items by priority, taken (a lock node) then consumed
    # (a multi that deletes both).
    q = c1.LockingQueue("/kazoo/queue")
    q.put(b"low", priority=50)
    q.put(b"high", priority=10)
    assert len(q) == 2
    assert q.get(timeout=WAIT) == b"high"
    assert q.consume()
    assert q.get(timeout=WAIT) == b"low"
    assert q.consume()
    assert len(q) == 0
    ok("lockingqueue")

    # TreeCache follows a subtree through its watches.
    c1.ensure_path("/kazoo/tree/a")
    cache = TreeCache(c1, "/kazoo/tree")
    cache.start()

    def cached(path):
        node = cache.get_data(path)
        return node.data if node is not None else None

    wait_until("TreeCache initial", lambda: cache.get_children("/kazoo/tree") == frozenset(["a"]))
    c3.create("/kazoo/tree/a/b", b"tb")
    wait_until("TreeCache create", lambda: cached("/kazoo/tree/a/b") == b"tb")
    c3.set("/kazoo/tree/a/b", b"tb2")
    wait_until("TreeCache set", lambda: cached("/kazoo/tree/a/b") == b"tb2")
    c3.delete("/kazoo/tree/a/b")
    wait_until("TreeCache delete", lambda: cached("/kazoo/tree/a/b") is None)
    cache.close()
    c1.delete("/kazoo/tree", recursive=True)
    ok("treecache")

    c3.stop()
    c3.close()
    c1.delete("/kazoo/kids", recursive=True)
    assert c1.exists("/kazoo/kids") is None
    c1.sync("/kazoo")
    c1.create("/kazoo/left", b"from-kazoo")
    c1.stop()
    c1.close()
    ok("done")
    print("KAZOO-ALL-OK", flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception:  # noqa: BLE001 - report everything, exit non-zero
        traceback.print_exc()
        sys.stdout.flush()
        sys.exit(1)
    sys.exit(0)
