/* livy_json: pool-owned jansson values and the {"msg": ...} error body every failure sends. */
#include "test_engine.h"
#include "livy_json.h"

#include <apr_strings.h>

/* ---- livy_json_msg ---- */

static const char *const messages[] = {
    "deleted",
    "",
    "Session 'etl' not found.",
    "a \"quoted\" word",
    "back\\slash and \\\" both",
    "line\nbreak\r\ttab",
    "bell\a backspace\b formfeed\f vtab\v escape\x1b unit\x1f del\x7f",
    "\x01\x02\x03",
    "slash / and </script>",
    "caf\xc3\xa9 \xe5\x90\x8d \xf0\x9f\x9a\x80",
    "{\"msg\":\"nested\"}",
    "percent %s %d %n",
};

START_TEST(msg_round_trips)
{
    size_t len = 0;
    char *body = livy_json_msg(test_pool, messages[_i], &len);
    ck_assert_ptr_nonnull(body);
    ck_assert_uint_eq(len, strlen(body));
    ck_assert_str_eq(test_error_body_msg(body, len), messages[_i]);
}
END_TEST

START_TEST(msg_has_no_raw_control_characters)
{
    size_t len = 0;
    char *body = livy_json_msg(test_pool, messages[_i], &len);
    for (size_t i = 0; i < len; i++)
        ck_assert_msg((unsigned char)body[i] >= 0x20, "raw byte 0x%02x at %zu in %s",
                      (unsigned char)body[i], i, body);
}
END_TEST

START_TEST(msg_exact_text)
{
    size_t len;
    ck_assert_str_eq(livy_json_msg(test_pool, "deleted", &len), "{\"msg\":\"deleted\"}");
    ck_assert_str_eq(livy_json_msg(test_pool, "a\"b\\c\nd\x01", &len),
                     "{\"msg\":\"a\\\"b\\\\c\\nd\\u0001\"}");
    ck_assert_str_eq(livy_json_msg(test_pool, "x", NULL), "{\"msg\":\"x\"}");
}
END_TEST

START_TEST(msg_long_message)
{
    char *m = apr_palloc(test_pool, 100001);
    for (int i = 0; i < 100000; i++)
        m[i] = "ab\"\\\n"[i % 5];
    m[100000] = '\0';
    size_t len;
    char *body = livy_json_msg(test_pool, m, &len);
    ck_assert_str_eq(test_error_body_msg(body, len), m);
}
END_TEST

/* ENGINE BUG (livy_json.c:34): json_string() returns NULL for text that is not UTF-8, so the body
 * silently becomes "{}" with no "msg". Messages quote request text that can be any bytes: the
 * decoded path of a 404 (GET /%FF), a query value (from=%FF), a truncated jansson error. The body
 * must still be {"msg": "..."} (invalid bytes replaced or escaped). */
START_TEST(msg_with_invalid_utf8_still_has_msg)
{
    static const char *const bad[] = {
        "No such resource: /\xff",
        "Query parameter 'from' must be an integer, got '\xc3'.",
        "truncated \xe5\x90",
    };
    for (int i = 0; i < N_ELEMS(bad); i++) {
        size_t len;
        char *body = livy_json_msg(test_pool, bad[i], &len);
        const char *msg = test_error_body_msg(body, len);
        ck_assert_msg(strlen(msg) > 0, "empty msg for #%d", i);
    }
}
END_TEST

/* ---- ownership ---- */

START_TEST(own_releases_with_the_pool)
{
    apr_pool_t *sub;
    apr_pool_create(&sub, test_pool);
    json_t *j = json_object();
    json_incref(j); /* our own reference, to watch the pool's go */
    ck_assert_ptr_eq(livy_json_own(sub, j), j);
    ck_assert_int_eq(j->refcount, 2);
    apr_pool_destroy(sub);
    ck_assert_int_eq(j->refcount, 1);
    json_decref(j);
}
END_TEST

START_TEST(own_null_is_null)
{
    ck_assert_ptr_null(livy_json_own(test_pool, NULL));
}
END_TEST

/* ---- dump ---- */

