/* mod_livy_pool: a per-process pool of PostgreSQL connections, built in child_init. Connections
 * are opened outside the pool's lock within the acquire deadline, checked before use (one the
 * server closed is replaced), closed after sitting idle too long, and their notices go to the
 * error log. Also the startup check of the pools' size against the server's max_connections. */
#include "mod_livy.h"

#include "ap_mpm.h"
#include "http_core.h"
#include "http_log.h"

#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <errno.h>
#include <libpq-events.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "livy_db.h"

APLOG_USE_MODULE(livy);

/* A pooled connection: what the engine sees first, then the pool's bookkeeping. */
typedef struct pooled_conn_t {
    livy_conn_t conn;
    struct pooled_conn_t *next; /* in the idle list */
    livy_pool_t *pool;
    apr_time_t idle_since;
    int reused;          /* this borrow took it from the idle list */
    int server_fatal;    /* the server sent FATAL or PANIC: it is closing the connection */
    int completed;       /* statements that completed on it during this borrow */
} pooled_conn_t;

struct livy_pool_t {
    server_rec *s;
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *freed;   /* a connection went back, or a slot came free */
    apr_thread_cond_t *tick;    /* wakes the reaper */
    apr_thread_t *reaper;
    pooled_conn_t *idle;        /* most recently released first */
    int open;                   /* connections open or being opened (reserved slots) */
    int max;
    int stopping;
    apr_interval_time_t acquire_timeout;
    apr_interval_time_t idle_expiry; /* 0: never */
    const char **keys, **vals;  /* the connection parameters, ours then the operator's */
};

/* ---- connecting ---- */

/* libpq's notices (and a server's last words before it closes the connection) into the error
 * log, with our tag, instead of httpd's stderr. */
static void conn_notice(void *arg, const char *message)
{
    pooled_conn_t *pc = arg;
    size_t n = strlen(message);
    while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == ' '))
        n--;
    int fatal = !strncmp(message, "FATAL", 5) || !strncmp(message, "PANIC", 5);
    int warning = fatal || !strncmp(message, "WARNING", 7) || !strncmp(message, "ERROR", 5);
    if (fatal && pc)
        pc->server_fatal = 1;
    ap_log_error(APLOG_MARK, warning ? APLOG_WARNING : APLOG_INFO, 0,
                 pc ? pc->pool->s : NULL, "livy: database: %.*s", (int)n, message);
}

/* Counts the statements that completed (a command tag came back; preparing one has none):
 * after one, a request that changes state cannot be run again safely. */
static int conn_event(PGEventId id, void *info, void *arg)
{
    pooled_conn_t *pc = arg;
    if (id == PGEVT_RESULTCREATE) {
        PGresult *res = ((PGEventResultCreate *)info)->result;
        ExecStatusType st = PQresultStatus(res);
        const char *tag = PQcmdStatus(res);
        if ((st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) && tag && *tag)
            pc->completed++;
    }
    return 1;
}

/* Opens a connection with the parameters keys/vals, giving up at deadline (the connect never
 * blocks past it: PQconnectPoll and poll(), not connect_timeout). NULL with *why in p. */
