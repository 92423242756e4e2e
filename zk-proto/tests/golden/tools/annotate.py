#!/usr/bin/env python3
"""Print a human-readable index of a golden transcript.

    annotate.py TRANSCRIPT [OPLOG]

For every frame line of TRANSCRIPT ("C <hex>" / "S <hex>", '#' lines are
comments) prints its 1-based line number in the file, the direction and a
decoding of the frame header (xid, opcode, path / zxid, error code, watcher
event).  OPLOG ("<xid> <label>" per line, written by GoldenDriver) adds the
driver's label to each request.  Exits non-zero on a malformed line, on a
reply whose xid does not match an outstanding request, or if the transcript
disagrees with OPLOG about which xids were used.  Python 3 stdlib only.
"""

import struct
import sys

OPS = {
    0: "notification", 1: "create", 2: "delete", 3: "exists", 4: "getData",
    5: "setData", 6: "getACL", 7: "setACL", 8: "getChildren", 9: "sync",
    11: "ping", 12: "getChildren2", 13: "check", 14: "multi", 15: "create2",
    16: "reconfig", 17: "checkWatches", 18: "removeWatches",
    19: "createContainer", 20: "deleteContainer", 21: "createTTL",
    22: "multiRead", 100: "auth", 101: "setWatches", 102: "sasl",
    103: "getEphemerals", 104: "getAllChildrenNumber", 105: "setWatches2",
    106: "addWatch", 107: "whoAmI", -10: "createSession", -11: "closeSession",
    -1: "error",
}
# Requests whose body starts with a ustring path.
PATH_OPS = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 17, 18, 19, 21, 103, 104, 106}
ERRS = {
    0: "OK", -1: "SystemError", -2: "RuntimeInconsistency", -3: "DataInconsistency",
    -4: "ConnectionLoss", -5: "MarshallingError", -6: "Unimplemented",
    -7: "OperationTimeout", -8: "BadArguments", -13: "NewConfigNoQuorum",
    -14: "ReconfigInProgress", -15: "UnknownSession", -100: "APIError",
    -101: "NoNode", -102: "NoAuth", -103: "BadVersion",
    -108: "NoChildrenForEphemerals", -110: "NodeExists", -111: "NotEmpty",
    -112: "SessionExpired", -113: "InvalidCallback", -114: "InvalidACL",
    -115: "AuthFailed", -118: "SessionMoved", -119: "NotReadOnly",
    -120: "EphemeralOnLocalSession", -121: "NoWatcher",
    -122: "RequestTimeout", -123: "ReconfigDisabled", -124: "SessionClosedRequireSasl",
    -125: "QuotaExceeded", -127: "ThrottledOp",
}
EVENTS = {-1: "None", 1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged",
          4: "NodeChildrenChanged", 5: "DataWatchRemoved", 6: "ChildWatchRemoved",
          7: "PersistentWatchRemoved"}
SPECIAL_XIDS = {-1: "watcher-event", -2: "ping", -4: "auth", -8: "setWatches"}


def ustring(buf, off):
    (n,) = struct.unpack_from(">i", buf, off)
    off += 4
    if n < 0:
        return None, off
    return buf[off:off + n].decode("utf-8", "replace"), off + n


def hexs(v):
    return "0x%x" % v if v >= 0 else str(v)


def err_name(code):
    return "%d %s" % (code, ERRS.get(code, "?"))


def main():
    if len(sys.argv) not in (2, 3):
        sys.stderr.write(__doc__)
        return 2
    labels = {}
    if len(sys.argv) == 3:
        with open(sys.argv[2]) as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    xid, label = line.split(" ", 1)
                    labels[int(xid)] = label

    bad = 0
    pending = {}
    seen_xids = []
    first = {"C": True, "S": True}
    with open(sys.argv[1]) as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            tag, _, hx = line.partition(" ")
            if tag not in ("C", "S"):
                print("L%d: malformed line" % lineno)
                bad += 1
                continue
            buf = bytes.fromhex(hx)
            if first[tag]:
                first[tag] = False
                if tag == "C":
                    pv, lz, to, sid = struct.unpack_from(">iqiq", buf, 0)
                    (pl,) = struct.unpack_from(">i", buf, 24)
                    ro = "readOnly=%d" % buf[28 + pl] if len(buf) > 28 + pl else "no readOnly byte"
                    print("L%-4d C ConnectRequest protocolVersion=%d lastZxidSeen=0x%x timeout=%d "
                          "sessionId=0x%x passwd=%d bytes %s (%d bytes)"
                          % (lineno, pv, lz, to, sid, pl, ro, len(buf)))
                else:
                    pv, to, sid = struct.unpack_from(">iiq", buf, 0)
                    (pl,) = struct.unpack_from(">i", buf, 16)
                    ro = "readOnly=%d" % buf[20 + pl] if len(buf) > 20 + pl else "no readOnly byte"
                    print("L%-4d S ConnectResponse protocolVersion=%d timeout=%d sessionId=0x%x "
                          "passwd=%d bytes %s (%d bytes)" % (lineno, pv, to, sid, pl, ro, len(buf)))
                continue
            if tag == "C":
                xid, op = struct.unpack_from(">ii", buf, 0)
                desc = OPS.get(op, "op%d" % op)
                extra = ""
                if op in PATH_OPS and len(buf) >= 12:
                    path, _ = ustring(buf, 8)
                    extra = " path=%s" % path
                elif op == 100:
                    (atype,) = struct.unpack_from(">i", buf, 8)
                    scheme, _ = ustring(buf, 12)
                    extra = " type=%d scheme=%s" % (atype, scheme)
                if xid > 0:
                    seen_xids.append(xid)
                label = labels.get(xid, SPECIAL_XIDS.get(xid, "")) if xid > 0 else SPECIAL_XIDS.get(xid, "")
                pending[xid] = desc
                print("L%-4d C xid=%d op=%d %s%s (%d bytes)%s"
                      % (lineno, xid, op, desc, extra, len(buf), "  # " + label if label else ""))
            else:
                xid, zxid, err = struct.unpack_from(">iqi", buf, 0)
                if xid == -1:
                    etype, state = struct.unpack_from(">ii", buf, 16)
                    path, _ = ustring(buf, 24)
                    print("L%-4d S xid=-1 zxid=%s err=%s WatcherEvent type=%d %s state=%d path=%s (%d bytes)"
                          % (lineno, hexs(zxid), err_name(err), etype, EVENTS.get(etype, "?"), state, path, len(buf)))
                    continue
                if xid not in pending:
                    print("L%-4d S xid=%d has no outstanding request" % (lineno, xid))
                    bad += 1
                    continue
                desc = pending.pop(xid)
                print("L%-4d S xid=%d zxid=0x%x err=%s reply to %s (%d bytes)"
                      % (lineno, xid, zxid, err_name(err), desc, len(buf)))
    if labels and sorted(labels) != seen_xids:
        print("xid mismatch: oplog %s vs transcript %s" % (sorted(labels), seen_xids))
        bad += 1
    if pending:
        print("requests without reply: %s" % sorted(pending))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
