/* mod_livy_supervisor: `LivySupervisor managed` — httpd's parent starts livy-supervisor after
 * the configuration is read and starts it again if it dies, in the way server/log.c keeps a
 * piped logger and mod_cgid its daemon alive. The supervisor runs as httpd's User/Group. Its
 * REPL children run in their own process sessions, so replacing the supervisor (a graceful
 * restart, a crash) loses no session. */
#include "mod_livy.h"

#include "ap_mpm.h"
#include "http_core.h"
#include "http_log.h"
#include "mpm_common.h"
#include "unixd.h"

#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <signal.h>
#include <unistd.h>

APLOG_USE_MODULE(livy);

#define RESPAWN_QUICK_DEATH apr_time_from_sec(10) /* a run shorter than this counts as a crash */
#define RESPAWN_MAX_DELAY 30                       /* seconds */
#define STOP_WAIT apr_time_from_sec(10)

typedef struct {
    apr_pool_t *pool;       /* pconf: the supervisor lives as long as this configuration */
    server_rec *s;
    const char *binary;
    const char *config;
    apr_proc_t *proc;
    apr_time_t started;
    int delay;              /* seconds to wait before the next start */
    int registered;         /* registered as APR's other child (unregistering twice crashes) */
} supervisor_t;

static void supervisor_maintenance(int reason, void *data, apr_wait_t status);

static int mpm_is_stopping(void)
{
    int state = AP_MPMQ_STARTING;
    ap_mpm_query(AP_MPMQ_MPM_STATE, &state);
    return state == AP_MPMQ_STOPPING;
}

static apr_status_t supervisor_spawn(supervisor_t *sv)
{
    apr_procattr_t *attr;
    apr_status_t rv;
    const char **argv;
    const char *delay = apr_itoa(sv->pool, sv->delay);

    if ((rv = apr_procattr_create(&attr, sv->pool)) != APR_SUCCESS
        || (rv = apr_procattr_cmdtype_set(attr, APR_PROGRAM)) != APR_SUCCESS
        || (rv = apr_procattr_detach_set(attr, 0)) != APR_SUCCESS
        || (rv = apr_procattr_child_errfn_set(attr, NULL)) != APR_SUCCESS)
        return rv;
    /* As root it starts as root and drops to httpd's User/Group itself, keeping only what
     * starting REPLs under their own accounts takes (livy-supervisor's `user`). */
    const char *user_args[4] = {NULL};
    if (geteuid() == 0) {
        user_args[0] = "--user";
        user_args[1] = ap_unixd_config.user_name;
        user_args[2] = "--group";
        user_args[3] = ap_unixd_config.group_name;
    }
    int n = 0;
    argv = apr_pcalloc(sv->pool, 14 * sizeof *argv);
    if (sv->delay > 0) {
        /* Wait in the child, not in httpd's parent: a broken configuration must not spin. */
        argv[n++] = "/bin/sh";
        argv[n++] = "-c";
        argv[n++] = "sleep \"$1\" && shift && exec \"$@\"";
        argv[n++] = "livy-supervisor-delay";
        argv[n++] = delay;
    }
    argv[n++] = sv->binary;
    argv[n++] = "--config";
    argv[n++] = sv->config;
    argv[n++] = "--foreground";
    for (int i = 0; i < 4 && user_args[i]; i++)
        argv[n++] = user_args[i];
    sv->proc = apr_pcalloc(sv->pool, sizeof *sv->proc);
    rv = apr_proc_create(sv->proc, argv[0], argv, NULL, attr, sv->pool);
    if (rv != APR_SUCCESS)
        return rv;
    sv->started = apr_time_now();
    apr_proc_other_child_register(sv->proc, supervisor_maintenance, sv, NULL, sv->pool);
    sv->registered = 1;
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, sv->s,
                 "livy: started livy-supervisor (pid %" APR_PID_T_FMT ")%s", sv->proc->pid,
                 sv->delay > 0 ? apr_psprintf(sv->pool, " after a %d s delay", sv->delay) : "");
    return APR_SUCCESS;
}

static void supervisor_maintenance(int reason, void *data, apr_wait_t status)
{
    supervisor_t *sv = data;
    switch (reason) {
    case APR_OC_REASON_DEATH:
    case APR_OC_REASON_LOST:
        if (sv->registered)
            apr_proc_other_child_unregister(sv);
        if (mpm_is_stopping() || !sv->proc)
            break;
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, sv->s,
                     "livy: livy-supervisor (pid %" APR_PID_T_FMT ") exited (status %d); "
                     "starting it again", sv->proc->pid, status);
        if (apr_time_now() - sv->started < RESPAWN_QUICK_DEATH)
            sv->delay = sv->delay ? (sv->delay * 2 > RESPAWN_MAX_DELAY ? RESPAWN_MAX_DELAY
                                                                       : sv->delay * 2)
                                  : 1;
        else
            sv->delay = 0;
        if (supervisor_spawn(sv) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, sv->s, "livy: cannot start livy-supervisor");
            sv->proc = NULL;
        }
        break;
    case APR_OC_REASON_UNREGISTER:
        /* Called by every unregistration, ours or the pool cleanup APR registered with it,
         * which runs before supervisor_stop once a respawn has registered anew. */
        sv->registered = 0;
        break;
    case APR_OC_REASON_RESTART:
        /* The configuration pool cleanup below stops it. */
        break;
    default:
        break;
    }
}

/* On restart or stop, pconf is cleared: stop the supervisor (never its REPL children) and
 * wait for it so that its successor does not race it. */
static apr_status_t supervisor_stop(void *data)
{
    supervisor_t *sv = data;
    if (!sv->proc)
        return APR_SUCCESS;
    apr_proc_t *proc = sv->proc;
    sv->proc = NULL;
    if (sv->registered)
        apr_proc_other_child_unregister(sv);
    apr_proc_kill(proc, SIGTERM);
    apr_time_t deadline = apr_time_now() + STOP_WAIT;
    int code;
    apr_exit_why_e why;
    while (apr_proc_wait(proc, &code, &why, APR_NOWAIT) == APR_CHILD_NOTDONE) {
        if (apr_time_now() > deadline) {
            apr_proc_kill(proc, SIGKILL);
            apr_proc_wait(proc, &code, &why, APR_WAIT);
            break;
        }
        apr_sleep(apr_time_from_msec(50));
    }
    return APR_SUCCESS;
}

int livy_supervisor_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                server_rec *s)
{
    /* The first pass only checks the configuration. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK;
    livy_server_conf_t *c = ap_get_module_config(s->module_config, &livy_module);
    if (c->supervisor_mode != LIVY_SUPERVISOR_MANAGED)
        return OK;
    if (!c->supervisor_config) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "livy: LivySupervisor managed needs LivySupervisorConfig");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    supervisor_t *sv = apr_pcalloc(pconf, sizeof *sv);
    sv->pool = pconf;
    sv->s = s;
    sv->binary = c->supervisor_binary ? c->supervisor_binary : LIVY_SUPERVISOR_BIN;
    sv->config = c->supervisor_config;
    apr_status_t rv = supervisor_spawn(sv);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "livy: cannot start %s", sv->binary);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_cleanup_register(pconf, sv, supervisor_stop, apr_pool_cleanup_null);
    return OK;
}
