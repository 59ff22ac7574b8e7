/* sv_config: the livy-supervisor configuration file (`key = value` lines) and its defaults. */
#ifndef SV_CONFIG_H
#define SV_CONFIG_H

#include <apr_pools.h>

typedef enum {
    SV_REPL_USER_FIXED,      /* repl_user for every session */
    SV_REPL_USER_OWNER,      /* the session owner's account (repl_user_from owner) */
    SV_REPL_USER_PROXY_USER, /* the proxy user's account, else the owner's */
} sv_repl_user_from_t;

typedef struct sv_config {
    const char *path;              /* the file it was read from, NULL when none */
    const char *database;          /* libpq conninfo */
    const char *run_dir;           /* sockets, pid files, per-session conf and log files */
    const char *sql_dir;           /* migrations for --migrate */
    const char *python;            /* interpreter for the REPL child */
    const char *repl_driver;       /* path to livy_repl.py */
    const char *spark_home;        /* exported as SPARK_HOME when set */
    const char *spark_conf_dir;    /* exported as SPARK_CONF_DIR when set */
    const char *hadoop_conf_dir;   /* exported as HADOOP_CONF_DIR when set */
    const char *spark_submit;      /* what runs batches; NULL: found (sv_batch.c) */
    const char *spark_master;
    int max_sessions;
    int warm_sessions;             /* REPLs kept started ahead of demand, within max_sessions */
    int shared_driver_max_sessions; /* sessions one shared driver hosts at most */
    apr_int64_t heartbeat_interval_ms;
    apr_int64_t supervisor_dead_after_ms;
    apr_int64_t idle_timeout_ms;   /* 0 = never */
    apr_int64_t session_ttl_ms;    /* 0 = off */
    apr_int64_t list_ended_ms;     /* ended sessions stay listed this long (Livy's state-retain) */
    apr_int64_t retain_ended_ms;   /* then their rows are purged after this long; 0 = never */
    apr_int64_t db_statement_timeout_ms; /* every query of ours; 0 = no limit */
    apr_int64_t stop_grace_ms;
    apr_int64_t start_timeout_ms;  /* a REPL whose Spark is not up by then fails; 0 = never */
    int log_lines_max;
    apr_int64_t output_max_bytes;
    int sql_row_cap;
    const char *host_id;           /* identity for reattaching to children after a restart */
    apr_int64_t check_interval_ms; /* timer granularity for timeouts */
    const char *user;              /* the account to drop to when started as root */
    const char *group;             /* ... and its group (default: the account's own) */
    const char *repl_user;         /* the account every REPL runs as */
    sv_repl_user_from_t repl_user_from; /* or each session's own account */
    int repl_isolation;            /* 0: REPLs run as the supervisor (single-user development) */
    int repl_min_uid;              /* REPL accounts below this uid are refused */
    const char *repl_env;          /* extra environment variable names passed to REPLs */
} sv_config_t;

/* Appends to set (an environment under construction) where Spark, its configuration and
 * Hadoop's are: SPARK_HOME, SPARK_CONF_DIR and HADOOP_CONF_DIR for those configured. Returns
 * how many entries it added (at most SV_CONFIG_SPARK_ENV_MAX). */
#define SV_CONFIG_SPARK_ENV_MAX 3
int sv_config_spark_env(const sv_config_t *c, const char **set, apr_pool_t *p);

/* Whether each REPL can have a /tmp of its own: not when what it runs (python, the driver,
 * Spark) lives under /tmp, where it would no longer see it. */
int sv_config_private_tmp(const sv_config_t *c);

/* The session directory, and the REPL's socket in it, of session id. */
const char *sv_config_session_dir(const sv_config_t *c, apr_int64_t id, apr_pool_t *p);

/* Fills c with the compiled-in defaults. */
void sv_config_defaults(sv_config_t *c, apr_pool_t *p);

/* Reads `path` over the defaults. Returns 0, or -1 with *errmsg naming the line. */
int sv_config_load(sv_config_t *c, const char *path, apr_pool_t *p, const char **errmsg);

/* Checks what running (not --migrate) needs: database, run_dir. Returns 0 or -1 with *errmsg. */
int sv_config_check(const sv_config_t *c, apr_pool_t *p, const char **errmsg);

/* Parses a duration: `500ms`, `10s`, `10m`, `1h`, `2d`; a bare number is in `bare_unit_ms`.
 * `off`/`none` mean 0 when allow_off. Returns 0 or -1. */
int sv_parse_duration(const char *s, apr_int64_t bare_unit_ms, int allow_off, apr_int64_t *out);

/* Formats a duration in ms the way a person writes it ("10m", "1500ms"). */
const char *sv_format_duration(apr_int64_t ms, apr_pool_t *p);

#endif
