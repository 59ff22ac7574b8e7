/* livy_view: the exact Livy JSON shapes (key order included) built from store rows: sessions,
 * batches and statements. */
#ifndef LIVY_VIEW_H
#define LIVY_VIEW_H

#include "livy_json.h"

#include <jansson.h>
#include <libpq-fe.h>

/* The session object of row `row`, whose session columns start at column `col0`.
 * With show_log = 0 the `log` field is [] (the viewer may not read it). appInfo.sparkUiUrl is
 * ui_base + "/sessions/{id}/ui/" (ui_base: the absolute URL of the mount point) while the
 * driver has a UI and the session has not ended, and null otherwise and whenever ui_base is
 * NULL (the UI is not proxied): never the driver's own address, which is on loopback.
 * New reference. */
json_t *livy_view_session(const PGresult *res, int row, int col0, int show_log,
                          const char *ui_base);

/* The batch object of row `row`, whose batch columns start at column `col0`: id, name, owner,
 * proxyUser, state, appId, appInfo (sparkUiUrl and executorLogUrls null), log (the last 10
 * lines; [] with show_log = 0). New reference. */
json_t *livy_view_batch(const PGresult *res, int row, int col0, int show_log);

/* The statement object of row `row`. New reference. */
json_t *livy_view_statement(const PGresult *res, int row);

/* The same, from statement columns starting at column c. */
json_t *livy_view_statement_at(const PGresult *res, int row, int c);

/* The same three objects appended to t as JSON text, byte for byte as the functions above
 * serialise (livy_json_dump), the stored JSON copied rather than parsed: for listings. */
void livy_view_session_text(livy_text_t *t, const PGresult *res, int row, int col0,
                            int show_log, const char *ui_base);
void livy_view_batch_text(livy_text_t *t, const PGresult *res, int row, int col0, int show_log);
void livy_view_statement_text(livy_text_t *t, const PGresult *res, int row);
/* ... from the statement's columns at col0 on (after a session's). */
void livy_view_statement_text_at(livy_text_t *t, const PGresult *res, int row, int col0);

#endif
