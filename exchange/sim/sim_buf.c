#include "sim_buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbuf_free(struct sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

void sbuf_reset(struct sbuf *b)
{
    b->len = 0;
    b->failed = false;
    if (b->p)
        b->p[0] = '\0';
}

bool sbuf_failed(const struct sbuf *b)
{
    return b->failed;
}

int sbuf_reserve(struct sbuf *b, size_t extra)
{
    if (b->failed)
        return -ENOMEM;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return -ENOMEM;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return -ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

char *sbuf_steal(struct sbuf *b, size_t *len)
{
    if (b->failed || sbuf_reserve(b, 0) < 0) {
        sbuf_free(b);
        return NULL;
    }
    char *p = b->p;
    p[b->len] = '\0';
    if (len)
        *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void sbuf_add(struct sbuf *b, const void *s, size_t n)
{
    if (sbuf_reserve(b, n) < 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sbuf_adds(struct sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

void sbuf_addc(struct sbuf *b, char c)
{
    sbuf_add(b, &c, 1);
}

void sbuf_addf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        sbuf_add(b, small, (size_t)n);
        return;
    }
    if (sbuf_reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sbuf_add_i64(struct sbuf *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    sbuf_add(b, tmp, (size_t)n);
}

void sbuf_add_jstrn(struct sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (sbuf_reserve(b, n + 2) < 0)
        return;
    sbuf_addc(b, '"');
    size_t run = 0; /* start of the pending run of characters that need no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* Bytes >= 0x7f are escaped as \u00XX (Latin-1) so that raw wire bytes echoed back
         * (admin request log) can never make the output invalid UTF-8/JSON. */
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            continue;
        sbuf_add(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': sbuf_add(b, "\\\"", 2); break;
        case '\\': sbuf_add(b, "\\\\", 2); break;
        case '\n': sbuf_add(b, "\\n", 2); break;
        case '\r': sbuf_add(b, "\\r", 2); break;
        case '\t': sbuf_add(b, "\\t", 2); break;
        default: {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
            sbuf_add(b, e, 6);
        }
        }
    }
    sbuf_add(b, s + run, n - run);
    sbuf_addc(b, '"');
}

void sbuf_add_jstr(struct sbuf *b, const char *s)
{
    if (!s) {
        sbuf_add(b, "null", 4);
        return;
    }
    sbuf_add_jstrn(b, s, strlen(s));
}

void sbuf_add_jdec(struct sbuf *b, dec_t d)
{
    char tmp[DEC_STR_MAX + 2];
    int n = dec_format(d, tmp + 1, DEC_STR_MAX);
    if (n < 0) {
        b->failed = true;
        return;
    }
    tmp[0] = '"';
    tmp[n + 1] = '"';
    sbuf_add(b, tmp, (size_t)n + 2);
}

void sbuf_add_key(struct sbuf *b, const char *key)
{
    sbuf_add_jstr(b, key);
    sbuf_addc(b, ':');
}
