/* livy_access: Livy's security rules over httpd's user: who is listed, who is admitted, who may
 * view or modify a session, and whom a new session runs as. */
#include "test_engine.h"
#include "livy_access.h"

#include <apr_strings.h>

static apr_array_header_t *list_of(const char *csv)
{
    apr_array_header_t *list = apr_array_make(test_pool, 4, sizeof(const char *));
    char *last, *copy = apr_pstrdup(test_pool, csv);
    for (char *u = apr_strtok(copy, ",", &last); u; u = apr_strtok(NULL, ",", &last))
        APR_ARRAY_PUSH(list, const char *) = u;
    return list;
}

/* Access control on: alice is allowed, victor may view, mona may modify, root is superuser. */
static livy_security_t *security(void)
{
    livy_security_t *sec = apr_pcalloc(test_pool, sizeof *sec);
    sec->access_control = 1;
    sec->allowed_users = list_of("alice");
    sec->view_users = list_of("victor");
    sec->modify_users = list_of("mona");
    sec->superusers = list_of("root");
    return sec;
}

START_TEST(listed)
{
    ck_assert(livy_access_listed(list_of("a,b"), "b"));
    ck_assert(!livy_access_listed(list_of("a,b"), "c"));
    ck_assert(!livy_access_listed(list_of("a,b"), "B"));
    ck_assert(!livy_access_listed(list_of("a,b"), "a "));
    ck_assert(livy_access_listed(list_of("*"), "anyone"));
    ck_assert(!livy_access_listed(list_of("*"), ""));   /* "*" is every authenticated user */
    ck_assert(!livy_access_listed(list_of("*"), NULL));
    ck_assert(!livy_access_listed(list_of(""), "a"));
    ck_assert(!livy_access_listed(NULL, "a"));
}
END_TEST

static const struct {
    const char *user;
    int admitted;
} admitted[] = {
    {"alice", 1}, {"victor", 1}, {"mona", 1}, {"root", 1},
    {"owen", 0},  {"", 0},       {NULL, 0},
};

START_TEST(admitted_table)
{
    ck_assert_int_eq(livy_access_admitted(security(), admitted[_i].user), admitted[_i].admitted);
    livy_security_t *off = security();
    off->access_control = 0;
    ck_assert_int_eq(livy_access_admitted(off, admitted[_i].user), 1);
}
END_TEST

/* A session owned by owen, run as pat. */
static const struct {
    const char *user;
    int view, modify, view_all;
} session_rights[] = {
    {"owen", 1, 1, 0},    /* the owner */
    {"pat", 1, 1, 0},     /* the proxy user */
    {"victor", 1, 0, 1},  /* a viewer */
    {"mona", 1, 1, 1},    /* a modifier may also view */
    {"root", 1, 1, 1},    /* a superuser */
    {"alice", 0, 0, 0},   /* admitted, but neither principal nor listed */
    {"", 0, 0, 0},
    {NULL, 0, 0, 0},
};

START_TEST(session_rights_table)
{
    livy_security_t *sec = security();
    const char *u = session_rights[_i].user;
    ck_assert_msg(livy_access_can_view(sec, u, "owen", "pat") == session_rights[_i].view,
                  "view for %s", u ? u : "(null)");
    ck_assert_msg(livy_access_can_modify(sec, u, "owen", "pat") == session_rights[_i].modify,
                  "modify for %s", u ? u : "(null)");
    /* what a listing's query is told: every session, or only those u owns or runs as */
    ck_assert_msg(livy_access_can_view_all(sec, u) == session_rights[_i].view_all,
                  "view all for %s", u ? u : "(null)");
    ck_assert(livy_access_can_view(sec, u, "someone", "else") == session_rights[_i].view_all);
    sec->access_control = 0;
    ck_assert(livy_access_can_view_all(sec, u));
    ck_assert(livy_access_can_view(sec, u, "owen", "pat"));
    ck_assert(livy_access_can_modify(sec, u, "owen", "pat"));
}
END_TEST

START_TEST(anonymous_session_is_nobody_s)
{
    /* a session created anonymously has no owner: an anonymous caller is not its principal */
    livy_security_t *sec = security();
    ck_assert(!livy_access_can_view(sec, NULL, NULL, NULL));
    ck_assert(!livy_access_can_modify(sec, "", NULL, NULL));
    ck_assert(livy_access_can_modify(sec, "root", NULL, NULL));
    ck_assert(!livy_access_can_view(sec, "owen", NULL, NULL));
}
END_TEST

static const struct {
    int impersonation;
    const char *user, *doas, *body;
    int rc;
    const char *proxy; /* when rc == 0 */
} proxies[] = {
    /* off: ignored, shown as null */
    {0, "alice", "bob", "carol", 0, NULL},
    {0, NULL, NULL, "carol", 0, NULL},
    /* on: doAs first, then the body, else the requester */
    {1, "alice", NULL, NULL, 0, "alice"},
    {1, "alice", "", NULL, 0, "alice"},
    {1, "alice", NULL, "", 0, "alice"},
    {1, NULL, NULL, NULL, 0, NULL},
    {1, "", NULL, NULL, 0, NULL},
    {1, "alice", "alice", NULL, 0, "alice"},
    {1, "alice", NULL, "alice", 0, "alice"},
    {1, "alice", "alice", "bob", 0, "alice"},
    {1, "alice", "", "alice", 0, "alice"},
    {1, "root", "bob", NULL, 0, "bob"},
    {1, "root", NULL, "bob", 0, "bob"},
    {1, NULL, "bob", NULL, 0, "bob"},
    {1, "", NULL, "bob", 0, "bob"},
    {1, "alice", "bob", NULL, -1, NULL},
    {1, "alice", NULL, "bob", -1, NULL},
    {1, "alice", "bob", "alice", -1, NULL},
    {1, "alice", "Alice", NULL, -1, NULL},
};

START_TEST(proxy_user_table)
{
    livy_security_t *sec = security();
    sec->impersonation = proxies[_i].impersonation;
    const char *proxy = "unset", *err = NULL;
    int rc = livy_access_proxy_user(sec, proxies[_i].user, proxies[_i].doas, proxies[_i].body,
                                    test_pool, &proxy, &err);
    ck_assert_int_eq(rc, proxies[_i].rc);
    if (rc == 0) {
        ck_assert_pstr_eq(proxy, proxies[_i].proxy);
    } else {
        ck_assert_mentions(err, proxies[_i].user);
        ck_assert_mentions(err, proxies[_i].doas && *proxies[_i].doas ? proxies[_i].doas
                                                                       : proxies[_i].body);
    }
}
END_TEST

Suite *access_suite(void)
{
    Suite *s = suite_create("livy_access");
    TCase *tc = test_tcase_with_pool("rules");
    tcase_add_test(tc, listed);
    tcase_add_loop_test(tc, admitted_table, 0, N_ELEMS(admitted));
    tcase_add_loop_test(tc, session_rights_table, 0, N_ELEMS(session_rights));
    tcase_add_test(tc, anonymous_session_is_nobody_s);
    tcase_add_loop_test(tc, proxy_user_table, 0, N_ELEMS(proxies));
    suite_add_tcase(s, tc);
    return s;
}
