/* sim_buf: growable byte buffer for building JSON and HTTP text on the simulator's hot path
 * (cheaper than a jansson tree for the fixed-shape order responses and stream events).
 * Allocation failure is sticky: once an append fails, sbuf_failed() is true and the content must
 * not be used. */
#ifndef CT_SIM_BUF_H
#define CT_SIM_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decimal.h"

struct sbuf {
    char *p;
    size_t len, cap;
    bool failed;
};

#define SBUF_INIT {NULL, 0, 0, false}

void sbuf_free(struct sbuf *b);
void sbuf_reset(struct sbuf *b); /* len = 0, keeps memory, clears failure */
bool sbuf_failed(const struct sbuf *b);
int sbuf_reserve(struct sbuf *b, size_t extra); /* 0 or -ENOMEM */
/* Hands the (NUL-terminated) content to the caller and leaves b empty. NULL if failed. */
char *sbuf_steal(struct sbuf *b, size_t *len);

void sbuf_add(struct sbuf *b, const void *s, size_t n);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_addc(struct sbuf *b, char c);
void sbuf_addf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_add_i64(struct sbuf *b, int64_t v);
/* JSON string literal with quotes; escapes control characters, '"' and '\\'. NULL -> null. */
void sbuf_add_jstr(struct sbuf *b, const char *s);
void sbuf_add_jstrn(struct sbuf *b, const char *s, size_t n);
/* Canonical decimal as a JSON string: "0.01". */
void sbuf_add_jdec(struct sbuf *b, dec_t d);
/* Object member helpers: append `"key":` (the caller handles commas). */
void sbuf_add_key(struct sbuf *b, const char *key);

#endif