static PGconn *connect_by(const char *const *keys, const char *const *vals,
                          apr_time_t deadline, apr_pool_t *p, const char **why)
{
    PGconn *pg = PQconnectStartParams(keys, vals, 1);
    if (!pg) {
        *why = "out of memory";
        return NULL;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(pg) != CONNECTION_BAD && st != PGRES_POLLING_OK
           && st != PGRES_POLLING_FAILED) {
        apr_interval_time_t left = deadline - apr_time_now();
        if (left <= 0) {
            *why = "connecting timed out";
            PQfinish(pg);
            return NULL;
        }
        struct pollfd pfd = {.fd = PQsocket(pg),
                             .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        int ready = pfd.fd < 0 ? 1 : poll(&pfd, 1, (int)((left + 999) / 1000));
        if (ready < 0 && errno != EINTR) {
            *why = "poll() failed while connecting";
            PQfinish(pg);
            return NULL;
        }
        if (ready > 0)
            st = PQconnectPoll(pg);
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        *why = livy_db_error(pg, p);
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

/* Our defaults first, so that anything in the operator's conninfo (expanded from dbname, last)
 * wins: keepalives notice a peer that vanished, statement_timeout bounds a query. The parent's
 * one startup check (in_parent) skips libpq's GSSAPI probe, whose Kerberos thread-specific
 * data would stay allocated in httpd's main thread for the life of the server. */
static void connect_params(apr_pool_t *p, const char *conninfo,
                           apr_interval_time_t statement_timeout, int in_parent,
                           const char ***keys, const char ***vals)
{
    /* The engine's defaults (keepalives, tcp_user_timeout, statement_timeout; none when 0: the
     * role's or the server's own setting holds), then libpq's GSSAPI probe off in the parent. */
    const char *const *k0, *const *v0;
    livy_db_conn_params(conninfo, "mod_livy", 5,
                        statement_timeout <= 0 ? 0 : (long)apr_time_as_msec(statement_timeout),
                        &k0, &v0, p);
    int n = 0;
    while (k0[n])
        n++;
    const char **k = apr_pcalloc(p, (size_t)(n + 2) * sizeof *k);
    const char **v = apr_pcalloc(p, (size_t)(n + 2) * sizeof *v);
    k[0] = "gssencmode";
    v[0] = in_parent ? "disable" : NULL; /* NULL: libpq's default */
    memcpy(k + 1, k0, (size_t)n * sizeof *k);
    memcpy(v + 1, v0, (size_t)n * sizeof *v);
    *keys = k;
    *vals = v;
}

static pooled_conn_t *conn_open(livy_pool_t *pool, apr_time_t deadline, apr_pool_t *p,
                                const char **why)
{
    PGconn *pg = connect_by(pool->keys, pool->vals, deadline, p, why);
    if (!pg)
        return NULL;
    pooled_conn_t *pc = calloc(1, sizeof *pc);
    if (!pc || !PQregisterEventProc(pg, conn_event, "mod_livy", pc)) {
        *why = "out of memory";
        PQfinish(pg);
        free(pc);
        return NULL;
    }
    pc->conn.pg = pg;
    pc->pool = pool;
    PQsetNoticeProcessor(pg, conn_notice, pc);
    livy_metrics_pool(LIVY_POOL_OPENED, 1);
    return pc;
}

static void conn_close(pooled_conn_t *pc)
{
    PQfinish(pc->conn.pg);
    free(pc);
}

static void close_list(pooled_conn_t *list)
{
    int n = 0;
    while (list) {
        pooled_conn_t *next = list->next;
        conn_close(list);
        list = next;
        n++;
    }
    if (n)
        livy_metrics_pool(LIVY_POOL_CLOSED, n);
}

/* A pooled connection the server has closed (a restart, an administrator, a crash) has its
 * socket readable while idle: read what is there, which hands the server's FATAL to
 * conn_notice, until the socket is drained or the end of the connection is seen. */
static int conn_usable(pooled_conn_t *pc)
{
    PGconn *pg = pc->conn.pg;
    for (int round = 0; round < 8; round++) {
        if (PQstatus(pg) != CONNECTION_OK || pc->server_fatal)
            return 0;
        struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
        if (pfd.fd < 0)
            return 0;
        int ready = poll(&pfd, 1, 0);
        if (ready == 0)
            return PQtransactionStatus(pg) == PQTRANS_IDLE;
        if (ready < 0 || !PQconsumeInput(pg))
            return 0;
        PGnotify *n;
        while ((n = PQnotifies(pg))) /* parses what came, notices included */
            PQfreemem(n);
    }
    return 0; /* still talking to an idle client: do not trust it */
}

/* ---- the pool ---- */

/* Cuts the connections idle since before now - idle_expiry off the idle list (the oldest are
 * last) and returns them, to be closed with close_slots outside the lock. */
static pooled_conn_t *take_expired(livy_pool_t *pool, apr_time_t now)
{
    if (pool->idle_expiry <= 0)
        return NULL;
    apr_time_t cutoff = now - pool->idle_expiry;
    pooled_conn_t **link = &pool->idle;
    while (*link && (*link)->idle_since >= cutoff)
        link = &(*link)->next;
    pooled_conn_t *expired = *link;
    *link = NULL;
    return expired;
}

/* Closes connections taken off the idle list (called without the lock), then frees their
 * slots: the count of open connections never falls below what the server sees. */
static void close_slots(livy_pool_t *pool, pooled_conn_t *list)
{
    int n = 0;
    for (pooled_conn_t *pc = list; pc; pc = pc->next)
        n++;
    close_list(list);
    apr_thread_mutex_lock(pool->mutex);
    pool->open -= n;
    apr_thread_cond_broadcast(pool->freed);
    apr_thread_mutex_unlock(pool->mutex);
}

/* Closes idle connections as they expire, without waiting for traffic. */
static void *APR_THREAD_FUNC reaper_main(apr_thread_t *thread, void *arg)
{
    livy_pool_t *pool = arg;
    apr_interval_time_t interval = pool->idle_expiry / 4;
    if (interval < apr_time_from_msec(250))
        interval = apr_time_from_msec(250);
    if (interval > apr_time_from_sec(15))
        interval = apr_time_from_sec(15);
    apr_thread_mutex_lock(pool->mutex);
    while (!pool->stopping) {
        apr_thread_cond_timedwait(pool->tick, pool->mutex, interval);
        if (pool->stopping)
            break;
        pooled_conn_t *expired = take_expired(pool, apr_time_now());
        if (expired) {
            apr_thread_mutex_unlock(pool->mutex);
            close_slots(pool, expired);
            apr_thread_mutex_lock(pool->mutex);
        }
    }
    apr_thread_mutex_unlock(pool->mutex);
    return NULL;
}

/* At child exit: stop the reaper, close what is idle. */
static apr_status_t pool_cleanup(void *data)
{
    livy_pool_t *pool = data;
    apr_thread_mutex_lock(pool->mutex);
    pool->stopping = 1;
    apr_thread_cond_broadcast(pool->tick);
    apr_thread_mutex_unlock(pool->mutex);
    if (pool->reaper) {
        apr_status_t rv;
        apr_thread_join(&rv, pool->reaper);
        pool->reaper = NULL;
    }
    apr_thread_mutex_lock(pool->mutex);
    pooled_conn_t *idle = pool->idle;
    pool->idle = NULL;
    apr_thread_mutex_unlock(pool->mutex);
    close_list(idle);
    return APR_SUCCESS;
}

static livy_pool_t *pool_create(apr_pool_t *pchild, server_rec *s, livy_server_conf_t *c,
                                int max)
{
    livy_pool_t *pool = apr_pcalloc(pchild, sizeof *pool);
    pool->s = s;
    pool->max = max;
    pool->acquire_timeout = livy_conf_acquire_timeout(c);
    pool->idle_expiry = livy_conf_pool_idle(c);
    connect_params(pchild, c->conninfo, livy_conf_statement_timeout(c), 0, &pool->keys,
                   &pool->vals);
    apr_status_t rv = apr_thread_mutex_create(&pool->mutex, APR_THREAD_MUTEX_DEFAULT, pchild);
    if (rv == APR_SUCCESS)
        rv = apr_thread_cond_create(&pool->freed, pchild);
    if (rv == APR_SUCCESS)
        rv = apr_thread_cond_create(&pool->tick, pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "livy: cannot create the connection pool");
        return NULL;
    }
    /* Before pchild's subpools (the reaper's own) and its cleanups (the mutex, the
     * conditions) go. */
    apr_pool_pre_cleanup_register(pchild, pool, pool_cleanup);
    if (pool->idle_expiry > 0) {
        /* The reaper takes no signals: they are the MPM's business, on its own threads. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        rv = apr_thread_create(&pool->reaper, NULL, reaper_main, pool, pchild);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rv != APR_SUCCESS) {
            pool->reaper = NULL;
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, "livy: cannot start the thread that "
                         "closes idle database connections; they close when the pool is next "
                         "used");
        }
    }
    return pool;
}

void livy_pool_child_init(apr_pool_t *pchild, server_rec *main_server)
{
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
        c->pool = pool_create(pchild, s, c, livy_conf_pool_max(c));
    }
}

livy_conn_t *livy_pool_acquire(request_rec *r, livy_server_conf_t *conf, int fresh,
                               const char **why)
{
    livy_pool_t *pool = conf->pool;
    if (!pool) {
        *why = "no database configured or the pool could not be created";
        return NULL;
    }
    apr_time_t deadline = apr_time_now() + pool->acquire_timeout;
    int waited = 0;
    apr_thread_mutex_lock(pool->mutex);
    for (;;) {
        apr_time_t now = apr_time_now();
        pooled_conn_t *drop = take_expired(pool, now);
        if (!drop && pool->idle && fresh && pool->open >= pool->max) {
            drop = pool->idle; /* make room for the fresh one */
            pool->idle = drop->next;
            drop->next = NULL;
        }
        if (drop) {
            apr_thread_mutex_unlock(pool->mutex);
            close_slots(pool, drop);
            apr_thread_mutex_lock(pool->mutex);
            continue;
        }
        pooled_conn_t *pc = NULL;
        if (pool->idle && !fresh) {
            pc = pool->idle;
            pool->idle = pc->next;
        } else if (pool->open < pool->max) {
            pool->open++; /* the slot is ours; connect without the lock */
        } else {
            apr_interval_time_t left = deadline - now;
            if (left <= 0) {
                apr_thread_mutex_unlock(pool->mutex);
                livy_metrics_pool(LIVY_POOL_TIMED_OUT, 1);
                *why = apr_psprintf(r->pool, "all %d database connections of this process "
                                    "stayed busy", pool->max);
                return NULL;
            }
            if (!waited)
                livy_metrics_pool(LIVY_POOL_WAITED, 1);
            waited = 1;
            apr_thread_cond_timedwait(pool->freed, pool->mutex, left);
            continue;
        }
        apr_thread_mutex_unlock(pool->mutex);

        if (pc) {
            pc->next = NULL;
            if (conn_usable(pc)) {
                pc->reused = 1;
                pc->completed = 0;
                livy_metrics_pool(LIVY_POOL_BORROWED, 1);
                return &pc->conn;
            }
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "livy: replacing a database connection the server closed");
            close_slots(pool, pc);
            apr_thread_mutex_lock(pool->mutex);
            continue;
        }

        pc = conn_open(pool, deadline, r->pool, why);
        if (pc) {
            pc->reused = 0;
            pc->completed = 0;
            livy_metrics_pool(LIVY_POOL_BORROWED, 1);
            return &pc->conn;
        }
        livy_metrics_pool(LIVY_POOL_CONNECT_FAILED, 1);
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "livy: cannot connect to the session database: %s", *why);
        *why = apr_pstrcat(r->pool, "cannot connect to the database: ", *why, NULL);
        apr_thread_mutex_lock(pool->mutex);
        pool->open--;
        apr_thread_cond_signal(pool->freed);
        apr_thread_mutex_unlock(pool->mutex);
        return NULL;
    }
}

