/* mod_livy_webui: the web UI under <mount>/ui/ (LivyUI On). Its pages are static files from
 * LivyUIDirectory, a fixed set the engine names (livy_webui_file_type), so no request reaches any
 * other file; the pages only call the JSON API, which applies Livy's access rules as for any
 * client. Every UI response forbids inline script and content sniffing. */
#include "mod_livy.h"

#include "livy_webui.h"

#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include <apr_file_info.h>
#include <apr_strings.h>

APLOG_USE_MODULE(livy);

#ifndef LIVY_WEBUI_DIR
#define LIVY_WEBUI_DIR "/usr/share/mod_livy/ui"
#endif

/* Images in statement outputs come as base64 in the JSON: data: URLs, and nothing else
 * outside this server. */
#define WEBUI_CSP "default-src 'self'; img-src 'self' data:; base-uri 'none'; " \
                  "form-action 'none'; frame-ancestors 'none'"

int livy_conf_webui(const livy_dir_conf_t *dconf)
{
    return dconf->webui > 0;
}

const char *livy_conf_webui_dir(const livy_dir_conf_t *dconf)
{
    return dconf->webui_dir ? dconf->webui_dir : LIVY_WEBUI_DIR;
}

int livy_webui_is_route(livy_route_e route)
{
    return route == LIVY_ROUTE_WEBUI_FILE || route == LIVY_ROUTE_WEBUI_SUPERVISORS
        || route == LIVY_ROUTE_WEBUI_SESSION_TIMES;
}

void livy_webui_headers(request_rec *r)
{
    apr_table_setn(r->headers_out, "Content-Security-Policy", WEBUI_CSP);
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->headers_out, "Referrer-Policy", "same-origin");
    apr_table_setn(r->headers_out, "X-Frame-Options", "DENY");
}

/* Sends the UI file `name` (one of livy_webui_file_type's) with validators from the file: the
 * browser revalidates each use (no-cache), and gets a 304 while the file is unchanged. */
int livy_webui_serve_file(request_rec *r, const livy_dir_conf_t *dconf, const char *name)
{
    const char *type = livy_webui_file_type(name);
    const char *dir = livy_conf_webui_dir(dconf);
    char *path = NULL;
    apr_file_t *f = NULL;
    apr_finfo_t fi;
    apr_status_t rv = type ? apr_filepath_merge(&path, dir, name, APR_FILEPATH_SECUREROOT
                                                | APR_FILEPATH_NOTRELATIVE, r->pool)
                           : APR_EBADPATH;
    if (rv == APR_SUCCESS)
        rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, r->pool);
    if (rv == APR_SUCCESS)
        rv = apr_file_info_get(&fi, APR_FINFO_NORM, f);
    if (rv == APR_SUCCESS && fi.filetype != APR_REG)
        rv = APR_EBADPATH;
    livy_webui_headers(r);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "livy: web UI file %s cannot be read "
                      "(LivyUIDirectory %s): is mod_livy's ui/ installed there?", name, dir);
        if (f)
            apr_file_close(f);
        livy_api_response_t resp = {0};
        livy_api_error(&resp, r->pool, HTTP_NOT_FOUND, "This page of the web UI is not "
                       "installed on this server; see the server's error log.");
        r->status = resp.status;
        apr_table_setn(r->headers_out, "Cache-Control", "no-store");
        ap_set_content_type(r, "application/json; charset=UTF-8");
        ap_set_content_length(r, (apr_off_t)resp.body_len);
        if (!r->header_only)
            ap_rwrite(resp.body, (int)resp.body_len, r);
        return OK;
    }
    r->finfo = fi;
    ap_update_mtime(r, fi.mtime);
    ap_set_last_modified(r);
    ap_set_etag(r);
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    ap_set_content_type(r, type);
    int status = ap_meets_conditions(r);
    if (status != OK) {
        apr_file_close(f);
        r->status = status;
        return status;
    }
    ap_set_content_length(r, fi.size);
    if (!r->header_only && fi.size > 0) {
        apr_size_t sent = 0;
        ap_send_fd(f, r, 0, (apr_size_t)fi.size, &sent);
    }
    apr_file_close(f);
    return OK;
}

/* <mount>/ui without its slash: the pages' relative links need the directory form. */
int livy_webui_redirect_dir(request_rec *r, const livy_api_request_t *req)
{
    const char *p = req->path;
    while (*p == '/')
        p++;
    if (strcmp(p, LIVY_WEBUI_SEGMENT) != 0 || r->uri[strlen(r->uri) - 1] == '/')
        return 0;
    const char *to = apr_pstrcat(r->pool, ap_os_escape_path(r->pool, r->uri, 1), "/",
                                 r->args ? "?" : "", r->args ? r->args : "", NULL);
    apr_table_setn(r->headers_out, "Location", ap_construct_url(r->pool, to, r));
    livy_webui_headers(r);
    return 1;
}
