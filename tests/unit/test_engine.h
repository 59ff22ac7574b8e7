/* Shared by the engine's unit tests: a fresh APR pool per test, the suites' constructors, and
 * assertions that read like the behaviour they check. */
#ifndef TEST_ENGINE_H
#define TEST_ENGINE_H

#include <apr_pools.h>
#include <check.h>
#include <jansson.h>
#include <string.h>

/* The current test's pool: created before each test and destroyed after it, so everything the
 * engine hangs on it (strings, tables, jansson values owned through livy_json_own) is freed. */
extern apr_pool_t *test_pool;

/* A test case whose tests each run with a fresh test_pool. */
TCase *test_tcase_with_pool(const char *name);

/* The number of entries of a static table. */
#define N_ELEMS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The message is set and mentions `word` (a field, a parameter, a key). */
#define ck_assert_mentions(msg, word)                                                          \
    do {                                                                                       \
        const char *msg_ = (msg), *word_ = (word);                                             \
        ck_assert_msg(msg_ != NULL, "expected a message mentioning \"%s\", got none", word_);  \
        ck_assert_msg(strstr(msg_, word_) != NULL, "message \"%s\" does not mention \"%s\"",   \
                      msg_, word_);                                                            \
    } while (0)

/* Parses `text` as JSON (any value); fails the test when it is not valid JSON. The value is
 * owned by test_pool. */
json_t *test_parse_json(const char *text, size_t len);

/* `body` (len bytes) is exactly one JSON object with a string "msg" and nothing else; returns the
 * message (owned by test_pool). */
const char *test_error_body_msg(const char *body, size_t len);

Suite *route_suite(void);
Suite *params_suite(void);
Suite *paths_suite(void);
Suite *validate_suite(void);
Suite *json_suite(void);
Suite *view_suite(void);
Suite *access_suite(void);
Suite *api_suite(void);
Suite *ui_suite(void);
Suite *db_suite(void);
Suite *metrics_suite(void);
Suite *webui_suite(void);

#endif
