/* sv_config: the livy-supervisor configuration file (`key = value` lines) and its defaults. */
#include "sv_config.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef LIVY_SQL_DIR
#define LIVY_SQL_DIR "/usr/share/mod_livy/sql"
#endif
#ifndef LIVY_REPL_DRIVER
#define LIVY_REPL_DRIVER "/usr/share/mod_livy/repl/livy_repl.py"
#endif

void sv_config_defaults(sv_config_t *c, apr_pool_t *p)
{
    char host[256];
    memset(c, 0, sizeof *c);
    c->sql_dir = LIVY_SQL_DIR;
    c->python = "python3";
    c->repl_driver = LIVY_REPL_DRIVER;
    c->spark_master = "local[*]";
    c->max_sessions = 8;
    c->shared_driver_max_sessions = 8;
    c->heartbeat_interval_ms = 5000;
    c->supervisor_dead_after_ms = 30000;
    c->idle_timeout_ms = 3600 * 1000;
    c->session_ttl_ms = 0;
    c->list_ended_ms = 600 * 1000;
    c->retain_ended_ms = (apr_int64_t)7 * 24 * 3600 * 1000;
    c->db_statement_timeout_ms = 10 * 1000;
    c->stop_grace_ms = 10000;
    c->start_timeout_ms = 5 * 60 * 1000;
    c->log_lines_max = 1000;
    c->output_max_bytes = 1048576;
    c->sql_row_cap = 1000;
    c->check_interval_ms = 1000;
    c->repl_isolation = 1;
    c->repl_min_uid = 100;
    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    c->host_id = apr_pstrdup(p, host);
}

int sv_parse_duration(const char *s, apr_int64_t bare_unit_ms, int allow_off, apr_int64_t *out)
{
    if (allow_off && (strcasecmp(s, "off") == 0 || strcasecmp(s, "none") == 0)) {
        *out = 0;
        return 0;
    }
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    long long n = strtoll(s, &end, 10);
    if (errno != 0 || n < 0)
        return -1;
    apr_int64_t unit;
    if (*end == '\0')
        unit = bare_unit_ms;
    else if (strcmp(end, "ms") == 0)
        unit = 1;
    else if (strcmp(end, "s") == 0)
        unit = 1000;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        unit = 60 * 1000;
    else if (strcmp(end, "h") == 0)
        unit = 3600 * 1000;
    else if (strcmp(end, "d") == 0)
        unit = 86400 * 1000;
    else
        return -1;
    if (n > LLONG_MAX / unit)
        return -1;
    *out = (apr_int64_t)n * unit;
    return 0;
}