int livy_pool_may_retry(const livy_conn_t *c, int idempotent)
{
    const pooled_conn_t *pc = (const pooled_conn_t *)c;
    return pc->reused && PQstatus(c->pg) == CONNECTION_BAD && (idempotent || !pc->completed);
}

void livy_pool_release(livy_server_conf_t *conf, livy_conn_t *c, int broken)
{
    pooled_conn_t *pc = (pooled_conn_t *)c;
    livy_pool_t *pool = pc->pool;
    livy_metrics_pool(LIVY_POOL_RETURNED, 1);
    if (broken || PQstatus(c->pg) != CONNECTION_OK || pc->server_fatal
        || PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        pc->next = NULL;
        close_slots(pool, pc);
        return;
    }
    apr_time_t now = apr_time_now();
    apr_thread_mutex_lock(pool->mutex);
    pc->idle_since = now;
    pc->next = pool->idle;
    pool->idle = pc;
    pooled_conn_t *expired = take_expired(pool, now);
    apr_thread_cond_signal(pool->freed);
    apr_thread_mutex_unlock(pool->mutex);
    if (expired)
        close_slots(pool, expired);
}

/* ---- sizing, checked at startup ---- */

/* Backends per CPU core of this host that the automatic budget allows. The module's statements
 * are short and CPU-bound on both sides: beyond a few backends per core, a burst only moves the
 * queue from the pool (a condition variable, cheap, in order) into the kernel's run queue, where
 * httpd's threads and PostgreSQL's backends preempt each other and the tail latency grows
 * (scripts/bench-api at 64 connections on 2 cores: p99 170-230 ms with a connection per thread,
 * 20-50 ms with 8 to 32 backends). */
