#!/usr/bin/env python3
"""Recording TCP proxy for the ZooKeeper client protocol.

Listens on 127.0.0.1:<listen-port>, forwards every accepted connection to
127.0.0.1:<upstream-port>, and splits both directions into ZooKeeper frames
(4-byte big-endian length prefix followed by that many payload bytes).

Every frame is appended to a per-connection transcript file as one line:

    C <hex payload>     client -> server
    S <hex payload>     server -> client

The hex is lowercase and does NOT include the 4-byte length prefix.

Frames are written to the transcript *before* they are forwarded, under a
single lock shared by both directions of a connection, so a request line
always precedes the reply it provokes.  Only complete frames are forwarded.

Transcript naming: --out is a path template; "{n}" is replaced by the
1-based number of the accepted connection.  Without "{n}" the first
connection writes to --out itself and later ones to "<out>.<n>".

Python 3 standard library only.  Stops on SIGTERM/SIGINT, after
--max-conns connections have finished, or after --lifetime seconds.
"""

import argparse
import os
import signal
import socket
import struct
import sys
import threading
import time

MAX_FRAME = 64 * 1024 * 1024  # anything larger is not a sane ZooKeeper frame


def log(msg):
    sys.stderr.write("record_proxy: %s\n" % msg)
    sys.stderr.flush()


class Session:
    """One proxied connection: client socket, upstream socket, transcript."""

    def __init__(self, n, client, upstream, path):
        self.n = n
        self.client = client
        self.upstream = upstream
        self.path = path
        self.lock = threading.Lock()
        self.out = open(path, "w", encoding="ascii")
        self.closed = False
        self.frames = {"C": 0, "S": 0}

    def pump(self, src, dst, tag):
        buf = bytearray()
        raw_mode = False
        try:
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    break
                if raw_mode:
                    with self.lock:
                        if self.closed:
                            return
                        dst.sendall(data)
                    continue
                buf += data
                while len(buf) >= 4:
                    (length,) = struct.unpack(">i", bytes(buf[:4]))
                    if length < 0 or length > MAX_FRAME:
                        # Not ZooKeeper framing (e.g. a four-letter word);
                        # stop framing and pass bytes through unlogged.
                        log("conn %d %s: bad frame length %d, passing raw"
                            % (self.n, tag, length))
                        raw_mode = True
                        with self.lock:
                            if self.closed:
                                return
                            self.out.write("# %s raw-passthrough-from-here\n" % tag)
                            self.out.flush()
                            dst.sendall(bytes(buf))
                        buf.clear()
                        break
                    if len(buf) < 4 + length:
                        break
                    frame = bytes(buf[: 4 + length])
                    del buf[: 4 + length]
                    with self.lock:
                        if self.closed:
                            return
                        # Log first, then forward: the peer cannot answer a
                        # frame it has not received yet.
                        self.out.write("%s %s\n" % (tag, frame[4:].hex()))
                        self.out.flush()
                        self.frames[tag] += 1
                        dst.sendall(frame)
        except (OSError, ValueError) as e:
            log("conn %d %s: %s" % (self.n, tag, e))
        finally:
            if buf:
                log("conn %d %s: %d trailing bytes of an incomplete frame dropped"
                    % (self.n, tag, len(buf)))
            # Propagate the half-close to the other side.
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def run(self):
        t_cs = threading.Thread(target=self.pump,
                                args=(self.client, self.upstream, "C"), daemon=True)
        t_sc = threading.Thread(target=self.pump,
                                args=(self.upstream, self.client, "S"), daemon=True)
        t_cs.start()
        t_sc.start()
        t_cs.join()
        t_sc.join()
        self.close()

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
            for s in (self.client, self.upstream):
                try:
                    s.close()
                except OSError:
                    pass
            self.out.close()
        log("conn %d closed: %d client frames, %d server frames -> %s"
            % (self.n, self.frames["C"], self.frames["S"], self.path))


def transcript_path(template, n):
    if "{n}" in template:
        return template.replace("{n}", str(n))
    return template if n == 1 else "%s.%d" % (template, n)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen-port", type=int, default=0,
                    help="port on 127.0.0.1 to listen on (0 = pick a free one)")
    ap.add_argument("--upstream-port", type=int, required=True,
                    help="port of the real ZooKeeper server on 127.0.0.1")
    ap.add_argument("--out", required=True,
                    help="transcript path template ({n} = connection number)")
    ap.add_argument("--port-file",
                    help="write the actual listening port here once ready")
    ap.add_argument("--max-conns", type=int, default=0,
                    help="exit after this many connections finished (0 = no limit)")
    ap.add_argument("--lifetime", type=float, default=300.0,
                    help="hard upper bound on the proxy's run time in seconds")
    args = ap.parse_args()

    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", args.listen_port))
    lsock.listen(8)
    lsock.settimeout(0.2)
    port = lsock.getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    log("listening on 127.0.0.1:%d -> 127.0.0.1:%d" % (port, args.upstream_port))

    deadline = time.monotonic() + args.lifetime
    sessions = []
    threads = []
    accepted = 0
    while not stop.is_set():
        if time.monotonic() > deadline:
            log("lifetime exceeded, stopping")
            break
        if args.max_conns and accepted >= args.max_conns:
            if all(not t.is_alive() for t in threads):
                break
            time.sleep(0.05)
            continue
        try:
            csock, addr = lsock.accept()
        except socket.timeout:
            continue
        except OSError:
            break
        accepted += 1
        csock.settimeout(None)
        try:
            usock = socket.create_connection(("127.0.0.1", args.upstream_port), timeout=5)
            usock.settimeout(None)
        except OSError as e:
            log("conn %d: cannot reach upstream: %s" % (accepted, e))
            csock.close()
            continue
        for s in (csock, usock):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sess = Session(accepted, csock, usock, transcript_path(args.out, accepted))
        log("conn %d accepted from %s:%d" % (accepted, addr[0], addr[1]))
        t = threading.Thread(target=sess.run, daemon=True)
        t.start()
        sessions.append(sess)
        threads.append(t)

    lsock.close()
    # Give live connections a moment to drain, then cut them.
    end = time.monotonic() + 2.0
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    for s in sessions:
        for sock in (s.client, s.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    for t in threads:
        t.join(1.0)
    for s in sessions:
        s.close()
    log("stopped after %d connection(s)" % accepted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
