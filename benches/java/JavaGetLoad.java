// Pipelined getData load from Apache ZooKeeper's own Java client (async
// API), for benches/client_compare.rs. Usage:
//   java -cp <zookeeper jars>:. JavaGetLoad <connect> <sessions> <inflight> <warmupSecs> <secs> <path>
// Prints one line: ops=<n> secs=<s> p50_us=<> p99_us=<> p999_us=<>
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.AsyncCallback;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

public class JavaGetLoad {
    static final class Session {
        final ZooKeeper zk;
        final Semaphore slots;
        long[] lat = new long[1 << 16];
        int n = 0;
        volatile boolean recording = false;

        Session(ZooKeeper zk, int inflight) {
            this.zk = zk;
            this.slots = new Semaphore(inflight);
        }

        // Called from this session's single event thread only.
        void record(long micros) {
            if (!recording) return;
            if (n == lat.length) lat = Arrays.copyOf(lat, n * 2);
            lat[n++] = micros;
        }
    }

    public static void main(String[] args) throws Exception {
        String connect = args[0];
        int sessions = Integer.parseInt(args[1]);
        int inflight = Integer.parseInt(args[2]);
        int warmup = Integer.parseInt(args[3]);
        int secs = Integer.parseInt(args[4]);
        String path = args[5];
        Session[] all = new Session[sessions];
        for (int i = 0; i < sessions; i++) {
            CountDownLatch up = new CountDownLatch(1);
            ZooKeeper zk = new ZooKeeper(connect, 30000, e -> {
                if (e.getState() == Watcher.Event.KeeperState.SyncConnected) up.countDown();
            });
            if (!up.await(30, TimeUnit.SECONDS)) throw new IllegalStateException("no connection");
            all[i] = new Session(zk, inflight);
        }
        long start = System.nanoTime();
        long recordFrom = start + TimeUnit.SECONDS.toNanos(warmup);
        long end = recordFrom + TimeUnit.SECONDS.toNanos(secs);
        Thread[] drivers = new Thread[sessions];
        for (int i = 0; i < sessions; i++) {
            final Session s = all[i];
            drivers[i] = new Thread(() -> {
                AsyncCallback.DataCallback cb = (rc, p, ctx, data, stat) -> {
                    if (rc != 0) throw new IllegalStateException("getData failed: " + rc);
                    s.record((System.nanoTime() - (Long) ctx) / 1000);
                    s.slots.release();
                };
                try {
                    while (System.nanoTime() < end) {
                        s.slots.acquire();
                        long now = System.nanoTime();
                        if (!s.recording && now >= recordFrom) s.recording = true;
                        s.zk.getData(path, false, cb, now);
                    }
                    s.slots.acquire(inflight);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            drivers[i].start();
        }
        for (Thread t : drivers) t.join();
        int total = 0;
        for (Session s : all) total += s.n;
        long[] merged = new long[total];
        int at = 0;
        for (Session s : all) {
            System.arraycopy(s.lat, 0, merged, at, s.n);
            at += s.n;
        }
        Arrays.sort(merged);
        for (Session s : all) s.zk.close();
        System.out.printf("ops=%d secs=%d p50_us=%d p99_us=%d p999_us=%d%n", total, secs,
            pct(merged, 0.50), pct(merged, 0.99), pct(merged, 0.999));
    }

    static long pct(long[] sorted, double q) {
        if (sorted.length == 0) return 0;
        return sorted[Math.min(sorted.length - 1, (int) (q * sorted.length))];
    }
}
