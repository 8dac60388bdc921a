/* fuzz_rest_common: a struct rest_resp made from fuzz input, for the REST classifiers.
 *
 * Layout of the input after the harness's selector byte:
 *   byte 0      transport: 0..3 -> err 0 (a response), 4 -> -ETIMEDOUT, 5 -> -ECONNREFUSED,
 *               6 -> -EPIPE, 7 -> -EHOSTDOWN; bit 3 = maybe_sent
 *   bytes 1-2   HTTP status, little-endian, taken modulo 600
 *   byte 3      Retry-After: 0 = absent (-1), else n * 1000 ms
 *   rest        raw headers, "\r\n\r\n", body; without that separator everything is the body.
 * The body handed over is NUL-terminated (rest_pool's contract) and the headers are an
 * exact-size copy. */
#ifndef CT_FUZZ_REST_COMMON_H
#define CT_FUZZ_REST_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "rest_pool.h"

struct fz_resp {
    struct rest_resp r;
    char *hdr, *body;
};

static inline void fz_resp_make(struct fz_resp *f, const uint8_t *data, size_t size)
{
    struct fz_in in = {data, size};
    uint8_t t = fz_u8(&in);
    uint16_t status = fz_u16(&in);
    uint8_t ra = fz_u8(&in);
    static const int errs[] = {0, 0, 0, 0, -ETIMEDOUT, -ECONNREFUSED, -EPIPE, -EHOSTDOWN};
    memset(f, 0, sizeof *f);
    f->r.err = errs[t & 7];
    f->r.maybe_sent = (t & 8) != 0;
    f->r.error = f->r.err ? "fuzz transport error" : "";
    f->r.http_status = f->r.err && (t & 16) ? 0 : status % 600;
    f->r.retry_after_ms = ra ? (int64_t)ra * 1000 : -1;
    f->r.used_weight_1m = f->r.order_count_10s = f->r.order_count_1m = -1;
    const uint8_t *sep = NULL;
    for (size_t i = 0; i + 4 <= in.n; i++)
        if (!memcmp(in.p + i, "\r\n\r\n", 4)) {
            sep = in.p + i;
            break;
        }
    size_t hlen = sep ? (size_t)(sep - in.p) + 2 : 0;
    const uint8_t *b = sep ? sep + 4 : in.p;
    size_t blen = sep ? in.n - (size_t)(b - in.p) : in.n;
    f->hdr = fz_dup(in.p, hlen);
    f->body = fz_dupz(b, blen);
    f->r.raw_headers = hlen ? f->hdr : NULL;
    f->r.raw_headers_len = hlen;
    f->r.body = f->body;
    f->r.body_len = blen;
}

static inline void fz_resp_free(struct fz_resp *f)
{
    free(f->hdr);
    free(f->body);
}

#define FZ_TERMINATED(a) (memchr((a), '\0', sizeof(a)) != NULL)

/* An order result must carry terminated strings whatever the outcome. */
static inline void fz_check_order_result(const struct exch_order_result *o)
{
    if (!FZ_TERMINATED(o->client_id) || !FZ_TERMINATED(o->order_id) ||
        !FZ_TERMINATED(o->error_msg))
        abort();
}

#endif
