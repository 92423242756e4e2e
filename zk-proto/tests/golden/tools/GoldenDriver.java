// Golden-transcript driver: runs a fixed, deterministic sequence of
// ZooKeeper operations through the Java client (Apache ZooKeeper 3.8) so
// that record_proxy.py can capture the exact wire bytes.
//
// Usage: java -cp <zookeeper jars>:<dir> GoldenDriver <host:port> <oplog>
//
// All calls are synchronous, so every request consumes the next xid
// (1, 2, 3, ...) in program order.  Each xid-consuming request is written
// to <oplog> as "<xid> <label>" so the transcript can be annotated.
// The auth packet (xid -4), pings (xid -2) and watcher events (xid -1)
// do not consume xids.

import java.io.FileWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.KeeperException.Code;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.Watcher.Event.EventType;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.client.ZKClientConfig;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.server.auth.DigestAuthenticationProvider;

@SuppressWarnings("unchecked")
public class GoldenDriver {

    private interface Step {
        Object run() throws Exception;
    }

    private static PrintWriter opLog;
    private static int nextXid = 1;
    private static final BlockingQueue<WatchedEvent> events = new LinkedBlockingQueue<>();
    private static final CountDownLatch connected = new CountDownLatch(1);

    private static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** Record the label of the request that is about to consume the next xid. */
    private static void op(String label) {
        opLog.printf("%d %s%n", nextXid, label);
        opLog.flush();
        System.out.printf("xid %2d  %s%n", nextXid, label);
        nextXid++;
    }

    private static Object ok(String label, Step s) throws Exception {
        op(label);
        return s.run();
    }

    private static void fails(String label, Code expected, Step s) throws Exception {
        op(label + " -> expect " + expected);
        try {
            s.run();
        } catch (KeeperException e) {
            if (e.code() != expected) {
                throw new IllegalStateException(label + ": expected " + expected + " got " + e.code(), e);
            }
            return;
        }
        throw new IllegalStateException(label + ": expected " + expected + " but succeeded");
    }

    private static void awaitEvent(EventType type, String path) throws InterruptedException {
        WatchedEvent e = events.poll(10, TimeUnit.SECONDS);
        if (e == null) {
            throw new IllegalStateException("no watcher event, wanted " + type + " " + path);
        }
        if (e.getType() != type || !path.equals(e.getPath())) {
            throw new IllegalStateException("unexpected event " + e + ", wanted " + type + " " + path);
        }
        System.out.printf("        event %s %s%n", type, path);
    }

