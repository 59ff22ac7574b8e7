/* mod_livy: the httpd glue. Registers the hooks and the `livy` handler, reads the bounded
 * request body, hands the request to the engine (livy_api) on a pooled connection, and writes
 * the engine's JSON answer. */
#include "mod_livy.h"

#include "livy_db.h"

#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include <apr_strings.h>


static const char *default_blocked_conf[] = {"spark.master", "spark.submit.deployMode"};

static void write_response(request_rec *r, const livy_api_response_t *resp)
{
    livy_api_response_t failed;
    if (resp->etag) { /* a cacheable answer: If-None-Match revalidates it */
        apr_table_setn(r->headers_out, "ETag", resp->etag);
        int cond = ap_meets_conditions(r);
        if (cond == HTTP_NOT_MODIFIED) {
            r->status = HTTP_NOT_MODIFIED;
            apr_table_setn(r->headers_out, "Cache-Control", resp->cache_control);
            return;
        }
        if (cond == HTTP_PRECONDITION_FAILED) {
            memset(&failed, 0, sizeof failed);
            livy_api_error(&failed, r->pool, cond, "The document's ETag does not match the "
                           "request's If-Match, or it changed since If-Unmodified-Since.");
            resp = &failed;
        }
    }
    r->status = resp->status;
    if (resp->location)
        apr_table_setn(r->headers_out, "Location", resp->location);
    if (resp->allow)
        apr_table_setn(r->headers_out, "Allow", resp->allow);
    apr_table_setn(r->headers_out, "Cache-Control",
                   resp->cache_control ? resp->cache_control : "no-store");
    if (!resp->body)
        return;
    ap_set_content_type(r, resp->content_type ? resp->content_type
                                              : "application/json; charset=UTF-8");
    ap_set_content_length(r, (apr_off_t)resp->body_len);
    if (!r->header_only)
        ap_rwrite(resp->body, (int)resp->body_len, r);
}

static int reply_error(request_rec *r, int status, const char *msg)
{
    livy_api_response_t resp = {0};
    livy_api_error(&resp, r->pool, status, msg);
    write_response(r, &resp);
    return OK;
}

/* Reads the whole body, up to max bytes. Returns OK, or an HTTP status for the error reply
 * (with *msg set). Content-Encoding is ignored on purpose: the Java client sends
 * "Content-Encoding: UTF-8" with a plain body. */
