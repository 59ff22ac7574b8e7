/* mod_livy_config: the Livy* directives, and how server and directory configs merge. */
#include "mod_livy.h"

#include "livy_paths.h"

#include "ap_mpm.h"
#include "http_core.h"
#include "http_log.h"

#include <apr_strings.h>
#include <stdlib.h>

void *livy_create_server_conf(apr_pool_t *p, server_rec *s)
{
    livy_server_conf_t *c = apr_pcalloc(p, sizeof *c);
    c->acquire_timeout = -1;
    c->pool_max = -1;
    c->max_connections = -1;
    c->pool_idle = -1;
    c->statement_timeout = -1;
    return c;
}

void *livy_merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    livy_server_conf_t *base = basev, *add = addv, *c = apr_pcalloc(p, sizeof *c);
    c->conninfo = add->conninfo ? add->conninfo : base->conninfo;
    c->pool_max = add->pool_max >= 0 ? add->pool_max : base->pool_max;
    c->max_connections = add->max_connections != -1 ? add->max_connections : base->max_connections;
    c->acquire_timeout = add->acquire_timeout >= 0 ? add->acquire_timeout : base->acquire_timeout;
    c->pool_idle = add->pool_idle >= 0 ? add->pool_idle : base->pool_idle;
    c->statement_timeout = add->statement_timeout >= 0 ? add->statement_timeout
                                                       : base->statement_timeout;
    c->supervisor_mode = add->supervisor_mode_set ? add->supervisor_mode : base->supervisor_mode;
    c->supervisor_mode_set = add->supervisor_mode_set || base->supervisor_mode_set;
    c->supervisor_binary = add->supervisor_binary ? add->supervisor_binary : base->supervisor_binary;
    c->supervisor_config = add->supervisor_config ? add->supervisor_config : base->supervisor_config;
    c->blocked_conf = add->blocked_conf ? add->blocked_conf : base->blocked_conf;
    return c;
}

int livy_conf_pool_max(const livy_server_conf_t *conf)
{
    int threads = 1;
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    int max = conf->pool_max > 0 ? conf->pool_max : threads < 1 ? 1 : threads;
    if (conf->pool_share > 0 && conf->pool_share < max
        && (conf->pool_max <= 0 || conf->max_connections > 0))
        max = conf->pool_share;
    return max;
}

apr_interval_time_t livy_conf_completion_timeout(const livy_dir_conf_t *dconf)
{
    return dconf->completion_timeout >= 0 ? dconf->completion_timeout
                                          : LIVY_DEFAULT_COMPLETION_TIMEOUT;
}

int livy_conf_max_connections(const livy_server_conf_t *conf)
{
    return conf->max_connections == -1 ? 0 : conf->max_connections;
}

apr_interval_time_t livy_conf_acquire_timeout(const livy_server_conf_t *conf)
{
    return conf->acquire_timeout >= 0 ? conf->acquire_timeout : LIVY_DEFAULT_ACQUIRE_TIMEOUT;
}

apr_interval_time_t livy_conf_pool_idle(const livy_server_conf_t *conf)
{
    return conf->pool_idle >= 0 ? conf->pool_idle : LIVY_DEFAULT_POOL_IDLE;
}

apr_interval_time_t livy_conf_statement_timeout(const livy_server_conf_t *conf)
{
    return conf->statement_timeout >= 0 ? conf->statement_timeout
                                        : LIVY_DEFAULT_STATEMENT_TIMEOUT;
}

void *livy_create_dir_conf(apr_pool_t *p, char *dir)
{
    livy_dir_conf_t *c = apr_pcalloc(p, sizeof *c);
    c->max_body = -1;
    c->max_statement = -1;
    c->csrf = c->impersonation = c->access_control = -1;
    c->max_sessions_per_user = c->max_starting_sessions = -1;
    c->metrics = -1;
    c->shared_drivers = -1;
    c->webui = -1;
    c->completion_timeout = -1;
    if (dir) {
        size_t n = strlen(dir);
        while (n > 0 && dir[n - 1] == '/')
            n--;
        c->section_path = apr_pstrmemdup(p, dir, n);
    }
    return c;
}

