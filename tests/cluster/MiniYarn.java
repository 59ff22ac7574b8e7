/* MiniYarn: a one-node YARN cluster for the integration tests that run Spark on YARN: a
 * ResourceManager (Hadoop's MiniYARNCluster, without NodeManagers) in this JVM and one NodeManager
 * in a child JVM of its own. Two JVMs, because the web services of both (Jersey under Guice) share
 * one static filter pipeline per JVM: in one JVM the ResourceManager's REST API
 * (/ws/v1/cluster/...) would answer with the NodeManager's routes.
 * Writes the client configuration of the started cluster (core-site.xml, yarn-site.xml) into the
 * directory it is given, prints one line starting "MINIYARN READY", and stops when its stdin ends
 * or on SIGTERM (the NodeManager with it: its stdin is a pipe from us).
 *
 *   java --add-opens java.base/java.lang=ALL-UNNAMED -cp <jars>:<classes> \
 *        MiniYarn <hadoop conf dir to write> [memory MiB] [vcores]
 *
 * Run it in the directory its work files (the NodeManager's local and log dirs) should go under. */

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;
import org.apache.hadoop.yarn.server.nodemanager.NodeManager;
import org.apache.hadoop.yarn.server.resourcemanager.rmnode.RMNode;

public final class MiniYarn {
    /* What a client (Spark, the tests) needs to know of the cluster. */
    private static final String[] CLIENT_KEYS = {
        YarnConfiguration.RM_ADDRESS,
        YarnConfiguration.RM_SCHEDULER_ADDRESS,
        YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS,
        YarnConfiguration.RM_ADMIN_ADDRESS,
        YarnConfiguration.RM_WEBAPP_ADDRESS,
        YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB,
        YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_MB,
    };
    private static final long NODE_REGISTRATION_TIMEOUT_S = 120;