static int read_body(request_rec *r, apr_off_t max, char **body, apr_size_t *len,
                     const char **msg)
{
    *body = NULL;
    *len = 0;
    int rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
    if (rc != OK) {
        *msg = "The request body could not be read.";
        return rc == HTTP_LENGTH_REQUIRED ? HTTP_LENGTH_REQUIRED : HTTP_BAD_REQUEST;
    }
    if (!ap_should_client_block(r))
        return OK;
    if (r->remaining > max) {
        *msg = apr_psprintf(r->pool, "The request body of %" APR_OFF_T_FMT " bytes is over "
                            "the limit of %" APR_OFF_T_FMT " bytes (LivyMaxBodySize).",
                            r->remaining, max);
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    apr_size_t cap = r->remaining > 0 ? (apr_size_t)r->remaining + 1 : 8192;
    char *buf = apr_palloc(r->pool, cap);
    apr_size_t n = 0;
    for (;;) {
        if (n + 1 >= cap) {
            apr_size_t ncap = cap * 2;
            char *nbuf = apr_palloc(r->pool, ncap);
            memcpy(nbuf, buf, n);
            buf = nbuf;
            cap = ncap;
        }
        long got = ap_get_client_block(r, buf + n, cap - n - 1);
        if (got < 0) {
            *msg = "The request body could not be read.";
            return HTTP_BAD_REQUEST;
        }
        if (got == 0)
            break;
        n += (apr_size_t)got;
        if ((apr_off_t)n > max) {
            *msg = apr_psprintf(r->pool, "The request body is over the limit of %"
                                APR_OFF_T_FMT " bytes (LivyMaxBodySize).", max);
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
    }
    buf[n] = '\0';
    *body = buf;
    *len = n;
    return OK;
}

/* The prefix of r->uri that the section which set the handler matched: its path for a
 * <Location>, what the regex matched for a <LocationMatch> (up to the end of the match). ""
 * for the root. (A wildcard <Location> matches whole paths only, so it mounts nothing below
 * itself; its pattern is no prefix of the URI and the whole URI is the path.) */
static const char *handler_mount(request_rec *r, const livy_dir_conf_t *dconf)
{
    if (!dconf->mount_set)
        return "";
    if (!dconf->mount_regex)
        return dconf->mount_path;
    ap_regmatch_t m[1];
    if (ap_regexec(dconf->mount_regex, r->uri, 1, m, 0) != 0 || m[0].rm_eo < 0)
        return "";
    size_t n = (size_t)m[0].rm_eo;
    while (n > 0 && r->uri[n - 1] == '/')
        n--;
    return apr_pstrmemdup(r->pool, r->uri, n);
}

/* Whether path (relative to a mount point) names a Livy route. */
static int routes(const char *path, apr_pool_t *p)
{
    livy_route_t route;
    livy_route_parse(*path ? path : "/", p, &route);
    return route.route != LIVY_ROUTE_NONE;
}

/* Where the handler is mounted: the section that set `SetHandler livy` (sections merged after
 * it that only add policy, such as <Location /sessions> with auth, do not move it). When the
 * path below it names no Livy route but the path below the innermost deeper section holding
 * Livy directives does, that section is the mount: a <Location /secure> with a policy of its
 * own inside a root mount serves /secure/sessions. */
static const char *mount_point(request_rec *r, const livy_dir_conf_t *dconf)
{
    const char *base = handler_mount(r, dconf);
    size_t blen = strlen(base);
    if (strncmp(r->uri, base, blen) != 0 || (r->uri[blen] != '/' && r->uri[blen] != '\0'))
        return base; /* an alias or a rewrite: the URI is not below the section's path */
    if (!r->uri[blen] || routes(r->uri + blen, r->pool))
        return base;
    const char *policy = dconf->section_path;
    size_t plen = policy ? strlen(policy) : 0;
    if (plen > blen && !strncmp(r->uri, policy, plen) && r->uri[plen] == '/'
        && routes(r->uri + plen, r->pool))
        return policy;
    return base;
}

/* The request as the engine sees it, and the configuration it is served under. Returns the
 * mount point. */
const char *livy_api_prepare(request_rec *r, livy_api_config_t *cfg, livy_api_request_t *req)
{
    livy_dir_conf_t *dconf = ap_get_module_config(r->per_dir_config, &livy_module);
    const char *base = mount_point(r, dconf);

    /* The path relative to the mount point. */
    const char *path = r->uri;
    size_t blen = strlen(base);
    if (blen && !strncmp(path, base, blen) && (path[blen] == '/' || path[blen] == '\0'))
        path += blen;

    memset(req, 0, sizeof *req);
    req->method = r->method;
    req->path = path;
    req->query = r->args;
    req->user = r->user;
    req->has_requested_by = apr_table_get(r->headers_in, "X-Requested-By") != NULL;

    memset(cfg, 0, sizeof *cfg);
    cfg->base_path = base;
    cfg->ui_base = livy_ui_proxy_available() ? ap_construct_url(r->pool, base, r) : NULL;
    livy_security_t *sec = &cfg->security;
    sec->csrf = dconf->csrf > 0;
    sec->impersonation = dconf->impersonation > 0;
    sec->access_control = dconf->access_control > 0;
    sec->superusers = dconf->superusers;
    sec->allowed_users = dconf->allowed_users;
    sec->view_users = dconf->view_users;
    sec->modify_users = dconf->modify_users;
    sec->max_sessions_per_user = dconf->max_sessions_per_user > 0 ? dconf->max_sessions_per_user : 0;
    sec->max_starting_sessions = dconf->max_starting_sessions > 0 ? dconf->max_starting_sessions : 0;
    cfg->metrics = dconf->metrics > 0;
    cfg->shared_drivers = dconf->shared_drivers > 0;
    cfg->completion = livy_conf_completion_timeout(dconf) > 0;
    cfg->http_metrics = livy_metrics_snapshot;
    return base;
}

/* POST .../completion asked the session's REPL (through its supervisor): polls for the
 * candidates until LivyCompletionTimeout, borrowing a pooled connection for each look only,
 * then forgets the request. resp holds the empty answer until candidates come. */
static void await_completion(request_rec *r, livy_server_conf_t *sconf, apr_int64_t id,
                             livy_api_response_t *resp)
{
    livy_dir_conf_t *dconf = ap_get_module_config(r->per_dir_config, &livy_module);
    apr_time_t deadline = apr_time_now() + livy_conf_completion_timeout(dconf);
    apr_interval_time_t pause = 1000; /* 1 ms, doubling up to 20 ms */
    for (;;) {
        apr_time_t now = apr_time_now();
        if (now >= deadline)
            break;
        apr_sleep(pause < deadline - now ? pause : deadline - now);
        pause = pause * 2 < 20000 ? pause * 2 : 20000;
        const char *why;
        livy_conn_t *conn = livy_pool_acquire(r, sconf, 0, &why);
        if (!conn)
            break;
        int broken = 0;
        int rc = livy_api_completion_poll(conn, id, r->pool, resp, &broken);
        livy_pool_release(sconf, conn, broken);
        if (rc == 1)
            return; /* taken, and the request with it */
        if (rc < 0) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "livy: completion %" APR_INT64_T_FMT ": cannot look "
                          "for the candidates (%s); answering none", id,
                          resp->log_detail ? resp->log_detail : "database error");
            break;
        }
    }
    const char *why;
    livy_conn_t *conn = livy_pool_acquire(r, sconf, 0, &why);
    if (conn) {
        int broken = 0;
        livy_api_completion_drop(conn, id, r->pool, &broken);
        livy_pool_release(sconf, conn, broken);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "livy: completion %" APR_INT64_T_FMT ": no candidates in time",
                  id);
}

