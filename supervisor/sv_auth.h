/* sv_auth: the per-session secret of a REPL channel and the proofs of its handshake
 * (docs/repl-protocol.md, "Authentication"). */
#ifndef SV_AUTH_H
#define SV_AUTH_H

#include <apr_pools.h>

#define SV_AUTH_KEY_BYTES 32
#define SV_AUTH_NONCE_BYTES 16
#define SV_AUTH_PROTOCOL 2

/* Fills key with fresh bytes from the kernel's CSPRNG. 0 or -1. */
int sv_auth_random(unsigned char *buf, size_t n);

/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void sv_auth_hex(const unsigned char *bytes, size_t n, char *out);

/* Writes key as hex to path, mode 0600 (a new file: an existing one is replaced). 0 or -1. */
int sv_auth_write_key(const char *path, const unsigned char key[SV_AUTH_KEY_BYTES],
                      apr_pool_t *p, const char **errmsg);

/* Reads a key written by sv_auth_write_key. 0 or -1. */
int sv_auth_read_key(const char *path, unsigned char key[SV_AUTH_KEY_BYTES]);

/* The proof one side gives: hex HMAC-SHA256(key, "livy-repl-auth 2 ROLE SESSION NS NC"), where
 * role is "supervisor" or "repl", NS the REPL's nonce and NC the supervisor's (both hex). */
void sv_auth_proof(const unsigned char key[SV_AUTH_KEY_BYTES], const char *role,
                   const char *session_id, const char *repl_nonce, const char *sv_nonce,
                   char out[2 * 32 + 1]);

/* Constant-time comparison of a received proof with the expected one. */
int sv_auth_proof_matches(const char *expected, const char *received);

#endif
