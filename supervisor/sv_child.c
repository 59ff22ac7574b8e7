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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

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

const char **sv_child_env(const char *const *overrides, apr_pool_t *p)
{
    apr_array_header_t *env = apr_array_make(p, 64, sizeof(const char *));
    for (char **e = environ; *e; e++) {
        int overridden = 0;
        for (const char *const *o = overrides; *o && !overridden; o++) {
            size_t n = strcspn(*o, "=");
            overridden = strncmp(*e, *o, n) == 0 && (*e)[n] == '=';
        }
        if (!overridden)
            APR_ARRAY_PUSH(env, const char *) = *e;
    }
    for (const char *const *o = overrides; *o; o++)
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

/* In the forked child: set up and exec; on failure report errno on the pipe and exit. */
static void exec_child(const char *const *argv, const char *const *envp, const char *dir,
                       const char *log_path, int report_fd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);

    int err = 0;
    if (setsid() < 0 || chdir(dir) != 0)
        err = errno;
    int devnull = err ? -1 : open("/dev/null", O_RDONLY);
    int log = err || devnull < 0 ? -1 : open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0640);
    if (!err && (devnull < 0 || log < 0))
        err = errno;
    if (!err && (dup2(devnull, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0))
        err = errno;
    if (!err) {
        /* Keep only stdio and the report pipe (close-on-exec) across the exec. */
        if (report_fd != 3) {
            if (dup2(report_fd, 3) < 0)
                err = errno;
            report_fd = 3;
        }
        fcntl(report_fd, F_SETFD, FD_CLOEXEC);
        close_fds_from(4);
    }
    if (!err) {
        execvpe(argv[0], (char *const *)argv, (char *const *)envp);
        err = errno;
    }
    ssize_t w = write(report_fd, &err, sizeof err);
    (void)w;
    _exit(127);
}

int sv_child_spawn(const char *const *argv, const char *const *envp, const char *dir,
                   const char *log_path, pid_t *pid, apr_pool_t *p, const char **errmsg)
{
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        *errmsg = apr_psprintf(p, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t child = fork();
    if (child < 0) {
        *errmsg = apr_psprintf(p, "fork: %s", strerror(errno));
        close(report[0]);
        close(report[1]);
        return -1;
    }
    if (child == 0) {
        close(report[0]);
        exec_child(argv, envp, dir, log_path, report[1]);
    }
    close(report[1]);
    /* The pipe closes at exec (success: no bytes) or carries errno (failure). */
    int err = 0;
    ssize_t n;
    do
        n = read(report[0], &err, sizeof err);
    while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof err) {
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
        *errmsg = apr_psprintf(p, "cannot start %s: %s", argv[0], strerror(err));
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
