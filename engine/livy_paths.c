/* livy_paths: where a batch's files may come from (LivyBatchAllowedPaths); no I/O, fuzzable. */
#include "livy_paths.h"
#include "livy_params.h"

#include <apr_strings.h>
#include <string.h>
#include <strings.h>

/* File systems spark-submit reads from elsewhere: entries with these schemes pass untouched. */
static const char *const remote_schemes[] = {
    "hdfs", "s3a", "s3", "abfs", "abfss", "wasb", "wasbs", "gs", "http", "https", "viewfs",
};

/* Schemes that name a file on the Spark host itself, like a path without a scheme. */
static const char *const local_schemes[] = {"file", "local"};

#define N_SCHEMES(t) (sizeof(t) / sizeof((t)[0]))

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The length of the URI scheme entry starts with (RFC 3986: a letter, then letters, digits,
 * '+', '-' or '.', then ':'), 0 when it has none. */
static size_t scheme_length(const char *entry)
{
    if (!is_alpha(entry[0]))
        return 0;
    size_t n = 1;
    while (is_alpha(entry[n]) || (entry[n] >= '0' && entry[n] <= '9') || entry[n] == '+'
           || entry[n] == '-' || entry[n] == '.')
        n++;
    return entry[n] == ':' ? n : 0;
}

/* Schemes compare without regard to case, as URIs say: FILE:/x is as local as file:/x. */
static int scheme_in(const char *scheme, size_t len, const char *const *table, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(table[i]) == len && !strncasecmp(scheme, table[i], len))
            return 1;
    return 0;
}

static const char *remote_scheme_list(apr_pool_t *p)
{
    const char *list = remote_schemes[0];
    for (size_t i = 1; i < N_SCHEMES(remote_schemes); i++)
        list = apr_pstrcat(p, list, ", ", remote_schemes[i], NULL);
    return list;
}

/* path (NUL-terminated) as an absolute path of plain components: "/a/b" (empty components
 * dropped, "/" for the root). Returns NULL with *why when it is relative or holds a '.' or '..'
 * component or a control character. */
static const char *canonical_path(const char *path, apr_pool_t *p, const char **why)
{
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        if (*c < 0x20 || *c == 0x7f) {
            *why = "it holds a control character.";
            return NULL;
        }
    }
    if (path[0] != '/') {
        *why = "it is a relative path: give an absolute one.";
        return NULL;
    }
    char *out = apr_palloc(p, strlen(path) + 2), *o = out;
    const char *c = path;
    while (*c) {
        while (*c == '/')
            c++;
        if (!*c)
            break;
        size_t len = strcspn(c, "/");
        if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.')) {
            *why = apr_psprintf(p, "it has a '%.*s' component; write the path without one.",
                                (int)len, c);
            return NULL;
        }
        *o++ = '/';
        memcpy(o, c, len);
        o += len;
        c += len;
    }
    if (o == out)
        *o++ = '/';
    *o = '\0';
    return out;
}

int livy_paths_dir_check(const char *dir, apr_pool_t *p, const char **canonical,
                         const char **errmsg)
{
    const char *why;
    *canonical = canonical_path(dir, p, &why);
    if (!*canonical) {
        *errmsg = apr_psprintf(p, "'%s' is not a usable directory: %s", dir, why);
        return -1;
    }
    return 0;
}

/* canonical lies in dir, component by component (dir itself included). */
static int inside(const char *canonical, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return 1;
    return !strncmp(canonical, dir, n) && (canonical[n] == '/' || canonical[n] == '\0');
}

static const char *allowed_list(const apr_array_header_t *allowed, apr_pool_t *p)
{
    const char *list = APR_ARRAY_IDX(allowed, 0, const char *);
    for (int i = 1; i < allowed->nelts; i++)
        list = apr_pstrcat(p, list, ", ", APR_ARRAY_IDX(allowed, i, const char *), NULL);
    return list;
}

/* path must lie in one of the allowed directories, as written and once its %-escapes are
 * decoded (Spark decodes a URI's path; a plain path it takes as written unless it carries a
 * #fragment): both readings have to pass. */
static int local_path_allowed(const char *path, const apr_array_header_t *allowed,
                              apr_pool_t *p, const char **why)
{
    if (strchr(path, '?')) {
        *why = "a local path must not hold a '?'.";
        return -1;
    }
    const char *decoded = livy_percent_decode(path, strlen(path), 0, p);
    if (!decoded) {
        *why = "it holds a '%' that is not a well-formed %-escape (or one that decodes to NUL).";
        return -1;
    }
    const char *readings[2] = {path, decoded};
    for (int r = 0; r < (strcmp(path, decoded) ? 2 : 1); r++) {
        const char *canonical = canonical_path(readings[r], p, why);
        if (!canonical)
            return -1;
        int ok = 0;
        for (int i = 0; i < allowed->nelts && !ok; i++)
            ok = inside(canonical, APR_ARRAY_IDX(allowed, i, const char *));
        if (!ok) {
            *why = apr_psprintf(p, "this server allows local files only under "
                                "LivyBatchAllowedPaths (%s).", allowed_list(allowed, p));
            return -1;
        }
    }
    return 0;
}

int livy_paths_entry_check(const char *entry, const apr_array_header_t *allowed, apr_pool_t *p,
                           const char **why)
{
    size_t slen = scheme_length(entry);
    if (slen && scheme_in(entry, slen, remote_schemes, N_SCHEMES(remote_schemes)))
        return 0;
    if (slen && !scheme_in(entry, slen, local_schemes, N_SCHEMES(local_schemes))) {
        *why = apr_psprintf(p, "the URI scheme '%.*s' is not served: use one of %s, or a local "
                            "path (plain, file: or local:) under LivyBatchAllowedPaths.",
                            (int)slen, entry, remote_scheme_list(p));
        return -1;
    }
    if (!allowed || allowed->nelts == 0) {
        *why = apr_psprintf(p, "this server allows no local files (no LivyBatchAllowedPaths is "
                            "configured): give a remote URI (%s).", remote_scheme_list(p));
        return -1;
    }
    /* The path: what follows the scheme (and an empty authority), up to a #fragment, which
     * names the file in the application's directory and is no part of where it is read. */
    const char *path = entry + (slen ? slen + 1 : 0);
    if (slen && path[0] == '/' && path[1] == '/') {
        size_t host = strcspn(path + 2, "/");
        if (host) {
            *why = apr_psprintf(p, "a %.*s: URI must not name a host ('%.*s'): write %.*s:///path.",
                                (int)slen, entry, (int)host, path + 2, (int)slen, entry);
            return -1;
        }
        path += 2;
    }
    return local_path_allowed(apr_pstrndup(p, path, strcspn(path, "#")), allowed, p, why);
}
