/* livy_view: the exact Livy JSON shapes (key order included) built from store rows. */
#include "livy_view.h"
#include "livy_json.h"
#include "livy_store.h"
#include "livy_ui.h"

#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *text_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static json_t *str(const PGresult *res, int row, int col)
{
    return livy_json_string_or_null(text_or_null(res, row, col));
}

static json_t *integer(const PGresult *res, int row, int col)
{
    const char *v = text_or_null(res, row, col);
    return json_integer(v ? strtoll(v, NULL, 10) : 0);
}

static json_t *stored(const PGresult *res, int row, int col, json_t *fallback)
{
    return livy_json_parse_stored(text_or_null(res, row, col), fallback);
}

/* The proxied UI's URL, or null (see livy_view.h). */
static json_t *spark_ui_url(const PGresult *res, int row, int c, const char *ui_base)
{
    const char *id = text_or_null(res, row, c + SC_ID);
    const char *ended = text_or_null(res, row, c + SC_ENDED);
    if (!ui_base || !id || !text_or_null(res, row, c + SC_SPARK_UI_URL)
        || (ended && !strcmp(ended, "t")))
        return json_null();
    size_t n = strlen(ui_base) + strlen(id) + sizeof "/sessions//" LIVY_UI_SEGMENT "/";
    char *url = malloc(n);
    if (!url)
        return json_null();
    snprintf(url, n, "%s/sessions/%s/" LIVY_UI_SEGMENT "/", ui_base, id);
    json_t *j = livy_json_string_or_null(url);
    free(url);
    return j;
}

static json_t *app_info(json_t *driver_log_url, json_t *spark_ui_url)
{
    json_t *o = json_object();
    json_object_set_new(o, "driverLogUrl", driver_log_url);
    json_object_set_new(o, "sparkUiUrl", spark_ui_url);
    json_object_set_new(o, "executorLogUrls", json_null());
    return o;
}

static json_t *log_tail(const PGresult *res, int row, int col, int show_log)
{
    return show_log ? stored(res, row, col, json_array()) : json_array();
}

json_t *livy_view_session(const PGresult *res, int row, int c, int show_log,
                          const char *ui_base)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", integer(res, row, c + SC_ID));
    json_object_set_new(o, "name", str(res, row, c + SC_NAME));
    json_object_set_new(o, "appId", str(res, row, c + SC_APP_ID));
    json_object_set_new(o, "owner", str(res, row, c + SC_OWNER));
    json_object_set_new(o, "proxyUser", str(res, row, c + SC_PROXY_USER));
    json_object_set_new(o, "state", str(res, row, c + SC_STATE));
    json_object_set_new(o, "kind", str(res, row, c + SC_KIND));
    json_object_set_new(o, "appInfo", app_info(str(res, row, c + SC_DRIVER_LOG_URL),
                                               spark_ui_url(res, row, c, ui_base)));
    json_object_set_new(o, "log", log_tail(res, row, c + SC_LOG, show_log));
    json_object_set_new(o, "ttl", str(res, row, c + SC_TTL));
    json_object_set_new(o, "idleTimeout", str(res, row, c + SC_IDLE_TIMEOUT));
    json_object_set_new(o, "driverMemory", str(res, row, c + SC_DRIVER_MEMORY));
    json_object_set_new(o, "driverCores", integer(res, row, c + SC_DRIVER_CORES));
    json_object_set_new(o, "executorMemory", str(res, row, c + SC_EXECUTOR_MEMORY));
    json_object_set_new(o, "executorCores", integer(res, row, c + SC_EXECUTOR_CORES));
    json_object_set_new(o, "conf", stored(res, row, c + SC_CONF, json_object()));
    json_object_set_new(o, "archives", stored(res, row, c + SC_ARCHIVES, json_array()));
    json_object_set_new(o, "files", stored(res, row, c + SC_FILES, json_array()));
    json_object_set_new(o, "heartbeatTimeoutInSecond", integer(res, row, c + SC_HEARTBEAT));
    json_object_set_new(o, "jars", stored(res, row, c + SC_JARS, json_array()));
    json_object_set_new(o, "numExecutors", integer(res, row, c + SC_NUM_EXECUTORS));
    json_object_set_new(o, "pyFiles", stored(res, row, c + SC_PY_FILES, json_array()));
    json_object_set_new(o, "queue", str(res, row, c + SC_QUEUE));
    return o;
}