START_TEST(dump_is_compact_and_keeps_key_order)
{
    json_t *o = livy_json_own(test_pool, json_object());
    json_object_set_new(o, "zeta", json_integer(1));
    json_object_set_new(o, "alpha", json_array());
    json_object_set_new(o, "mid", json_null());
    json_object_set_new(o, "real", json_real(1.0));
    size_t len;
    char *text = livy_json_dump(test_pool, o, &len);
    ck_assert_str_eq(text, "{\"zeta\":1,\"alpha\":[],\"mid\":null,\"real\":1.0}");
    ck_assert_uint_eq(len, strlen(text));
    ck_assert_str_eq(livy_json_dump(test_pool, o, NULL), text);
}
END_TEST

START_TEST(dump_empty_containers_and_unicode)
{
    size_t len;
    json_t *a = livy_json_own(test_pool, json_array());
    ck_assert_str_eq(livy_json_dump(test_pool, a, &len), "[]");
    ck_assert_uint_eq(len, 2);
    ck_assert_str_eq(livy_json_dump(test_pool, livy_json_own(test_pool, json_object()), &len),
                     "{}");
    json_t *u = livy_json_own(test_pool, json_pack("[s]", "caf\xc3\xa9 \xf0\x9f\x9a\x80"));
    ck_assert_str_eq(livy_json_dump(test_pool, u, &len), "[\"caf\xc3\xa9 \xf0\x9f\x9a\x80\"]");
}
END_TEST

/* ---- helpers for the views ---- */

START_TEST(string_or_null)
{
    json_t *s = livy_json_own(test_pool, livy_json_string_or_null("x"));
    json_t *n = livy_json_own(test_pool, livy_json_string_or_null(NULL));
    ck_assert(json_is_string(s));
    ck_assert_str_eq(json_string_value(s), "x");
    ck_assert(json_is_null(n));
}
END_TEST

START_TEST(parse_stored_values)
{
    json_t *fallback = json_array();
    json_t *j = livy_json_own(test_pool, livy_json_parse_stored("{\"a\":[1,\"b\"]}", fallback));
    ck_assert(json_is_object(j));
    ck_assert_str_eq(livy_json_dump(test_pool, j, NULL), "{\"a\":[1,\"b\"]}");

    /* any JSON value, NUL inside strings included (jsonb may hold it) */
    j = livy_json_own(test_pool, livy_json_parse_stored("\"a\\u0000b\"", json_null()));
    ck_assert(json_is_string(j));
    ck_assert_uint_eq(json_string_length(j), 3);
    j = livy_json_own(test_pool, livy_json_parse_stored("null", json_array()));
    ck_assert(json_is_null(j));
    j = livy_json_own(test_pool, livy_json_parse_stored("0.5", json_null()));
    ck_assert(json_is_real(j));
}
END_TEST

START_TEST(parse_stored_falls_back)
{
    json_t *fallback = json_object();
    ck_assert_ptr_eq(livy_json_parse_stored(NULL, fallback), fallback);
    ck_assert_ptr_eq(livy_json_parse_stored("", fallback), fallback);
    ck_assert_ptr_eq(livy_json_parse_stored("{oops", fallback), fallback);
    ck_assert_ptr_eq(livy_json_parse_stored("[1] 2", fallback), fallback);
    ck_assert_int_eq(fallback->refcount, 1);
    json_decref(fallback);
}
END_TEST

Suite *json_suite(void)
{
    Suite *s = suite_create("livy_json");
    TCase *tc = test_tcase_with_pool("msg");
    tcase_add_loop_test(tc, msg_round_trips, 0, N_ELEMS(messages));
    tcase_add_loop_test(tc, msg_has_no_raw_control_characters, 0, N_ELEMS(messages));
    tcase_add_test(tc, msg_exact_text);
    tcase_add_test(tc, msg_long_message);
    tcase_add_test(tc, msg_with_invalid_utf8_still_has_msg);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("values");
    tcase_add_test(tc, own_releases_with_the_pool);
    tcase_add_test(tc, own_null_is_null);
    tcase_add_test(tc, dump_is_compact_and_keeps_key_order);
    tcase_add_test(tc, dump_empty_containers_and_unicode);
    tcase_add_test(tc, string_or_null);
    tcase_add_test(tc, parse_stored_values);
    tcase_add_test(tc, parse_stored_falls_back);
    suite_add_tcase(s, tc);
    return s;
}
