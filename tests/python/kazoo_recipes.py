"""A kazoo peer for tests/kazoo_interop.rs: kazoo's recipes on the same
paths as the Rust ones.

  kazoo_recipes.py lock <hosts> <path> <counter> <rounds> <id>
      takes kazoo's Lock <rounds> times, each time adding one to the
      counter node (read, then write without a version check) and printing
      "ACQ <value written>"; prints "DONE".
  kazoo_recipes.py party <hosts> <path> <id>
      joins a Party at <path>/deep and a ShallowParty at <path>/shallow,
      prints "JOINED"; on "list" prints "PARTY <ids>" and "SHALLOW <ids>"
      (sorted, comma-separated); on "leave" leaves both and prints "LEFT".
  kazoo_recipes.py partitioner <hosts> <path> <id> <items> <boundary>
      runs a SetPartitioner over the comma-separated items, printing
      "ACQUIRED <items>" (sorted) each time it acquires and releasing on
      RELEASE; on "finish" finishes and prints "FINISHED".
  kazoo_recipes.py lease <hosts> <path> <id> <seconds>
      prints "LEASE True" or "LEASE False" (NonBlockingLease).
"""
import datetime
import sys
import threading

from kazoo.client import KazooClient


def out(line):
    print(line, flush=True)


def main():
    mode, hosts = sys.argv[1], sys.argv[2]
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=30)
    try:
        if mode == "lock":
            path, counter, rounds, ident = sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
            lock = zk.Lock(path, ident)
            out("STARTED")
            for _ in range(rounds):
                with lock:
                    n = int(zk.get(counter)[0].decode())
                    zk.set(counter, str(n + 1).encode())
                    out("ACQ %d" % (n + 1))
            out("DONE")
        elif mode == "party":
            path, ident = sys.argv[3], sys.argv[4]
            deep = zk.Party(path + "/deep", ident)
            shallow = zk.ShallowParty(path + "/shallow", ident)
            deep.join()
            shallow.join()
            out("JOINED")
            for line in sys.stdin:
                line = line.strip()
                if line == "list":
                    out("PARTY " + ",".join(sorted(deep)))
                    out("SHALLOW " + ",".join(sorted(shallow)))
                elif line == "leave":
                    deep.leave()
                    shallow.leave()
                    out("LEFT")
                    break
        elif mode == "partitioner":
            path, ident, items, boundary = sys.argv[3], sys.argv[4], sys.argv[5].split(","), float(sys.argv[6])
            finish = threading.Event()

            def read_stdin():
                for line in sys.stdin:
                    if line.strip() == "finish":
                        finish.set()
                        return

            threading.Thread(target=read_stdin, daemon=True).start()
            p = zk.SetPartitioner(path, set=items, identifier=ident, time_boundary=boundary)
            announced = None
            while not finish.is_set():
                if p.failed:
                    out("FAILED")
                    return
                elif p.release:
                    announced = None
                    p.release_set()
                elif p.acquired:
                    mine = ",".join(sorted(p))
                    if mine != announced:
                        out("ACQUIRED " + mine)
                        announced = mine
                    finish.wait(0.05)
                elif p.allocating:
                    p.wait_for_acquire(0.2)
            p.finish()
            out("FINISHED")
        elif mode == "lease":
            path, ident, secs = sys.argv[3], sys.argv[4], int(sys.argv[5])
            lease = zk.NonBlockingLease(path, datetime.timedelta(seconds=secs), identifier=ident)
            out("LEASE %s" % bool(lease))
    finally:
        zk.stop()
        zk.close()


if __name__ == "__main__":
    main()