json_t *livy_view_batch(const PGresult *res, int row, int c, int show_log)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", integer(res, row, c + BC_ID));
    json_object_set_new(o, "name", str(res, row, c + BC_NAME));
    json_object_set_new(o, "owner", str(res, row, c + BC_OWNER));
    json_object_set_new(o, "proxyUser", str(res, row, c + BC_PROXY_USER));
    json_object_set_new(o, "state", str(res, row, c + BC_STATE));
    json_object_set_new(o, "appId", str(res, row, c + BC_APP_ID));
    json_object_set_new(o, "appInfo",
                        app_info(str(res, row, c + BC_DRIVER_LOG_URL), json_null()));
    json_object_set_new(o, "log", log_tail(res, row, c + BC_LOG, show_log));
    return o;
}

json_t *livy_view_statement_at(const PGresult *res, int row, int c)
{
    json_t *o = json_object();
    const char *progress = text_or_null(res, row, c + ST_PROGRESS);
    json_object_set_new(o, "id", integer(res, row, c + ST_ID));
    json_object_set_new(o, "code", str(res, row, c + ST_CODE));
    json_object_set_new(o, "state", str(res, row, c + ST_STATE));
    json_object_set_new(o, "output", stored(res, row, c + ST_OUTPUT, json_null()));
    json_object_set_new(o, "progress", json_real(progress ? strtod(progress, NULL) : 0.0));
    json_object_set_new(o, "started", integer(res, row, c + ST_STARTED));
    json_object_set_new(o, "completed", integer(res, row, c + ST_COMPLETED));
    return o;
}

json_t *livy_view_statement(const PGresult *res, int row)
{
    return livy_view_statement_at(res, row, 0);
}

/* ---- the same objects as JSON text (listings) ---- */

static const char *cell(const PGresult *res, int row, int col)
{
    return text_or_null(res, row, col);
}

/* Keys and punctuation, as literal text. */
#define KEY(t, text) livy_text_lit((t), text)

void livy_view_session_text(livy_text_t *t, const PGresult *res, int row, int c, int show_log,
                            const char *ui_base)
{
    KEY(t, "{\"id\":");
    livy_text_integer(t, cell(res, row, c + SC_ID));
    KEY(t, ",\"name\":");
    livy_text_string(t, cell(res, row, c + SC_NAME));
    KEY(t, ",\"appId\":");
    livy_text_string(t, cell(res, row, c + SC_APP_ID));
    KEY(t, ",\"owner\":");
    livy_text_string(t, cell(res, row, c + SC_OWNER));
    KEY(t, ",\"proxyUser\":");
    livy_text_string(t, cell(res, row, c + SC_PROXY_USER));
    KEY(t, ",\"state\":");
    livy_text_string(t, cell(res, row, c + SC_STATE));
    KEY(t, ",\"kind\":");
    livy_text_string(t, cell(res, row, c + SC_KIND));
    KEY(t, ",\"appInfo\":{\"driverLogUrl\":");
    livy_text_string(t, cell(res, row, c + SC_DRIVER_LOG_URL));
    KEY(t, ",\"sparkUiUrl\":");
    const char *id = cell(res, row, c + SC_ID), *ended = cell(res, row, c + SC_ENDED);
    if (!ui_base || !id || !cell(res, row, c + SC_SPARK_UI_URL) || (ended && !strcmp(ended, "t")))
        livy_text_lit(t, "null");
    else
        livy_text_string(t, apr_pstrcat(t->p, ui_base, "/sessions/", id, "/" LIVY_UI_SEGMENT "/",
                                        NULL));
    KEY(t, ",\"executorLogUrls\":null},\"log\":");
    livy_text_stored(t, show_log ? cell(res, row, c + SC_LOG) : NULL, "[]");
    KEY(t, ",\"ttl\":");
    livy_text_string(t, cell(res, row, c + SC_TTL));
    KEY(t, ",\"idleTimeout\":");
    livy_text_string(t, cell(res, row, c + SC_IDLE_TIMEOUT));
    KEY(t, ",\"driverMemory\":");
    livy_text_string(t, cell(res, row, c + SC_DRIVER_MEMORY));
    KEY(t, ",\"driverCores\":");
    livy_text_integer(t, cell(res, row, c + SC_DRIVER_CORES));
    KEY(t, ",\"executorMemory\":");
    livy_text_string(t, cell(res, row, c + SC_EXECUTOR_MEMORY));
    KEY(t, ",\"executorCores\":");
    livy_text_integer(t, cell(res, row, c + SC_EXECUTOR_CORES));
    KEY(t, ",\"conf\":");
    livy_text_stored(t, cell(res, row, c + SC_CONF), "{}");
    KEY(t, ",\"archives\":");
    livy_text_stored(t, cell(res, row, c + SC_ARCHIVES), "[]");
    KEY(t, ",\"files\":");
    livy_text_stored(t, cell(res, row, c + SC_FILES), "[]");
    KEY(t, ",\"heartbeatTimeoutInSecond\":");
    livy_text_integer(t, cell(res, row, c + SC_HEARTBEAT));
    KEY(t, ",\"jars\":");
    livy_text_stored(t, cell(res, row, c + SC_JARS), "[]");
    KEY(t, ",\"numExecutors\":");
    livy_text_integer(t, cell(res, row, c + SC_NUM_EXECUTORS));
    KEY(t, ",\"pyFiles\":");
    livy_text_stored(t, cell(res, row, c + SC_PY_FILES), "[]");
    KEY(t, ",\"queue\":");
    livy_text_string(t, cell(res, row, c + SC_QUEUE));
    KEY(t, "}");
}

