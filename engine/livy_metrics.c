/* livy_metrics: the Prometheus text exposition of the session database's state. */
#include "livy_metrics.h"

#include <apr_strings.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double livy_metrics_duration_bounds[LIVY_METRICS_DURATION_BUCKETS] = {
    0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300,
};

const double livy_metrics_start_bounds[LIVY_METRICS_START_BUCKETS] = {
    1, 2, 5, 10, 20, 30, 60, 120, 300,
};

const double livy_metrics_request_bounds[LIVY_METRICS_REQUEST_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
};

static const int counted_statuses[LIVY_METRICS_STATUS_SLOTS - 1] = {
    200, 201, 204, 304, 400, 401, 403, 404, 405, 408, 409, 413, 429, 500, 501, 502, 503, 504,
};

int livy_metrics_status_slot(int status)
{
    for (int i = 0; i < LIVY_METRICS_STATUS_SLOTS - 1; i++)
        if (counted_statuses[i] == status)
            return i;
    return LIVY_METRICS_STATUS_SLOTS - 1;
}

livy_metrics_family_e livy_metrics_family(int route)
{
    switch ((livy_route_e)route) {
    case LIVY_ROUTE_VERSION: return LIVY_MF_VERSION;
    case LIVY_ROUTE_SESSIONS: return LIVY_MF_SESSIONS;
    case LIVY_ROUTE_SESSION:
    case LIVY_ROUTE_SESSION_STATE:
    case LIVY_ROUTE_SESSION_CONNECT:
    case LIVY_ROUTE_SESSION_STOP: return LIVY_MF_SESSION;
    case LIVY_ROUTE_SESSION_COMPLETION: return LIVY_MF_COMPLETION;
    case LIVY_ROUTE_STATEMENTS:
    case LIVY_ROUTE_STATEMENT:
    case LIVY_ROUTE_STATEMENT_CANCEL: return LIVY_MF_STATEMENTS;
    case LIVY_ROUTE_SESSION_LOG:
    case LIVY_ROUTE_BATCH_LOG: return LIVY_MF_LOG;
    case LIVY_ROUTE_SESSION_UI: return LIVY_MF_SPARK_UI;
    case LIVY_ROUTE_BATCHES: return LIVY_MF_BATCHES;
    case LIVY_ROUTE_BATCH:
    case LIVY_ROUTE_BATCH_STATE: return LIVY_MF_BATCH;
    case LIVY_ROUTE_METRICS: return LIVY_MF_METRICS;
    case LIVY_ROUTE_WEBUI_FILE:
    case LIVY_ROUTE_WEBUI_SUPERVISORS:
    case LIVY_ROUTE_WEBUI_SESSION_TIMES: return LIVY_MF_WEBUI;
    case LIVY_ROUTE_OPENAPI: return LIVY_MF_OPENAPI;
    default: return LIVY_MF_OTHER;
    }
}

const char *livy_metrics_family_name(livy_metrics_family_e f)
{
    static const char *const names[LIVY_MF__COUNT] = {
        "other", "version", "sessions", "session", "statements", "completion", "log",
        "spark_ui", "batches", "batch", "metrics", "webui", "openapi",
    };
    return f >= 0 && f < LIVY_MF__COUNT ? names[f] : "other";
}

void livy_metrics_http_count(livy_metrics_http_t *h, livy_metrics_family_e f, int status,
                             int64_t duration_us)
{
    if (f < 0 || f >= LIVY_MF__COUNT)
        f = LIVY_MF_OTHER;
    if (duration_us < 0)
        duration_us = 0;
    h->requests[f][livy_metrics_status_slot(status)]++;
    int b = 0;
    while (b < LIVY_METRICS_REQUEST_BUCKETS
           && (double)duration_us > livy_metrics_request_bounds[b] * 1e6)
        b++;
    if (b < LIVY_METRICS_REQUEST_BUCKETS)
        h->duration_bucket[f][b]++;
    h->duration_count[f]++;
    h->duration_sum_us[f] += (uint64_t)duration_us;
}

void livy_metrics_init(livy_metrics_t *m, const char *version, apr_pool_t *p)
{
    memset(m, 0, sizeof *m);
    m->batches = apr_array_make(p, 8, sizeof(livy_metrics_statement_t));
    m->sessions = apr_array_make(p, 16, sizeof(livy_metrics_session_t));
    m->statements = apr_array_make(p, 8, sizeof(livy_metrics_statement_t));
    m->supervisors = apr_array_make(p, 4, sizeof(livy_metrics_supervisor_t));
    m->version = version;
}

