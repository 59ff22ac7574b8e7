/* mod_livy: configuration shared by the module's files (directives, pool, handler, supervisor). */
#ifndef MOD_LIVY_H
#define MOD_LIVY_H

#include "httpd.h"
#include "http_config.h"

#include <apr_tables.h>

#include "livy_api.h"

typedef enum { LIVY_SUPERVISOR_EXTERNAL = 0, LIVY_SUPERVISOR_MANAGED = 1 } livy_supervisor_mode_e;

/* A per-process pool of database connections (mod_livy_pool.c). */
typedef struct livy_pool_t livy_pool_t;

/* Per server (virtual host). */
typedef struct {
    const char *conninfo;             /* LivyDatabase */
    int pool_max;                     /* LivyDatabasePoolMax; -1 = the MPM's threads per child */
    int max_connections;              /* LivyDatabaseMaxConnections; 0 = auto, -2 = none, -1 = unset */
    int pool_share;                   /* the node's budget split among its processes: set at
                                       * startup (livy_pool_post_config); 0 = no budget */
    apr_interval_time_t acquire_timeout; /* LivyDatabaseAcquireTimeout; -1 = unset */
    apr_interval_time_t pool_idle;    /* LivyDatabasePoolIdle; 0 = never; -1 = unset */
    apr_interval_time_t statement_timeout; /* LivyDatabaseStatementTimeout; 0 = none; -1 = unset */
    livy_supervisor_mode_e supervisor_mode; /* LivySupervisor */
    int supervisor_mode_set;
    const char *supervisor_binary;    /* LivySupervisorBinary */
    const char *supervisor_config;    /* LivySupervisorConfig */
    apr_array_header_t *blocked_conf; /* LivyBlockedConf */
    livy_pool_t *pool;                /* built in child_init; shared with vhosts of the same DB */
} livy_server_conf_t;

/* Per directory / location. */
typedef struct {
    /* Where the handler is mounted: set (mount_set) only on the <Location> or <LocationMatch>
     * sections that set a handler (livy_mounts_post_config), so that sections merged after
     * it which only add policy do not move it. */
    int mount_set;
    const char *mount_path;           /* a <Location> path, without its trailing '/' */
    ap_regex_t *mount_regex;          /* a <LocationMatch>: the mount is what it matched */
    const char *section_path;         /* the innermost section with a Livy directive */
    apr_off_t max_body;               /* LivyMaxBodySize; -1 = unset */
    apr_off_t max_statement;          /* LivyMaxStatementSize; -1 = unset */
    int csrf;                         /* LivyCsrfProtection; -1 = unset */
    int impersonation;                /* LivyImpersonation; -1 = unset */
    int access_control;               /* LivyAccessControl; -1 = unset */
    apr_array_header_t *superusers;   /* LivySuperusers */
    apr_array_header_t *allowed_users;/* LivyAllowedUsers */
    apr_array_header_t *view_users;   /* LivyViewUsers */
    apr_array_header_t *modify_users; /* LivyModifyUsers */
    int max_sessions_per_user;        /* LivyMaxSessionsPerUser; -1 = unset */
    int max_starting_sessions;        /* LivyMaxStartingSessions; -1 = unset */
    /* LivyBatchAllowedPaths: canonical directories (const char *) a batch's local files may
     * lie in; NULL = unset, and then no local file is allowed */
    apr_array_header_t *batch_allowed_paths;
    int metrics;                      /* LivyMetrics; -1 = unset (Off) */
    int shared_drivers;               /* LivySharedDrivers; -1 = unset (Off) */
    int webui;                        /* LivyUI; -1 = unset (Off) */
    const char *webui_dir;            /* LivyUIDirectory; NULL = the installed one */
    apr_interval_time_t completion_timeout; /* LivyCompletionTimeout; 0 = never ask; -1 = unset */
} livy_dir_conf_t;

#define LIVY_DEFAULT_MAX_BODY (1024 * 1024)
#define LIVY_DEFAULT_ACQUIRE_TIMEOUT apr_time_from_sec(5)
#define LIVY_DEFAULT_POOL_IDLE apr_time_from_sec(60)
#define LIVY_DEFAULT_STATEMENT_TIMEOUT apr_time_from_sec(30)
#define LIVY_DEFAULT_COMPLETION_TIMEOUT apr_time_from_sec(2)

extern module AP_MODULE_DECLARE_DATA livy_module;
extern const command_rec livy_directives[];

void *livy_create_server_conf(apr_pool_t *p, server_rec *s);
void *livy_merge_server_conf(apr_pool_t *p, void *base, void *add);
void *livy_create_dir_conf(apr_pool_t *p, char *dir);
void *livy_merge_dir_conf(apr_pool_t *p, void *base, void *add);

