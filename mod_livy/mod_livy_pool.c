/* mod_livy_pool: a per-process pool of PostgreSQL connections (apr_reslist), built in
 * child_init; dead connections are noticed before use and replaced; acquiring waits a bounded
 * time. The shape of mod_dbd's pool, with the acquire timeout it lacks. */
#include "mod_livy.h"

#include "ap_mpm.h"
#include "http_log.h"

#include <apr_strings.h>
#include <poll.h>
#include <stdlib.h>

#include "livy_db.h"

APLOG_USE_MODULE(livy);

typedef struct {
    const char *conninfo;
    server_rec *s;
} pool_ctx_t;

static apr_status_t conn_construct(void **resource, void *params, apr_pool_t *p)
{
    pool_ctx_t *ctx = params;
    /* Our defaults first, so that anything in the operator's conninfo wins. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"5", "mod_livy", ctx->conninfo, NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(pg) != CONNECTION_OK) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ctx->s,
                     "livy: cannot connect to the session database: %s",
                     livy_db_error(pg, p));
        PQfinish(pg);
        return APR_EGENERAL;
    }
    livy_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        PQfinish(pg);
        return APR_ENOMEM;
    }
    c->pg = pg;
    *resource = c;
    return APR_SUCCESS;
}

static apr_status_t conn_destruct(void *resource, void *params, apr_pool_t *p)
{
    livy_conn_t *c = resource;
    PQfinish(c->pg);
    free(c);
    return APR_SUCCESS;
}

void livy_pool_child_init(apr_pool_t *pchild, server_rec *main_server)
{
    int threads = 1;
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    if (threads < 1)
        threads = 1;
    livy_server_conf_t *main_conf = ap_get_module_config(main_server->module_config,
                                                         &livy_module);
    for (server_rec *s = main_server; s; s = s->next) {
        livy_server_conf_t *c = ap_get_module_config(s->module_config, &livy_module);
        if (!c->conninfo)
            continue;
        if (s != main_server && main_conf->pool && !strcmp(c->conninfo, main_conf->conninfo)) {
            c->pool = main_conf->pool; /* same database: one pool per process */
            continue;
        }
        pool_ctx_t *ctx = apr_pcalloc(pchild, sizeof *ctx);
        ctx->conninfo = c->conninfo;
        ctx->s = s;
        int max = c->pool_max > 0 ? c->pool_max : threads;
        apr_status_t rv = apr_reslist_create(&c->pool, 0, max < 2 ? 1 : 2, max,
                                             apr_time_from_sec(300), conn_construct,
                                             conn_destruct, ctx, pchild);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "livy: cannot create the connection pool");
            c->pool = NULL;
            continue;
        }
        apr_reslist_timeout_set(c->pool, c->acquire_timeout >= 0 ? c->acquire_timeout
                                                                 : LIVY_DEFAULT_ACQUIRE_TIMEOUT);
    }
}

/* A pooled connection the server has closed (a restart, an idle timeout) has its socket
 * readable while idle: notice that without a round trip. */
static int conn_is_alive(livy_conn_t *c)
{
    if (PQstatus(c->pg) != CONNECTION_OK)
        return 0;
    struct pollfd pfd = {.fd = PQsocket(c->pg), .events = POLLIN};
    if (pfd.fd < 0)
        return 0;
    if (poll(&pfd, 1, 0) == 0)
        return 1;
    if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK)
        return 0;
    PGnotify *n;
    while ((n = PQnotifies(c->pg)))
        PQfreemem(n);
    return PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

livy_conn_t *livy_pool_acquire(request_rec *r, livy_server_conf_t *conf, const char **why)
{
    if (!conf->pool) {
        *why = "no database configured or the pool could not be created";
        return NULL;
    }
    /* Each stale connection found is replaced; bound the loop by the pool's size. */
    for (int attempt = 0; attempt < 64; attempt++) {
        void *res;
        apr_status_t rv = apr_reslist_acquire(conf->pool, &res);
        if (rv != APR_SUCCESS) {
            *why = APR_STATUS_IS_TIMEUP(rv) ? "every database connection stayed busy"
                                            : "cannot connect to the database";
            return NULL;
        }
        livy_conn_t *c = res;
        if (conn_is_alive(c))
            return c;
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "livy: replacing a database connection the server closed");
        apr_reslist_invalidate(conf->pool, c);
    }
    *why = "cannot get a working database connection";
    return NULL;
}

void livy_pool_release(livy_server_conf_t *conf, livy_conn_t *c, int broken)
{
    if (broken || PQstatus(c->pg) != CONNECTION_OK
        || PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        apr_reslist_invalidate(conf->pool, c);
    else
        apr_reslist_release(conf->pool, c);
}