/* A double as Prometheus reads it: the shortest of %g's forms that reads back the same. */
static const char *fmt_double(apr_pool_t *p, double v)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    char buf[64];
    for (int precision = 6; precision <= 17; precision++) {
        snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return apr_pstrdup(p, buf);
}

const char *livy_metrics_bounds_param(apr_pool_t *p)
{
    const char *s = "{";
    for (int i = 0; i < LIVY_METRICS_DURATION_BUCKETS; i++)
        s = apr_pstrcat(p, s, i ? "," : "", fmt_double(p, livy_metrics_duration_bounds[i]),
                        NULL);
    return apr_pstrcat(p, s, "}", NULL);
}

const char *livy_metrics_start_bounds_param(apr_pool_t *p)
{
    const char *s = "{";
    for (int i = 0; i < LIVY_METRICS_START_BUCKETS; i++)
        s = apr_pstrcat(p, s, i ? "," : "", fmt_double(p, livy_metrics_start_bounds[i]), NULL);
    return apr_pstrcat(p, s, "}", NULL);
}

const char *livy_metrics_escape_label(const char *s, apr_pool_t *p)
{
    if (!s)
        return "";
    size_t extra = 0;
    for (const char *c = s; *c; c++)
        extra += *c == '\\' || *c == '"' || *c == '\n';
    if (!extra)
        return s;
    char *out = apr_palloc(p, strlen(s) + extra + 1), *o = out;
    for (const char *c = s; *c; c++) {
        if (*c == '\\' || *c == '"') {
            *o++ = '\\';
            *o++ = *c;
        } else if (*c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else {
            *o++ = *c;
        }
    }
    *o = '\0';
    return out;
}

/* ---- reading the query's rows ---- */

static const char *cell(const PGresult *res, int row, int c, apr_pool_t *p)
{
    return PQgetisnull(res, row, c) ? NULL : apr_pstrdup(p, PQgetvalue(res, row, c));
}

static int int_cell(const PGresult *res, int row, int c, int64_t *out)
{
    if (PQgetisnull(res, row, c))
        return -1;
    const char *text = PQgetvalue(res, row, c);
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || errno)
        return -1;
    *out = v;
    return 0;
}

static int double_cell(const PGresult *res, int row, int c, double *out)
{
    if (PQgetisnull(res, row, c))
        return -1;
    const char *text = PQgetvalue(res, row, c);
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || errno)
        return -1;
    *out = v;
    return 0;
}

static int read_row(const PGresult *res, int i, livy_metrics_t *m, apr_pool_t *p)
{
    const char *fact = PQgetvalue(res, i, MC_FACT);
    if (!strcmp(fact, "session")) {
        livy_metrics_session_t *s = apr_array_push(m->sessions);
        s->state = cell(res, i, MC_A, p);
        s->kind = cell(res, i, MC_B, p);
        return int_cell(res, i, MC_N1, &s->count);
    }
    if (!strcmp(fact, "statement")) {
        livy_metrics_statement_t *s = apr_array_push(m->statements);
        s->state = cell(res, i, MC_A, p);
        return int_cell(res, i, MC_N1, &s->count);
    }
    if (!strcmp(fact, "bucket")) { /* MC_A: the bound's position, from 1 */
        int64_t at;
        if (int_cell(res, i, MC_A, &at) || at < 1 || at > LIVY_METRICS_DURATION_BUCKETS)
            return -1;
        return int_cell(res, i, MC_N1, &m->duration_le[at - 1]);
    }
    if (!strcmp(fact, "duration"))
        return int_cell(res, i, MC_N1, &m->duration_count)
            || double_cell(res, i, MC_N2, &m->duration_sum) ? -1 : 0;
    if (!strcmp(fact, "batch")) {
        livy_metrics_statement_t *b = apr_array_push(m->batches);
        b->state = cell(res, i, MC_A, p);
        return int_cell(res, i, MC_N1, &b->count);
    }
    if (!strcmp(fact, "start_bucket")) {
        int64_t at;
        if (int_cell(res, i, MC_A, &at) || at < 1 || at > LIVY_METRICS_START_BUCKETS)
            return -1;
        return int_cell(res, i, MC_N1, &m->start_le[at - 1]);
    }
    if (!strcmp(fact, "start"))
        return int_cell(res, i, MC_N1, &m->start_count)
            || double_cell(res, i, MC_N2, &m->start_sum) ? -1 : 0;
    if (!strcmp(fact, "supervisor")) {
        livy_metrics_supervisor_t *s = apr_array_push(m->supervisors);
        s->id = cell(res, i, MC_A, p);
        s->host = cell(res, i, MC_B, p);
        return double_cell(res, i, MC_N1, &s->heartbeat_age)
            || int_cell(res, i, MC_N2, &s->capacity)
            || int_cell(res, i, MC_N3, &s->sessions)
            || int_cell(res, i, MC_N4, &s->batches) ? -1 : 0;
    }
    if (!strcmp(fact, "warm")) { /* MC_A: the supervisor's id, listed before (ORDER BY) */
        for (int k = 0; k < m->supervisors->nelts; k++) {
            livy_metrics_supervisor_t *s = &APR_ARRAY_IDX(m->supervisors, k,
                                                          livy_metrics_supervisor_t);
            if (s->id && !strcmp(s->id, PQgetvalue(res, i, MC_A)))
                return int_cell(res, i, MC_N1, &s->warm_ready)
                    || int_cell(res, i, MC_N2, &s->warm_starting) ? -1 : 0;
        }
        return 0; /* a stopped supervisor's: not reported */
    }
    if (!strcmp(fact, "info")) {
        int64_t v;
        if (int_cell(res, i, MC_N1, &v) || v < 0 || v > 1000000)
            return -1;
        m->schema_version = (int)v;
        return 0;
    }
    return -1;
}

