/* livy_route: maps a method and a path (relative to the handler's mount point) onto a Livy route.
 * Pure code with no I/O, so it can be fuzzed. */
#ifndef LIVY_ROUTE_H
#define LIVY_ROUTE_H

#include <apr_pools.h>
#include <stdint.h>

typedef enum {
    LIVY_ROUTE_NONE = 0,          /* unknown path: 404 */
    LIVY_ROUTE_VERSION,           /* /version */
    LIVY_ROUTE_SESSIONS,          /* /sessions */
    LIVY_ROUTE_SESSION,           /* /sessions/{id} */
    LIVY_ROUTE_SESSION_STATE,     /* /sessions/{id}/state */
    LIVY_ROUTE_SESSION_LOG,       /* /sessions/{id}/log and /logs */
    LIVY_ROUTE_SESSION_CONNECT,   /* /sessions/{id}/connect */
    LIVY_ROUTE_SESSION_STOP,      /* /sessions/{id}/stop */
    LIVY_ROUTE_SESSION_COMPLETION,/* /sessions/{id}/completion */
    LIVY_ROUTE_STATEMENTS,        /* /sessions/{id}/statements */
    LIVY_ROUTE_STATEMENT,         /* /sessions/{id}/statements/{sid} */
    LIVY_ROUTE_STATEMENT_CANCEL,  /* /sessions/{id}/statements/{sid}/cancel */
    LIVY_ROUTE_SESSION_UI,        /* /sessions/{id}/ui and everything below it: the Spark UI */
    LIVY_ROUTE_BATCHES,           /* /batches */
    LIVY_ROUTE_BATCH,             /* /batches/{id} */
    LIVY_ROUTE_BATCH_STATE,       /* /batches/{id}/state */
    LIVY_ROUTE_BATCH_LOG,         /* /batches/{id}/log and /logs */
    LIVY_ROUTE_METRICS,           /* /metrics: Prometheus (served only with LivyMetrics On) */
    LIVY_ROUTE_WEBUI_FILE,        /* /ui/ and /ui/{file}: the web UI's pages (webui_file) */
    LIVY_ROUTE_WEBUI_SUPERVISORS, /* /ui/api/supervisors */
    LIVY_ROUTE_WEBUI_SESSION_TIMES,/* /ui/api/sessions: ages and idle times of a sessions page */
    LIVY_ROUTE_OPENAPI            /* /openapi.json: the API's OpenAPI document */
} livy_route_e;

typedef enum {
    LIVY_M_GET = 1,
    LIVY_M_POST = 2,
    LIVY_M_DELETE = 4,
    LIVY_M_OTHER = 8
} livy_method_e;

typedef struct {
    livy_route_e route;
    /* the {id} segment of /sessions/{id} or /batches/{id} as given: digits or a name */
    const char *session_ref;
    int64_t session_id;       /* >= 0 when session_ref is all digits and fits, else -1 */
    const char *statement_ref;/* the {sid} segment as given */
    int64_t statement_id;     /* >= 0 when statement_ref is all digits and fits, else -1 */
    const char *ui_path;      /* LIVY_ROUTE_SESSION_UI: the path after .../ui ("" or "/...") */
    const char *webui_file;   /* LIVY_ROUTE_WEBUI_FILE: the file's name, one of the web UI's */
    unsigned allowed;         /* LIVY_M_* methods the route answers */
} livy_route_t;

/* Parses a decoded path such as "/sessions/3/statements/0" or "/batches/2/log". Never fails: unknown paths give
 * route LIVY_ROUTE_NONE. Segments are copied into p. */
void livy_route_parse(const char *path, apr_pool_t *p, livy_route_t *out);

/* The value of the Allow header for a route ("GET, POST"...), static storage. */
const char *livy_route_allow_header(unsigned allowed);

/* Maps an HTTP method name to LIVY_M_*; HEAD counts as GET. */
livy_method_e livy_method_from_name(const char *method);

/* Parses an all-digit string into a non-negative int64; -1 when not all digits or too big. */
int64_t livy_parse_id(const char *s);

#endif
