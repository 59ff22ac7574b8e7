/* livy_params: the query string (from, size, order, doAs...), integer parameters with their
 * defaults and bounds, the duration strings of ttl / idleTimeout, and the UTF-8 check. */
#include "test_engine.h"
#include "livy_params.h"

#include <apr_strings.h>

/* ---- livy_params_parse ---- */

static const struct {
    const char *query;
    const char *key;
    const char *value; /* NULL: the key is absent */
} decoded[] = {
    {"a=1", "a", "1"},
    {"a=1&b=x%20y", "b", "x y"},
    {"b=x+y", "b", "x y"},
    {"b=x%2By", "b", "x+y"},
    {"%41=%62", "A", "b"},
    {"a=%2f%2F", "a", "//"},
    {"a=%26", "a", "&"},         /* an escaped & is data, not a separator */
    {"a=%3D", "a", "="},
    {"a=b=c", "a", "b=c"},       /* only the first = splits */
    {"a=caf%C3%A9", "a", "caf\xc3\xa9"},
    {"a", "a", ""},              /* a bare key has an empty value */
    {"a=", "a", ""},
    {"=5", "", "5"},
    {"from=1&from=2", "from", "1"}, /* first occurrence wins */
    {"from=&from=2", "from", ""},
    {"&&from=3&&", "from", "3"}, /* empty pairs are skipped */
    {"x=1&size=20&order=desc", "order", "desc"},
    {"x=1&size=20&order=desc", "size", "20"},
    {"x=1", "y", NULL},
    {"", "a", NULL},
    {"&", "a", NULL},
    {"&&&", "", NULL},
};

START_TEST(parse_decodes_pairs)
{
    const char *err = NULL;
    apr_table_t *t = livy_params_parse(decoded[_i].query, test_pool, &err);
    ck_assert_msg(t != NULL, "\"%s\": %s", decoded[_i].query, err);
    const char *v = apr_table_get(t, decoded[_i].key);
    if (decoded[_i].value)
        ck_assert_msg(v && !strcmp(v, decoded[_i].value), "\"%s\": %s = \"%s\", expected \"%s\"",
                      decoded[_i].query, decoded[_i].key, v ? v : "(absent)", decoded[_i].value);
    else
        ck_assert_msg(v == NULL, "\"%s\": %s = \"%s\", expected absent", decoded[_i].query,
                      decoded[_i].key, v);
}
END_TEST

START_TEST(parse_null_query_is_empty_table)
{
    const char *err = NULL;
    apr_table_t *t = livy_params_parse(NULL, test_pool, &err);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(apr_table_elts(t)->nelts, 0);
}
END_TEST

START_TEST(parse_skips_empty_pairs)
{
    const char *err = NULL;
    apr_table_t *t = livy_params_parse("&&a=1&&&b=2&", test_pool, &err);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(apr_table_elts(t)->nelts, 2);
}
END_TEST

static const char *const malformed[] = {
    "a=%",  "a=%4", "a=%zz", "a=%4g", "a=%g4", "a=%%41", "%=1", "a%2=1", "a=%00", "%00=1",
    "a=x%00y", "a=1&b=%", "a=%-1", "a=% 1",
};

START_TEST(parse_rejects_malformed_escape)
{
    const char *err = NULL;
    apr_table_t *t = livy_params_parse(malformed[_i], test_pool, &err);
    ck_assert_msg(t == NULL, "\"%s\" was accepted", malformed[_i]);
    ck_assert_mentions(err, "escape");
}
END_TEST

static const char *const not_utf8[] = {
    "a=%FF", "a=%C3", "a=caf%E9", "%FF=1", "a=%ED%A0%80", "a=%C0%AF", "a=1&b=%F5%80%80%80",
};

START_TEST(parse_rejects_values_that_are_not_utf8)
{
    const char *err = NULL;
    ck_assert_msg(livy_params_parse(not_utf8[_i], test_pool, &err) == NULL, "\"%s\" accepted",
                  not_utf8[_i]);
    ck_assert_mentions(err, "UTF-8");
}
END_TEST

/* ---- livy_utf8_valid ---- */