void *livy_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    livy_dir_conf_t *base = basev, *add = addv, *c = apr_pcalloc(p, sizeof *c);
    /* The mount is the section that set the handler, however many merge after it. */
    const livy_dir_conf_t *mount = add->mount_set ? add : base;
    c->mount_set = mount->mount_set;
    c->mount_path = mount->mount_path;
    c->mount_regex = mount->mount_regex;
    c->section_path = add->section_path ? add->section_path : base->section_path;
    c->max_body = add->max_body >= 0 ? add->max_body : base->max_body;
    c->max_statement = add->max_statement >= 0 ? add->max_statement : base->max_statement;
    c->completion_timeout = add->completion_timeout >= 0 ? add->completion_timeout
                                                         : base->completion_timeout;
#define MERGE_FLAG(f) c->f = add->f >= 0 ? add->f : base->f
#define MERGE_LIST(f) c->f = add->f ? add->f : base->f
    MERGE_FLAG(csrf);
    MERGE_FLAG(impersonation);
    MERGE_FLAG(access_control);
    MERGE_FLAG(max_sessions_per_user);
    MERGE_FLAG(max_starting_sessions);
    MERGE_FLAG(metrics);
    MERGE_FLAG(shared_drivers);
    MERGE_FLAG(webui);
    MERGE_LIST(superusers);
    MERGE_LIST(allowed_users);
    MERGE_LIST(view_users);
    MERGE_LIST(modify_users);
    MERGE_LIST(batch_allowed_paths);
    MERGE_LIST(webui_dir);
#undef MERGE_FLAG
#undef MERGE_LIST
    return c;
}

/* Records on each <Location> or <LocationMatch> section that sets a handler (SetHandler
 * livy, or any other, which ends what an enclosing one set) that it is a mount point. Core's
 * own record of a section (its path, regex, handler) is final once the configuration is read;
 * the sections are merged per request, so this reaches every request. */
static void mark_mounts(apr_pool_t *pconf, apr_array_header_t *sections)
{
    for (int i = 0; sections && i < sections->nelts; i++) {
        ap_conf_vector_t *section = APR_ARRAY_IDX(sections, i, ap_conf_vector_t *);
        core_dir_config *core = ap_get_core_module_config(section);
        if (!core || !core->expr_handler || !core->d)
            continue;
        livy_dir_conf_t *dc = ap_get_module_config(section, &livy_module);
        if (!dc) {
            dc = livy_create_dir_conf(pconf, NULL);
            ap_set_module_config(section, &livy_module, dc);
        }
        dc->mount_set = 1;
        dc->mount_regex = core->r;
        size_t n = strlen(core->d);
        while (n > 0 && core->d[n - 1] == '/')
            n--;
        dc->mount_path = apr_pstrmemdup(pconf, core->d, n);
    }
}

int livy_mounts_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                            server_rec *main_server)
{
    for (server_rec *s = main_server; s; s = s->next) {
        core_server_config *core = ap_get_core_module_config(s->module_config);
        mark_mounts(pconf, core->sec_url);
    }
    return OK;
}

static livy_server_conf_t *server_conf(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &livy_module);
}

static const char *set_database(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);
    if (err)
        return err;
    server_conf(cmd)->conninfo = arg;
    return NULL;
}

static const char *set_pool_max(cmd_parms *cmd, void *dc, const char *arg)
{
    char *end;
    long n = strtol(arg, &end, 10);
    if (*end || n < 1 || n > 1024)
        return apr_psprintf(cmd->pool, "%s must be a number of connections between 1 and 1024",
                            cmd->cmd->name);
    server_conf(cmd)->pool_max = (int)n;
    return NULL;
}

static const char *set_max_connections(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);
    if (err)
        return err;
    if (!strcasecmp(arg, "auto")) {
        server_conf(cmd)->max_connections = 0;
        return NULL;
    }
    if (!strcasecmp(arg, "none")) {
        server_conf(cmd)->max_connections = -2;
        return NULL;
    }
    char *end;
    long n = strtol(arg, &end, 10);
    if (*end || end == arg || n < 1 || n > 100000)
        return apr_psprintf(cmd->pool, "%s must be a number of connections (1 to 100000), "
                            "auto or none", cmd->cmd->name);
    server_conf(cmd)->max_connections = (int)n;
    return NULL;
}

