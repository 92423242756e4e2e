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
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.framework.state.ConnectionStateListener;
import org.apache.curator.retry.ExponentialBackoffRetry;

public class CuratorPeer {
    public static void main(String[] args) throws Exception {
        CuratorFramework client = CuratorFrameworkFactory.builder()
            .connectString(args[1])
            .sessionTimeoutMs(10000)
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
            InterProcessMutex lock = new InterProcessMutex(client, args[2]);
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
        } else {
            String id = args[3];
            LeaderLatch latch = new LeaderLatch(client, args[2], id);
            latch.addListener(new LeaderLatchListener() {
                public void isLeader() { System.out.println("LEADER " + id); System.out.flush(); }
                public void notLeader() { System.out.println("FOLLOWER " + id); System.out.flush(); }
            });
            latch.start();
            System.out.println("STARTED " + id);
            System.out.flush();
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
