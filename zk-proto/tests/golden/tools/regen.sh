#!/usr/bin/env bash
# Regenerate the golden ZooKeeper wire vectors in zk-proto/tests/golden/.
#
#   bash zk-proto/tests/golden/tools/regen.sh
#
# Needs: Debian's zookeeper / libzookeeper-java (3.8) jars in /usr/share/java,
# java + javac (17), python3, and optionally /usr/lib/zookeeper/bin/cli_mt
# (zookeeper-bin).  Everything runs on 127.0.0.1 from a temp dir; every
# process started here is stopped by the EXIT trap.
set -euo pipefail

TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GOLDEN="$(dirname "$TOOLS")"
J=/usr/share/java
ZK_CP="$J/zookeeper.jar:$J/zookeeper-jute.jar:$J/slf4j-api.jar"
SERVER_CP="$ZK_CP:$J/slf4j-simple.jar"   # zookeeper.jar's manifest pulls in the rest
CLIENT_CP="$ZK_CP:$J/slf4j-nop.jar"
CLI_MT=/usr/lib/zookeeper/bin/cli_mt

WORK="$(mktemp -d /tmp/zk-golden.XXXXXX)"
SERVER_PID=""
PROXY_PID=""

log() { echo "regen: $*" >&2; }

stop_pid() { # stop_pid <pid>: TERM, wait up to 10 s, then KILL
    local pid="$1" i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    stop_pid "$PROXY_PID"; PROXY_PID=""
    stop_pid "$SERVER_PID"; SERVER_PID=""
    if [ $rc -ne 0 ]; then
        log "FAILED (rc=$rc); logs:"
        for f in "$WORK"/*.log; do
            [ -f "$f" ] && { echo "----- $f" >&2; tail -n 40 "$f" >&2; }
        done
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

four_letter() { # four_letter <port> <cmd>: print the server's answer (empty on failure)
    python3 - "$1" "$2" <<'EOF' 2>/dev/null || true
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(sys.argv[2].encode())
out = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    out += d
sys.stdout.write(out.decode("utf-8", "replace"))
EOF
}

start_server() { # start_server <logname>
    # `timeout` is only a safety net; the trap stops the server long before.
    timeout --kill-after=5 300 java -cp "$SERVER_CP" \
        -Dzookeeper.extendedTypesEnabled=true \
        -Dzookeeper.admin.enableServer=false \
        -Dzookeeper.preAllocSize=1024 \
        -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
        -Xmx256m \
        org.apache.zookeeper.server.ZooKeeperServerMain "$WORK/zoo.cfg" \
        >"$WORK/$1.log" 2>&1 &
    SERVER_PID=$!
    local i
    for i in $(seq 1 150); do
        if [ "$(four_letter "$ZK_PORT" ruok)" = "imok" ]; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { log "server died"; return 1; }
        sleep 0.2
    done
    log "server did not answer ruok"
    return 1
}

start_proxy() { # start_proxy <transcript template>
    rm -f "$WORK/proxy.port"
    python3 "$TOOLS/record_proxy.py" --upstream-port "$ZK_PORT" --out "$1" \
        --port-file "$WORK/proxy.port" --lifetime 120 >>"$WORK/proxy.log" 2>&1 &
    PROXY_PID=$!
    local i
    for i in $(seq 1 100); do
        [ -s "$WORK/proxy.port" ] && { PROXY_PORT="$(cat "$WORK/proxy.port")"; return 0; }
        sleep 0.05
    done
    log "proxy did not start"
    return 1
}

write_transcript() { # write_transcript <raw> <dest> <header lines...>
    local raw="$1" dest="$2"
    shift 2
    {
        local l
        for l in "$@"; do echo "# $l"; done
        cat "$raw"
    } >"$dest.tmp"
    mv "$dest.tmp" "$dest"
}

# ---------------------------------------------------------------- build
log "work dir $WORK"
mkdir -p "$WORK/classes" "$WORK/data"
javac -nowarn -d "$WORK/classes" -cp "$ZK_CP" "$TOOLS/GoldenDriver.java"

# ---------------------------------------------------------------- server
ZK_PORT="$(free_port)"
cat >"$WORK/zoo.cfg" <<EOF
tickTime=2000
dataDir=$WORK/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=20
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
autopurge.purgeInterval=0
EOF
start_server server1
ZK_VERSION="$(four_letter "$ZK_PORT" srvr | sed -n 's/^Zookeeper version: //p')"
log "ZooKeeper $ZK_VERSION on 127.0.0.1:$ZK_PORT"
JAVA_VERSION="$(java -version 2>&1 | head -n1)"
DEB_VERSION="$(dpkg-query -W -f='${Version}' libzookeeper-java 2>/dev/null || echo unknown)"

# ---------------------------------------------------------------- Java client session
start_proxy "$WORK/java-{n}.txt"
log "proxy on 127.0.0.1:$PROXY_PORT, running GoldenDriver"
timeout --kill-after=5 90 java -cp "$CLIENT_CP:$WORK/classes" GoldenDriver \
    "127.0.0.1:$PROXY_PORT" "$WORK/ops.txt" >"$WORK/driver.log" 2>&1
sleep 0.5   # let the proxy see the server close the socket
stop_pid "$PROXY_PID"; PROXY_PID=""
[ -f "$WORK/java-1.txt" ] || { log "no transcript recorded"; exit 1; }
[ ! -e "$WORK/java-2.txt" ] || { log "client reconnected; transcript split, refusing"; exit 1; }

# ---------------------------------------------------------------- txn log
stop_pid "$SERVER_PID"; SERVER_PID=""
python3 - "$WORK/data/version-2" "$WORK/txnlog.bin" <<'EOF'
# Copy the (single) transaction log, cut after the final 0x42 end-of-record
# byte, i.e. without the zero preallocation; verify the record framing.
import glob, os, struct, sys, zlib
logs = sorted(glob.glob(os.path.join(sys.argv[1], "log.*")))
if len(logs) != 1:
    sys.exit("expected exactly one txn log, found %s" % logs)
data = open(logs[0], "rb").read()
magic, version, dbid = struct.unpack_from(">4siq", data, 0)
assert magic == b"ZKLG" and version == 2, (magic, version)
off, n = 16, 0
while off + 12 <= len(data):
    crc, length = struct.unpack_from(">qi", data, off)
    if length == 0:
        break
    body = data[off + 12: off + 12 + length]
    assert zlib.adler32(body) == crc, "checksum mismatch in record %d" % n
    assert data[off + 12 + length] == 0x42, "missing end-of-record byte in record %d" % n
    off += 12 + length + 1
    n += 1
assert not any(data[off:]), "non-zero bytes after the last record"
open(sys.argv[2], "wb").write(data[:off])
sys.stderr.write("regen: txn log %s: %d records, %d bytes kept\n" % (os.path.basename(logs[0]), n, off))
EOF

# ---------------------------------------------------------------- snapshot
# Restarting on the same data dir replays the log and writes a fresh snapshot
# named after the last zxid; that one holds the state after the session.
start_server server2
SNAP="$(python3 -c 'import glob,sys,os; f=glob.glob(sys.argv[1]+"/snapshot.*"); print(max(f, key=lambda p: int(p.rsplit(".",1)[1],16)))' "$WORK/data/version-2")"
log "snapshot $(basename "$SNAP")"
cp "$SNAP" "$WORK/snapshot.bin"

# ---------------------------------------------------------------- C client (cli_mt) session
HAVE_CLI=0
if [ -x "$CLI_MT" ]; then
    start_proxy "$WORK/cli-{n}.txt"
    log "running cli_mt through proxy 127.0.0.1:$PROXY_PORT"
    # cli_mt reads commands from stdin and quits on EOF; commands are
    # asynchronous, so pause after each one for the reply.
    { sleep 1.5; echo "create /cli-golden"; sleep 1; echo "get /cli-golden"; sleep 1; } |
        timeout --kill-after=5 20 "$CLI_MT" -h "127.0.0.1:$PROXY_PORT" >"$WORK/cli.log" 2>&1 || true
    sleep 0.5
    stop_pid "$PROXY_PID"; PROXY_PID=""
    if [ -s "$WORK/cli-1.txt" ] && [ ! -e "$WORK/cli-2.txt" ]; then
        HAVE_CLI=1
    else
        log "cli_mt transcript missing or split; skipping cli_mt_session.txt"
    fi
fi
stop_pid "$SERVER_PID"; SERVER_PID=""

# ---------------------------------------------------------------- outputs
python3 "$TOOLS/annotate.py" "$WORK/java-1.txt" "$WORK/ops.txt" >/dev/null || {
    log "transcript failed validation:"; python3 "$TOOLS/annotate.py" "$WORK/java-1.txt" "$WORK/ops.txt" >&2; exit 1; }

write_transcript "$WORK/java-1.txt" "$GOLDEN/client_session.txt" \
    "Golden ZooKeeper client<->server wire transcript (one TCP connection)." \
    "Server: Apache ZooKeeper $ZK_VERSION (Debian libzookeeper-java $DEB_VERSION), standalone, -Dzookeeper.extendedTypesEnabled=true." \
    "Client: org.apache.zookeeper.ZooKeeper (same jars) driven by tools/GoldenDriver.java; $JAVA_VERSION." \
    "Recorded by tools/record_proxy.py; regenerate with: bash zk-proto/tests/golden/tools/regen.sh" \
    "Format: 'C <hex>' = client->server frame, 'S <hex>' = server->client frame; hex is the" \
    "frame payload WITHOUT its 4-byte big-endian length prefix. Request lines precede their replies." \
    "Operation list and xids: see README.md and client_session.index.txt."
python3 "$TOOLS/annotate.py" "$GOLDEN/client_session.txt" "$WORK/ops.txt" >"$GOLDEN/client_session.index.txt"
cp "$WORK/txnlog.bin" "$GOLDEN/txnlog.bin"
cp "$WORK/snapshot.bin" "$GOLDEN/snapshot.bin"
if [ "$HAVE_CLI" = 1 ]; then
    write_transcript "$WORK/cli-1.txt" "$GOLDEN/cli_mt_session.txt" \
        "Golden ZooKeeper wire transcript from the C client: /usr/lib/zookeeper/bin/cli_mt (zookeeper-bin)." \
        "Server: Apache ZooKeeper $ZK_VERSION (Debian libzookeeper-java $DEB_VERSION), standalone (restarted on the data dir of client_session.txt)." \
        "stdin commands: 'create /cli-golden', 'get /cli-golden', then EOF (cli_mt closes the session)." \
        "Recorded by tools/record_proxy.py; regenerate with: bash zk-proto/tests/golden/tools/regen.sh" \
        "Format: 'C <hex>' = client->server, 'S <hex>' = server->client, payload without the 4-byte length prefix." \
        "Note: the C client seeds its xid counter from time(0), so xids differ between recordings."
    python3 "$TOOLS/annotate.py" "$GOLDEN/cli_mt_session.txt" >"$GOLDEN/cli_mt_session.index.txt" || true
fi
sed 's/^/  /' "$WORK/driver.log" >&2
log "wrote: $(cd "$GOLDEN" && ls -1 *.txt *.bin | tr '\n' ' ')"
