/* livy-supervisor: owns the REPL children of one Spark host for mod_livy.
 * Usage: livy-supervisor --config FILE [--foreground] [--migrate] [--database CONNINFO] */
#include "livy_db.h"
#include "sv.h"
#include "sv_auth.h"
#include "sv_identity.h"
#include "sv_log.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: livy-supervisor --config FILE [--foreground] [--migrate] "
            "[--database CONNINFO] [--user USER [--group GROUP]] | --version | --help\n"
            "  --config FILE        the configuration file (key = value lines)\n"
            "  --foreground         stay in the foreground (for systemd and the module)\n"
            "  --migrate            apply the SQL migrations, print the schema version, exit\n"
            "  --database CONNINFO  the libpq connection string (overrides `database`)\n"
            "  --user USER          started as root: the account to run as (overrides `user`)\n"
            "  --group GROUP        ... and its group (overrides `group`)\n"
            "  --version            print the version and the schema and protocol it speaks\n"
            "  --help               this text\n");
}

/* mkdir -p, 0750 for what it creates (run_dir: the supervisor's own files and the sessions'
 * directories, which only the supervisor may list). */
static int make_dirs(const char *path, apr_pool_t *p)
{
    char *copy = apr_pstrdup(p, path);
    for (char *c = copy + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        if (mkdir(copy, 0750) != 0 && errno != EEXIST)
            return -1;
        *c = '/';
    }
    if (mkdir(copy, 0750) != 0 && errno != EEXIST)
        return -1;
    return access(copy, W_OK | X_OK);
}

/* run_dir and run_dir/sessions, made (as root: for `user`) before privileges are dropped. */
static int prepare_run_dir(const sv_config_t *cfg, apr_pool_t *p, const char **errmsg)
{
    const char *sessions = apr_pstrcat(p, cfg->run_dir, "/sessions", NULL);
    if (make_dirs(cfg->run_dir, p) != 0 || (mkdir(sessions, 0700) != 0 && errno != EEXIST)) {
        *errmsg = apr_psprintf(p, "run_dir %s is not a writable directory: %s", cfg->run_dir,
                               strerror(errno));
        return -1;
    }
    if (geteuid() != 0 || !cfg->user)
        return 0;
    struct passwd *pw = getpwnam(cfg->user);
    struct group *gr = cfg->group ? getgrnam(cfg->group) : NULL;
    if (!pw || (cfg->group && !gr)) {
        *errmsg = apr_psprintf(p, "%s %s: no such account", pw ? "group" : "user",
                               pw ? cfg->group : cfg->user);
        return -1;
    }
    gid_t gid = gr ? gr->gr_gid : pw->pw_gid;
    /* Only the supervisor (and its group) may list it: the REPL's account never enters. The
     * modes first, while root still owns them: a root without CAP_FOWNER (a unit's bounding
     * set) may not chmod what it has given away. */
    if (chmod(cfg->run_dir, 0750) != 0 || chmod(sessions, 0700) != 0
        || chown(cfg->run_dir, pw->pw_uid, gid) != 0 || chown(sessions, pw->pw_uid, gid) != 0) {
        *errmsg = apr_psprintf(p, "cannot give run_dir %s to %s: %s", cfg->run_dir, cfg->user,
                               strerror(errno));
        return -1;
    }
    return 0;
}

static int migrate(const sv_config_t *cfg, apr_pool_t *p)
{
    const char *err;
    PGconn *conn = livy_db_connect(cfg->database, p, &err);
    if (!conn) {
        fprintf(stderr, "livy-supervisor: cannot connect to the database: %s\n", err);
        return 1;
    }
    int version = 0;
    int rc = livy_db_migrate(conn, cfg->sql_dir, p, &version, &err);
    PQfinish(conn);
    if (rc != 0) {
        fprintf(stderr, "livy-supervisor: migration failed (schema at version %d): %s\n", version,
                err);
        return 1;
    }
    printf("schema version %d\n", version);
    if (version < LIVY_SCHEMA_VERSION) {
        fprintf(stderr, "livy-supervisor: %s holds migrations up to version %d only; this build "
                "needs version %d\n", cfg->sql_dir, version, LIVY_SCHEMA_VERSION);
        return 1;
    }
    return 0;
}

/* Daemonizes: double fork and setsid. The original process waits until the daemon reports
 * on a pipe that it started (exit 0) or why it could not (exit 1, message on stderr).
 * Returns the write end of that pipe, in the daemon. */
static int daemonize(void)
{
    int report[2];
    if (pipe(report) != 0) {
        perror("livy-supervisor: pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("livy-supervisor: fork");
        exit(1);
    }
    if (pid > 0) {
        close(report[1]);
        char buf[4096];
        size_t got = 0;
        ssize_t n;
        while (got < sizeof buf - 1
               && ((n = read(report[0], buf + got, sizeof buf - 1 - got)) > 0
                   || (n < 0 && errno == EINTR)))
            if (n > 0)
                got += (size_t)n;
        buf[got] = '\0';
        int status;
        waitpid(pid, &status, 0); /* the intermediate process exits at once */
        if (got > 0 && buf[0] == '0')
            exit(0);
        fprintf(stderr, "livy-supervisor: %s\n",
                got > 1 ? buf + 1 : "the daemon exited during startup; see its log");
        exit(1);
    }
    close(report[0]);
    if (setsid() < 0)
        _exit(1);
    pid = fork();
    if (pid < 0)
        _exit(1);
    if (pid > 0)
        _exit(0);
    fcntl(report[1], F_SETFD, FD_CLOEXEC);
    if (chdir("/") != 0)
        _exit(1);
    umask(027);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        if (devnull > 2)
            close(devnull);
    }
    return report[1];
}