    private static void check(boolean cond, String what) {
        if (!cond) {
            throw new IllegalStateException("check failed: " + what);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: GoldenDriver <host:port> <oplog>");
            System.exit(2);
        }
        opLog = new PrintWriter(new FileWriter(args[1]));

        Watcher defaultWatcher = event -> {
            if (event.getType() == EventType.None) {
                if (event.getState() == KeeperState.SyncConnected) {
                    connected.countDown();
                }
                return;
            }
            switch (event.getType()) {
                case NodeCreated:
                case NodeDeleted:
                case NodeDataChanged:
                case NodeChildrenChanged:
                    events.add(event); // only events that travel over the wire
                    break;
                default:
                    break; // local *WatchRemoved notifications
            }
        };

        ZKClientConfig cfg = new ZKClientConfig();
        cfg.setProperty(ZKClientConfig.ENABLE_CLIENT_SASL_KEY, "false");
        final ZooKeeper zk = new ZooKeeper(args[0], 10000, defaultWatcher, cfg);
        check(connected.await(15, TimeUnit.SECONDS), "connected");
        System.out.printf("connected, session 0x%x timeout %d%n", zk.getSessionId(), zk.getSessionTimeout());

        final List<ACL> open = ZooDefs.Ids.OPEN_ACL_UNSAFE;
        final Stat stat = new Stat();

        ok("create /golden \"hello\" PERSISTENT (op 1 create)",
                () -> zk.create("/golden", b("hello"), open, CreateMode.PERSISTENT));
        ok("create2 /golden/c2 \"c2\" PERSISTENT with Stat (op 15 create2)",
                () -> zk.create("/golden/c2", b("c2"), open, CreateMode.PERSISTENT, new Stat()));
        ok("create /golden/nulldata null data (op 1 create)",
                () -> zk.create("/golden/nulldata", null, open, CreateMode.PERSISTENT));
        String seq = (String) ok("create /golden/seq- EPHEMERAL_SEQUENTIAL \"eph\" (op 1 create)",
                () -> zk.create("/golden/seq-", b("eph"), open, CreateMode.EPHEMERAL_SEQUENTIAL));
        check(seq.equals("/golden/seq-0000000002"), "sequential name " + seq);
        ok("create /golden-container CONTAINER (op 19 createContainer)",
                () -> zk.create("/golden-container", b("box"), open, CreateMode.CONTAINER));
        ok("create /golden/ttl PERSISTENT_WITH_TTL ttl=60000 (op 21 createTTL)",
                () -> zk.create("/golden/ttl", b("ttl"), open, CreateMode.PERSISTENT_WITH_TTL, new Stat(), 60000L));

        ok("exists /golden watch=true (op 3 exists)", () -> zk.exists("/golden", true));
        Object missing = ok("exists /missing watch=true (op 3 exists; NoNode reply, leaves exists-watch)",
                () -> zk.exists("/missing", true));
        check(missing == null, "exists /missing is null");
        ok("getData /golden watch=true (op 4 getData)", () -> zk.getData("/golden", true, stat));
        ok("setData /golden \"world\" version=-1 (op 5 setData; NodeDataChanged event precedes reply)",
                () -> zk.setData("/golden", b("world"), -1));
        awaitEvent(EventType.NodeDataChanged, "/golden");
        fails("setData /golden \"bad\" version=99 (op 5 setData)", Code.BADVERSION,
                () -> zk.setData("/golden", b("bad"), 99));
        fails("getData /missing watch=false (op 4 getData)", Code.NONODE,
                () -> zk.getData("/missing", false, null));
        ok("getChildren /golden watch=false (op 8 getChildren)", () -> zk.getChildren("/golden", false));
        ok("getChildren2 /golden watch=true with Stat (op 12 getChildren2)",
                () -> zk.getChildren("/golden", true, new Stat()));
        ok("create /golden/child \"kid\" (op 1 create; NodeChildrenChanged event precedes reply)",
                () -> zk.create("/golden/child", b("kid"), open, CreateMode.PERSISTENT));
        awaitEvent(EventType.NodeChildrenChanged, "/golden");
        ok("getACL /golden (op 6 getACL)", () -> zk.getACL("/golden", new Stat()));
        final List<ACL> digestAcl = Collections.singletonList(new ACL(ZooDefs.Perms.ALL,
                new Id("digest", DigestAuthenticationProvider.generateDigest("user:pass"))));
        ok("setACL /golden/c2 digest:user:<sha1>:cdrwa version=-1 (op 7 setACL)",
                () -> zk.setACL("/golden/c2", digestAcl, -1));
        fails("getData /golden/c2 before auth (op 4 getData)", Code.NOAUTH,
                () -> zk.getData("/golden/c2", false, null));

        // addAuthInfo is fire-and-forget (xid -4, no xid consumed).  Pause so
        // the auth reply is on the wire before the next request is sent,
        // which keeps the transcript's line order deterministic.
        System.out.println("xid -4  addAuthInfo digest user:pass (op 100 auth)");
        zk.addAuthInfo("digest", b("user:pass"));
        Thread.sleep(500);

        ok("getData /golden/c2 after auth (op 4 getData)", () -> zk.getData("/golden/c2", false, null));

        ok("multi OK: create /golden/m \"m0\", setData /golden/m \"m1\" -1, check /golden/m v1, delete /golden/m v1 (op 14 multi)",
                () -> zk.multi(Arrays.asList(
                        Op.create("/golden/m", b("m0"), open, CreateMode.PERSISTENT),
                        Op.setData("/golden/m", b("m1"), -1),
                        Op.check("/golden/m", 1),
                        Op.delete("/golden/m", 1))));
        op("multi FAIL: create /golden/mfail, check /golden v99, setData /golden/nulldata -1 (op 14 multi) -> expect BADVERSION");
        try {
            zk.multi(Arrays.asList(
                    Op.create("/golden/mfail", b("x"), open, CreateMode.PERSISTENT),
                    Op.check("/golden", 99),
                    Op.setData("/golden/nulldata", b("x"), -1)));
            throw new IllegalStateException("failing multi succeeded");
        } catch (KeeperException e) {
            check(e.code() == Code.BADVERSION, "multi failure code " + e.code());
            List<OpResult> r = e.getResults();
            check(r.size() == 3, "multi failure result count");
            System.out.println("        results " + codes(r));
        }
        List<OpResult> mr = (List<OpResult>) ok("multiRead OK: getData /golden, getChildren /golden (op 22 multiRead)",
                () -> zk.multi(Arrays.asList(Op.getData("/golden"), Op.getChildren("/golden"))));
        check(mr.size() == 2, "multiRead result count");
        // The 3.8 client does not throw for a failed multiRead sub-op; the
        // failure comes back as an ErrorResult inside a successful reply.
        List<OpResult> mp = (List<OpResult>) ok("multiRead partial: getData /golden/child, getData /missing (op 22 multiRead; 2nd result is error NoNode)",
                () -> zk.multi(Arrays.asList(Op.getData("/golden/child"), Op.getData("/missing"))));
        check(mp.size() == 2 && mp.get(1) instanceof OpResult.ErrorResult
                && ((OpResult.ErrorResult) mp.get(1)).getErr() == Code.NONODE.intValue(), "multiRead partial " + codes(mp));
        System.out.println("        results " + codes(mp));

        op("sync /golden (op 9 sync)");
        final CountDownLatch synced = new CountDownLatch(1);
        final AtomicInteger syncRc = new AtomicInteger(-999);
        zk.sync("/golden", (rc, path, ctx) -> {
            syncRc.set(rc);
            synced.countDown();
        }, null);
        check(synced.await(10, TimeUnit.SECONDS) && syncRc.get() == 0, "sync rc " + syncRc.get());

        List<String> eph = (List<String>) ok("getEphemerals prefix \"/\" (op 103 getEphemerals)", () -> zk.getEphemerals());
        check(eph.equals(Collections.singletonList(seq)), "ephemerals " + eph);
        int n = (Integer) ok("getAllChildrenNumber /golden (op 104 getAllChildrenNumber)",
                () -> zk.getAllChildrenNumber("/golden"));
        check(n == 5, "all children number " + n);

        ok("addWatch /golden-container PERSISTENT (op 106 addWatch, mode 0)",
                () -> { zk.addWatch("/golden-container", AddWatchMode.PERSISTENT); return null; });
        ok("addWatch /golden PERSISTENT_RECURSIVE (op 106 addWatch, mode 1)",
                () -> { zk.addWatch("/golden", AddWatchMode.PERSISTENT_RECURSIVE); return null; });
        ok("setData /golden-container \"pw\" -1 (op 5 setData; persistent-watch NodeDataChanged event precedes reply)",
                () -> zk.setData("/golden-container", b("pw"), -1));
        awaitEvent(EventType.NodeDataChanged, "/golden-container");
        ok("create /golden/rec \"r\" (op 1 create; recursive-watch NodeCreated event precedes reply)",
                () -> zk.create("/golden/rec", b("r"), open, CreateMode.PERSISTENT));
        awaitEvent(EventType.NodeCreated, "/golden/rec");

        final Watcher specific = event -> { };
        ok("exists /golden/nulldata with a specific Watcher object (op 3 exists)",
                () -> zk.exists("/golden/nulldata", specific));
        ok("removeWatches /golden/nulldata that watcher, type Data (op 17 checkWatches)",
                () -> { zk.removeWatches("/golden/nulldata", specific, Watcher.WatcherType.Data, false); return null; });
        ok("removeAllWatches /golden-container type Any (op 18 removeWatches)",
                () -> { zk.removeAllWatches("/golden-container", Watcher.WatcherType.Any, false); return null; });
        ok("removeAllWatches /golden type Any (op 18 removeWatches)",
                () -> { zk.removeAllWatches("/golden", Watcher.WatcherType.Any, false); return null; });

        List<ClientInfo> who = (List<ClientInfo>) ok("whoAmI (op 107 whoAmI)", () -> zk.whoAmI());
        System.out.println("        whoAmI " + who);

        ok("delete /golden/child version=0 (op 2 delete)", () -> { zk.delete("/golden/child", 0); return null; });
        fails("delete /golden version=-1 (op 2 delete)", Code.NOTEMPTY,
                () -> { zk.delete("/golden", -1); return null; });
        fails("create /golden \"again\" (op 1 create)", Code.NODEEXISTS,
                () -> zk.create("/golden", b("again"), open, CreateMode.PERSISTENT));

        check(events.isEmpty(), "no unexpected watcher events: " + events);
        op("close (op -11 closeSession)");
        zk.close();
        opLog.close();
        System.out.println("done");
    }

    private static String codes(List<OpResult> results) {
        StringBuilder sb = new StringBuilder("[");
        for (OpResult r : results) {
            if (sb.length() > 1) {
                sb.append(", ");
            }
            if (r instanceof OpResult.ErrorResult) {
                sb.append("error ").append(((OpResult.ErrorResult) r).getErr());
            } else {
                sb.append(r.getClass().getSimpleName());
            }
        }
        return sb.append(']').toString();
    }
}