void livy_api_serve(request_rec *r, const livy_api_config_t *cfg,
                    const livy_api_request_t *req, const livy_route_t *route,
                    livy_api_response_t *resp)
{
    livy_server_conf_t *sconf = ap_get_module_config(r->server->module_config, &livy_module);
    /* Reads: their only write, a heartbeat's timestamp, may happen twice. */
    int idempotent = r->method_number == M_GET || r->method_number == M_OPTIONS;
    for (int attempt = 0;; attempt++) {
        const char *why;
        livy_conn_t *conn = livy_pool_acquire(r, sconf, attempt > 0, &why);
        if (!conn) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "livy: answering 503: %s", why);
            memset(resp, 0, sizeof *resp);
            livy_api_error(resp, r->pool, HTTP_SERVICE_UNAVAILABLE,
                           apr_psprintf(r->pool, "The session database is unavailable (%s); "
                                        "try again shortly.", why));
            return;
        }
        memset(resp, 0, sizeof *resp);
        if (!livy_api_check_schema(conn, r->pool, resp))
            livy_api_handle(cfg, req, route, conn, r->pool, resp);
        /* A pooled connection the server closed unnoticed (it went between the check and the
         * query): once more on a fresh one, when that cannot do anything twice. */
        int retry = attempt == 0 && resp->conn_broken && livy_pool_may_retry(conn, idempotent);
        livy_pool_release(sconf, conn, resp->conn_broken);
        if (!retry)
            break;
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "livy: the database closed a pooled "
                      "connection under this request (%s); trying again on a fresh one",
                      resp->log_detail ? resp->log_detail : "no detail");
    }

    if (resp->completion_id > 0)
        await_completion(r, sconf, resp->completion_id, resp);

    /* 501 is the UI without mod_proxy: said once at startup (livy_ui_post_config) */
    if (resp->status >= 500 && resp->status != HTTP_NOT_IMPLEMENTED)
        ap_log_rerror(APLOG_MARK, resp->status == 503 ? APLOG_WARNING : APLOG_ERR, 0, r,
                      "livy: answering %d: %s", resp->status,
                      resp->log_detail ? resp->log_detail : "(no detail)");
}

livy_request_state_t *livy_request_state(request_rec *r)
{
    livy_request_state_t *state = ap_get_module_config(r->request_config, &livy_module);
    if (!state) {
        state = apr_pcalloc(r->pool, sizeof *state);
        ap_set_module_config(r->request_config, &livy_module, state);
    }
    return state;
}

/* Every request the livy handler answered, or handed to mod_proxy (a Spark UI), is counted
 * once it is done, with its final status. */
static int livy_log_transaction(request_rec *r)
{
    livy_request_state_t *state = ap_get_module_config(r->request_config, &livy_module);
    if (state && (state->livy_url || state->family))
        livy_metrics_count_request(r, state->family);
    return DECLINED;
}

