/* livy_params: query-string parsing and validation of from/size/order; no I/O, fuzzable. */
#ifndef LIVY_PARAMS_H
#define LIVY_PARAMS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <stdint.h>

/* Parses "a=1&b=x%20y" into a table of decoded values (first occurrence wins on lookup).
 * Returns NULL with *errmsg set when an escape is malformed. */
apr_table_t *livy_params_parse(const char *query, apr_pool_t *p, const char **errmsg);

/* Decodes the %XX escapes of s[0..len) (and '+' into a space when plus_is_space: query strings)
 * into a new string in p; NULL when an escape is malformed or decodes to NUL. */
char *livy_percent_decode(const char *s, size_t len, int plus_is_space, apr_pool_t *p);

/* Reads integer parameter `name`: absent → *value = def, returns 0. Present: must be a decimal
 * integer in [min, LIVY_PARAM_MAX]; otherwise returns -1 with *errmsg naming the parameter. */
#define LIVY_PARAM_MAX 2147483647L
int livy_param_int(apr_table_t *params, const char *name, int64_t def, int64_t min,
                   int64_t *value, apr_pool_t *p, const char **errmsg);

/* Parses a duration such as "500ms", "10s", "10m", "1h", "2d" (a bare number means seconds)
 * into milliseconds. Returns 0, or -1 when malformed, negative or out of range. */
int livy_parse_duration_ms(const char *text, int64_t *ms);

/* 1 when s is well-formed UTF-8 (what PostgreSQL accepts as text). */
int livy_utf8_valid(const char *s);

#endif
