/* MiniYarn: a one-node YARN cluster (Hadoop's MiniYARNCluster) for the integration tests that run
 * Spark on YARN. Writes the client configuration of the started cluster (core-site.xml,
 * yarn-site.xml) into the directory it is given, prints one line starting "MINIYARN READY", and
 * stops when its stdin ends or on SIGTERM.
 *
 *   java -cp <hadoop-client-minicluster, hadoop-client-api, hadoop-client-runtime, ...>:<dir> \
 *        MiniYarn <hadoop conf dir to write> [memory MiB] [vcores]
 *
 * Run it in the directory its work files (the NodeManager's local and log dirs) should go under. */

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;
import org.apache.hadoop.yarn.server.resourcemanager.rmnode.RMNode;

public final class MiniYarn {
    private static final String[] CLIENT_KEYS = {
        YarnConfiguration.RM_ADDRESS,
        YarnConfiguration.RM_SCHEDULER_ADDRESS,
        YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS,
        YarnConfiguration.RM_ADMIN_ADDRESS,
        YarnConfiguration.RM_WEBAPP_ADDRESS,
        YarnConfiguration.NM_WEBAPP_ADDRESS,
        YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB,
        YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_MB,
    };

    private MiniYarn() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: MiniYarn <hadoop conf dir> [memory MiB] [vcores]");
            System.exit(2);
        }
        File confDir = new File(args[0]);
        int memoryMb = args.length > 1 ? Integer.parseInt(args[1]) : 8192;
        int vcores = args.length > 2 ? Integer.parseInt(args[2]) : 8;

        YarnConfiguration conf = new YarnConfiguration();
        conf.set("fs.defaultFS", "file:///");
        conf.setInt(YarnConfiguration.NM_PMEM_MB, memoryMb);
        conf.setInt(YarnConfiguration.NM_VCORES, vcores);
        conf.setInt(YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB, 256);
        conf.setInt(YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_MB, memoryMb);
        conf.setInt(YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_VCORES, vcores);
        // A shared test machine: the JVMs' virtual and physical sizes are not this cluster's
        // business, and a nearly full disk must not mark the only node unhealthy.
        conf.setBoolean(YarnConfiguration.NM_VMEM_CHECK_ENABLED, false);
        conf.setBoolean(YarnConfiguration.NM_PMEM_CHECK_ENABLED, false);
        conf.setFloat(YarnConfiguration.NM_MAX_PER_DISK_UTILIZATION_PERCENTAGE, 100.0f);
        conf.setLong(YarnConfiguration.NM_MIN_PER_DISK_FREE_SPACE_MB, 0);
        // The CapacityScheduler with one queue (the minicluster jar ships no
        // capacity-scheduler.xml); application masters may take half the cluster (the default
        // tenth would queue the second of two applications running at once).
        conf.set("yarn.scheduler.capacity.root.queues", "default");
        conf.setFloat("yarn.scheduler.capacity.root.default.capacity", 100.0f);
        conf.setFloat("yarn.scheduler.capacity.maximum-am-resource-percent", 0.5f);
        // Containers are released at once when an application ends.
        conf.setInt(YarnConfiguration.DEBUG_NM_DELETE_DELAY_SEC, 0);

        MiniYARNCluster cluster = new MiniYARNCluster("mini-yarn", 1, 1, 1);
        AtomicBoolean stopped = new AtomicBoolean();
        Runnable stop = () -> {
            if (stopped.compareAndSet(false, true)) {
                cluster.stop();
                System.out.println("MINIYARN STOPPED");
                System.out.flush();
            }
        };
        Runtime.getRuntime().addShutdownHook(new Thread(stop, "miniyarn-stop"));
        cluster.init(conf);
        cluster.start();
        String nodeWeb = waitForNodeManager(cluster);

        Configuration started = cluster.getConfig();
        Configuration yarnSite = new Configuration(false);
        for (String key : CLIENT_KEYS) {
            String value = key.equals(YarnConfiguration.NM_WEBAPP_ADDRESS) ? nodeWeb : started.get(key);
            if (value != null)
                yarnSite.set(key, value);
        }
        Configuration coreSite = new Configuration(false);
        coreSite.set("fs.defaultFS", "file:///");
        confDir.mkdirs();
        writeAtomically(yarnSite, new File(confDir, "yarn-site.xml"));
        writeAtomically(coreSite, new File(confDir, "core-site.xml"));

        System.out.println("MINIYARN READY rm=" + yarnSite.get(YarnConfiguration.RM_ADDRESS)
                           + " rm-web=" + yarnSite.get(YarnConfiguration.RM_WEBAPP_ADDRESS)
                           + " nm-web=" + yarnSite.get(YarnConfiguration.NM_WEBAPP_ADDRESS));
        System.out.flush();

        // Until whoever started us closes our stdin (or dies, which closes it too).
        byte[] buf = new byte[256];
        while (System.in.read(buf) >= 0) {
            // input means nothing; only its end does
        }
        stop.run();
        System.exit(0);
    }

    /* The NodeManager registers with the ResourceManager after start() returns: until then no
     * container can be placed. Returns its web address as the ResourceManager knows it (its
     * configuration only says port 0). */
    private static String waitForNodeManager(MiniYARNCluster cluster) throws InterruptedException {
        long deadline = System.nanoTime() + 60_000_000_000L;
        for (;;) {
            for (RMNode node : cluster.getResourceManager().getRMContext().getRMNodes().values())
                return node.getHttpAddress();
            if (System.nanoTime() > deadline)
                throw new IllegalStateException("the NodeManager did not register within 60 s");
            Thread.sleep(100);
        }
    }

    private static void writeAtomically(Configuration conf, File target) throws IOException {
        File tmp = new File(target.getPath() + ".tmp");
        try (OutputStream out = new FileOutputStream(tmp)) {
            conf.writeXml(out);
        }
        Files.move(tmp.toPath(), target.toPath(), StandardCopyOption.REPLACE_EXISTING,
                   StandardCopyOption.ATOMIC_MOVE);
    }
}
