/* livy_access: Livy's security rules over httpd's authenticated user. */
#include "livy_access.h"

#include <apr_strings.h>
#include <string.h>

int livy_access_listed(const apr_array_header_t *list, const char *user)
{
    if (!list || !user || !*user)
        return 0;
    for (int i = 0; i < list->nelts; i++) {
        const char *u = APR_ARRAY_IDX(list, i, const char *);
        if (!strcmp(u, "*") || !strcmp(u, user))
            return 1;
    }
    return 0;
}

int livy_access_is_superuser(const livy_security_t *sec, const char *user)
{
    return livy_access_listed(sec->superusers, user);
}

int livy_access_admitted(const livy_security_t *sec, const char *user)
{
    if (!sec->access_control)
        return 1;
    return livy_access_listed(sec->allowed_users, user)
        || livy_access_listed(sec->view_users, user)
        || livy_access_listed(sec->modify_users, user)
        || livy_access_is_superuser(sec, user);
}

static int is_principal(const char *user, const char *owner, const char *proxy_user)
{
    return user && *user
        && ((owner && !strcmp(owner, user)) || (proxy_user && !strcmp(proxy_user, user)));
}

int livy_access_can_view_all(const livy_security_t *sec, const char *user)
{
    if (!sec->access_control)
        return 1;
    return livy_access_listed(sec->view_users, user)
        || livy_access_listed(sec->modify_users, user)
        || livy_access_is_superuser(sec, user);
}

int livy_access_can_view(const livy_security_t *sec, const char *user, const char *owner,
                         const char *proxy_user)
{
    return is_principal(user, owner, proxy_user) || livy_access_can_view_all(sec, user);
}

int livy_access_can_modify(const livy_security_t *sec, const char *user, const char *owner,
                           const char *proxy_user)
{
    if (!sec->access_control)
        return 1;
    return is_principal(user, owner, proxy_user)
        || livy_access_listed(sec->modify_users, user)
        || livy_access_is_superuser(sec, user);
}

int livy_access_can_read_metrics(const livy_security_t *sec, const char *user)
{
    if (!sec->access_control)
        return 1;
    return livy_access_listed(sec->view_users, user)
        || livy_access_listed(sec->modify_users, user)
        || livy_access_is_superuser(sec, user);
}

int livy_access_proxy_user(const livy_security_t *sec, const char *user, const char *doas,
                           const char *body_proxy_user, apr_pool_t *p, const char **proxy_user,
                           const char **errmsg)
{
    *proxy_user = NULL;
    if (!sec->impersonation)
        return 0; /* ignored and shown as null, as Livy does */
    const char *target = doas && *doas ? doas : body_proxy_user;
    int anonymous = !user || !*user;
    if (!target || !*target) {
        *proxy_user = anonymous ? NULL : user;
        return 0;
    }
    if (anonymous || !strcmp(target, user) || livy_access_is_superuser(sec, user)) {
        *proxy_user = target;
        return 0;
    }
    *errmsg = apr_psprintf(p, "User '%s' is not allowed to impersonate '%s'.", user, target);
    return -1;
}