const char *sv_format_duration(apr_int64_t ms, apr_pool_t *p)
{
    static const struct { apr_int64_t unit; const char *suffix; } units[] = {
        {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms > 0 && ms % units[i].unit == 0)
            return apr_psprintf(p, "%" APR_INT64_T_FMT "%s", ms / units[i].unit, units[i].suffix);
    return apr_psprintf(p, "%" APR_INT64_T_FMT "ms", ms);
}

static int parse_int(const char *s, int min, int *out)
{
    errno = 0;
    char *end;
    long n = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || n < min || n > INT_MAX)
        return -1;
    *out = (int)n;
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Applies one key; returns NULL or a message saying what is wrong with the value. */
static const char *set_key(sv_config_t *c, const char *key, const char *value, apr_pool_t *p)
{
    static const struct { const char *key; size_t offset; } strings[] = {
        {"database", offsetof(sv_config_t, database)},
        {"run_dir", offsetof(sv_config_t, run_dir)},
        {"sql_dir", offsetof(sv_config_t, sql_dir)},
        {"python", offsetof(sv_config_t, python)},
        {"repl_driver", offsetof(sv_config_t, repl_driver)},
        {"spark_home", offsetof(sv_config_t, spark_home)},
        {"spark_conf_dir", offsetof(sv_config_t, spark_conf_dir)},
        {"hadoop_conf_dir", offsetof(sv_config_t, hadoop_conf_dir)},
        {"spark_submit", offsetof(sv_config_t, spark_submit)},
        {"spark_master", offsetof(sv_config_t, spark_master)},
        {"host_id", offsetof(sv_config_t, host_id)},
        {"user", offsetof(sv_config_t, user)},
        {"group", offsetof(sv_config_t, group)},
        {"repl_user", offsetof(sv_config_t, repl_user)},
        {"repl_env", offsetof(sv_config_t, repl_env)},
    };
    /* Durations: which unit a bare number has, and whether `off` is allowed. */
    static const struct { const char *key; size_t offset; apr_int64_t unit; int off; } durations[] = {
        {"heartbeat_interval", offsetof(sv_config_t, heartbeat_interval_ms), 1000, 0},
        {"supervisor_dead_after", offsetof(sv_config_t, supervisor_dead_after_ms), 1000, 0},
        {"idle_timeout", offsetof(sv_config_t, idle_timeout_ms), 1000, 1},
        {"session_ttl", offsetof(sv_config_t, session_ttl_ms), 1000, 1},
        {"list_ended", offsetof(sv_config_t, list_ended_ms), 1000, 0},
        {"retain_ended", offsetof(sv_config_t, retain_ended_ms), 1000, 1},
        {"db_statement_timeout", offsetof(sv_config_t, db_statement_timeout_ms), 1000, 1},
        {"stop_grace", offsetof(sv_config_t, stop_grace_ms), 1000, 0},
        {"start_timeout", offsetof(sv_config_t, start_timeout_ms), 1000, 1},
        {"check_interval", offsetof(sv_config_t, check_interval_ms), 1, 0},
    };
    static const struct { const char *key; size_t offset; int min; } ints[] = {
        {"max_sessions", offsetof(sv_config_t, max_sessions), 0},
        {"log_lines_max", offsetof(sv_config_t, log_lines_max), 1},
        {"sql_row_cap", offsetof(sv_config_t, sql_row_cap), 0},
        {"repl_min_uid", offsetof(sv_config_t, repl_min_uid), 1},
        {"warm_sessions", offsetof(sv_config_t, warm_sessions), 0},
        {"shared_driver_max_sessions", offsetof(sv_config_t, shared_driver_max_sessions), 1},
    };

    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        if (strcmp(key, strings[i].key) == 0) {
            if (*value == '\0' && strcmp(key, "spark_home") != 0)
                return "an empty value";
            *(const char **)((char *)c + strings[i].offset) =
                *value ? apr_pstrdup(p, value) : NULL;
            return NULL;
        }
    }
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        if (strcmp(key, durations[i].key) == 0) {
            apr_int64_t ms;
            if (sv_parse_duration(value, durations[i].unit, durations[i].off, &ms) != 0)
                return durations[i].off
                    ? "not a duration (like 500ms, 10s, 10m, 1h, 2d, or off)"
                    : "not a duration (like 500ms, 10s, 10m, 1h, 2d)";
            if (!durations[i].off && ms == 0)
                return "zero (it must be positive)";
            *(apr_int64_t *)((char *)c + durations[i].offset) = ms;
            return NULL;
        }
    }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(key, ints[i].key) == 0) {
            if (parse_int(value, ints[i].min, (int *)((char *)c + ints[i].offset)) != 0)
                return ints[i].min > 0 ? "not a positive integer" : "not a non-negative integer";
            return NULL;
        }
    }
    if (strcmp(key, "repl_user_from") == 0) {
        if (strcmp(value, "owner") == 0)
            c->repl_user_from = SV_REPL_USER_OWNER;
        else if (strcmp(value, "proxy_user") == 0)
            c->repl_user_from = SV_REPL_USER_PROXY_USER;
        else
            return "not one of owner, proxy_user";
        return NULL;
    }
    if (strcmp(key, "repl_isolation") == 0) {
        if (strcasecmp(value, "on") == 0)
            c->repl_isolation = 1;
        else if (strcasecmp(value, "off") == 0)
            c->repl_isolation = 0;
        else
            return "not on or off";
        return NULL;
    }
    if (strcmp(key, "output_max_bytes") == 0) {
        int n;
        if (parse_int(value, 1024, &n) != 0)
            return "not an integer of at least 1024";
        c->output_max_bytes = n;
        return NULL;
    }
    return "";
}

int sv_config_load(sv_config_t *c, const char *path, apr_pool_t *p, const char **errmsg)
{
    apr_file_t *f;
    apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BUFFERED, 0, p);
    if (rv != APR_SUCCESS) {
        char buf[256];
        *errmsg = apr_psprintf(p, "cannot read the configuration file %s: %s", path,
                               apr_strerror(rv, buf, sizeof buf));
        return -1;
    }
    c->path = apr_pstrdup(p, path);
    char line[8192];
    int lineno = 0;
    int rc = 0;
    while (rc == 0 && apr_file_gets(line, sizeof line, f) == APR_SUCCESS) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            *errmsg = apr_psprintf(p, "%s:%d: line too long", path, lineno);
            rc = -1;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            *errmsg = apr_psprintf(p, "%s:%d: expected `key = value`, got \"%s\"", path, lineno, s);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value = trim(eq + 1);
        /* Values may be quoted, so a conninfo with spaces reads naturally. */
        size_t vlen = strlen(value);
        if (vlen >= 2 && ((value[0] == '"' && value[vlen - 1] == '"')
                          || (value[0] == '\'' && value[vlen - 1] == '\''))) {
            value[vlen - 1] = '\0';
            value++;
        }
        const char *why = set_key(c, key, value, p);
        if (why && *why == '\0') {
            *errmsg = apr_psprintf(p, "%s:%d: unknown key \"%s\"", path, lineno, key);
            rc = -1;
        }
        else if (why) {
            *errmsg = apr_psprintf(p, "%s:%d: %s: \"%s\" is %s", path, lineno, key, value, why);
            rc = -1;
        }
    }
    apr_file_close(f);
    return rc;
}

