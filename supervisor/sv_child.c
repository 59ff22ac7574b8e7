/* sv_child: the process side of a REPL child: spawning it in its own session, its Unix socket,
 * liveness checks, and signalling its process group. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sv_child.h"

#include <apr_strings.h>
#include <apr_tables.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void sv_buf_append(sv_buf_t *b, const char *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            abort();
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

void sv_buf_consume(sv_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    }
    else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    /* Give back the memory a big message needed once. */
    if (b->len == 0 && b->cap > 1024 * 1024) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

void sv_buf_free(sv_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

const char **sv_child_env(const char *pass, const char *const *set, apr_pool_t *p)
{
    apr_array_header_t *env = apr_array_make(p, 32, sizeof(const char *));
    char *names = apr_pstrdup(p, pass ? pass : ""), *save = NULL;
    for (char *n = apr_strtok(names, " \t,", &save); n; n = apr_strtok(NULL, " \t,", &save)) {
        size_t len = strlen(n);
        int overridden = 0;
        for (const char *const *o = set; *o && !overridden; o++)
            overridden = strncmp(*o, n, len) == 0 && (*o)[len] == '=';
        const char *value = getenv(n);
        if (!overridden && value)
            APR_ARRAY_PUSH(env, const char *) = apr_pstrcat(p, n, "=", value, NULL);
    }
    for (const char *const *o = set; *o; o++)
        APR_ARRAY_PUSH(env, const char *) = *o;
    APR_ARRAY_PUSH(env, const char *) = NULL;
    return (const char **)env->elts;
}

static void close_fds_from(int lowfd)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
        return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = lowfd; fd < max; fd++)
        close(fd);
}

/* The steps of starting a child, for the message when one fails. */
static const char *const spawn_steps[] = {
    "setsid",          "open /dev/null or the log file", "set up its file descriptors",
    "make mounts private", "open its directory", "mount an empty tmpfs over the run directory",
    "make its directory's mount point", "bind its directory", "mount its /tmp",
    "mount its /dev/shm", "mount its /proc", "take its account's groups", "take its account's ids",
    "set no_new_privs", "enter its directory", "exec",
};
enum { ST_SETSID, ST_STDIO, ST_FDS, ST_PRIVATE, ST_OPENDIR, ST_TMPFS, ST_MKPOINT, ST_BIND,
       ST_TMP, ST_SHM, ST_PROC, ST_GROUPS, ST_IDS, ST_NNP, ST_CHDIR, ST_EXEC };

typedef struct { int step; int err; } spawn_report_t;

static void spawn_fail(int report_fd, int step)
{
    spawn_report_t r = {step, errno};
    ssize_t w = write(report_fd, &r, sizeof r);
    (void)w;
    _exit(127);
}

/* mkdir -p: the path to a mount point, through the empty tmpfs mounted over part of it. */
static int make_mount_point(const char *to)
{
    char path[PATH_MAX];
    if (strlen(to) >= sizeof path)
        return -1;
    strcpy(path, to);
    for (char *c = path + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        if (mkdir(path, 0711) != 0 && errno != EEXIST)
            return -1;
        *c = '/';
    }
    return mkdir(path, 0711) != 0 && errno != EEXIST ? -1 : 0;
}