/* A duration in httpd's grammar (seconds by default; ms, s, mi, h suffixes), 0 allowed. */
static const char *set_server_duration(cmd_parms *cmd, void *dc, const char *arg)
{
    apr_interval_time_t t;
    if (ap_timeout_parameter_parse(arg, &t, "s") != APR_SUCCESS || t < 0
        || t > apr_time_from_sec(86400))
        return apr_psprintf(cmd->pool, "%s must be a duration up to a day (e.g. 60, 60s, "
                            "500ms, 5mi; 0 for none)", cmd->cmd->name);
    *(apr_interval_time_t *)((char *)server_conf(cmd) + (apr_size_t)cmd->info) = t;
    return NULL;
}

static const char *set_completion_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    apr_interval_time_t t;
    if (ap_timeout_parameter_parse(arg, &t, "s") != APR_SUCCESS || t < 0
        || t > apr_time_from_sec(60))
        return apr_psprintf(cmd->pool, "%s must be a duration up to a minute (e.g. 2, 2s, "
                            "500ms; 0: answer no candidates without asking)", cmd->cmd->name);
    ((livy_dir_conf_t *)dc)->completion_timeout = t;
    return NULL;
}

static const char *set_acquire_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    char *end;
    double secs = strtod(arg, &end);
    if (*end || secs <= 0 || secs > 600)
        return "LivyDatabaseAcquireTimeout must be a number of seconds between 0 and 600";
    server_conf(cmd)->acquire_timeout = (apr_interval_time_t)(secs * APR_USEC_PER_SEC);
    return NULL;
}

static const char *set_supervisor(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err)
        return err;
    livy_server_conf_t *c = server_conf(cmd);
    if (!strcasecmp(arg, "managed"))
        c->supervisor_mode = LIVY_SUPERVISOR_MANAGED;
    else if (!strcasecmp(arg, "external"))
        c->supervisor_mode = LIVY_SUPERVISOR_EXTERNAL;
    else
        return "LivySupervisor must be 'managed' (httpd starts livy-supervisor) or 'external'";
    c->supervisor_mode_set = 1;
    return NULL;
}

static const char *set_supervisor_binary(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err)
        return err;
    server_conf(cmd)->supervisor_binary = ap_server_root_relative(cmd->pool, arg);
    return NULL;
}

static const char *set_supervisor_config(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (err)
        return err;
    server_conf(cmd)->supervisor_config = ap_server_root_relative(cmd->pool, arg);
    return NULL;
}

static const char *add_blocked_conf(cmd_parms *cmd, void *dc, const char *arg)
{
    livy_server_conf_t *c = server_conf(cmd);
    if (!c->blocked_conf)
        c->blocked_conf = apr_array_make(cmd->pool, 4, sizeof(const char *));
    if (strcasecmp(arg, "none") != 0)
        APR_ARRAY_PUSH(c->blocked_conf, const char *) = arg;
    return NULL;
}

static const char *parse_size(const char *arg, apr_off_t *out, const char *name, apr_pool_t *p)
{
    char *end;
    apr_off_t n;
    if (apr_strtoff(&n, arg, &end, 10) != APR_SUCCESS || n < 1)
        return apr_psprintf(p, "%s must be a positive number of bytes (k/m suffixes allowed)",
                            name);
    if (*end == 'k' || *end == 'K')
        n *= 1024, end++;
    else if (*end == 'm' || *end == 'M')
        n *= 1024 * 1024, end++;
    if (*end)
        return apr_psprintf(p, "%s: unexpected '%s' after the number", name, end);
    *out = n;
    return NULL;
}

static const char *set_max_body(cmd_parms *cmd, void *dcv, const char *arg)
{
    livy_dir_conf_t *dc = dcv;
    return parse_size(arg, &dc->max_body, "LivyMaxBodySize", cmd->pool);
}

static const char *set_max_statement(cmd_parms *cmd, void *dcv, const char *arg)
{
    livy_dir_conf_t *dc = dcv;
    return parse_size(arg, &dc->max_statement, "LivyMaxStatementSize", cmd->pool);
}

static const char *set_dir_flag(cmd_parms *cmd, void *dcv, int on)
{
    livy_dir_conf_t *dc = dcv;
    *(int *)((char *)dc + (apr_size_t)cmd->info) = on ? 1 : 0;
    return NULL;
}

