/* livy_webui: the engine's part of the web UI under <mount>/ui/: which files it has (a fixed
 * set, so no request names anything else on disk), its routes, and the two small read-only JSON
 * endpoints the pages need beyond Livy's API (supervisors; sessions' ages and idle times). */
#ifndef LIVY_WEBUI_H
#define LIVY_WEBUI_H

#include "livy_route.h"
#include "livy_store.h"

#include <apr_pools.h>
#include <jansson.h>

#define LIVY_WEBUI_SEGMENT "ui"

/* The Content-Type of the web UI's file name ("index.html"), or NULL when name is none of
 * them. Names only: no slashes, no dots but the extension's. */
const char *livy_webui_file_type(const char *name);

/* Fills out for the path segments seg[0..n) that start with "ui" (dir: the path ended with a
 * slash); route NONE when they name nothing of the web UI. */
void livy_webui_route(const char *const *seg, int n, int dir, livy_route_t *out);

/* {"now": ms, "supervisors": [{"id","host","pid","capacity","sessions","batches","started",
 * "heartbeat","heartbeatAgeMs","stopped"}]} from the rows of Q_WEBUI_SUPERVISORS. */
json_t *livy_webui_supervisors_view(const PGresult *res);

/* {"from": F, "now": ms, "sessions": [{"id","created","lastActivity","ended"}]} from the rows of
 * Q_WEBUI_SESSION_TIMES (now is the server's clock when the page is empty). */
json_t *livy_webui_session_times_view(const PGresult *res, int64_t from);

#endif
