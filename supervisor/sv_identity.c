/* sv_identity: who runs what. The supervisor drops from root to its own account keeping only
 * the capabilities that starting REPLs under other accounts needs; REPL accounts are looked up
 * and checked (as httpd's suexec checks its targets); each session's private directory is made
 * for, and removed as, the account that uses it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sv_identity.h"
#include "sv_log.h"

#include <apr_strings.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CAP_BIT(c) ((uint64_t)1 << (c))
/* What starting a REPL under another account takes: switching ids, signalling the REPL's
 * process group, giving it its directory, and its own PID, mount and IPC namespaces. */
static const struct { int cap; const char *name; } needed_caps[] = {
    {CAP_SETUID, "CAP_SETUID"}, {CAP_SETGID, "CAP_SETGID"}, {CAP_KILL, "CAP_KILL"},
    {CAP_CHOWN, "CAP_CHOWN"},   {CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
};

static uint64_t needed_mask(void)
{
    uint64_t m = 0;
    for (size_t i = 0; i < sizeof needed_caps / sizeof needed_caps[0]; i++)
        m |= CAP_BIT(needed_caps[i].cap);
    return m;
}

static int caps_get(uint64_t *effective, uint64_t *permitted)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capget, &h, d) != 0)
        return -1;
    *effective = d[0].effective | ((uint64_t)d[1].effective << 32);
    *permitted = d[0].permitted | ((uint64_t)d[1].permitted << 32);
    return 0;
}

static int caps_set(uint64_t mask)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    d[0].effective = d[0].permitted = (uint32_t)mask;
    d[1].effective = d[1].permitted = (uint32_t)(mask >> 32);
    return (int)syscall(SYS_capset, &h, d);
}

void sv_identity_drop_all_caps(void)
{
    caps_set(0);
}

int sv_identity_can_isolate(const char **missing, apr_pool_t *p)
{
    uint64_t eff = 0, prm = 0;
    caps_get(&eff, &prm);
    const char *list = NULL;
    for (size_t i = 0; i < sizeof needed_caps / sizeof needed_caps[0]; i++)
        if (!(eff & CAP_BIT(needed_caps[i].cap)))
            list = list ? apr_pstrcat(p, list, " ", needed_caps[i].name, NULL)
                        : needed_caps[i].name;
    *missing = list;
    return list == NULL;
}

int sv_identity_repl_account(const char *name, int min_uid, sv_account_t *a, apr_pool_t *p,
                             const char **errmsg)
{
    char buf[16384];
    struct passwd pw, *found = NULL;
    int rc = getpwnam_r(name, &pw, buf, sizeof buf, &found);
    if (rc != 0 || !found) {
        *errmsg = apr_psprintf(p, "there is no OS account named \"%s\"", name);
        return -1;
    }
    if (pw.pw_uid == 0 || pw.pw_gid == 0) {
        *errmsg = apr_psprintf(p, "the OS account \"%s\" is root or in root's group: REPLs never "
                               "run as root", name);
        return -1;
    }
    if ((long)pw.pw_uid < min_uid || (long)pw.pw_gid < min_uid) {
        *errmsg = apr_psprintf(p, "the OS account \"%s\" (uid %ld, gid %ld) is below "
                               "repl_min_uid %d", name, (long)pw.pw_uid, (long)pw.pw_gid, min_uid);
        return -1;
    }
    if (pw.pw_uid == geteuid()) {
        *errmsg = apr_psprintf(p, "the OS account \"%s\" is the supervisor's own: REPLs must run "
                               "as another account", name);
        return -1;
    }
    a->name = apr_pstrdup(p, pw.pw_name);
    a->uid = pw.pw_uid;
    a->gid = pw.pw_gid;
    return 0;
}

