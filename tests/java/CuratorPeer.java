// A Java Curator 5 peer for tests/curator_interop.rs: contends for the same
// InterProcessMutex or LeaderLatch as Rust processes, on the same path.
//
//   java CuratorPeer mutex <connect> <lockPath> <counterPath> <rounds>
//     prints "SESSION <id>" (its session id, decimal) once connected, then
//     acquires the lock <rounds> times, each time reading the counter node,
//     adding one and writing it back WITHOUT a version check (only mutual
//     exclusion keeps the count exact) and printing "ACQ <value written>";
//     prints "DONE".
//   java CuratorPeer failover <connect> <lockPath> <counterPath> <rounds>
//     as mutex, pausing 20 ms between rounds (so that they span a server's
//     death), printing "STATE <state>" on every connection state change and
//     "SESSION-END <id>" before "DONE".
//   java CuratorPeer lock <kind> <connect> <lockPath> <counterPath> <rounds>
//     as mutex, with another lock type: kind is rwwrite (the write side of
//     an InterProcessReadWriteLock), semmutex (InterProcessSemaphoreMutex)
//     or multi (an InterProcessMultiLock over the comma-separated paths
//     of <lockPath>).
//   java CuratorPeer semaphore <connect> <path> <maxLeases> <insidePath> <rounds>
//     takes a lease of an InterProcessSemaphoreV2 <rounds> times; while
//     holding it, creates an ephemeral java-<n> node under <insidePath>,
//     lists <insidePath> and prints "SEEN <names>" (comma-separated),
//     then deletes its node and returns the lease; prints "DONE".
//   java CuratorPeer sharedcount <connect> <path> <rounds>
//     prints "STARTED", waits for a line "go" on stdin, then
//     increments a SharedCount (seed 0) <rounds> times by trySetCount,
//     printing "SET <value written>" for each; prints "DONE".
//   java CuratorPeer atomiclong <connect> <path> <rounds>
//     prints "STARTED", waits for "go" on stdin, then
//     increments a DistributedAtomicLong <rounds> times, printing
//     "INC <post value>" for each success and "FAIL" otherwise; "DONE".
//   java CuratorPeer barrier <connect> <path>
//     prints "WAITING", waits on a DistributedBarrier, prints
//     "PASSED <epoch ms>".
//   java CuratorPeer doublebarrier <connect> <path> <members>
//     prints "JOINING", enters a DistributedDoubleBarrier ("ENTERED <epoch
//     ms>"), leaves ("LEFT <epoch ms>").
//   java CuratorPeer queues <connect>
//     for each kind (plain, id, priority, delay, simple) puts j0..j9 into
//     /iq/<kind>-j2r (id: id "id-<i>"; priority: 9-i; delay: even items
//     500 ms ahead) and prints "PRODUCED"; on a line "consume" starts a
//     lock-safe consumer (lock path /iq/<kind>-r2j-locks) on each
//     /iq/<kind>-r2j and on /iq/mixed, printing "GOT <kind> <item>" per
//     item, then "CONSUMING"; on "close" closes them and prints "CLOSED".
//   java CuratorPeer discovery <connect> <basePath>
//     registers a ServiceInstance<String> of "java-svc" (id "java-1",
//     address "10.9.8.7", port 7000, payload "from-java") and prints
//     "REGISTERED"; then, for each line "query <name>" on stdin, prints
//     "INSTANCE <id> <address> <port> <payload>" for each instance of the
//     service and "END"; on "provider <name>" prints "PICK <id>" for six
//     round-robin picks of a ServiceProvider and "END"; "close" closes.
//   java CuratorPeer groupmember <connect> <path> <id>
//     joins a GroupMember with payload "payload-<id>" and prints "JOINED";
//     on "list" prints "MEMBERS <id>=<payload>,..." (sorted by id); on
//     "close" leaves and prints "CLOSED".
//   java CuratorPeer latch <connect> <latchPath> <id>
//     joins the LeaderLatch and prints "LEADER <id>" / "FOLLOWER <id>" on
//     every change; a line "close" on stdin closes the latch and exits.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.locks.InterProcessLock;
import org.apache.curator.framework.recipes.locks.InterProcessMultiLock;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreMutex;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import java.util.Map;
import java.util.TreeMap;
import org.apache.curator.framework.recipes.nodes.GroupMember;
import org.apache.curator.framework.recipes.queue.DistributedDelayQueue;
import org.apache.curator.framework.recipes.queue.DistributedIdQueue;
import org.apache.curator.framework.recipes.queue.DistributedPriorityQueue;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.recipes.queue.SimpleDistributedQueue;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceProvider;
import org.apache.curator.x.discovery.strategies.RoundRobinStrategy;
import org.apache.zookeeper.CreateMode;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.framework.state.ConnectionStateListener;
import org.apache.curator.retry.ExponentialBackoffRetry;

