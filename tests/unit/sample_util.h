/* sample_util: helpers the exchange adapter unit tests share: the doc samples (CT_SAMPLES) read
 * into memory, and REST responses built by hand for the classification tables. Include after
 * <cmocka.h>. */
#ifndef CT_SAMPLE_UTIL_H
#define CT_SAMPLE_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest_pool.h"

/* CT_SAMPLES/name, NUL-terminated, length in *len (len may be NULL); the caller frees it. A
 * missing or unreadable sample fails the test. */
static inline char *sample_load(const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", CT_SAMPLES, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open sample %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) fail_msg("short read %s", path);
    buf[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

/* A complete HTTP response with this status and body (no headers, no Retry-After). */
static inline struct rest_resp resp(long status, const char *body) {
    struct rest_resp r;
    memset(&r, 0, sizeof r);
    r.http_status = status;
    r.body = body;
    r.body_len = strlen(body);
    r.error = "";
    r.maybe_sent = true;
    r.retry_after_ms = -1;
    r.raw_headers = "";
    return r;
}

/* A transport failure (no HTTP response): err, whether the request may have left, curl's text. */
static inline struct rest_resp transport(int err, bool maybe_sent, const char *text) {
    struct rest_resp r = resp(0, "");
    r.err = err;
    r.maybe_sent = maybe_sent;
    r.error = text;
    return r;
}

#endif