/* One accessor per setting: the directive's value or its default. The pool's size per process:
 * LivyDatabasePoolMax, else the MPM's threads per process, capped by the process's share of
 * LivyDatabaseMaxConnections (an explicit budget caps an explicit LivyDatabasePoolMax too; the
 * automatic one does not). */
int livy_conf_pool_max(const livy_server_conf_t *conf);
/* LivyDatabaseMaxConnections: a number, 0 for auto (the default) or -2 for none. */
int livy_conf_max_connections(const livy_server_conf_t *conf);
apr_interval_time_t livy_conf_acquire_timeout(const livy_server_conf_t *conf);
apr_interval_time_t livy_conf_pool_idle(const livy_server_conf_t *conf);
apr_interval_time_t livy_conf_statement_timeout(const livy_server_conf_t *conf);

/* Marks the sections that set a handler as mount points (mod_livy_config.c). */
int livy_mounts_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                            server_rec *s);

/* The connection pool (mod_livy_pool.c). */
void livy_pool_child_init(apr_pool_t *pchild, server_rec *s);
/* Warns once per (re)start when the pools of every process could exceed the database's
 * max_connections. */
int livy_pool_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);
/* Borrows a live connection, waiting (connect included) at most LivyDatabaseAcquireTimeout;
 * fresh: open a new one rather than reuse an idle one. NULL with *why set (in r->pool) when
 * none can be had in time. */
livy_conn_t *livy_pool_acquire(request_rec *r, livy_server_conf_t *conf, int fresh,
                               const char **why);
/* Whether a request that failed on c with a broken connection may run again on a fresh one:
 * c had sat idle in the pool, the server closed it (PQstatus bad), and either the request only
 * reads (idempotent) or no statement of it completed on c. */
int livy_pool_may_retry(const livy_conn_t *c, int idempotent);
void livy_pool_release(livy_server_conf_t *conf, livy_conn_t *c, int broken);

/* What one request carries between hooks (r->request_config). */
typedef struct {
    int livy_url;                      /* translate_name: the livy handler serves this URL */
    livy_api_response_t *ui_answer;    /* livy_ui_fixup refused a Spark UI request: this */
    int family;                        /* its route's livy_metrics_family_e, once routed */
} livy_request_state_t;

/* The request's state, made on first use. */
livy_request_state_t *livy_request_state(request_rec *r);

/* ---- mod_livy_metrics.c: this httpd's counters, shared by its processes ---- */
int livy_metrics_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s);
/* Counts a finished request of a route family (status and duration from r). */
void livy_metrics_count_request(request_rec *r, int family);
typedef enum {
    LIVY_POOL_OPENED,          /* a connection opened (n: 1) */
    LIVY_POOL_CLOSED,          /* n connections closed */
    LIVY_POOL_BORROWED,
    LIVY_POOL_RETURNED,
    LIVY_POOL_WAITED,          /* an acquire waited for a connection */
    LIVY_POOL_TIMED_OUT,       /* ... and gave up */
    LIVY_POOL_CONNECT_FAILED,
} livy_pool_event_e;
void livy_metrics_pool(livy_pool_event_e event, int n);
/* The counters now (zeros when there is no shared memory). */
void livy_metrics_snapshot(livy_metrics_http_t *out);

/* The handler's steps, shared with the Spark UI's fixup (mod_livy.c). */
const char *livy_api_prepare(request_rec *r, livy_api_config_t *cfg, livy_api_request_t *req);
/* Serves a routed request on a pooled connection (a 503 in resp when none can be had). */
void livy_api_serve(request_rec *r, const livy_api_config_t *cfg,
                    const livy_api_request_t *req, const livy_route_t *route,
                    livy_api_response_t *resp);

/* The sessions' Spark UIs through mod_proxy (mod_livy_ui.c). */
int livy_ui_proxy_available(void);
int livy_ui_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);
void livy_ui_register_hooks(apr_pool_t *p);

/* The web UI under <mount>/ui/ (mod_livy_webui.c). */
int livy_conf_webui(const livy_dir_conf_t *dconf);
apr_interval_time_t livy_conf_completion_timeout(const livy_dir_conf_t *dconf);
const char *livy_conf_webui_dir(const livy_dir_conf_t *dconf);
int livy_webui_is_route(livy_route_e route);
/* The security headers of every UI response. */
void livy_webui_headers(request_rec *r);
/* Answers a request for one of the UI's files; returns the handler's status. */
int livy_webui_serve_file(request_rec *r, const livy_dir_conf_t *dconf, const char *name);
/* Sets Location (and returns 1) when the request is <mount>/ui without its trailing slash. */
int livy_webui_redirect_dir(request_rec *r, const livy_api_request_t *req);

/* The managed supervisor (mod_livy_supervisor.c). */
int livy_supervisor_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                server_rec *s);

#endif