public class CuratorPeer {
    static void out(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static InterProcessLock makeLock(String kind, CuratorFramework client, String path) {
        switch (kind) {
            case "mutex": return new InterProcessMutex(client, path);
            case "rwwrite": return new InterProcessReadWriteLock(client, path).writeLock();
            case "semmutex": return new InterProcessSemaphoreMutex(client, path);
            case "multi": return new InterProcessMultiLock(client, Arrays.asList(path.split(",")));
            default: throw new IllegalArgumentException(kind);
        }
    }

    // Blocks until a line "go" on stdin: both sides start together.
    // One reader for every waitForGo: a second reader could miss what the
    // first had already buffered.
    static final BufferedReader GO = new BufferedReader(new InputStreamReader(System.in));

    static void waitForGo() throws Exception {
        String line;
        while ((line = GO.readLine()) != null && !line.equals("go")) { }
    }

    static final QueueSerializer<String> STRINGS = new QueueSerializer<String>() {
        public byte[] serialize(String item) { return item.getBytes(StandardCharsets.UTF_8); }
        public String deserialize(byte[] bytes) { return new String(bytes, StandardCharsets.UTF_8); }
    };

    static QueueConsumer<String> printer(final String kind) {
        return new QueueConsumer<String>() {
            public void consumeMessage(String item) { out("GOT " + kind + " " + item); }
            public void stateChanged(CuratorFramework c, ConnectionState s) { }
        };
    }

    static QueueBuilder<String> builder(CuratorFramework client, QueueConsumer<String> consumer, String path) {
        return QueueBuilder.builder(client, consumer, STRINGS, path).putInBackground(false);
    }

    static void queues(CuratorFramework client) throws Exception {
        DistributedQueue<String> plain = builder(client, null, "/iq/plain-j2r").buildQueue();
        DistributedIdQueue<String> id = builder(client, null, "/iq/id-j2r").buildIdQueue();
        DistributedPriorityQueue<String> prio = builder(client, null, "/iq/priority-j2r").buildPriorityQueue(0);
        DistributedDelayQueue<String> delay = builder(client, null, "/iq/delay-j2r").buildDelayQueue();
        SimpleDistributedQueue simple = new SimpleDistributedQueue(client, "/iq/simple-j2r");
        plain.start(); id.start(); prio.start(); delay.start();
        long now = System.currentTimeMillis();
        for (int i = 0; i < 10; i++) {
            String item = "j" + i;
            plain.put(item);
            id.put(item, "id-" + i);
            prio.put(item, 9 - i);
            delay.put(item, (i % 2 == 0) ? now + 500 : now);
            simple.offer(item.getBytes(StandardCharsets.UTF_8));
        }
        plain.close(); id.close(); prio.close(); delay.close();
        out("PRODUCED");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null && !line.equals("consume")) { }
        List<java.io.Closeable> open = new ArrayList<>();
        DistributedQueue<String> q1 = builder(client, printer("plain"), "/iq/plain-r2j").lockPath("/iq/plain-r2j-locks").buildQueue();
        DistributedIdQueue<String> q2 = builder(client, printer("id"), "/iq/id-r2j").lockPath("/iq/id-r2j-locks").buildIdQueue();
        DistributedPriorityQueue<String> q3 = builder(client, printer("priority"), "/iq/priority-r2j").lockPath("/iq/priority-r2j-locks").buildPriorityQueue(0);
        DistributedDelayQueue<String> q4 = builder(client, printer("delay"), "/iq/delay-r2j").lockPath("/iq/delay-r2j-locks").buildDelayQueue();
        DistributedQueue<String> q5 = builder(client, printer("mixed"), "/iq/mixed").lockPath("/iq/mixed-locks").buildQueue();
        q1.start(); q2.start(); q3.start(); q4.start(); q5.start();
        open.add(q1); open.add(q2); open.add(q3); open.add(q4); open.add(q5);
        final SimpleDistributedQueue sq = new SimpleDistributedQueue(client, "/iq/simple-r2j");
        Thread t = new Thread(() -> {
            try {
                while (true) {
                    byte[] b = sq.poll(100, TimeUnit.MILLISECONDS);
                    if (b != null) out("GOT simple " + new String(b, StandardCharsets.UTF_8));
                }
            } catch (Exception e) { }
        });
        t.setDaemon(true);
        t.start();
        out("CONSUMING");
        while ((line = in.readLine()) != null && !line.equals("close")) { }
        t.interrupt();
        for (java.io.Closeable c : open) c.close();
        out("CLOSED");
    }