int livy_metrics_from_result(const PGresult *res, livy_metrics_t *m, apr_pool_t *p,
                             const char **errmsg)
{
    if (PQnfields(res) != MC__COUNT) {
        *errmsg = apr_psprintf(p, "the metrics query returned %d columns, not %d",
                               PQnfields(res), MC__COUNT);
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        if (read_row(res, i, m, p) != 0) {
            *errmsg = apr_psprintf(p, "the metrics query returned an unexpected row %d "
                                   "(fact '%s')", i, PQgetvalue(res, i, MC_FACT));
            return -1;
        }
    }
    return 0;
}

/* ---- the exposition text ---- */

typedef struct {
    apr_array_header_t *parts; /* of const char *, joined at the end */
    apr_pool_t *p;
} text_t;

static void add(text_t *t, const char *s)
{
    APR_ARRAY_PUSH(t->parts, const char *) = s;
}

static void family(text_t *t, const char *name, const char *type, const char *help)
{
    add(t, apr_pstrcat(t->p, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n",
                       NULL));
}

static const char *int_text(apr_pool_t *p, int64_t v)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

/* name{host="...",id="..."} value, for one supervisor */
static void supervisor_sample(text_t *t, const char *name, const livy_metrics_supervisor_t *s,
                              const char *value)
{
    add(t, apr_pstrcat(t->p, name, "{host=\"", livy_metrics_escape_label(s->host, t->p),
                       "\",id=\"", livy_metrics_escape_label(s->id, t->p), "\"} ", value, "\n",
                       NULL));
}

static const char *uint_text(apr_pool_t *p, uint64_t v)
{
    return apr_psprintf(p, "%" APR_UINT64_T_FMT, v);
}

/* This httpd's own families: requests by route family and status, their durations, the
 * connection pools. */