static const struct {
    const char *text;
    int valid;
} utf8[] = {
    {"", 1},
    {"plain ascii \x01\x7f", 1},
    {"caf\xc3\xa9", 1},                       /* U+00E9, 2 bytes */
    {"\xc2\x80", 1},                           /* U+0080, the smallest 2-byte form */
    {"\xdf\xbf", 1},                           /* U+07FF */
    {"\xe0\xa0\x80", 1},                       /* U+0800, the smallest 3-byte form */
    {"\xe5\x90\x8d", 1},                       /* 名 */
    {"\xed\x9f\xbf", 1},                       /* U+D7FF, just below the surrogates */
    {"\xee\x80\x80", 1},                       /* U+E000, just above them */
    {"\xef\xbf\xbf", 1},                       /* U+FFFF */
    {"\xf0\x90\x80\x80", 1},                   /* U+10000, the smallest 4-byte form */
    {"\xf0\x9f\x9a\x80", 1},                   /* an emoji */
    {"\xf4\x8f\xbf\xbf", 1},                   /* U+10FFFF, the last code point */
    {"\x80", 0},                                /* a lone continuation byte */
    {"\xbf", 0},
    {"\xc3", 0},                                /* truncated */
    {"\xc3x", 0},
    {"\xe5\x90", 0},
    {"\xf0\x9f\x9a", 0},
    {"\xc0\xaf", 0},                            /* overlong '/' */
    {"\xc1\xbf", 0},
    {"\xe0\x80\xaf", 0},                        /* overlong, 3 bytes */
    {"\xf0\x80\x80\xaf", 0},                    /* overlong, 4 bytes */
    {"\xed\xa0\x80", 0},                        /* U+D800, a surrogate */
    {"\xed\xbf\xbf", 0},                        /* U+DFFF */
    {"\xf4\x90\x80\x80", 0},                    /* U+110000, beyond Unicode */
    {"\xf5\x80\x80\x80", 0},
    {"\xf8\x88\x80\x80\x80", 0},                /* 5-byte forms are gone */
    {"\xfe", 0},
    {"\xff", 0},
    {"ok then \xff", 0},
};

/* The same decoding for paths: '+' is a plus there, not a space. */
START_TEST(percent_decode_with_and_without_plus)
{
    ck_assert_str_eq(livy_percent_decode("a+b%2Fc", 7, 1, test_pool), "a b/c");
    ck_assert_str_eq(livy_percent_decode("a+b%2Fc", 7, 0, test_pool), "a+b/c");
    ck_assert_str_eq(livy_percent_decode("%2e%2E", 6, 0, test_pool), "..");
    ck_assert_str_eq(livy_percent_decode("abcdef", 3, 0, test_pool), "abc"); /* len bytes only */
    ck_assert_ptr_null(livy_percent_decode("x%2", 3, 0, test_pool));
    ck_assert_ptr_null(livy_percent_decode("x%g1", 4, 0, test_pool));
    ck_assert_ptr_null(livy_percent_decode("%00", 3, 0, test_pool));
}
END_TEST

START_TEST(utf8_valid_table)
{
    ck_assert_msg(livy_utf8_valid(utf8[_i].text) == utf8[_i].valid, "#%d: expected %d", _i,
                  utf8[_i].valid);
}
END_TEST

/* ---- livy_param_int ---- */

#define MAXP LIVY_PARAM_MAX

static const struct {
    const char *query;
    const char *name;
    int64_t def, min;
    int rc;
    int64_t value; /* when rc == 0 */
} ints[] = {
    /* absent: the default, whatever it is */
    {"", "from", 0, 0, 0, 0},
    {"", "size", 100, 0, 0, 100},
    {"", "from", -1, 0, 0, -1},
    {"other=5", "size", 100, 0, 0, 100},
    /* present and valid */
    {"from=5", "from", 0, 0, 0, 5},
    {"from=0", "from", 7, 0, 0, 0},
    {"from=007", "from", 0, 0, 0, 7},
    {"from=-0", "from", 0, 0, 0, 0},
    {"from=2147483647", "from", 0, 0, 0, 2147483647},
    {"size=-1", "size", 100, -MAXP, 0, -1},
    {"size=-2147483647", "size", 100, -MAXP, 0, -2147483647},
    {"size=%35", "size", 100, 0, 0, 5},
    {"from=3&from=x", "from", 0, 0, 0, 3},
    /* present and invalid */
    {"from=-1", "from", 0, 0, -1, 0},
    {"from=2147483648", "from", 0, 0, -1, 0},
    {"from=99999999999", "from", 0, 0, -1, 0},
    {"from=999999999999", "from", 0, 0, -1, 0},
    {"from=9999999999999", "from", 0, 0, -1, 0},
    {"from=99999999999999999999999999999999", "from", 0, 0, -1, 0},
    {"from=-99999999999999999999999999999999", "from", 0, 0, -1, 0},
    {"from=", "from", 0, 0, -1, 0},
    {"from", "from", 0, 0, -1, 0},
    {"from=-", "from", 0, 0, -1, 0},
    {"from=--1", "from", 0, 0, -1, 0},
    {"from=abc", "from", 0, 0, -1, 0},
    {"from=1a", "from", 0, 0, -1, 0},
    {"from=1.5", "from", 0, 0, -1, 0},
    {"from=1e3", "from", 0, 0, -1, 0},
    {"from=0x10", "from", 0, 0, -1, 0},
    {"from=+5", "from", 0, 0, -1, 0},   /* '+' decodes to a space */
    {"from=%2B5", "from", 0, 0, -1, 0},
    {"from=%205", "from", 0, 0, -1, 0},
    {"from=5%20", "from", 0, 0, -1, 0},
    {"size=x&size=5", "size", 100, 0, -1, 0},
    {"size=-2147483648", "size", 100, -MAXP, -1, 0},
};

