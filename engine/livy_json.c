/* livy_json: jansson values owned by APR pools, and the small helpers the views share. */
#include "livy_json.h"
#include "livy_params.h"

#include <apr_strings.h>
#include <string.h>

static apr_status_t json_release(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

json_t *livy_json_own(apr_pool_t *p, json_t *j)
{
    if (j)
        apr_pool_cleanup_register(p, j, json_release, apr_pool_cleanup_null);
    return j;
}

char *livy_json_dump(apr_pool_t *p, const json_t *j, size_t *len)
{
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *buf = apr_palloc(p, n + 1);
    json_dumpb(j, buf, n, JSON_COMPACT | JSON_PRESERVE_ORDER);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* Copies s with every byte that is not part of well-formed UTF-8 replaced by U+FFFD, so that
 * messages echoing client input always serialise. */
static const char *utf8_sanitize(apr_pool_t *p, const char *s)
{
    if (livy_utf8_valid(s))
        return s;
    size_t n = strlen(s);
    char *out = apr_palloc(p, n * 3 + 1), *o = out;
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        size_t len = *u < 0x80 ? 1 : (*u & 0xE0) == 0xC0 ? 2 : (*u & 0xF0) == 0xE0 ? 3
                   : (*u & 0xF8) == 0xF0 ? 4 : 0;
        char one[5] = {0};
        int ok = len > 0;
        for (size_t i = 0; ok && i < len; i++) {
            if (!u[i] || (i > 0 && (u[i] & 0xC0) != 0x80))
                ok = 0;
            else
                one[i] = (char)u[i];
        }
        if (ok && livy_utf8_valid(one)) {
            memcpy(o, one, len);
            o += len;
            u += len;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            u += 1;
        }
    }
    *o = '\0';
    return out;
}

char *livy_json_msg(apr_pool_t *p, const char *msg, size_t *len)
{
    json_t *o = livy_json_own(p, json_object());
    json_object_set_new(o, "msg", json_string(utf8_sanitize(p, msg)));
    return livy_json_dump(p, o, len);
}

json_t *livy_json_string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *livy_json_parse_stored(const char *text, json_t *fallback)
{
    if (!text) {
        return fallback;
    }
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!j)
        return fallback;
    json_decref(fallback);
    return j;
}

/* ---- JSON text ---- */

void livy_text_init(livy_text_t *t, apr_pool_t *p, size_t cap)
{
    t->p = p;
    t->cap = cap < 64 ? 64 : cap;
    t->buf = apr_palloc(p, t->cap);
    t->len = 0;
    t->buf[0] = '\0';
}

/* Room for n more bytes and the terminating NUL. */
static char *text_room(livy_text_t *t, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap * 2;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *buf = apr_palloc(t->p, cap);
        memcpy(buf, t->buf, t->len + 1);
        t->buf = buf;
        t->cap = cap;
    }
    return t->buf + t->len;
}

void livy_text_raw(livy_text_t *t, const char *s, size_t n)
{
    char *o = text_room(t, n);
    memcpy(o, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

void livy_text_string(livy_text_t *t, const char *s)
{
    if (!s) {
        livy_text_lit(t, "null");
        return;
    }
    size_t n = 2; /* the quotes, then each byte and what its escape adds */
    for (const unsigned char *u = (const unsigned char *)s; *u; u++)
        n += *u >= 0x20 && *u != '"' && *u != '\\' ? 1
           : strchr("\"\\\b\f\n\r\t", *u) ? 2 : 6;
    char *o = text_room(t, n), *start = o;
    static const char hex[] = "0123456789ABCDEF";
    *o++ = '"';
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
        unsigned char c = *u;
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 0xF];
        }
    }
    *o++ = '"';
    t->len += (size_t)(o - start);
    t->buf[t->len] = '\0';
}

void livy_text_integer(livy_text_t *t, const char *digits)
{
    if (!digits || !*digits)
        livy_text_lit(t, "0");
    else
        livy_text_raw(t, digits, strlen(digits));
}

void livy_text_real(livy_text_t *t, double v)
{
    char buf[64];
    json_t *r = json_real(v);
    size_t n = r ? json_dumpb(r, buf, sizeof buf, JSON_ENCODE_ANY | JSON_COMPACT) : 0;
    json_decref(r);
    if (n == 0 || n > sizeof buf)
        livy_text_lit(t, "null");
    else
        livy_text_raw(t, buf, n);
}

void livy_text_stored(livy_text_t *t, const char *json, const char *fallback)
{
    if (!json) {
        livy_text_raw(t, fallback, strlen(fallback));
        return;
    }
    size_t n = strlen(json);
    char *o = text_room(t, n), *start = o;
    int in_string = 0;
    for (const char *s = json; *s; s++) {
        char c = *s;
        if (in_string) {
            *o++ = c;
            if (c == '"') {
                in_string = 0;
            } else if (c == '\\' && s[1]) {
                c = *++s;
                *o++ = c;
                if (c == 'u')
                    for (int i = 0; i < 4 && s[1]; i++) {
                        c = *++s;
                        *o++ = c >= 'a' && c <= 'f' ? (char)(c - 'a' + 'A') : c;
                    }
            }
        } else if (c == '"') {
            in_string = 1;
            *o++ = c;
        } else if (c != ' ' && c != '\n' && c != '\t' && c != '\r') {
            *o++ = c;
        }
    }
    t->len += (size_t)(o - start);
    t->buf[t->len] = '\0';
}