static int livy_handler(request_rec *r)
{
    if (!r->handler || strcmp(r->handler, "livy") != 0)
        return DECLINED;

    /* An ErrorDocument pointing into the Livy location: answer httpd's own errors (a 401 from
     * an auth module, a 400 from the core) in the same JSON shape as ours. */
    if (r->prev && r->prev->status >= 400) {
        int status = r->prev->status;
        ap_discard_request_body(r);
        const char *what = ap_get_status_line(status);
        return reply_error(r, status, apr_psprintf(r->pool, "%s.", what ? what + 4 : "Error"));
    }

    /* The Spark UI route, refused in the fixups phase (livy_ui_fixup). */
    livy_request_state_t *state = ap_get_module_config(r->request_config, &livy_module);
    if (state && state->ui_answer) {
        ap_discard_request_body(r);
        write_response(r, state->ui_answer);
        return OK;
    }

    livy_server_conf_t *sconf = ap_get_module_config(r->server->module_config, &livy_module);
    livy_dir_conf_t *dconf = ap_get_module_config(r->per_dir_config, &livy_module);
    livy_api_request_t req;
    livy_api_config_t cfg;
    livy_api_prepare(r, &cfg, &req);
    livy_api_response_t resp;
    livy_route_t route;
    int routed = livy_api_route(&cfg, &req, r->pool, &route, &resp);
    livy_request_state(r)->family = livy_metrics_family(route.route);
    if (livy_webui_is_route(route.route)) {
        if (!livy_conf_webui(dconf)) /* LivyUI Off: as any unknown path */
            return reply_error(r, HTTP_NOT_FOUND, apr_psprintf(r->pool, "No such resource: %s",
                                                               req.path));
        livy_webui_headers(r);
        if (!routed && livy_webui_redirect_dir(r, &req)) {
            ap_discard_request_body(r);
            return reply_error(r, HTTP_MOVED_PERMANENTLY, "The web UI is a directory: "
                               "follow the Location.");
        }
        if (!routed && route.route == LIVY_ROUTE_WEBUI_FILE) {
            if (ap_discard_request_body(r) != OK)
                return reply_error(r, HTTP_BAD_REQUEST, "The request body could not be read.");
            return livy_webui_serve_file(r, dconf, route.webui_file);
        }
    }
    if (routed) {
        if (resp.status == HTTP_METHOD_NOT_ALLOWED)
            ap_discard_request_body(r);
        write_response(r, &resp);
        return OK;
    }

    apr_off_t max_body = dconf->max_body > 0 ? dconf->max_body : LIVY_DEFAULT_MAX_BODY;
    if (r->method_number == M_POST) {
        const char *msg;
        char *body;
        apr_size_t len;
        int rc = read_body(r, max_body, &body, &len, &msg);
        if (rc != OK) {
            if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE)
                r->connection->keepalive = AP_CONN_CLOSE; /* do not read the rest */
            return reply_error(r, rc, msg);
        }
        req.body = body;
        req.body_len = len;
    } else if (ap_discard_request_body(r) != OK) {
        return reply_error(r, HTTP_BAD_REQUEST, "The request body could not be read.");
    }

    apr_array_header_t blocked = {0};
    if (sconf->blocked_conf) {
        cfg.validate.blocked_conf = sconf->blocked_conf;
    } else {
        blocked.pool = r->pool;
        blocked.elt_size = sizeof(const char *);
        blocked.nelts = blocked.nalloc = 2;
        blocked.elts = (char *)default_blocked_conf;
        cfg.validate.blocked_conf = &blocked;
    }
    cfg.validate.max_code_bytes = dconf->max_statement > 0 ? (apr_size_t)dconf->max_statement : 0;
    cfg.validate.batch_allowed_paths = dconf->batch_allowed_paths;

    livy_api_serve(r, &cfg, &req, &route, &resp);
    if (resp.proxy_url) /* only without mod_proxy, which livy_ui_fixup hands the UI to */
        return reply_error(r, HTTP_NOT_IMPLEMENTED, "This server does not proxy Spark UIs: its "
                           "httpd has no mod_proxy and mod_proxy_http loaded.");
    write_response(r, &resp);
    return OK;
}

/* Livy URLs name no files: skip the core's directory and file walk (a stat and an .htaccess
 * probe for every path segment), as mod_proxy does for proxied URLs. Only translate_name sees
 * the early location walk's config (httpd resets it before map_to_storage), so the decision
 * is taken there and acted on in map_to_storage. */
static int livy_translate_name(request_rec *r)
{
    core_dir_config *core = ap_get_core_module_config(r->per_dir_config);
    if (core && core->expr_handler) {
        const char *err = NULL;
        const char *handler = ap_expr_str_exec(r, core->expr_handler, &err);
        if (!err && handler && !strcmp(handler, "livy")) {
            livy_request_state(r)->livy_url = 1;
        }
    }
    return DECLINED;
}

static int livy_map_to_storage(request_rec *r)
{
    livy_request_state_t *state = ap_get_module_config(r->request_config, &livy_module);
    return state && state->livy_url ? OK : DECLINED;
}

static void livy_child_init(apr_pool_t *pchild, server_rec *s)
{
    livy_pool_child_init(pchild, s);
}

/* Once per start and restart, in the parent: which mod_livy this is, and the schema it needs. */
static int livy_version_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                    server_rec *s)
{
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK;
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                 "livy: " LIVY_SERVER_NAME " configured (database schema version %d)",
                 LIVY_SCHEMA_VERSION);
    return OK;
}

static void livy_register_hooks(apr_pool_t *p)
{
    ap_hook_post_config(livy_version_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(livy_supervisor_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(livy_ui_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(livy_pool_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(livy_mounts_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(livy_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(livy_translate_name, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_map_to_storage(livy_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_post_config(livy_metrics_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(livy_log_transaction, NULL, NULL, APR_HOOK_MIDDLE);
    livy_ui_register_hooks(p);
    ap_hook_handler(livy_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(livy) = {
    STANDARD20_MODULE_STUFF,
    livy_create_dir_conf,
    livy_merge_dir_conf,
    livy_create_server_conf,
    livy_merge_server_conf,
    livy_directives,
    livy_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_ALWAYS_MERGE
#endif
};