int sv_identity_drop(const char *user, const char *group, int keep_caps, apr_pool_t *p,
                     const char **errmsg)
{
    if (geteuid() != 0)
        return 0;
    if (!user) {
        *errmsg = "started as root without an account to run as: set `user` in the configuration "
                  "(or pass --user); the supervisor never runs as root";
        return -1;
    }
    char buf[16384];
    struct passwd pw, *found = NULL;
    if (getpwnam_r(user, &pw, buf, sizeof buf, &found) != 0 || !found) {
        *errmsg = apr_psprintf(p, "user %s: no such account", user);
        return -1;
    }
    if (pw.pw_uid == 0) {
        *errmsg = apr_psprintf(p, "user %s is root: the supervisor never runs as root", user);
        return -1;
    }
    gid_t gid = pw.pw_gid;
    if (group) {
        char gbuf[16384];
        struct group gr, *gfound = NULL;
        if (getgrnam_r(group, &gr, gbuf, sizeof gbuf, &gfound) != 0 || !gfound) {
            *errmsg = apr_psprintf(p, "group %s: no such group", group);
            return -1;
        }
        gid = gr.gr_gid;
    }
    uint64_t keep = keep_caps ? needed_mask() : 0;
    /* Nothing outside the kept set can come back, not even through a setuid-root program. */
    for (int cap = 0; cap <= 63; cap++) {
        if (!(keep & CAP_BIT(cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0
            && errno != EINVAL)
            break;
    }
    if (keep && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) {
        *errmsg = apr_psprintf(p, "prctl(PR_SET_KEEPCAPS): %s", strerror(errno));
        return -1;
    }
    if (initgroups(pw.pw_name, gid) != 0 || setresgid(gid, gid, gid) != 0
        || setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid) != 0) {
        *errmsg = apr_psprintf(p, "cannot become %s: %s", user, strerror(errno));
        return -1;
    }
    if (keep) {
        if (caps_set(keep) != 0) {
            *errmsg = apr_psprintf(p, "capset: %s", strerror(errno));
            return -1;
        }
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
    return 0;
}

/* mkdir that accepts an existing directory owned by uid. */
static int make_dir(const char *path, mode_t mode, uid_t owner, apr_pool_t *p,
                    const char **errmsg)
{
    if (mkdir(path, mode) == 0)
        return 0;
    struct stat st;
    if (errno == EEXIST && lstat(path, &st) == 0 && S_ISDIR(st.st_mode)
        && (st.st_uid == owner || st.st_uid == geteuid()))
        return 0;
    *errmsg = apr_psprintf(p, "cannot make the session directory %s: %s", path,
                           errno == EEXIST ? "it exists and is not the session's" : strerror(errno));
    return -1;
}

int sv_identity_make_session_dir(const char *dir, const sv_account_t *a, apr_pool_t *p,
                                 const char **errmsg)
{
    uid_t owner = a ? a->uid : geteuid();
    const char *subdirs[] = {apr_pstrcat(p, dir, "/tmp", NULL), apr_pstrcat(p, dir, "/home", NULL)};
    if (make_dir(dir, 0700, owner, p, errmsg) != 0)
        return -1;
    struct stat st;
    if (lstat(dir, &st) != 0)
        return -1;
    if (st.st_uid != geteuid())
        return 0; /* already given to its account (a replacement REPL) */
    for (size_t i = 0; i < 2; i++) {
        if (make_dir(subdirs[i], 0700, owner, p, errmsg) != 0)
            return -1;
        if (a && chown(subdirs[i], a->uid, a->gid) != 0) {
            *errmsg = apr_psprintf(p, "chown %s: %s", subdirs[i], strerror(errno));
            return -1;
        }
    }
    if (!a)
        return 0;
    /* Setgid: the REPL's socket gets the supervisor's group, which alone may connect to it. */
    if (chmod(dir, 02710) != 0 || chown(dir, a->uid, getegid()) != 0) {
        *errmsg = apr_psprintf(p, "cannot give %s to %s: %s", dir, a->name, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- removal ---- */

typedef struct removal {
    pid_t pid;
    char *dir;
    struct removal *next;
} removal_t;

static removal_t *removals;

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    if (ftw->level == 0)
        return 0; /* the directory itself: its parent belongs to the supervisor */
    if (type == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

int sv_identity_close_in_children = -1;

void sv_identity_remove_session_dir(const char *dir, const sv_account_t *a)
{
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return;
    pid_t pid = fork();
    if (pid < 0) {
        sv_warn("cannot remove %s: fork: %s", dir, strerror(errno));
        return;
    }
    if (pid == 0) {
        /* Not the supervisor's run lock: a successor must get it as soon as we are gone. */
        if (sv_identity_close_in_children >= 0)
            close(sv_identity_close_in_children);
        /* As the directory's own account: whatever it planted there, the removal can do no
         * more than that account could. It enters the directory first, while it may still pass
         * through the supervisor's own directories above it. */
        if (chdir(dir) != 0)
            _exit(1);
        if (a && st.st_uid == a->uid && a->uid != geteuid()) {
            if (setgroups(0, NULL) != 0 || setresgid(a->gid, a->gid, a->gid) != 0
                || setresuid(a->uid, a->uid, a->uid) != 0)
                _exit(1);
        }
        sv_identity_drop_all_caps();
        nftw(".", remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
        _exit(0);
    }
    removal_t *r = malloc(sizeof *r);
    char *copy = strdup(dir);
    if (!r || !copy) {
        free(r);
        free(copy);
        return;
    }
    r->pid = pid;
    r->dir = copy;
    r->next = removals;
    removals = r;
}

int sv_identity_reaped(pid_t pid)
{
    for (removal_t **rp = &removals; *rp; rp = &(*rp)->next) {
        removal_t *r = *rp;
        if (r->pid != pid)
            continue;
        if (rmdir(r->dir) != 0 && errno != ENOENT)
            sv_warn("cannot remove the session directory %s: %s", r->dir, strerror(errno));
        *rp = r->next;
        free(r->dir);
        free(r);
        return 1;
    }
    return 0;
}