/* In the new child: namespaces, identity, then exec; any failure is reported on the pipe. */
static void exec_child(const sv_spawn_t *sp, int report_fd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);

    if (setsid() < 0)
        spawn_fail(report_fd, ST_SETSID);
    int devnull = open("/dev/null", O_RDONLY);
    int log = open(sp->log_path, O_WRONLY | O_CREAT | O_APPEND, 0640);
    if (devnull < 0 || log < 0 || dup2(devnull, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
        spawn_fail(report_fd, ST_STDIO);
    /* Inherited fds go to 3.., the report pipe just above them. F_DUPFD first moves every one
     * of them above that range without clobbering anything; then dup2 puts them in place. */
    int above = 4 + sp->nfds, moved[16];
    if (sp->nfds > 16 || (report_fd = fcntl(report_fd, F_DUPFD, above)) < 0)
        spawn_fail(report_fd, ST_FDS);
    for (int i = 0; i < sp->nfds; i++)
        if ((moved[i] = fcntl(sp->fds[i], F_DUPFD, above)) < 0)
            spawn_fail(report_fd, ST_FDS);
    for (int i = 0; i < sp->nfds; i++)
        if (dup2(moved[i], 3 + i) < 0)
            spawn_fail(report_fd, ST_FDS);
    if (dup2(report_fd, 3 + sp->nfds) < 0)
        spawn_fail(report_fd, ST_FDS);
    report_fd = 3 + sp->nfds;
    fcntl(report_fd, F_SETFD, FD_CLOEXEC);
    close_fds_from(report_fd + 1);

    if (sp->namespaces) {
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
            spawn_fail(report_fd, ST_PRIVATE);
        int dirfd = open(sp->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
            spawn_fail(report_fd, ST_OPENDIR);
        if (mount("tmpfs", sp->hide_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=0711,size=64k") != 0)
            spawn_fail(report_fd, ST_TMPFS);
        /* Its own /tmp (the JVM's perf data and attach sockets, native libraries unpacked);
         * bulk temporary data goes to its directory's tmp/ through TMPDIR/SPARK_LOCAL_DIRS. */
        if (sp->private_tmp
            && mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=1g") != 0)
            spawn_fail(report_fd, ST_TMP);
        /* Its directory back in place, at the same path (which may lie under either tmpfs). */
        if (make_mount_point(sp->dir) != 0)
            spawn_fail(report_fd, ST_MKPOINT);
        char fdpath[64];
        snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", dirfd);
        if (mount(fdpath, sp->dir, NULL, MS_BIND | MS_REC, NULL) != 0)
            spawn_fail(report_fd, ST_BIND);
        close(dirfd);
        struct stat st;
        if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode)
            && mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     "mode=1777,size=256m") != 0)
            spawn_fail(report_fd, ST_SHM);
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
            spawn_fail(report_fd, ST_PROC);
    }
    if (sp->account && sp->account->uid != geteuid()) {
        if (initgroups(sp->account->name, sp->account->gid) != 0)
            spawn_fail(report_fd, ST_GROUPS);
        if (setresgid(sp->account->gid, sp->account->gid, sp->account->gid) != 0
            || setresuid(sp->account->uid, sp->account->uid, sp->account->uid) != 0)
            spawn_fail(report_fd, ST_IDS);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        spawn_fail(report_fd, ST_NNP);
    sv_identity_drop_all_caps();
    if (chdir(sp->dir) != 0)
        spawn_fail(report_fd, ST_CHDIR);
    umask(077);
    execvpe(sp->argv[0], (char *const *)sp->argv, (char *const *)sp->envp);
    spawn_fail(report_fd, ST_EXEC);
}

int sv_child_spawn(const sv_spawn_t *sp, pid_t *pid, apr_pool_t *p, const char **errmsg)
{
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        *errmsg = apr_psprintf(p, "pipe: %s", strerror(errno));
        return -1;
    }
    /* A raw clone without a stack behaves as fork, in new namespaces when asked. */
    long flags = SIGCHLD;
    if (sp->namespaces)
        flags |= CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC;
    pid_t child = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
    if (child < 0) {
        *errmsg = apr_psprintf(p, "clone: %s", strerror(errno));
        close(report[0]);
        close(report[1]);
        return -1;
    }
    if (child == 0) {
        close(report[0]);
        exec_child(sp, report[1]);
    }
    close(report[1]);
    /* The pipe closes at exec (success: no bytes) or says which step failed. */
    spawn_report_t r;
    ssize_t n;
    do
        n = read(report[0], &r, sizeof r);
    while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof r) {
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
        const char *step = r.step >= 0 && r.step <= ST_EXEC ? spawn_steps[r.step] : "start";
        *errmsg = r.step == ST_EXEC
                      ? apr_psprintf(p, "cannot start %s: %s", sp->argv[0], strerror(r.err))
                      : apr_psprintf(p, "cannot start %s: %s: %s", sp->argv[0], step,
                                     strerror(r.err));
        return -1;
    }
    *pid = child;
    return 0;
}

int sv_child_connect(const char *path, int *fd)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(addr.sun_path, path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    int rc;
    do
        rc = connect(s, (struct sockaddr *)&addr, sizeof addr);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int e = errno;
        close(s);
        errno = e;
        return (e == ENOENT || e == ECONNREFUSED || e == EAGAIN) ? 1 : -1;
    }
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
    *fd = s;
    return 0;
}

int sv_child_alive(pid_t pid)
{
    if (pid <= 0)
        return 0;
    if (kill(pid, 0) != 0 && errno != EPERM)
        return 0;
    /* A zombie (not yet reaped by whoever is its parent) has finished. */
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    if (paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'))
        return 0;
    return 1;
}

int sv_child_cmdline_contains(pid_t pid, const char *needle)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    /* Arguments are NUL-separated: search across them as one space-separated line. */
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

int sv_child_write_pid_file(const char *path, pid_t pid, apr_pool_t *p)
{
    const char *tmp = apr_pstrcat(p, path, ".tmp", NULL);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%d\n", (int)pid) > 0;
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

pid_t sv_child_read_pid_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int pid = 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid > 1 ? pid : 0;
}

void sv_child_signal_group(pid_t pid, int sig)
{
    if (pid > 1)
        kill(-pid, sig);
}

const char *sv_child_describe_status(int status, apr_pool_t *p)
{
    if (WIFEXITED(status))
        return apr_psprintf(p, "exited with status %d", WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return apr_psprintf(p, "was killed by signal %d (%s)", WTERMSIG(status),
                            strsignal(WTERMSIG(status)));
    return apr_psprintf(p, "ended (wait status %d)", status);
}

apr_array_header_t *sv_child_file_tail(const char *path, int max_lines, size_t max_bytes,
                                       apr_pool_t *p)
{
    apr_array_header_t *lines = apr_array_make(p, max_lines > 0 ? max_lines : 1,
                                               sizeof(const char *));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lines;
    off_t size = lseek(fd, 0, SEEK_END);
    off_t start = size > (off_t)max_bytes ? size - (off_t)max_bytes : 0;
    char *buf = apr_palloc(p, max_bytes + 1);
    ssize_t n = size > 0 ? pread(fd, buf, (size_t)(size - start), start) : 0;
    close(fd);
    if (n <= 0)
        return lines;
    buf[n] = '\0';
    char *s = buf;
    if (start > 0) { /* drop the partial first line */
        char *nl = strchr(s, '\n');
        s = nl ? nl + 1 : s + n;
    }
    apr_array_header_t *all = apr_array_make(p, 64, sizeof(const char *));
    char *save = NULL;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\r')
            line[len - 1] = '\0';
        if (*line)
            APR_ARRAY_PUSH(all, const char *) = line;
    }
    for (int i = all->nelts > max_lines ? all->nelts - max_lines : 0; i < all->nelts; i++)
        APR_ARRAY_PUSH(lines, const char *) = APR_ARRAY_IDX(all, i, const char *);
    return lines;
}