static void render_http(text_t *t, const livy_metrics_http_t *h)
{
    apr_pool_t *p = t->p;
    family(t, "livy_http_requests_total", "counter",
           "Requests this httpd answered on mod_livy's locations, by route family and status "
           "code (since httpd last started).");
    for (int f = 0; f < LIVY_MF__COUNT; f++)
        for (int s = 0; s < LIVY_METRICS_STATUS_SLOTS; s++) {
            if (!h->requests[f][s])
                continue;
            const char *code = s < LIVY_METRICS_STATUS_SLOTS - 1
                                   ? apr_psprintf(p, "%d", counted_statuses[s]) : "other";
            add(t, apr_pstrcat(p, "livy_http_requests_total{route=\"",
                               livy_metrics_family_name(f), "\",code=\"", code, "\"} ",
                               uint_text(p, h->requests[f][s]), "\n", NULL));
        }
    family(t, "livy_http_request_duration_seconds", "histogram",
           "Time from a request's first line to its last byte, by route family (since httpd "
           "last started).");
    for (int f = 0; f < LIVY_MF__COUNT; f++) {
        if (!h->duration_count[f])
            continue;
        const char *name = livy_metrics_family_name(f);
        uint64_t cumulative = 0;
        for (int b = 0; b < LIVY_METRICS_REQUEST_BUCKETS; b++) {
            cumulative += h->duration_bucket[f][b];
            add(t, apr_pstrcat(p, "livy_http_request_duration_seconds_bucket{route=\"", name,
                               "\",le=\"", fmt_double(p, livy_metrics_request_bounds[b]), "\"} ",
                               uint_text(p, cumulative), "\n", NULL));
        }
        add(t, apr_pstrcat(p, "livy_http_request_duration_seconds_bucket{route=\"", name,
                           "\",le=\"+Inf\"} ", uint_text(p, h->duration_count[f]), "\n",
                           "livy_http_request_duration_seconds_sum{route=\"", name, "\"} ",
                           fmt_double(p, (double)h->duration_sum_us[f] / 1e6), "\n",
                           "livy_http_request_duration_seconds_count{route=\"", name, "\"} ",
                           uint_text(p, h->duration_count[f]), "\n", NULL));
    }
    int64_t in_use = h->pool_in_use < 0 ? 0 : h->pool_in_use;
    int64_t idle = h->pool_open - in_use < 0 ? 0 : h->pool_open - in_use;
    family(t, "livy_db_pool_connections", "gauge",
           "Database connections of this httpd's processes, borrowed by a request (in_use) or "
           "waiting in a pool (idle).");
    add(t, apr_pstrcat(p, "livy_db_pool_connections{state=\"in_use\"} ", int_text(p, in_use),
                       "\nlivy_db_pool_connections{state=\"idle\"} ", int_text(p, idle), "\n",
                       NULL));
    static const struct {
        const char *name, *help;
        size_t offset;
    } counters[] = {
        {"livy_db_pool_waits_total", "Requests that waited for a connection of their "
         "process's pool (all were borrowed).", offsetof(livy_metrics_http_t, pool_waits)},
        {"livy_db_pool_timeouts_total", "Requests that got none within "
         "LivyDatabaseAcquireTimeout (answered 503).", offsetof(livy_metrics_http_t,
                                                                 pool_timeouts)},
        {"livy_db_pool_connects_total", "Database connections opened.",
         offsetof(livy_metrics_http_t, pool_connects)},
        {"livy_db_pool_connect_failures_total", "Database connections that could not be "
         "opened.", offsetof(livy_metrics_http_t, pool_connect_failures)},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        family(t, counters[i].name, "counter", counters[i].help);
        add(t, apr_pstrcat(p, counters[i].name, " ",
                           uint_text(p, *(const uint64_t *)((const char *)h + counters[i].offset)),
                           "\n", NULL));
    }
}