    private MiniYarn() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length >= 2 && args[0].equals("--nodemanager")) {
            runNodeManager(new File(args[1]));
            return;
        }
        if (args.length < 1) {
            System.err.println("usage: MiniYarn <hadoop conf dir> [memory MiB] [vcores]");
            System.exit(2);
        }
        File confDir = new File(args[0]).getAbsoluteFile();
        int memoryMb = args.length > 1 ? Integer.parseInt(args[1]) : 8192;
        int vcores = args.length > 2 ? Integer.parseInt(args[2]) : 8;

        YarnConfiguration conf = new YarnConfiguration();
        conf.set("fs.defaultFS", "file:///");
        conf.setInt(YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB, 256);
        conf.setInt(YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_MB, memoryMb);
        conf.setInt(YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_VCORES, vcores);
        // The CapacityScheduler with one queue (the minicluster jar ships no
        // capacity-scheduler.xml); application masters may take half the cluster (the default
        // tenth would queue the second of two applications running at once).
        conf.set("yarn.scheduler.capacity.root.queues", "default");
        conf.setFloat("yarn.scheduler.capacity.root.default.capacity", 100.0f);
        conf.setFloat("yarn.scheduler.capacity.maximum-am-resource-percent", 0.5f);

        MiniYARNCluster cluster = new MiniYARNCluster("mini-yarn", 1, 0, 1, 1);
        Process[] nodeManager = new Process[1];
        AtomicBoolean stopped = new AtomicBoolean();
        Runnable stop = () -> {
            if (!stopped.compareAndSet(false, true))
                return;
            stopNodeManager(nodeManager[0]);
            cluster.stop();
            System.out.println("MINIYARN STOPPED");
            System.out.flush();
        };
        Runtime.getRuntime().addShutdownHook(new Thread(stop, "miniyarn-stop"));
        cluster.init(conf);
        cluster.start();

        Configuration started = cluster.getConfig();
        Configuration yarnSite = new Configuration(false);
        for (String key : CLIENT_KEYS)
            yarnSite.set(key, started.get(key));
        Configuration coreSite = new Configuration(false);
        coreSite.set("fs.defaultFS", "file:///");

        // The NodeManager's own configuration, beside the client's.
        File work = new File("nodemanager").getAbsoluteFile();
        Configuration nmSite = new Configuration(false);
        nmSite.set(YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS,
                   started.get(YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS));
        nmSite.set(YarnConfiguration.NM_ADDRESS, "localhost:0");
        nmSite.set(YarnConfiguration.NM_LOCALIZER_ADDRESS, "localhost:0");
        nmSite.set(YarnConfiguration.NM_WEBAPP_ADDRESS, "localhost:0");
        nmSite.set(YarnConfiguration.NM_LOCAL_DIRS, new File(work, "local").getPath());
        nmSite.set(YarnConfiguration.NM_LOG_DIRS, new File(work, "logs").getPath());
        nmSite.set(YarnConfiguration.NM_REMOTE_APP_LOG_DIR, new File(work, "remote-logs").getPath());
        nmSite.setInt(YarnConfiguration.NM_PMEM_MB, memoryMb);
        nmSite.setInt(YarnConfiguration.NM_VCORES, vcores);
        // A shared test machine: the JVMs' virtual and physical sizes are not this cluster's
        // business, and a nearly full disk must not mark the only node unhealthy.
        nmSite.setBoolean(YarnConfiguration.NM_VMEM_CHECK_ENABLED, false);
        nmSite.setBoolean(YarnConfiguration.NM_PMEM_CHECK_ENABLED, false);
        nmSite.setFloat(YarnConfiguration.NM_MAX_PER_DISK_UTILIZATION_PERCENTAGE, 100.0f);
        nmSite.setLong(YarnConfiguration.NM_MIN_PER_DISK_FREE_SPACE_MB, 0);
        // An ended application's files go at once.
        nmSite.setInt(YarnConfiguration.DEBUG_NM_DELETE_DELAY_SEC, 0);
        nmSite.set("fs.defaultFS", "file:///");
        work.mkdirs();
        File nmConf = new File(work, "nodemanager-site.xml");
        writeAtomically(nmSite, nmConf);
        nodeManager[0] = startNodeManager(nmConf);

        String nodeWeb = waitForNodeManager(cluster, nodeManager[0]);
        yarnSite.set(YarnConfiguration.NM_WEBAPP_ADDRESS, nodeWeb);
        confDir.mkdirs();
        writeAtomically(yarnSite, new File(confDir, "yarn-site.xml"));
        writeAtomically(coreSite, new File(confDir, "core-site.xml"));

        System.out.println("MINIYARN READY rm=" + yarnSite.get(YarnConfiguration.RM_ADDRESS)
                           + " rm-web=" + yarnSite.get(YarnConfiguration.RM_WEBAPP_ADDRESS)
                           + " nm-web=" + nodeWeb);
        System.out.flush();

        // Until whoever started us closes our stdin (or dies, which closes it too).
        drain(System.in);
        stop.run();
        System.exit(0);
    }

    /* The child JVM: one NodeManager, configured by the file the parent wrote, until its stdin
     * (a pipe from the parent) ends. */
    private static void runNodeManager(File siteFile) throws Exception {
        YarnConfiguration conf = new YarnConfiguration();
        conf.addResource(new org.apache.hadoop.fs.Path(siteFile.toURI()));
        NodeManager nm = new NodeManager();
        AtomicBoolean stopped = new AtomicBoolean();
        Runnable stop = () -> {
            if (stopped.compareAndSet(false, true))
                nm.stop();
        };
        Runtime.getRuntime().addShutdownHook(new Thread(stop, "nodemanager-stop"));
        nm.init(conf);
        nm.start();
        drain(System.in);
        stop.run();
        System.exit(0);
    }

    private static Process startNodeManager(File siteFile) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(new File(System.getProperty("java.home"), "bin/java").getPath());
        cmd.add("--add-opens");
        cmd.add("java.base/java.lang=ALL-UNNAMED");
        cmd.add("-Xmx384m");
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(MiniYarn.class.getName());
        cmd.add("--nodemanager");
        cmd.add(siteFile.getPath());
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.redirectOutput(ProcessBuilder.Redirect.INHERIT);
        pb.redirectError(ProcessBuilder.Redirect.INHERIT);
        pb.redirectInput(ProcessBuilder.Redirect.PIPE);
        return pb.start();
    }

    private static void stopNodeManager(Process nm) {
        if (nm == null)
            return;
        try {
            nm.getOutputStream().close();
            if (!nm.waitFor(60, TimeUnit.SECONDS)) {
                nm.destroy();
                if (!nm.waitFor(10, TimeUnit.SECONDS))
                    nm.destroyForcibly().waitFor();
            }
        } catch (IOException | InterruptedException e) {
            nm.destroyForcibly();
        }
    }

    /* The NodeManager registers with the ResourceManager once it is up: until then no container
     * can be placed. Returns its web address as the ResourceManager knows it (its configuration
     * only says port 0). */
    private static String waitForNodeManager(MiniYARNCluster cluster, Process nm)
        throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(NODE_REGISTRATION_TIMEOUT_S);
        for (;;) {
            for (RMNode node : cluster.getResourceManager().getRMContext().getRMNodes().values())
                return node.getHttpAddress();
            if (!nm.isAlive())
                throw new IllegalStateException("the NodeManager exited with status " + nm.exitValue());
            if (System.nanoTime() > deadline)
                throw new IllegalStateException("the NodeManager did not register within "
                                                + NODE_REGISTRATION_TIMEOUT_S + " s");
            Thread.sleep(100);
        }
    }

    private static void drain(InputStream in) throws IOException {
        byte[] buf = new byte[256];
        while (in.read(buf) >= 0) {
            // input means nothing; only its end does
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
