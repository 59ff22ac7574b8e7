/* sv_identity: who runs what. The supervisor drops from root to its own account keeping only
 * the capabilities that starting REPLs under other accounts needs; REPL accounts are looked up
 * and checked (as httpd's suexec checks its targets); each session's private directory is made
 * for, and removed as, the account that uses it. */
#ifndef SV_IDENTITY_H
#define SV_IDENTITY_H

#include <apr_pools.h>
#include <sys/types.h>

typedef struct sv_account {
    const char *name;
    uid_t uid;
    gid_t gid;
} sv_account_t;

/* Looks up an OS account for REPL children. Refuses root, accounts below min_uid, and the
 * supervisor's own account. Returns 0, or -1 with *errmsg saying why. */
int sv_identity_repl_account(const char *name, int min_uid, sv_account_t *a, apr_pool_t *p,
                             const char **errmsg);

/* When running as root: becomes `user` (and `group`, default the user's primary group),
 * keeping CAP_SETUID, CAP_SETGID, CAP_KILL, CAP_CHOWN and CAP_SYS_ADMIN when keep_caps, none
 * otherwise. Without root it changes nothing. Returns 0 or -1 with *errmsg. */
int sv_identity_drop(const char *user, const char *group, int keep_caps, apr_pool_t *p,
                     const char **errmsg);

/* Whether this process holds what starting a REPL under another account needs. When not,
 * *missing names the capabilities it lacks. */
int sv_identity_can_isolate(const char **missing, apr_pool_t *p);

/* Makes dir (and its tmp/ and home/) for account a: the directory belongs to a, with group
 * the supervisor's own (02710: the supervisor may pass through to the REPL's socket, nothing
 * more); tmp/ and home/ are 0700. An existing directory is checked and kept. 0 or -1. */
int sv_identity_make_session_dir(const char *dir, const sv_account_t *a, apr_pool_t *p,
                                 const char **errmsg);

/* Removes dir's contents in a child process running as account a (never following a link
 * the REPL may have planted), then dir itself once that child is reaped (see
 * sv_identity_reaped). Does not wait. */
void sv_identity_remove_session_dir(const char *dir, const sv_account_t *a);

/* Called for every reaped pid: finishes a removal started above. Returns 1 when pid was one. */
int sv_identity_reaped(pid_t pid);

/* Drops every capability of the calling process (a child about to exec user code). */
void sv_identity_drop_all_caps(void);

/* A descriptor the removal's forked child closes first (the supervisor's run lock), -1: none. */
extern int sv_identity_close_in_children;

#endif