char *livy_metrics_render(const livy_metrics_t *m, apr_pool_t *p, size_t *len)
{
    text_t t = {apr_array_make(p, 64, sizeof(const char *)), p};

    family(&t, "livy_sessions", "gauge",
           "Sessions listed by GET /sessions (ended ones included until they are no longer "
           "listed) and deleted ones still shutting down, by state and kind.");
    for (int i = 0; i < m->sessions->nelts; i++) {
        const livy_metrics_session_t *s = &APR_ARRAY_IDX(m->sessions, i, livy_metrics_session_t);
        add(&t, apr_pstrcat(p, "livy_sessions{state=\"", livy_metrics_escape_label(s->state, p),
                            "\",kind=\"", livy_metrics_escape_label(s->kind, p), "\"} ",
                            int_text(p, s->count), "\n", NULL));
    }

    family(&t, "livy_statements", "gauge", "Statements of the sessions counted by livy_sessions, "
                                           "by state.");
    for (int i = 0; i < m->statements->nelts; i++) {
        const livy_metrics_statement_t *s =
            &APR_ARRAY_IDX(m->statements, i, livy_metrics_statement_t);
        add(&t, apr_pstrcat(p, "livy_statements{state=\"",
                            livy_metrics_escape_label(s->state, p), "\"} ",
                            int_text(p, s->count), "\n", NULL));
    }

    family(&t, "livy_statement_duration_seconds", "histogram",
           "Run time (completed - started) of the completed statements the database retains; "
           "it decreases when ended sessions are purged.");
    for (int i = 0; i < LIVY_METRICS_DURATION_BUCKETS; i++)
        add(&t, apr_pstrcat(p, "livy_statement_duration_seconds_bucket{le=\"",
                            fmt_double(p, livy_metrics_duration_bounds[i]), "\"} ",
                            int_text(p, m->duration_le[i]), "\n", NULL));
    add(&t, apr_pstrcat(p, "livy_statement_duration_seconds_bucket{le=\"+Inf\"} ",
                        int_text(p, m->duration_count), "\n",
                        "livy_statement_duration_seconds_sum ", fmt_double(p, m->duration_sum),
                        "\n", "livy_statement_duration_seconds_count ",
                        int_text(p, m->duration_count), "\n", NULL));

    family(&t, "livy_session_start_duration_seconds", "histogram",
           "Time from a session's create to its first idle, of the sessions the database "
           "retains that got there.");
    for (int i = 0; i < LIVY_METRICS_START_BUCKETS; i++)
        add(&t, apr_pstrcat(p, "livy_session_start_duration_seconds_bucket{le=\"",
                            fmt_double(p, livy_metrics_start_bounds[i]), "\"} ",
                            int_text(p, m->start_le[i]), "\n", NULL));
    add(&t, apr_pstrcat(p, "livy_session_start_duration_seconds_bucket{le=\"+Inf\"} ",
                        int_text(p, m->start_count), "\n",
                        "livy_session_start_duration_seconds_sum ", fmt_double(p, m->start_sum),
                        "\n", "livy_session_start_duration_seconds_count ",
                        int_text(p, m->start_count), "\n", NULL));

    family(&t, "livy_batches", "gauge", "Batches listed by GET /batches (ended ones included "
                                        "until they are no longer listed) and deleted ones "
                                        "still running, by state.");
    for (int i = 0; i < m->batches->nelts; i++) {
        const livy_metrics_statement_t *b = &APR_ARRAY_IDX(m->batches, i, livy_metrics_statement_t);
        add(&t, apr_pstrcat(p, "livy_batches{state=\"", livy_metrics_escape_label(b->state, p),
                            "\"} ", int_text(p, b->count), "\n", NULL));
    }

    family(&t, "livy_supervisors", "gauge", "livy-supervisor processes registered and not "
                                            "stopped.");
    add(&t, apr_pstrcat(p, "livy_supervisors ", int_text(p, m->supervisors->nelts), "\n", NULL));

    static const struct {
        const char *name, *help;
    } per_supervisor[] = {
        {"livy_supervisor_heartbeat_age_seconds", "Seconds since the supervisor's last "
                                                  "heartbeat, by the database's clock."},
        {"livy_supervisor_capacity", "Sessions the supervisor may run at once."},
        {"livy_supervisor_sessions", "Live sessions the supervisor holds."},
        {"livy_supervisor_batches", "Live batches the supervisor runs (each takes one of its "
                                    "capacity too)."},
        {"livy_supervisor_warm_repls", "Warm REPLs the supervisor keeps ready (warm_sessions): "
                                       "a new session that takes one is idle at once."},
        {"livy_supervisor_warm_repls_starting", "Warm REPLs the supervisor is starting."},
    };
    for (int f = 0; f < 6; f++) {
        family(&t, per_supervisor[f].name, "gauge", per_supervisor[f].help);
        for (int i = 0; i < m->supervisors->nelts; i++) {
            const livy_metrics_supervisor_t *s =
                &APR_ARRAY_IDX(m->supervisors, i, livy_metrics_supervisor_t);
            const char *value = f == 0 ? fmt_double(p, s->heartbeat_age)
                              : f == 1 ? int_text(p, s->capacity)
                              : f == 2 ? int_text(p, s->sessions)
                              : f == 3 ? int_text(p, s->batches)
                              : f == 4 ? int_text(p, s->warm_ready) : int_text(p, s->warm_starting);
            supervisor_sample(&t, per_supervisor[f].name, s, value);
        }
    }

    if (m->http)
        render_http(&t, m->http);

    family(&t, "livy_info", "gauge", "mod_livy's version and the database's schema version.");
    add(&t, apr_pstrcat(p, "livy_info{version=\"", livy_metrics_escape_label(m->version, p),
                        "\",schema_version=\"", int_text(p, m->schema_version), "\"} 1\n",
                        NULL));

    char *text = apr_array_pstrcat(p, t.parts, '\0');
    if (len)
        *len = strlen(text);
    return text;
}