void livy_view_batch_text(livy_text_t *t, const PGresult *res, int row, int c, int show_log)
{
    KEY(t, "{\"id\":");
    livy_text_integer(t, cell(res, row, c + BC_ID));
    KEY(t, ",\"name\":");
    livy_text_string(t, cell(res, row, c + BC_NAME));
    KEY(t, ",\"owner\":");
    livy_text_string(t, cell(res, row, c + BC_OWNER));
    KEY(t, ",\"proxyUser\":");
    livy_text_string(t, cell(res, row, c + BC_PROXY_USER));
    KEY(t, ",\"state\":");
    livy_text_string(t, cell(res, row, c + BC_STATE));
    KEY(t, ",\"appId\":");
    livy_text_string(t, cell(res, row, c + BC_APP_ID));
    KEY(t, ",\"appInfo\":{\"driverLogUrl\":");
    livy_text_string(t, cell(res, row, c + BC_DRIVER_LOG_URL));
    KEY(t, ",\"sparkUiUrl\":null,\"executorLogUrls\":null},\"log\":");
    livy_text_stored(t, show_log ? cell(res, row, c + BC_LOG) : NULL, "[]");
    KEY(t, "}");
}

void livy_view_statement_text_at(livy_text_t *t, const PGresult *res, int row, int c)
{
    const char *progress = cell(res, row, c + ST_PROGRESS);
    KEY(t, "{\"id\":");
    livy_text_integer(t, cell(res, row, c + ST_ID));
    KEY(t, ",\"code\":");
    livy_text_string(t, cell(res, row, c + ST_CODE));
    KEY(t, ",\"state\":");
    livy_text_string(t, cell(res, row, c + ST_STATE));
    KEY(t, ",\"output\":");
    livy_text_stored(t, cell(res, row, c + ST_OUTPUT), "null");
    KEY(t, ",\"progress\":");
    livy_text_real(t, progress ? strtod(progress, NULL) : 0.0);
    KEY(t, ",\"started\":");
    livy_text_integer(t, cell(res, row, c + ST_STARTED));
    KEY(t, ",\"completed\":");
    livy_text_integer(t, cell(res, row, c + ST_COMPLETED));
    KEY(t, "}");
}

void livy_view_statement_text(livy_text_t *t, const PGresult *res, int row)
{
    livy_view_statement_text_at(t, res, row, 0);
}