#define BACKENDS_PER_CPU 4

/* The CPUs this process may run on (its affinity mask: a container's cpuset), at least 1. */
static int usable_cpus(void)
{
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* How many connections the pools of every process may open, against what the server allows;
 * a warning with the arithmetic when it may not fit. Once per (re)start, from the parent, over
 * a short-lived connection. */
int livy_pool_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                          server_rec *main_server)
{
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK; /* the first pass only checks the configuration */
    int threads = 0, daemons = 0, hard = 0;
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &daemons);
    ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &hard);
    if (daemons < 1)
        daemons = 1;
    apr_table_t *seen = apr_table_make(ptemp, 4);
    for (server_rec *s = main_server; s; s = s->next) {
        livy_server_conf_t *c = ap_get_module_config(s->module_config, &livy_module);
        if (!c->conninfo || apr_table_get(seen, c->conninfo))
            continue;
        apr_table_setn(seen, c->conninfo, "1");

        const char **keys, **vals;
        const char *why = NULL;
        connect_params(ptemp, c->conninfo, livy_conf_statement_timeout(c), 1, &keys, &vals);
        PGconn *pg = connect_by(keys, vals, apr_time_now() + apr_time_from_sec(3), ptemp, &why);
        PGresult *res = NULL;
        if (pg) {
            PQsetNoticeProcessor(pg, conn_notice, NULL);
            res = PQexec(pg, "SELECT current_setting('max_connections')::int,"
                             " current_setting('superuser_reserved_connections')::int");
            if (PQresultStatus(res) != PGRES_TUPLES_OK)
                why = livy_db_error(pg, ptemp);
        }
        int known = res && PQresultStatus(res) == PGRES_TUPLES_OK;
        long max_conn = known ? atol(PQgetvalue(res, 0, 0)) : 0;
        long reserved = known ? atol(PQgetvalue(res, 0, 1)) : 0;
        PQclear(res);
        if (pg)
            PQfinish(pg);

        /* The node's budget, split evenly among the processes the MPM may run. */
        int budget_conf = livy_conf_max_connections(c);
        long budget = budget_conf > 0 ? budget_conf
                      : budget_conf == 0 && known ? (max_conn - reserved) / 2 : 0;
        const char *cpu_note = "";
        if (budget_conf == 0 && known) {
            int cpus = usable_cpus();
            if ((long)cpus * BACKENDS_PER_CPU < budget) {
                budget = (long)cpus * BACKENDS_PER_CPU;
                cpu_note = apr_psprintf(ptemp, " (%d per CPU, %d CPU%s here)", BACKENDS_PER_CPU,
                                        cpus, cpus == 1 ? "" : "s");
            }
        }
        int share = budget > 0 ? (int)(budget / daemons > 0 ? budget / daemons : 1) : 0;
        for (server_rec *v = s; v; v = v->next) {
            livy_server_conf_t *vc = ap_get_module_config(v->module_config, &livy_module);
            if (vc->conninfo && !strcmp(vc->conninfo, c->conninfo))
                vc->pool_share = share;
        }
        int max = livy_conf_pool_max(c);
        long total = (long)max * daemons;
        /* An explicit LivyDatabasePoolMax is not sized by the automatic budget. */
        int budgeted = budget > 0 && (c->pool_max <= 0 || budget_conf > 0);
        const char *budget_text =
            !budgeted ? "" : apr_psprintf(ptemp, "; LivyDatabaseMaxConnections %s%ld%s",
                                          budget_conf > 0 ? "" : "auto: ", budget, cpu_note);

        if (!known) {
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "livy: up to %d processes x "
                         "LivyDatabasePoolMax %d = %ld connections%s; cannot compare them with "
                         "the database's max_connections at startup (%s)", daemons, max, total,
                         budget_text, why ? why : "no answer");
        } else {
            const char *restart = hard > daemons
                ? apr_psprintf(ptemp, " (up to %d during a graceful restart, ServerLimit)", hard)
                : "";
            if (total > max_conn - reserved)
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "livy: up to %d processes%s "
                             "x LivyDatabasePoolMax %d = %ld connections may exceed "
                             "PostgreSQL's max_connections %ld (minus %ld reserved)%s; lower "
                             "LivyDatabasePoolMax or MaxRequestWorkers, or put PgBouncer in "
                             "front", daemons, restart, max, total, max_conn, reserved,
                             budget_text);
            else
                ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "livy: up to %d processes%s "
                             "x LivyDatabasePoolMax %d = %ld connections, within "
                             "PostgreSQL's max_connections %ld (minus %ld reserved)%s",
                             daemons, restart, max, total, max_conn, reserved, budget_text);
        }
    }
    return OK;
}
