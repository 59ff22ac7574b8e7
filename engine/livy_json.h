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

/* JSON text written straight into a buffer in an APR pool, byte for byte as livy_json_dump
 * writes the same values (compact, jansson's escapes), for responses made of many rows, whose
 * stored JSON is then copied rather than parsed and serialised again. */
typedef struct {
    apr_pool_t *p;
    char *buf; /* NUL-terminated */
    size_t len, cap;
} livy_text_t;

/* An empty text with room for about `cap` bytes (it grows as needed). */
void livy_text_init(livy_text_t *t, apr_pool_t *p, size_t cap);

/* Appends n bytes as they are. */
void livy_text_raw(livy_text_t *t, const char *s, size_t n);
#define livy_text_lit(t, lit) livy_text_raw((t), (lit), sizeof(lit) - 1)

/* Appends s as a JSON string (jansson's escapes: \" \\ \b \f \n \r \t, \u00XX for other
 * control characters, everything else as it is), or null when s is NULL. */
void livy_text_string(livy_text_t *t, const char *s);

/* Appends the decimal integer text `digits` (a database integer), or 0 when it is NULL. */
void livy_text_integer(livy_text_t *t, const char *digits);

/* Appends v as jansson writes a real. */
void livy_text_real(livy_text_t *t, double v);

/* Appends JSON text from the database (json columns, json_agg) as jansson would write the value
 * it parses to: whitespace between tokens dropped and \u escapes in upper case (the database
 * escapes only control characters, in lower case); `fallback` (JSON text) when json is NULL.
 * Stored JSON is written by jansson or by the database's json functions, so strings hold no
 * other escapes and numbers are already as jansson writes them. */
void livy_text_stored(livy_text_t *t, const char *json, const char *fallback);

#endif
