/* livy_api: one Livy REST request in, one response out. Routing, validation, the store and the
 * views meet here; the httpd module only moves bytes, and the unit tests call it directly. */
#ifndef LIVY_API_H
#define LIVY_API_H

#include "livy_access.h"
#include "livy_metrics.h"
#include "livy_route.h"
#include "livy_store.h"
#include "livy_validate.h"

#include <apr_pools.h>

#ifndef LIVY_PACKAGE_VERSION
#define LIVY_PACKAGE_VERSION "0.1.0"
#endif

#define LIVY_API_VERSION "0.9.0" /* the Livy API level served; clients gate features on it */
#define LIVY_SERVER_NAME "mod_livy/" LIVY_PACKAGE_VERSION

typedef struct {
    livy_validate_opts_t validate;
    livy_security_t security;
    const char *base_path; /* where the handler is mounted, without a trailing slash ("" for /) */
    /* The absolute URL of the mount point ("https://host:port/base") when the server proxies
     * sessions' Spark UIs (mod_proxy is loaded), else NULL: sparkUiUrl is then null and the
     * UI route answers 501. */
    const char *ui_base;
    int metrics;           /* LivyMetrics: GET /metrics is served (else it is a 404) */
    int completion;        /* POST .../completion asks the REPL (LivyCompletionTimeout > 0) */
    int shared_drivers;    /* LivySharedDrivers: sessions share drivers unless they opt out */
    /* GET /metrics: fills *out with this httpd's counters (requests, pools); NULL: none. */
    void (*http_metrics)(livy_metrics_http_t *out);
} livy_api_config_t;

typedef struct {
    const char *method;    /* "GET", "POST"... */
    const char *path;      /* relative to the mount point, decoded */
    const char *query;     /* raw query string, or NULL */
    const char *body;      /* the request body (may be NULL when empty) */
    size_t body_len;
    const char *user;      /* the authenticated user, NULL when anonymous */
    int has_requested_by;  /* an X-Requested-By header came with the request */
} livy_api_request_t;

typedef struct {
    int status;
    char *body;            /* NULL: no body (204) */
    const char *content_type; /* NULL: application/json */
    size_t body_len;
    const char *location;  /* Location header, or NULL */
    const char *allow;     /* Allow header (405), or NULL */
    int conn_broken;       /* the database connection failed: discard it */
    const char *log_detail;/* for the error log when status >= 500 */
    /* The Spark UI route, allowed: no body; the module hands the request to mod_proxy. */
    const char *proxy_url;     /* the driver's UI URL to fetch, path and query included */
    const char *proxy_backend; /* "http://host:port" of the driver's UI (for Location headers) */
    const char *proxy_context; /* base_path + "/sessions/{id}/ui": X-Forwarded-Context */
    /* A cacheable answer (/openapi.json): its strong ETag, and the Cache-Control to send
     * instead of no-store. */
    const char *etag;
    const char *cache_control;
    /* POST .../completion asked the session's REPL: the request's id, whose answer the caller
     * polls for with livy_api_completion_poll (resp already holds the empty answer), then
     * drops; 0 when nothing was asked. */
    apr_int64_t completion_id;
} livy_api_response_t;

/* Routes the request: fills r and returns 1 when the request is already answered in resp
 * without the database (404, 405, a missing CSRF header, a user not admitted, and
 * /openapi.json, which needs no database). */
int livy_api_route(const livy_api_config_t *cfg, const livy_api_request_t *req, apr_pool_t *p,
                   livy_route_t *r, livy_api_response_t *resp);

/* Makes sure the connection's database has the schema this build needs (checked once per
 * connection). Returns 1 when resp is set (503). */
int livy_api_check_schema(livy_conn_t *conn, apr_pool_t *p, livy_api_response_t *resp);

/* Serves a routed request on conn. */
void livy_api_handle(const livy_api_config_t *cfg, const livy_api_request_t *req,
                     const livy_route_t *r, livy_conn_t *conn, apr_pool_t *p,
                     livy_api_response_t *resp);

/* Polls completion request id: returns 1 when the REPL's candidates have come (resp is the
 * answer, and the request is gone), 0 when not yet, -1 when the database failed (resp
 * unchanged; *broken says whether the connection is to be discarded). */
int livy_api_completion_poll(livy_conn_t *conn, apr_int64_t id, apr_pool_t *p,
                             livy_api_response_t *resp, int *broken);

/* Forgets completion request id, answered or not (the caller gave up waiting). */
void livy_api_completion_drop(livy_conn_t *conn, apr_int64_t id, apr_pool_t *p, int *broken);

/* Sets resp to a JSON error {"msg": msg}. */
void livy_api_error(livy_api_response_t *resp, apr_pool_t *p, int status, const char *msg);

#endif