/* Each occurrence of a user-list directive adds to the list of its context. */
static const char *add_dir_user(cmd_parms *cmd, void *dcv, const char *user)
{
    livy_dir_conf_t *dc = dcv;
    apr_array_header_t **list = (apr_array_header_t **)((char *)dc + (apr_size_t)cmd->info);
    if (!*list)
        *list = apr_array_make(cmd->pool, 4, sizeof(const char *));
    APR_ARRAY_PUSH(*list, const char *) = user;
    return NULL;
}

/* Each occurrence of LivyBatchAllowedPaths adds its directories to the list of its context. */
static const char *add_batch_allowed_path(cmd_parms *cmd, void *dcv, const char *dir)
{
    livy_dir_conf_t *dc = dcv;
    const char *canonical, *err;
    if (livy_paths_dir_check(dir, cmd->pool, &canonical, &err) != 0)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    if (!dc->batch_allowed_paths)
        dc->batch_allowed_paths = apr_array_make(cmd->pool, 4, sizeof(const char *));
    APR_ARRAY_PUSH(dc->batch_allowed_paths, const char *) = canonical;
    return NULL;
}

static const char *set_dir_count(cmd_parms *cmd, void *dcv, const char *arg)
{
    livy_dir_conf_t *dc = dcv;
    char *end;
    long n = strtol(arg, &end, 10);
    if (*end || n < 0 || n > 1000000)
        return apr_psprintf(cmd->pool, "%s must be a number from 0 (no limit) to 1000000",
                            cmd->cmd->name);
    *(int *)((char *)dc + (apr_size_t)cmd->info) = (int)n;
    return NULL;
}

static const char *set_webui_dir(cmd_parms *cmd, void *dcv, const char *arg)
{
    livy_dir_conf_t *dc = dcv;
    dc->webui_dir = ap_server_root_relative(cmd->pool, arg);
    if (!dc->webui_dir)
        return apr_psprintf(cmd->pool, "%s: invalid path '%s'", cmd->cmd->name, arg);
    return NULL;
}

#define DIR_OFFSET(f) (void *)APR_OFFSETOF(livy_dir_conf_t, f)
#define LIVY_DIR_CONTEXTS (RSRC_CONF | ACCESS_CONF)

