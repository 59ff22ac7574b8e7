/* livy_metrics: the Prometheus text exposition of the session database's state. */
#include "livy_metrics.h"

#include <apr_strings.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double livy_metrics_duration_bounds[LIVY_METRICS_DURATION_BUCKETS] = {
    0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300,
};

void livy_metrics_init(livy_metrics_t *m, const char *version, apr_pool_t *p)
{
    memset(m, 0, sizeof *m);
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
    if (!strcmp(fact, "supervisor")) {
        livy_metrics_supervisor_t *s = apr_array_push(m->supervisors);
        s->id = cell(res, i, MC_A, p);
        s->host = cell(res, i, MC_B, p);
        return double_cell(res, i, MC_N1, &s->heartbeat_age)
            || int_cell(res, i, MC_N2, &s->capacity)
            || int_cell(res, i, MC_N3, &s->sessions) ? -1 : 0;
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
    };
    for (int f = 0; f < 3; f++) {
        family(&t, per_supervisor[f].name, "gauge", per_supervisor[f].help);
        for (int i = 0; i < m->supervisors->nelts; i++) {
            const livy_metrics_supervisor_t *s =
                &APR_ARRAY_IDX(m->supervisors, i, livy_metrics_supervisor_t);
            const char *value = f == 0 ? fmt_double(p, s->heartbeat_age)
                              : f == 1 ? int_text(p, s->capacity) : int_text(p, s->sessions);
            supervisor_sample(&t, per_supervisor[f].name, s, value);
        }
    }

    family(&t, "livy_info", "gauge", "mod_livy's version and the database's schema version.");
    add(&t, apr_pstrcat(p, "livy_info{version=\"", livy_metrics_escape_label(m->version, p),
                        "\",schema_version=\"", int_text(p, m->schema_version), "\"} 1\n",
                        NULL));

    char *text = apr_array_pstrcat(p, t.parts, '\0');
    if (len)
        *len = strlen(text);
    return text;
}
