/* sv_auth: the per-session secret of a REPL channel and the proofs of its handshake
 * (docs/repl-protocol.md, "Authentication"). */
#include "sv_auth.h"

#include <apr_strings.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

int sv_auth_random(unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

void sv_auth_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + k];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else
                return -1;
        }
        out[i] = (unsigned char)v;
    }
    return 0;
}

int sv_auth_write_key(const char *path, const unsigned char key[SV_AUTH_KEY_BYTES],
                      apr_pool_t *p, const char **errmsg)
{
    char hex[2 * SV_AUTH_KEY_BYTES + 2];
    sv_auth_hex(key, SV_AUTH_KEY_BYTES, hex);
    strcat(hex, "\n");
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        *errmsg = apr_psprintf(p, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t w = write(fd, hex, strlen(hex));
    int rc = close(fd);
    OPENSSL_cleanse(hex, sizeof hex);
    if (w != (ssize_t)(2 * SV_AUTH_KEY_BYTES + 1) || rc != 0) {
        *errmsg = apr_psprintf(p, "cannot write %s", path);
        unlink(path);
        return -1;
    }
    return 0;
}

int sv_auth_read_key(const char *path, unsigned char key[SV_AUTH_KEY_BYTES])
{
    char hex[2 * SV_AUTH_KEY_BYTES + 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, hex, sizeof hex - 1);
    close(fd);
    int rc = n >= 2 * SV_AUTH_KEY_BYTES ? unhex(hex, key, SV_AUTH_KEY_BYTES) : -1;
    OPENSSL_cleanse(hex, sizeof hex);
    return rc;
}

void sv_auth_proof(const unsigned char key[SV_AUTH_KEY_BYTES], const char *role,
                   const char *session_id, const char *repl_nonce, const char *sv_nonce,
                   char out[2 * 32 + 1])
{
    char msg[512];
    int len = snprintf(msg, sizeof msg, "livy-repl-auth %d %s %s %s %s", SV_AUTH_PROTOCOL, role,
                       session_id, repl_nonce, sv_nonce);
    if (len < 0 || len >= (int)sizeof msg)
        len = 0;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), key, SV_AUTH_KEY_BYTES, (const unsigned char *)msg, (size_t)len, mac,
         &mac_len);
    sv_auth_hex(mac, 32, out);
}

int sv_auth_proof_matches(const char *expected, const char *received)
{
    if (!received || strlen(received) != strlen(expected))
        return 0;
    return CRYPTO_memcmp(expected, received, strlen(expected)) == 0;
}