    static void discovery(CuratorFramework client, String base) throws Exception {
        ServiceInstance<String> me = ServiceInstance.<String>builder()
            .name("java-svc").id("java-1").address("10.9.8.7").port(7000).payload("from-java").build();
        ServiceDiscovery<String> d = ServiceDiscoveryBuilder.builder(String.class)
            .client(client).basePath(base).thisInstance(me).build();
        d.start();
        out("REGISTERED");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null && !line.equals("close")) {
            if (line.startsWith("query ")) {
                for (ServiceInstance<String> i : d.queryForInstances(line.substring(6))) {
                    out("INSTANCE " + i.getId() + " " + i.getAddress() + " " + i.getPort() + " " + i.getPayload());
                }
                out("END");
            } else if (line.startsWith("provider ")) {
                ServiceProvider<String> p = d.serviceProviderBuilder().serviceName(line.substring(9))
                    .providerStrategy(new RoundRobinStrategy<String>()).build();
                p.start();
                for (int k = 0; k < 6; k++) {
                    ServiceInstance<String> i = p.getInstance();
                    out("PICK " + (i == null ? "none" : i.getId()));
                }
                p.close();
                out("END");
            }
        }
        d.close();
        out("CLOSED");
    }

    public static void main(String[] args) throws Exception {
        String kind = "mutex";
        if (args[0].equals("lock")) {
            kind = args[1];
            args = Arrays.copyOfRange(args, 1, args.length);
            args[0] = "mutex";
        }
        CuratorFramework client = CuratorFrameworkFactory.builder()
            .connectString(args[1])
            .sessionTimeoutMs(args[0].equals("failover") ? 30000 : 10000)
            .connectionTimeoutMs(10000)
            .retryPolicy(new ExponentialBackoffRetry(50, 5))
            .build();
        client.start();
        if (!client.blockUntilConnected(20, TimeUnit.SECONDS)) {
            throw new IllegalStateException("not connected");
        }
        boolean failover = args[0].equals("failover");
        if (failover) {
            client.getConnectionStateListenable().addListener(new ConnectionStateListener() {
                public void stateChanged(CuratorFramework c, ConnectionState state) {
                    System.out.println("STATE " + state);
                    System.out.flush();
                }
            });
        }
        if (args[0].equals("mutex") || failover) {
            InterProcessLock lock = makeLock(kind, client, args[2]);
            int rounds = Integer.parseInt(args[4]);
            // The test waits for a lock node owned by this session before
            // its own rounds start: proof that Java is contending.
            System.out.println("SESSION " + client.getZookeeperClient().getZooKeeper().getSessionId());
            System.out.flush();
            for (int i = 0; i < rounds; i++) {
                if (!lock.acquire(60, TimeUnit.SECONDS)) throw new IllegalStateException("lock timeout");
                try {
                    byte[] data = client.getData().forPath(args[3]);
                    long n = Long.parseLong(new String(data, StandardCharsets.UTF_8));
                    client.setData().forPath(args[3], Long.toString(n + 1).getBytes(StandardCharsets.UTF_8));
                    System.out.println("ACQ " + (n + 1));
                    System.out.flush();
                } finally {
                    lock.release();
                }
                if (failover) Thread.sleep(20);
            }
            if (failover) {
                System.out.println("SESSION-END " + client.getZookeeperClient().getZooKeeper().getSessionId());
            }
            System.out.println("DONE");
            System.out.flush();
        } else if (args[0].equals("groupmember")) {
            GroupMember member = new GroupMember(client, args[2], args[3],
                ("payload-" + args[3]).getBytes(StandardCharsets.UTF_8));
            member.start();
            out("JOINED");
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
            String line;
            while ((line = in.readLine()) != null && !line.equals("close")) {
                if (line.equals("list")) {
                    StringBuilder sb = new StringBuilder();
                    for (Map.Entry<String, byte[]> e : new TreeMap<>(member.getCurrentMembers()).entrySet()) {
                        if (sb.length() > 0) sb.append(',');
                        sb.append(e.getKey()).append('=').append(new String(e.getValue(), StandardCharsets.UTF_8));
                    }
                    out("MEMBERS " + sb);
                }
            }
            member.close();
            out("CLOSED");
        } else if (args[0].equals("discovery")) {
            discovery(client, args[2]);
        } else if (args[0].equals("queues")) {
            queues(client);
        } else if (args[0].equals("semaphore")) {
            InterProcessSemaphoreV2 sem = new InterProcessSemaphoreV2(client, args[2], Integer.parseInt(args[3]));
            String inside = args[4];
            int rounds = Integer.parseInt(args[5]);
            out("SESSION " + client.getZookeeperClient().getZooKeeper().getSessionId());
            for (int i = 0; i < rounds; i++) {
                Lease lease = sem.acquire(60, TimeUnit.SECONDS);
                if (lease == null) throw new IllegalStateException("lease timeout");
                String me = client.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL)
                    .forPath(inside + "/java-" + i);
                List<String> seen = client.getChildren().forPath(inside);
                // The first holding waits for a Rust holder to be inside
                // too (the test starts its Rust holders once Java is in).
                long deadline = System.currentTimeMillis() + 60000;
                while (i == 0 && seen.stream().noneMatch(n -> n.startsWith("rust"))) {
                    if (System.currentTimeMillis() > deadline) throw new IllegalStateException("no Rust holder");
                    Thread.sleep(5);
                    seen = client.getChildren().forPath(inside);
                }
                out("SEEN " + String.join(",", seen));
                Thread.sleep(10);
                client.delete().forPath(me);
                sem.returnLease(lease);
            }
            out("DONE");
        } else if (args[0].equals("sharedcount")) {
            SharedCount count = new SharedCount(client, args[2], 0);
            count.start();
            int rounds = Integer.parseInt(args[3]);
            out("STARTED");
            waitForGo();
            for (int i = 0; i < rounds; i++) {
                Thread.sleep(2);
                while (true) {
                    VersionedValue<Integer> v = count.getVersionedValue();
                    if (count.trySetCount(v, v.getValue() + 1)) {
                        out("SET " + (v.getValue() + 1));
                        break;
                    }
                }
                if (i == 4) { out("PAUSED"); waitForGo(); }
            }
            count.close();
            out("DONE");
        } else if (args[0].equals("atomiclong")) {
            DistributedAtomicLong n = new DistributedAtomicLong(client, args[2], new RetryNTimes(1000, 1));
            int rounds = Integer.parseInt(args[3]);
            out("STARTED");
            waitForGo();
            for (int i = 0; i < rounds; i++) {
                Thread.sleep(2);
                AtomicValue<Long> r = n.increment();
                out(r.succeeded() ? "INC " + r.postValue() : "FAIL");
                if (i == 4) { out("PAUSED"); waitForGo(); }
            }
            out("DONE");
        } else if (args[0].equals("barrier")) {
            DistributedBarrier b = new DistributedBarrier(client, args[2]);
            out("WAITING");
            if (!b.waitOnBarrier(60, TimeUnit.SECONDS)) throw new IllegalStateException("barrier timeout");
            out("PASSED " + System.currentTimeMillis());
        } else if (args[0].equals("doublebarrier")) {
            DistributedDoubleBarrier b = new DistributedDoubleBarrier(client, args[2], Integer.parseInt(args[3]));
            out("JOINING");
            if (!b.enter(60, TimeUnit.SECONDS)) throw new IllegalStateException("enter timeout");
            out("ENTERED " + System.currentTimeMillis());
            if (!b.leave(60, TimeUnit.SECONDS)) throw new IllegalStateException("leave timeout");
            out("LEFT " + System.currentTimeMillis());
        } else {
            String id = args[3];
            LeaderLatch latch = new LeaderLatch(client, args[2], id);
            latch.addListener(new LeaderLatchListener() {
                public void isLeader() { System.out.println("LEADER " + id); System.out.flush(); }
                public void notLeader() { System.out.println("FOLLOWER " + id); System.out.flush(); }
            });
            // Printed before start(): the listener may print LEADER on
            // Curator's thread as soon as start() has handed the work over.
            System.out.println("STARTED " + id);
            System.out.flush();
            latch.start();
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
            String line;
            while ((line = in.readLine()) != null && !line.equals("close")) { }
            latch.close(LeaderLatch.CloseMode.NOTIFY_LEADER);
            System.out.println("CLOSED " + id);
        }
        client.close();
        System.out.flush();
    }
}
