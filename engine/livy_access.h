/* livy_access: Livy's security rules over httpd's authenticated user: CSRF, impersonation,
 * admission and per-session view/modify access. Pure code, no I/O. */
#ifndef LIVY_ACCESS_H
#define LIVY_ACCESS_H

#include <apr_pools.h>
#include <apr_tables.h>

typedef struct {
    int csrf;                 /* writes need an X-Requested-By header */
    int impersonation;        /* proxyUser / doAs honoured */
    int access_control;       /* admission, view and modify lists enforced */
    /* lists of const char *; "*" stands for every authenticated user */
    const apr_array_header_t *superusers;
    const apr_array_header_t *allowed_users;
    const apr_array_header_t *view_users;
    const apr_array_header_t *modify_users;
    int max_sessions_per_user;   /* live sessions one owner may have; 0 = no limit */
    int max_starting_sessions;   /* sessions not yet idle, server-wide; 0 = no limit */
} livy_security_t;

/* user is in list (or the list holds "*" and user is authenticated) */
int livy_access_listed(const apr_array_header_t *list, const char *user);
int livy_access_is_superuser(const livy_security_t *sec, const char *user);

/* May user talk to this server at all? (always, with access control off) */
int livy_access_admitted(const livy_security_t *sec, const char *user);

/* May user read the session's log and statements / act on the session? */
int livy_access_can_view(const livy_security_t *sec, const char *user, const char *owner,
                         const char *proxy_user);
/* May user view every session, whoever owns it? livy_access_can_view is this or being the
 * session's owner or proxy user (what a listing's query can match on its own). */
int livy_access_can_view_all(const livy_security_t *sec, const char *user);

int livy_access_can_modify(const livy_security_t *sec, const char *user, const char *owner,
                           const char *proxy_user);

/* May user read the server-wide metrics (GET /metrics)? Those who may view every session:
 * superusers, view and modify users (always, with access control off). */
int livy_access_can_read_metrics(const livy_security_t *sec, const char *user);

/* Decides a new session's proxy user from the doAs parameter (first) or the body's proxyUser.
 * Returns 0 with *proxy_user set (NULL = none), or -1 with *errmsg when user may not
 * impersonate the target (a 403). */
int livy_access_proxy_user(const livy_security_t *sec, const char *user, const char *doas,
                           const char *body_proxy_user, apr_pool_t *p, const char **proxy_user,
                           const char **errmsg);

#endif
