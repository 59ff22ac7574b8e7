/* livy_params: query-string parsing and validation of from/size/order; fuzzable. */
#include "livy_params.h"

#include <apr_strings.h>
#include <ctype.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *livy_percent_decode(const char *s, size_t len, int plus_is_space, apr_pool_t *p)
{
    char *out = apr_palloc(p, len + 1), *o = out;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return NULL;
            char c = (char)(hi * 16 + lo);
            if (c == '\0')
                return NULL;
            *o++ = c;
            i += 2;
        } else if (s[i] == '+' && plus_is_space) {
            *o++ = ' ';
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

apr_table_t *livy_params_parse(const char *query, apr_pool_t *p, const char **errmsg)
{
    apr_table_t *t = apr_table_make(p, 4);
    const char *c = query;
    while (c && *c) {
        const char *end = strchr(c, '&');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        if (len > 0) {
            const char *eq = memchr(c, '=', len);
            size_t klen = eq ? (size_t)(eq - c) : len;
            char *key = livy_percent_decode(c, klen, 1, p);
            char *val = eq ? livy_percent_decode(eq + 1, len - klen - 1, 1, p)
                           : apr_pstrdup(p, "");
            if (!key || !val) {
                *errmsg = "The query string has a malformed %-escape.";
                return NULL;
            }
            if (!livy_utf8_valid(key) || !livy_utf8_valid(val)) {
                *errmsg = "The query string is not valid UTF-8.";
                return NULL;
            }
            if (!apr_table_get(t, key))
                apr_table_setn(t, key, val);
        }
        c = end ? end + 1 : NULL;
    }
    return t;
}

int livy_param_int(apr_table_t *params, const char *name, int64_t def, int64_t min,
                   int64_t *value, apr_pool_t *p, const char **errmsg)
{
    const char *v = params ? apr_table_get(params, name) : NULL;
    if (!v) {
        *value = def;
        return 0;
    }
    const char *c = v;
    int neg = 0;
    if (*c == '-') {
        neg = 1;
        c++;
    }
    int64_t n = 0;
    int digits = 0;
    for (; *c; c++, digits++) {
        if (!isdigit((unsigned char)*c) || digits >= 12) {
            digits = -1;
            break;
        }
        n = n * 10 + (*c - '0');
    }
    if (digits <= 0) {
        *errmsg = apr_psprintf(p, "Query parameter '%s' must be an integer, got '%s'.", name, v);
        return -1;
    }
    if (neg)
        n = -n;
    if (n < min || n > LIVY_PARAM_MAX) {
        *errmsg = apr_psprintf(p, "Query parameter '%s' must be between %" APR_INT64_T_FMT
                               " and %ld, got '%s'.", name, (apr_int64_t)min, LIVY_PARAM_MAX, v);
        return -1;
    }
    *value = n;
    return 0;
}

int livy_parse_duration_ms(const char *text, int64_t *ms)
{
    const char *c = text;
    while (*c == ' ')
        c++;
    if (!isdigit((unsigned char)*c))
        return -1;
    int64_t n = 0;
    for (; isdigit((unsigned char)*c); c++) {
        if (n > 1000000000000LL)
            return -1;
        n = n * 10 + (*c - '0');
    }
    while (*c == ' ')
        c++;
    size_t ulen = strlen(c);
    while (ulen > 0 && c[ulen - 1] == ' ')
        ulen--;
    struct { const char *unit; int64_t factor; } units[] = {
        {"", 1000}, {"ms", 1}, {"milli", 1}, {"millis", 1}, {"millisecond", 1},
        {"milliseconds", 1}, {"s", 1000}, {"sec", 1000}, {"second", 1000}, {"seconds", 1000},
        {"m", 60000}, {"min", 60000}, {"minute", 60000}, {"minutes", 60000},
        {"h", 3600000}, {"hour", 3600000}, {"hours", 3600000},
        {"d", 86400000}, {"day", 86400000}, {"days", 86400000},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strlen(units[i].unit) == ulen && !strncasecmp(c, units[i].unit, ulen)) {
            if (n > INT64_MAX / units[i].factor)
                return -1;
            *ms = n * units[i].factor;
            return 0;
        }
    }
    return -1;
}

int livy_utf8_valid(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        int n;
        unsigned int cp;
        if (*u < 0x80) {
            u++;
            continue;
        } else if ((*u & 0xE0) == 0xC0) {
            n = 1;
            cp = *u & 0x1F;
        } else if ((*u & 0xF0) == 0xE0) {
            n = 2;
            cp = *u & 0x0F;
        } else if ((*u & 0xF8) == 0xF0) {
            n = 3;
            cp = *u & 0x07;
        } else {
            return 0;
        }
        for (int i = 1; i <= n; i++) {
            if ((u[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (u[i] & 0x3F);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)
            || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return 0;
        u += n + 1;
    }
    return 1;
}
