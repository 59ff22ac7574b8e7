/* livy_view: the exact Livy JSON shapes (key order included) built from store rows. */
#ifndef LIVY_VIEW_H
#define LIVY_VIEW_H

#include <jansson.h>
#include <libpq-fe.h>

/* The session object of row `row`, whose session columns start at column `col0`.
 * With show_log = 0 the `log` field is [] (the viewer may not read it). New reference. */
json_t *livy_view_session(const PGresult *res, int row, int col0, int show_log);

/* The statement object of row `row`. New reference. */
json_t *livy_view_statement(const PGresult *res, int row);

/* The same, from statement columns starting at column c. */
json_t *livy_view_statement_at(const PGresult *res, int row, int c);

#endif
