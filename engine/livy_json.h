/* livy_json: jansson values owned by APR pools, and the small helpers the views share. */
#ifndef LIVY_JSON_H
#define LIVY_JSON_H

#include <apr_pools.h>
#include <jansson.h>

/* Hands the reference of `j` to pool p: it is released when p is cleared. Returns j. */
json_t *livy_json_own(apr_pool_t *p, json_t *j);

/* Serialises j compactly (key order preserved) into a string allocated in p. */
char *livy_json_dump(apr_pool_t *p, const json_t *j, size_t *len);

/* {"msg": msg}, owned by p, serialised. */
char *livy_json_msg(apr_pool_t *p, const char *msg, size_t *len);

/* A JSON string, or null when s is NULL. New reference. */
json_t *livy_json_string_or_null(const char *s);

/* Parses JSON text owned by the database (jsonb output); NULL text gives `fallback` (new ref). */
json_t *livy_json_parse_stored(const char *text, json_t *fallback);

#endif