START_TEST(param_int_table)
{
    const char *err = NULL;
    apr_table_t *t = livy_params_parse(ints[_i].query, test_pool, &err);
    ck_assert_ptr_nonnull(t);
    int64_t v = 12345;
    int rc = livy_param_int(t, ints[_i].name, ints[_i].def, ints[_i].min, &v, test_pool, &err);
    ck_assert_msg(rc == ints[_i].rc, "\"%s\": rc %d, expected %d", ints[_i].query, rc,
                  ints[_i].rc);
    if (rc == 0)
        ck_assert_msg(v == ints[_i].value, "\"%s\": %lld, expected %lld", ints[_i].query,
                      (long long)v, (long long)ints[_i].value);
    else
        ck_assert_mentions(err, apr_psprintf(test_pool, "'%s'", ints[_i].name));
}
END_TEST

START_TEST(param_int_without_table_gives_default)
{
    const char *err = NULL;
    int64_t v = 0;
    ck_assert_int_eq(livy_param_int(NULL, "size", 100, 0, &v, test_pool, &err), 0);
    ck_assert_int_eq(v, 100);
}
END_TEST

START_TEST(param_int_message_quotes_the_value)
{
    const char *err = NULL;
    apr_table_t *t = livy_params_parse("from=ten", test_pool, &err);
    int64_t v;
    ck_assert_int_eq(livy_param_int(t, "from", 0, 0, &v, test_pool, &err), -1);
    ck_assert_mentions(err, "'from'");
    ck_assert_mentions(err, "ten");
    ck_assert_mentions(err, "integer");
}
END_TEST

START_TEST(param_int_range_message_names_the_bounds)
{
    const char *err = NULL;
    apr_table_t *t = livy_params_parse("from=-4", test_pool, &err);
    int64_t v;
    ck_assert_int_eq(livy_param_int(t, "from", 0, 0, &v, test_pool, &err), -1);
    ck_assert_mentions(err, "'from'");
    ck_assert_mentions(err, "-4");
    ck_assert_mentions(err, "0");
    ck_assert_mentions(err, "2147483647");
}
END_TEST

/* ENGINE BUG (livy_params.c:99-103): with a minimum other than 0, a value below it is reported
 * as "must be at most 2147483647", which is false and names the wrong bound. The log route's
 * size (min -2147483647) shows it: size=-3000000000. */
START_TEST(param_int_below_nonzero_min_message_names_the_minimum)
{
    const char *err = NULL;
    apr_table_t *t = livy_params_parse("size=-3000000000", test_pool, &err);
    int64_t v;
    ck_assert_int_eq(livy_param_int(t, "size", 100, -MAXP, &v, test_pool, &err), -1);
    ck_assert_mentions(err, "'size'");
    ck_assert_mentions(err, "-2147483647");

    t = livy_params_parse("n=3", test_pool, &err);
    ck_assert_int_eq(livy_param_int(t, "n", 10, 5, &v, test_pool, &err), -1);
    ck_assert_mentions(err, "'n'");
    ck_assert_mentions(err, "5");
}
END_TEST

/* ---- livy_parse_duration_ms ---- */

