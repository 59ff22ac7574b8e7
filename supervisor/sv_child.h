/* sv_child: the process side of a REPL child: spawning it in its own session, its Unix socket,
 * liveness checks, and signalling its process group. */
#ifndef SV_CHILD_H
#define SV_CHILD_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <sys/types.h>

/* A growable byte buffer (malloc'd: socket traffic should not grow a long-lived pool). */
typedef struct sv_buf {
    char *data;
    size_t len;
    size_t cap;
} sv_buf_t;

void sv_buf_append(sv_buf_t *b, const char *data, size_t n);
void sv_buf_consume(sv_buf_t *b, size_t n);
void sv_buf_free(sv_buf_t *b);

/* Forks and execs argv (argv[0] looked up in PATH) with envp, in a new process session, cwd
 * `dir`, stdin from /dev/null, stdout and stderr appended to log_path. Returns 0 with *pid once
 * the exec has happened, or -1 with *errmsg (the exec failure included). */
int sv_child_spawn(const char *const *argv, const char *const *envp, const char *dir,
                   const char *log_path, pid_t *pid, apr_pool_t *p, const char **errmsg);

/* The environment for a child: ours, plus `overrides` ("NAME=value", NULL-terminated). */
const char **sv_child_env(const char *const *overrides, apr_pool_t *p);

/* Connects to a Unix socket, returning a non-blocking, close-on-exec fd. Returns 0 when
 * connected, 1 when the listener is not there yet (try again later), -1 on other errors
 * (errno set). */
int sv_child_connect(const char *path, int *fd);

/* Whether pid runs (a zombie does not count). */
int sv_child_alive(pid_t pid);

/* Whether pid's command line contains `needle` (how a restarted supervisor recognises its
 * children without trusting a possibly reused pid). */
int sv_child_cmdline_contains(pid_t pid, const char *needle);

/* Signals the child's process group (the child is its leader, through setsid). */
void sv_child_signal_group(pid_t pid, int sig);

/* "exited with status 1", "was killed by signal 9 (Killed)". */
const char *sv_child_describe_status(int status, apr_pool_t *p);

/* The last lines of a text file (at most max_lines, max_bytes), for a log when a child dies
 * before it could speak on its socket. */
apr_array_header_t *sv_child_file_tail(const char *path, int max_lines, size_t max_bytes,
                                       apr_pool_t *p);

#endif