static void report_start(int fd, const char *errmsg)
{
    if (fd < 0)
        return;
    if (errmsg) {
        ssize_t w = write(fd, "1", 1);
        w = write(fd, errmsg, strlen(errmsg));
        (void)w;
    }
    else {
        ssize_t w = write(fd, "0", 1);
        (void)w;
    }
    close(fd);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"foreground", no_argument, NULL, 'f'},
        {"migrate", no_argument, NULL, 'm'},
        {"database", required_argument, NULL, 'd'},
        {"user", required_argument, NULL, 'u'},
        {"group", required_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *database = NULL, *user = NULL, *group = NULL;
    int foreground = 0, do_migrate = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:fmd:u:g:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'f': foreground = 1; break;
        case 'm': do_migrate = 1; break;
        case 'd': database = optarg; break;
        case 'u': user = optarg; break;
        case 'g': group = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V':
            printf("livy-supervisor %s (database schema version %d, REPL protocol %d)\n",
                   LIVY_PACKAGE_VERSION, LIVY_SCHEMA_VERSION, SV_AUTH_PROTOCOL);
            return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || (!config_path && !(do_migrate && database))) {
        usage(stderr);
        return 2;
    }

    apr_initialize();
    atexit(apr_terminate);
    sv_log_init();
    apr_pool_t *pool;
    apr_pool_create(&pool, NULL);
    sv_config_t *cfg = apr_pcalloc(pool, sizeof *cfg);
    sv_config_defaults(cfg, pool);
    const char *err;
    if (config_path && sv_config_load(cfg, config_path, pool, &err) != 0) {
        fprintf(stderr, "livy-supervisor: %s\n", err);
        return 1;
    }
    if (database)
        cfg->database = database;
    if (user)
        cfg->user = user;
    if (group)
        cfg->group = group;
    if (do_migrate) {
        if (!cfg->database) {
            fprintf(stderr, "livy-supervisor: no database: set `database` in %s or pass "
                    "--database\n", config_path);
            return 1;
        }
        return migrate(cfg, pool);
    }
    if (sv_config_check(cfg, pool, &err) != 0) {
        fprintf(stderr, "livy-supervisor: %s\n", err);
        return 1;
    }
    if (prepare_run_dir(cfg, pool, &err) != 0
        || sv_identity_drop(cfg->user, cfg->group, cfg->repl_isolation, pool, &err) != 0) {
        fprintf(stderr, "livy-supervisor: %s\n", err);
        return 1;
    }
    const char *missing;
    if (cfg->repl_isolation && !sv_identity_can_isolate(&missing, pool)) {
        fprintf(stderr, "livy-supervisor: starting REPLs under their own accounts needs %s: start "
                "the supervisor as root with `user` set (it keeps only what it needs), or grant "
                "them to it (systemd: AmbientCapabilities=); `repl_isolation = off` is for "
                "single-user development only\n", missing);
        return 1;
    }
    if (cfg->repl_isolation && !sv_config_private_tmp(cfg))
        sv_warn("python, repl_driver, spark_home, spark_conf_dir or hadoop_conf_dir lies under /tmp: REPLs keep the shared /tmp "
                "instead of one of their own each");
    if (access(cfg->run_dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "livy-supervisor: run_dir %s is not a writable directory: %s\n",
                cfg->run_dir, strerror(errno));
        return 1;
    }
    if (sv_check_python(cfg, pool, &err) != 0) {
        fprintf(stderr, "livy-supervisor: %s\n", err);
        return 1;
    }

    int report_fd = foreground ? -1 : daemonize();
    sv_t *sv = apr_pcalloc(pool, sizeof *sv);
    sv->pool = pool;
    apr_pool_create(&sv->iter, pool);
    sv->cfg = cfg;
    sv->sessions = apr_hash_make(pool);
    sv->batches = apr_hash_make(pool);
    sv->spark_submit = sv_batch_spark_submit(cfg, pool);
    sv->signal_fd = -1;
    if (sv_start(sv, &err) != 0) {
        sv_error("%s", err);
        report_start(report_fd, err);
        if (sv->conn)
            PQfinish(sv->conn);
        return 1;
    }
    const char *pid_file = NULL;
    if (!foreground) {
        pid_file = apr_pstrcat(pool, cfg->run_dir, "/livy-supervisor.pid", NULL);
        FILE *f = fopen(pid_file, "w");
        if (f) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
        else {
            sv_warn("cannot write the pid file %s: %s", pid_file, strerror(errno));
            pid_file = NULL;
        }
    }
    report_start(report_fd, NULL);
    int rc = sv_run(sv);
    if (pid_file)
        unlink(pid_file);
    return rc;
}
