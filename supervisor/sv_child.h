/* sv_child: the process side of a REPL child: spawning it in its own session, its Unix socket,
 * liveness checks, and signalling its process group. */
#ifndef SV_CHILD_H
#define SV_CHILD_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <sys/types.h>

#include "sv_identity.h"

/* A growable byte buffer (malloc'd: socket traffic should not grow a long-lived pool). */
typedef struct sv_buf {
    char *data;
    size_t len;
    size_t cap;
} sv_buf_t;

void sv_buf_append(sv_buf_t *b, const char *data, size_t n);
void sv_buf_consume(sv_buf_t *b, size_t n);
void sv_buf_free(sv_buf_t *b);

/* How to start a child. */
typedef struct sv_spawn {
    const char *const *argv;    /* argv[0] is looked up in PATH */
    const char *const *envp;
    const char *dir;            /* its working directory */
    const char *log_path;       /* stdout and stderr are appended here; stdin is /dev/null */
    const int *fds;             /* inherited as fds 3, 4, ... in this order */
    int nfds;
    const sv_account_t *account; /* the account it runs as; NULL: ours */
    int namespaces;             /* its own PID, mount and IPC namespaces, in which hide_dir is an
                                 * empty tmpfs but for `dir` (bound back in place), /dev/shm is
                                 * its own and /proc shows its processes only */
    const char *hide_dir;
    int private_tmp;            /* with namespaces: /tmp is its own too */
} sv_spawn_t;

/* Starts a child in a new process session, with no capabilities and no way to gain privileges
 * (no_new_privs). Returns 0 with *pid (in our PID namespace) once the exec has happened, or -1
 * with *errmsg (naming the step that failed). */
int sv_child_spawn(const sv_spawn_t *sp, pid_t *pid, apr_pool_t *p, const char **errmsg);

/* The environment for a child, built from an allow-list: `pass` names the variables of ours it
 * may see (space or comma separated), `set` adds "NAME=value" entries (NULL-terminated). */
const char **sv_child_env(const char *pass, const char *const *set, apr_pool_t *p);

/* Connects to a Unix socket, returning a non-blocking, close-on-exec fd. Returns 0 when
 * connected, 1 when the listener is not there yet (try again later), -1 on other errors
 * (errno set). */
int sv_child_connect(const char *path, int *fd);

/* Whether pid runs (a zombie does not count). */
int sv_child_alive(pid_t pid);

/* Whether pid's command line contains `needle` (how a restarted supervisor recognises its
 * children without trusting a possibly reused pid). */
int sv_child_cmdline_contains(pid_t pid, const char *needle);

/* A child's pid file, the way a restarted supervisor (and an operator) finds the process:
 * written whole (a temporary file renamed over it). 0, or -1 with errno. */
int sv_child_write_pid_file(const char *path, pid_t pid, apr_pool_t *p);
/* The pid in a pid file, 0 when there is none (or none above 1). */
pid_t sv_child_read_pid_file(const char *path);

/* Signals the child's process group (the child is its leader, through setsid). */
void sv_child_signal_group(pid_t pid, int sig);

/* "exited with status 1", "was killed by signal 9 (Killed)". */
const char *sv_child_describe_status(int status, apr_pool_t *p);

/* The last lines of a text file (at most max_lines, max_bytes), for a log when a child dies
 * before it could speak on its socket. */
apr_array_header_t *sv_child_file_tail(const char *path, int max_lines, size_t max_bytes,
                                       apr_pool_t *p);

#endif