int sv_config_check(const sv_config_t *c, apr_pool_t *p, const char **errmsg)
{
    const char *where = c->path ? c->path : "the command line";
    if (!c->database) {
        *errmsg = apr_psprintf(p, "%s: `database` (a libpq conninfo) is required", where);
        return -1;
    }
    if (!c->run_dir) {
        *errmsg = apr_psprintf(p, "%s: `run_dir` (a writable directory) is required", where);
        return -1;
    }
    if (c->run_dir[0] != '/') {
        *errmsg = apr_psprintf(p, "%s: run_dir must be an absolute path, got %s", where, c->run_dir);
        return -1;
    }
    /* Unix socket paths are short: the longest session's socket must fit sun_path. */
    struct sockaddr_un sun;
    size_t longest = strlen(sv_config_session_dir(c, INT64_MAX, p)) + sizeof "/repl.sock";
    if (longest > sizeof sun.sun_path) {
        *errmsg = apr_psprintf(p, "%s: run_dir %s is too long for Unix socket paths "
                               "(at most %d characters)", where, c->run_dir,
                               (int)(strlen(c->run_dir) + sizeof sun.sun_path - longest));
        return -1;
    }
    if (c->repl_isolation && !c->repl_user && c->repl_user_from == SV_REPL_USER_FIXED) {
        *errmsg = apr_psprintf(p, "%s: set `repl_user` (an unprivileged account the REPL children "
                               "run as) or `repl_user_from`; `repl_isolation = off` runs every "
                               "session's code as the supervisor, for single-user development "
                               "only", where);
        return -1;
    }
    if (c->warm_sessions > 0 && c->repl_isolation && c->repl_user_from != SV_REPL_USER_FIXED) {
        *errmsg = apr_psprintf(p, "%s: warm_sessions needs every REPL to run as one account "
                               "(repl_user): with repl_user_from, a REPL's account is known only "
                               "when its session is created", where);
        return -1;
    }
    if (c->warm_sessions > c->max_sessions) {
        *errmsg = apr_psprintf(p, "%s: warm_sessions (%d) is more than max_sessions (%d)", where,
                               c->warm_sessions, c->max_sessions);
        return -1;
    }
    if (c->repl_env) {
        char *names = apr_pstrdup(p, c->repl_env), *save = NULL;
        for (char *n = apr_strtok(names, " \t,", &save); n; n = apr_strtok(NULL, " \t,", &save)) {
            if (strncmp(n, "PG", 2) == 0 || strncmp(n, "LIVY", 4) == 0 || strchr(n, '=')) {
                *errmsg = apr_psprintf(p, "%s: repl_env: %s may not be passed to REPLs (database "
                                       "and supervisor settings never reach user code)", where, n);
                return -1;
            }
        }
    }
    if (c->retain_ended_ms > 0 && c->retain_ended_ms < c->list_ended_ms) {
        *errmsg = apr_psprintf(p, "%s: retain_ended (when ended sessions are purged) must not be "
                               "shorter than list_ended (how long they stay listed)", where);
        return -1;
    }
    if (c->heartbeat_interval_ms >= c->supervisor_dead_after_ms) {
        *errmsg = apr_psprintf(p, "%s: heartbeat_interval must be shorter than supervisor_dead_after",
                               where);
        return -1;
    }
    return 0;
}

const char *sv_config_session_dir(const sv_config_t *c, apr_int64_t id, apr_pool_t *p)
{
    return apr_psprintf(p, "%s/sessions/session-%" APR_INT64_T_FMT, c->run_dir, id);
}

static int under_tmp(const char *path)
{
    return path && (strncmp(path, "/tmp/", 5) == 0 || strcmp(path, "/tmp") == 0);
}

int sv_config_private_tmp(const sv_config_t *c)
{
    return !under_tmp(c->python) && !under_tmp(c->repl_driver) && !under_tmp(c->spark_home)
           && !under_tmp(c->spark_conf_dir) && !under_tmp(c->hadoop_conf_dir);
}

int sv_config_spark_env(const sv_config_t *c, const char **set, apr_pool_t *p)
{
    int n = 0;
    if (c->spark_home)
        set[n++] = apr_pstrcat(p, "SPARK_HOME=", c->spark_home, NULL);
    if (c->spark_conf_dir)
        set[n++] = apr_pstrcat(p, "SPARK_CONF_DIR=", c->spark_conf_dir, NULL);
    if (c->hadoop_conf_dir)
        set[n++] = apr_pstrcat(p, "HADOOP_CONF_DIR=", c->hadoop_conf_dir, NULL);
    return n;
}
