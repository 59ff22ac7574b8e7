/* livy_ui: the Spark UI of a session behind httpd: which paths may be proxied, which ones
 * kill (modify access), where the driver's UI is, and how its redirects map back to the proxy
 * path. Pure code, no I/O. */
#ifndef LIVY_UI_H
#define LIVY_UI_H

#include <apr_pools.h>

/* The proxied UI lives at <mount>/sessions/{id}/ui/...; this is the segment after {id}. */
#define LIVY_UI_SEGMENT "ui"

/* Is path (the part after /sessions/{id}/ui, decoded; "" for the UI's root) one we forward?
 * Only Spark's own URL alphabet: letters, digits and "-._~/:@!$&'()*+,;=", no "." or ".."
 * segment, no backslash or control byte. */
int livy_ui_path_ok(const char *path);

/* Does path reach one of Spark's kill handlers (/jobs/job/kill, /stages/stage/kill, and any
 * other segment naming "kill", case-insensitive)? Those need modify access. */
int livy_ui_path_kills(const char *path);

/* The "http://host:port" of the driver's UI from the URL the REPL reported
 * (sessions.spark_ui_url, "http://127.0.0.1:4040" or with a trailing slash), or NULL when it is
 * not a plain http URL of a host and port (no user info, path, query or fragment). */
const char *livy_ui_backend(const char *spark_ui_url, apr_pool_t *p);

/* A Location header from the UI, mapped to the proxy: an absolute URL under backend (the
 * value livy_ui_backend returned) or an absolute path becomes public_base (the absolute URL of
 * <mount>/sessions/{id}/ui, no trailing slash) followed by its path, unless that path already
 * starts with context (the proxy path, as sent in X-Forwarded-Context). Other values are
 * returned as they are. */
const char *livy_ui_map_location(const char *location, const char *backend,
                                 const char *public_base, const char *context, apr_pool_t *p);

typedef enum {
    LIVY_MASTER_LOCAL = 0,  /* local, local[N], local[*], local[N,F], local-cluster[...] */
    LIVY_MASTER_YARN,       /* yarn: Spark hands out a per-application secret */
    LIVY_MASTER_K8S,        /* k8s://...: the same */
    LIVY_MASTER_STANDALONE, /* spark://...: the secret must be the cluster's */
    LIVY_MASTER_OTHER
} livy_master_kind_e;

livy_master_kind_e livy_spark_master_kind(const char *master);

#endif
