/* sim_params: request parameters of the simulated REST APIs. Parses query strings and
 * application/x-www-form-urlencoded bodies ('&'-separated, '+' is a space, %XX escapes) and
 * splits a Binance signed request into the exact signed bytes and the signature. Pure: no I/O. */
#ifndef CT_SIM_PARAMS_H
#define CT_SIM_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#define SP_MAX_PARAMS 64

struct sp_param {
    char *key; /* decoded, NUL-terminated */
    char *val; /* decoded, NUL-terminated ("" for "key" or "key=") */
    size_t key_len, val_len;
};

struct sp_list {
    struct sp_param v[SP_MAX_PARAMS];
    size_t n;
    char *mem[SP_MAX_PARAMS]; /* one allocation per parameter (key and value) */
};

void sp_init(struct sp_list *l);
void sp_free(struct sp_list *l);
/* Appends the parameters of s[0..len) to l. Empty segments are skipped. Returns 0, -EINVAL (bad
 * %-escape or an embedded NUL after decoding), -E2BIG (more than SP_MAX_PARAMS in total) or
 * -ENOMEM. On error l keeps what was parsed before. */
int sp_parse(struct sp_list *l, const char *s, size_t len);
/* First value for key (so with the query parsed before the body, the query wins, as on Binance),
 * or NULL. */
const char *sp_get(const struct sp_list *l, const char *key);
/* Decodes s[0..n) into out (at least n+1 bytes); returns the decoded length or -EINVAL. */
int sp_url_decode(const char *s, size_t n, char *out);

/* Binance signs totalParams = query string + body, no separator, exactly as sent; `signature`
 * must be the last parameter of that concatenation. On success *payload_q..*payload_b are the
 * signed parts (query and body without the trailing "signature=..." parameter and its '&') and
 * sig the raw signature value. Returns 0, -ENOENT (no signature parameter) or -EINVAL (a
 * signature parameter that is not the last one, or an empty one). */
struct sp_signed {
    const char *q;
    size_t q_len;
    const char *b;
    size_t b_len;
    const char *sig;
    size_t sig_len;
};
int sp_split_signature(const char *query, size_t q_len, const char *body, size_t b_len,
                       struct sp_signed *out);

#endif
