/* mod_livy_ui: a session's Spark UI through httpd. The driver's UI listens on loopback; a
 * request for <mount>/sessions/{id}/ui/... is checked like any per-session request (view
 * access, modify access for Spark's kill links) and then handed to mod_proxy the way
 * mod_rewrite's [P] flag does, in the fixups phase. Spark builds its links from the
 * X-Forwarded-Context header; its redirects are mapped back here (ProxyPassReverse's job). */
#include "mod_livy.h"

#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include <apr_strings.h>

#include "livy_ui.h"

APLOG_USE_MODULE(livy);

#define LOCATION_FILTER "LIVY_UI_LOCATION"

int livy_ui_proxy_available(void)
{
    return ap_find_linked_module("mod_proxy.c") && ap_find_linked_module("mod_proxy_http.c");
}

int livy_ui_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK; /* the first pass only checks the configuration: say it once */
    if (!livy_ui_proxy_available())
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "livy: mod_proxy and mod_proxy_http are not both loaded: sessions' Spark "
                     "UIs are not served (sparkUiUrl is null, /sessions/{id}/ui answers 501)");
    return OK;
}

typedef struct {
    const char *backend;     /* http://127.0.0.1:4040 */
    const char *public_base; /* http(s)://this-server/<mount>/sessions/{id}/ui */
    const char *context;     /* <mount>/sessions/{id}/ui */
} location_ctx_t;

static void map_header(apr_table_t *headers, const char *name, const location_ctx_t *ctx,
                       apr_pool_t *p)
{
    const char *value = apr_table_get(headers, name);
    if (value)
        apr_table_set(headers, name, livy_ui_map_location(value, ctx->backend, ctx->public_base,
                                                          ctx->context, p));
}

/* Runs once, before the response headers go out: Spark's redirects name its own address. */
static apr_status_t location_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    const location_ctx_t *ctx = f->ctx;
    request_rec *r = f->r;
    map_header(r->headers_out, "Location", ctx, r->pool);
    map_header(r->err_headers_out, "Location", ctx, r->pool);
    map_header(r->headers_out, "Content-Location", ctx, r->pool);
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

static void hand_to_proxy(request_rec *r, const livy_api_response_t *resp)
{
    r->filename = apr_pstrcat(r->pool, "proxy:", resp->proxy_url, NULL);
    r->proxyreq = PROXYREQ_REVERSE;
    r->handler = "proxy-server";
    /* The driver runs the session owner's code: the viewer's credentials stay here. */
    apr_table_unset(r->headers_in, "Authorization");
    apr_table_unset(r->headers_in, "Proxy-Authorization");
    apr_table_unset(r->headers_in, "Cookie");
    /* Spark's UIUtils.uiRoot: the prefix of every link it writes. */
    apr_table_set(r->headers_in, "X-Forwarded-Context", resp->proxy_context);
    location_ctx_t *ctx = apr_pcalloc(r->pool, sizeof *ctx);
    ctx->backend = resp->proxy_backend;
    ctx->context = resp->proxy_context;
    ctx->public_base = ap_construct_url(r->pool, resp->proxy_context, r);
    ap_add_output_filter(LOCATION_FILTER, ctx, r, r->connection);
}

/* After mod_proxy's own fixup (which canonicalises URLs it mapped itself), as mod_rewrite
 * does for [P] in directory context; after authentication, so r->user is known. */
static int livy_ui_fixup(request_rec *r)
{
    if (!r->handler || strcmp(r->handler, "livy") != 0 || r->prev || r->main
        || !strstr(r->uri, "/" LIVY_UI_SEGMENT))
        return DECLINED; /* the API's own routes: the handler's, without a second look */
    livy_api_config_t cfg;
    livy_api_request_t req;
    livy_route_t route;
    livy_api_response_t *resp = apr_pcalloc(r->pool, sizeof *resp);
    livy_api_prepare(r, &cfg, &req);
    livy_route_parse(req.path, r->pool, &route);
    /* Other routes, and the UI without mod_proxy (a 501 after the usual checks), are the
     * handler's. */
    if (route.route != LIVY_ROUTE_SESSION_UI || !cfg.ui_base)
        return DECLINED;
    livy_request_state(r)->family = LIVY_MF_SPARK_UI;
    if (!livy_api_route(&cfg, &req, r->pool, &route, resp))
        livy_api_serve(r, &cfg, &req, &route, resp);
    if (resp->proxy_url) {
        hand_to_proxy(r, resp);
        return OK;
    }
    livy_request_state(r)->ui_answer = resp;
    return DECLINED;
}

void livy_ui_register_hooks(apr_pool_t *p)
{
    static const char *const after_proxy[] = {"mod_proxy.c", NULL};
    ap_hook_fixups(livy_ui_fixup, after_proxy, NULL, APR_HOOK_FIRST);
    ap_register_output_filter(LOCATION_FILTER, location_filter, NULL, AP_FTYPE_CONTENT_SET);
}