static const struct {
    const char *text;
    int rc;
    int64_t ms;
} durations[] = {
    {"500ms", 0, 500},
    {"10s", 0, 10000},
    {"10m", 0, 600000},
    {"1h", 0, 3600000},
    {"2d", 0, 172800000},
    {"10", 0, 10000}, /* a bare number means seconds */
    {"0", 0, 0},
    {"0s", 0, 0},
    {"007s", 0, 7000},
    {"10S", 0, 10000},
    {"1H", 0, 3600000},
    {"5MS", 0, 5},
    {"10min", 0, 600000},
    {"10 minutes", 0, 600000},
    {"1 minute", 0, 60000},
    {"3hours", 0, 10800000},
    {"1 hour", 0, 3600000},
    {"1day", 0, 86400000},
    {"2 days", 0, 172800000},
    {"30sec", 0, 30000},
    {"30 seconds", 0, 30000},
    {"1second", 0, 1000},
    {"5millis", 0, 5},
    {"5 milliseconds", 0, 5},
    {"5milli", 0, 5},
    {"5millisecond", 0, 5},
    {"10 s", 0, 10000},
    {" 10s", 0, 10000},
    {"   10m", 0, 600000},
    {"10 ", 0, 10000},
    {"100000000000d", 0, 8640000000000000000LL}, /* the largest whole-day count that fits */
    {"1000000000000ms", 0, 1000000000000LL},
    /* malformed */
    {"", -1, 0},
    {" ", -1, 0},
    {"s", -1, 0},
    {"ms", -1, 0},
    {"-5s", -1, 0},
    {"-0", -1, 0},
    {"+5s", -1, 0},
    {"1.5h", -1, 0},
    {"1,5h", -1, 0},
    {"1e3", -1, 0},
    {"0x10", -1, 0},
    {"ten", -1, 0},
    {"10x", -1, 0},
    {"10ss", -1, 0},
    {"10 s x", -1, 0},
    {"10s10m", -1, 0},
    {"10 10s", -1, 0},
    {"10w", -1, 0},
    {"10y", -1, 0},
    {"10us", -1, 0},
    {"10\ts", -1, 0},
    {"\x31\x30\xc2\xa0s", -1, 0}, /* no-break space */
    /* out of range */
    {"1000000000000d", -1, 0},
    {"9223372036854775807", -1, 0},
    {"9223372036854775807ms", -1, 0},
    {"99999999999999999999999999999999s", -1, 0},
    {"18446744073709551616ms", -1, 0},
};

START_TEST(duration_table)
{
    int64_t ms = -42;
    int rc = livy_parse_duration_ms(durations[_i].text, &ms);
    ck_assert_msg(rc == durations[_i].rc, "\"%s\": rc %d, expected %d", durations[_i].text, rc,
                  durations[_i].rc);
    if (rc == 0)
        ck_assert_msg(ms == durations[_i].ms, "\"%s\": %lld ms, expected %lld",
                      durations[_i].text, (long long)ms, (long long)durations[_i].ms);
    else
        ck_assert_msg(ms == -42, "\"%s\" failed but wrote %lld", durations[_i].text,
                      (long long)ms);
}
END_TEST

/* ENGINE BUG (livy_params.c:123-137): spaces are skipped before the number and between the
 * number and the unit ("10 " and "10 s" parse), but a space after the unit makes the duration
 * malformed: " 10s " and "10m " are rejected. Livy trims the value (timeStringAsMs). */
START_TEST(duration_trailing_space_after_unit)
{
    int64_t ms = -1;
    ck_assert_int_eq(livy_parse_duration_ms(" 10s ", &ms), 0);
    ck_assert_int_eq(ms, 10000);
    ck_assert_int_eq(livy_parse_duration_ms("10m ", &ms), 0);
    ck_assert_int_eq(ms, 600000);
}
END_TEST

Suite *params_suite(void)
{
    Suite *s = suite_create("livy_params");
    TCase *tc = test_tcase_with_pool("query");
    tcase_add_loop_test(tc, parse_decodes_pairs, 0, N_ELEMS(decoded));
    tcase_add_test(tc, parse_null_query_is_empty_table);
    tcase_add_test(tc, parse_skips_empty_pairs);
    tcase_add_loop_test(tc, parse_rejects_malformed_escape, 0, N_ELEMS(malformed));
    tcase_add_loop_test(tc, parse_rejects_values_that_are_not_utf8, 0, N_ELEMS(not_utf8));
    tcase_add_test(tc, percent_decode_with_and_without_plus);
    tcase_add_loop_test(tc, utf8_valid_table, 0, N_ELEMS(utf8));
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("int");
    tcase_add_loop_test(tc, param_int_table, 0, N_ELEMS(ints));
    tcase_add_test(tc, param_int_without_table_gives_default);
    tcase_add_test(tc, param_int_message_quotes_the_value);
    tcase_add_test(tc, param_int_range_message_names_the_bounds);
    tcase_add_test(tc, param_int_below_nonzero_min_message_names_the_minimum);
    suite_add_tcase(s, tc);

    tc = test_tcase_with_pool("duration");
    tcase_add_loop_test(tc, duration_table, 0, N_ELEMS(durations));
    tcase_add_test(tc, duration_trailing_space_after_unit);
    suite_add_tcase(s, tc);
    return s;
}
