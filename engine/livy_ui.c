/* livy_ui: a session's Spark UI behind httpd: proxiable paths, kill paths, the driver's UI
 * address and its redirects mapped back to the proxy path. */
#include "livy_ui.h"

#include <apr_strings.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int livy_ui_path_ok(const char *path)
{
    static const char allowed[] = "-._~/:@!$&'()*+,;=";
    if (!path)
        return 0;
    if (*path && *path != '/')
        return 0;
    for (const char *c = path; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr(allowed, *c))
            return 0;
    /* no dot segments: httpd removes them from r->uri, but the check costs nothing */
    for (const char *seg = path; *seg;) {
        const char *s = *seg == '/' ? seg + 1 : seg;
        size_t n = strcspn(s, "/");
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return 0;
        seg = s + n;
    }
    return 1;
}

int livy_ui_path_kills(const char *path)
{
    for (const char *c = path ? path : ""; *c; c++)
        if (!strncasecmp(c, "kill", 4))
            return 1;
    return 0;
}

const char *livy_ui_backend(const char *url, apr_pool_t *p)
{
    if (!url || strncmp(url, "http://", 7) != 0)
        return NULL;
    const char *host = url + 7, *c = host;
    if (*c == '[') { /* an IPv6 literal */
        c++;
        while (isxdigit((unsigned char)*c) || *c == ':' || *c == '.')
            c++;
        if (*c++ != ']')
            return NULL;
    } else {
        while (isalnum((unsigned char)*c) || *c == '.' || *c == '-')
            c++;
    }
    if (c == host || *c != ':' || !isdigit((unsigned char)c[1]))
        return NULL;
    const char *port = ++c;
    while (isdigit((unsigned char)*c))
        c++;
    if (c - port > 5 || atoi(port) < 1 || atoi(port) > 65535)
        return NULL;
    if (*c == '/')
        c++;
    if (*c)
        return NULL;
    return apr_pstrmemdup(p, url, (apr_size_t)(port - url) + strspn(port, "0123456789"));
}

const char *livy_ui_map_location(const char *location, const char *backend,
                                 const char *public_base, const char *context, apr_pool_t *p)
{
    if (!location)
        return NULL;
    const char *path = NULL;
    size_t blen = backend ? strlen(backend) : 0;
    if (blen && !strncasecmp(location, backend, blen)
        && (location[blen] == '/' || location[blen] == '?' || location[blen] == '\0'))
        path = location + blen;
    else if (location[0] == '/' && location[1] != '/')
        path = location;
    if (!path)
        return location; /* elsewhere: not ours to change */
    size_t clen = context ? strlen(context) : 0;
    if (clen && !strncmp(path, context, clen)
        && (path[clen] == '/' || path[clen] == '?' || path[clen] == '\0'))
        path += clen; /* Spark built it from X-Forwarded-Context already */
    if (*path != '/')
        path = apr_pstrcat(p, "/", path, NULL);
    return apr_pstrcat(p, public_base, path, NULL);
}

livy_master_kind_e livy_spark_master_kind(const char *master)
{
    if (!master)
        return LIVY_MASTER_OTHER;
    if (!strcmp(master, "local") || !strncmp(master, "local[", 6)
        || !strncmp(master, "local-cluster[", 14))
        return LIVY_MASTER_LOCAL;
    if (!strcmp(master, "yarn"))
        return LIVY_MASTER_YARN;
    if (!strncmp(master, "k8s://", 6))
        return LIVY_MASTER_K8S;
    if (!strncmp(master, "spark://", 8))
        return LIVY_MASTER_STANDALONE;
    return LIVY_MASTER_OTHER;
}
