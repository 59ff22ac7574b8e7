/* livy_route: maps a method and a path onto a Livy route; no I/O, fuzzable. */
#include "livy_route.h"
#include "livy_ui.h"
#include "livy_webui.h"

#include <apr_strings.h>
#include <string.h>

#define MAX_SEGMENTS 5

int64_t livy_parse_id(const char *s)
{
    if (!s || !*s)
        return -1;
    int64_t v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        if (v > (INT64_MAX - (*c - '0')) / 10)
            return -1;
        v = v * 10 + (*c - '0');
    }
    return v;
}

livy_method_e livy_method_from_name(const char *method)
{
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
        return LIVY_M_GET;
    if (!strcmp(method, "POST"))
        return LIVY_M_POST;
    if (!strcmp(method, "DELETE"))
        return LIVY_M_DELETE;
    return LIVY_M_OTHER;
}

const char *livy_route_allow_header(unsigned allowed)
{
    switch (allowed) {
    case LIVY_M_GET: return "GET, HEAD";
    case LIVY_M_POST: return "POST";
    case LIVY_M_GET | LIVY_M_POST: return "GET, HEAD, POST";
    case LIVY_M_GET | LIVY_M_DELETE: return "GET, HEAD, DELETE";
    default: return "GET, HEAD";
    }
}

/* Splits path on '/', ignoring empty segments from repeated or trailing slashes. Returns the
 * number of segments, or MAX_SEGMENTS + 1 when there are too many to be a route. */
static int split_path(const char *path, apr_pool_t *p, const char **seg)
{
    int n = 0;
    const char *c = path;
    while (*c) {
        while (*c == '/')
            c++;
        if (!*c)
            break;
        const char *end = strchr(c, '/');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        if (n == MAX_SEGMENTS)
            return MAX_SEGMENTS + 1;
        seg[n++] = apr_pstrmemdup(p, c, len);
        c += len;
    }
    return n;
}

/* /sessions/{id}/ui[/...]: the Spark UI, whose paths are Spark's and have any depth. Returns 1
 * and fills out when path is one. */
static int parse_ui_route(const char *path, apr_pool_t *p, livy_route_t *out)
{
    const char *c = path;
    while (*c == '/')
        c++;
    if (strncmp(c, "sessions/", 9) != 0)
        return 0;
    c += 9;
    while (*c == '/')
        c++;
    size_t idlen = strcspn(c, "/");
    if (!idlen)
        return 0;
    const char *after = c + idlen;
    while (*after == '/')
        after++;
    size_t seglen = strlen(LIVY_UI_SEGMENT);
    if (strncmp(after, LIVY_UI_SEGMENT, seglen) != 0
        || (after[seglen] != '/' && after[seglen] != '\0'))
        return 0;
    out->route = LIVY_ROUTE_SESSION_UI;
    out->allowed = LIVY_M_GET | LIVY_M_POST;
    out->session_ref = apr_pstrmemdup(p, c, idlen);
    out->session_id = livy_parse_id(out->session_ref);
    out->ui_path = apr_pstrdup(p, after + seglen);
    return 1;
}

void livy_route_parse(const char *path, apr_pool_t *p, livy_route_t *out)
{
    const char *seg[MAX_SEGMENTS];
    memset(out, 0, sizeof *out);
    out->session_id = -1;
    out->statement_id = -1;
    if (path && parse_ui_route(path, p, out))
        return;
    int n = split_path(path ? path : "", p, seg);
    if (n < 1 || n > MAX_SEGMENTS)
        return;

    if (!strcmp(seg[0], LIVY_WEBUI_SEGMENT)) {
        size_t len = strlen(path);
        livy_webui_route(seg, n, len > 0 && path[len - 1] == '/', out);
        return;
    }
    if (n == 1 && !strcmp(seg[0], "version")) {
        out->route = LIVY_ROUTE_VERSION;
        out->allowed = LIVY_M_GET;
        return;
    }
    if (n == 1 && !strcmp(seg[0], "metrics")) {
        out->route = LIVY_ROUTE_METRICS;
        out->allowed = LIVY_M_GET;
        return;
    }
    if (n == 1 && !strcmp(seg[0], "openapi.json")) {
        out->route = LIVY_ROUTE_OPENAPI;
        out->allowed = LIVY_M_GET;
        return;
    }
    /* sessions and batches share the collection, the item, its state and its log */
    int batches = !strcmp(seg[0], "batches");
    if (!batches && strcmp(seg[0], "sessions") != 0)
        return;
    if (n == 1) {
        out->route = batches ? LIVY_ROUTE_BATCHES : LIVY_ROUTE_SESSIONS;
        out->allowed = LIVY_M_GET | LIVY_M_POST;
        return;
    }
    out->session_ref = seg[1];
    out->session_id = livy_parse_id(seg[1]);
    if (n == 2) {
        out->route = batches ? LIVY_ROUTE_BATCH : LIVY_ROUTE_SESSION;
        out->allowed = LIVY_M_GET | LIVY_M_DELETE;
        return;
    }
    const char *sub = seg[2];
    if (n == 3 && !strcmp(sub, "state")) {
        out->route = batches ? LIVY_ROUTE_BATCH_STATE : LIVY_ROUTE_SESSION_STATE;
        out->allowed = LIVY_M_GET;
        return;
    }
    if (n == 3 && (!strcmp(sub, "log") || !strcmp(sub, "logs"))) {
        out->route = batches ? LIVY_ROUTE_BATCH_LOG : LIVY_ROUTE_SESSION_LOG;
        out->allowed = LIVY_M_GET;
        return;
    }
    if (batches)
        return;
    if (n == 3) {
        if (!strcmp(sub, "connect")) {
            out->route = LIVY_ROUTE_SESSION_CONNECT;
            out->allowed = LIVY_M_POST;
        } else if (!strcmp(sub, "stop")) {
            out->route = LIVY_ROUTE_SESSION_STOP;
            out->allowed = LIVY_M_POST;
        } else if (!strcmp(sub, "completion")) {
            out->route = LIVY_ROUTE_SESSION_COMPLETION;
            out->allowed = LIVY_M_POST;
        } else if (!strcmp(sub, "statements")) {
            out->route = LIVY_ROUTE_STATEMENTS;
            out->allowed = LIVY_M_GET | LIVY_M_POST;
        }
        return;
    }
    if (strcmp(sub, "statements") != 0)
        return;
    out->statement_ref = seg[3];
    out->statement_id = livy_parse_id(seg[3]);
    if (n == 4) {
        out->route = LIVY_ROUTE_STATEMENT;
        out->allowed = LIVY_M_GET;
    } else if (n == 5 && !strcmp(seg[4], "cancel")) {
        out->route = LIVY_ROUTE_STATEMENT_CANCEL;
        out->allowed = LIVY_M_POST;
    }
}