const command_rec livy_directives[] = {
    AP_INIT_FLAG("LivyCsrfProtection", set_dir_flag, DIR_OFFSET(csrf), LIVY_DIR_CONTEXTS,
                 "On: requests other than GET/HEAD/OPTIONS need an X-Requested-By header"),
    AP_INIT_FLAG("LivyImpersonation", set_dir_flag, DIR_OFFSET(impersonation), LIVY_DIR_CONTEXTS,
                 "On: honour proxyUser and doAs (the requester, a superuser, or anonymous)"),
    AP_INIT_FLAG("LivyAccessControl", set_dir_flag, DIR_OFFSET(access_control),
                 LIVY_DIR_CONTEXTS, "On: enforce the allowed, view and modify user lists"),
    AP_INIT_ITERATE("LivySuperusers", add_dir_user, DIR_OFFSET(superusers), LIVY_DIR_CONTEXTS,
                    "users who may impersonate anyone and view and modify every session and "
                    "batch"),
    AP_INIT_ITERATE("LivyAllowedUsers", add_dir_user, DIR_OFFSET(allowed_users),
                    LIVY_DIR_CONTEXTS, "users admitted to the server ('*' for all)"),
    AP_INIT_ITERATE("LivyViewUsers", add_dir_user, DIR_OFFSET(view_users), LIVY_DIR_CONTEXTS,
                    "users who may view every session's log and statements and every batch's "
                    "log ('*' for all)"),
    AP_INIT_ITERATE("LivyModifyUsers", add_dir_user, DIR_OFFSET(modify_users),
                    LIVY_DIR_CONTEXTS, "users who may act on every session and batch ('*' for "
                    "all)"),
    AP_INIT_TAKE1("LivyMaxSessionsPerUser", set_dir_count, DIR_OFFSET(max_sessions_per_user),
                  LIVY_DIR_CONTEXTS, "live sessions and batches one user may own (0: no limit)"),
    AP_INIT_TAKE1("LivyMaxStartingSessions", set_dir_count, DIR_OFFSET(max_starting_sessions),
                  LIVY_DIR_CONTEXTS, "sessions and batches that may be starting at once (0: no "
                  "limit)"),
    AP_INIT_ITERATE("LivyBatchAllowedPaths", add_batch_allowed_path, NULL, LIVY_DIR_CONTEXTS,
                    "absolute directories a batch's local files (file, jars, pyFiles, files, "
                    "archives) must lie in; without any, batches may name remote URIs only"),
    AP_INIT_FLAG("LivyMetrics", set_dir_flag, DIR_OFFSET(metrics), LIVY_DIR_CONTEXTS,
                 "On: serve GET <mount>/metrics (Prometheus text, computed from the database)"),
    AP_INIT_FLAG("LivySharedDrivers", set_dir_flag, DIR_OFFSET(shared_drivers),
                 LIVY_DIR_CONTEXTS,
                 "On: new pyspark, sql and shared sessions share a driver with the owner's "
                 "sessions of the same settings (a session's conf livy.session.sharedDriver "
                 "decides for it)"),
    AP_INIT_FLAG("LivyUI", set_dir_flag, DIR_OFFSET(webui), LIVY_DIR_CONTEXTS,
                 "On: serve the web UI at <mount>/ui/ (default Off)"),
    AP_INIT_TAKE1("LivyUIDirectory", set_webui_dir, NULL, LIVY_DIR_CONTEXTS,
                  "directory of the web UI's files (default: the installed one)"),
    AP_INIT_TAKE1("LivyCompletionTimeout", set_completion_timeout, NULL, LIVY_DIR_CONTEXTS,
                  "how long POST .../completion waits for the REPL's candidates (default 2s; "
                  "0: answer none without asking)"),
    AP_INIT_TAKE1("LivyDatabase", set_database, NULL, RSRC_CONF,
                  "libpq connection string of the session database"),
    AP_INIT_TAKE1("LivyDatabasePoolMax", set_pool_max, NULL, RSRC_CONF,
                  "database connections per httpd process at most (default: threads per "
                  "process)"),
    AP_INIT_TAKE1("LivyDatabaseMaxConnections", set_max_connections, NULL, RSRC_CONF,
                  "database connections this httpd node holds at most, split among the "
                  "processes the MPM may run (default auto: half of what PostgreSQL's "
                  "max_connections leaves, at most 4 per CPU; none: no budget)"),
    AP_INIT_TAKE1("LivyDatabasePoolSize", set_pool_max, NULL, RSRC_CONF,
                  "the former name of LivyDatabasePoolMax"),
    AP_INIT_TAKE1("LivyDatabasePoolIdle", set_server_duration,
                  (void *)APR_OFFSETOF(livy_server_conf_t, pool_idle), RSRC_CONF,
                  "close database connections idle this long (default 60s; 0: never)"),
    AP_INIT_TAKE1("LivyDatabaseStatementTimeout", set_server_duration,
                  (void *)APR_OFFSETOF(livy_server_conf_t, statement_timeout), RSRC_CONF,
                  "statement_timeout of the module's database connections (default 30s; 0: "
                  "the role's or server's)"),
    AP_INIT_TAKE1("LivyDatabaseAcquireTimeout", set_acquire_timeout, NULL, RSRC_CONF,
                  "seconds a request waits for a database connection (connecting included) "
                  "before a 503"),
    AP_INIT_TAKE1("LivySupervisor", set_supervisor, NULL, RSRC_CONF,
                  "'managed': httpd starts and respawns livy-supervisor; 'external' (default)"),
    AP_INIT_TAKE1("LivySupervisorBinary", set_supervisor_binary, NULL, RSRC_CONF,
                  "path of livy-supervisor, for LivySupervisor managed"),
    AP_INIT_TAKE1("LivySupervisorConfig", set_supervisor_config, NULL, RSRC_CONF,
                  "configuration file given to the managed livy-supervisor"),
    AP_INIT_ITERATE("LivyBlockedConf", add_blocked_conf, NULL, RSRC_CONF,
                    "Spark conf keys sessions and batches may not set (default spark.master "
                    "spark.submit.deployMode; 'none' for none)"),
    AP_INIT_TAKE1("LivyMaxBodySize", set_max_body, NULL, RSRC_CONF | ACCESS_CONF,
                  "largest request body accepted, in bytes (default 1m)"),
    AP_INIT_TAKE1("LivyMaxStatementSize", set_max_statement, NULL, RSRC_CONF | ACCESS_CONF,
                  "largest statement code accepted, in bytes (default: the body limit)"),
    {NULL}
};
