/* livy_webui: the web UI's fixed set of files, its routes and its two JSON views. */
#include "livy_webui.h"

#include <apr_time.h>
#include <stdlib.h>
#include <string.h>

/* Every file under the UI directory that is served; nothing else is. Kept in step with ui/ and
 * Makefile.am's dist_ui_DATA. */
static const struct {
    const char *name, *type;
} webui_files[] = {
    {"index.html", "text/html; charset=UTF-8"},
    {"session.html", "text/html; charset=UTF-8"},
    {"batches.html", "text/html; charset=UTF-8"},
    {"batch.html", "text/html; charset=UTF-8"},
    {"supervisors.html", "text/html; charset=UTF-8"},
    {"livy-ui.css", "text/css; charset=UTF-8"},
    {"livy-ui.js", "text/javascript; charset=UTF-8"},
    {"sessions.js", "text/javascript; charset=UTF-8"},
    {"session.js", "text/javascript; charset=UTF-8"},
    {"batches.js", "text/javascript; charset=UTF-8"},
    {"batch.js", "text/javascript; charset=UTF-8"},
    {"supervisors.js", "text/javascript; charset=UTF-8"},
};

const char *livy_webui_file_type(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof webui_files / sizeof webui_files[0]; i++)
        if (!strcmp(name, webui_files[i].name))
            return webui_files[i].type;
    return NULL;
}

void livy_webui_route(const char *const *seg, int n, int dir, livy_route_t *out)
{
    out->route = LIVY_ROUTE_NONE;
    if (n < 1 || strcmp(seg[0], LIVY_WEBUI_SEGMENT) != 0)
        return;
    out->allowed = LIVY_M_GET;
    if (n == 1) {
        out->route = LIVY_ROUTE_WEBUI_FILE;
        out->webui_file = "index.html";
    } else if (n == 2 && !dir && livy_webui_file_type(seg[1])) {
        out->route = LIVY_ROUTE_WEBUI_FILE;
        out->webui_file = seg[1];
    } else if (n == 3 && dir) {
        out->allowed = 0; /* a file is no directory */
    } else if (n == 3 && !strcmp(seg[1], "api") && !strcmp(seg[2], "supervisors")) {
        out->route = LIVY_ROUTE_WEBUI_SUPERVISORS;
    } else if (n == 3 && !strcmp(seg[1], "api") && !strcmp(seg[2], "sessions")) {
        out->route = LIVY_ROUTE_WEBUI_SESSION_TIMES;
    } else {
        out->allowed = 0;
    }
}

static json_t *int_col(const PGresult *res, int row, int c)
{
    return PQgetisnull(res, row, c) ? json_null()
                                    : json_integer(strtoll(PQgetvalue(res, row, c), NULL, 10));
}

json_t *livy_webui_supervisors_view(const PGresult *res)
{
    json_t *list = json_array();
    json_t *now = NULL;
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "id", int_col(res, i, SV_ID));
        json_object_set_new(o, "host", json_string(PQgetvalue(res, i, SV_HOST)));
        json_object_set_new(o, "pid", int_col(res, i, SV_PID));
        json_object_set_new(o, "capacity", int_col(res, i, SV_CAPACITY));
        json_object_set_new(o, "sessions", int_col(res, i, SV_SESSIONS));
        json_object_set_new(o, "batches", int_col(res, i, SV_BATCHES));
        json_object_set_new(o, "started", int_col(res, i, SV_STARTED));
        json_object_set_new(o, "heartbeat", int_col(res, i, SV_HEARTBEAT));
        json_object_set_new(o, "heartbeatAgeMs", int_col(res, i, SV_HEARTBEAT_AGE));
        json_object_set_new(o, "stopped", int_col(res, i, SV_STOPPED));
        json_array_append_new(list, o);
        if (!now)
            now = int_col(res, i, SV_NOW);
    }
    json_t *o = json_object();
    json_object_set_new(o, "now", now ? now : json_integer(apr_time_as_msec(apr_time_now())));
    json_object_set_new(o, "supervisors", list);
    return o;
}

json_t *livy_webui_session_times_view(const PGresult *res, int64_t from)
{
    json_t *list = json_array();
    json_t *now = NULL;
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "id", int_col(res, i, 0));
        json_object_set_new(o, "created", int_col(res, i, 1));
        json_object_set_new(o, "lastActivity", int_col(res, i, 2));
        json_object_set_new(o, "ended", int_col(res, i, 3));
        json_array_append_new(list, o);
        if (!now)
            now = int_col(res, i, 4);
    }
    json_t *o = json_object();
    json_object_set_new(o, "from", json_integer(from));
    json_object_set_new(o, "now", now ? now : json_integer(apr_time_as_msec(apr_time_now())));
    json_object_set_new(o, "sessions", list);
    return o;
}
