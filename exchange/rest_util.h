/* rest_util: small helpers the REST adapters (binance_rest.c, bybit_rest.c) share: printable error
 * text, JSON loading with a clear error, field-error reasons, query-string encoding and the
 * exch_status fillers for "could not parse" and "could not send". Exchange text ends up in logs,
 * so every string these write is cut to printable ASCII. */
#ifndef CT_REST_UTIL_H
#define CT_REST_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exchange.h"
#include "rest_pool.h"

/* Replaces every byte outside printable ASCII with '?'. */
void ru_sanitize(char *s);
/* Copies at most cap-1 bytes of src[0..len) into dst, NUL-terminates and sanitizes; cap 0: nothing.
 */
void ru_copy_text(char *dst, size_t cap, const char *src, size_t len);
/* printf into err (sanitized); err NULL or errlen 0: nothing. */
void ru_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Why a json_util getter failed: "missing", "out of range", else "wrong type" / "not a decimal". */
const char *ru_why(int r);
const char *ru_why_dec(int r);
/* CLOCK_REALTIME in microseconds. */
int64_t ru_wall_us(void);
/* Parses body (NULL counts as ""), rejecting duplicate keys; NULL with "<what>: invalid JSON: ..."
 * in err on failure. The caller owns the result. */
json_t *ru_load_json(const char *body, size_t len, const char *what, char *err, size_t errlen);
/* Appends "key=value" (with '&' when len > 0), both percent-encoded (RFC 3986 unreserved kept),
 * to buf[0..len). New length, or -ENOSPC with buf cut back to len. */
int ru_qs_add(char *buf, size_t cap, size_t len, const char *key, const char *value);
/* "HTTP 503: -1001 text" when the body held an exchange error (has_err), else "HTTP 404: <first
 * bytes of the body>" or "(empty body)". */
void ru_http_msg(char *dst, size_t cap, const struct rest_resp *r, bool has_err, int code,
                 const char *emsg);
/* The offset (ms) to add to the local clock to get the server's, from a server time read in r,
 * called as the response is delivered (its timings end now). The server stamped it between our
 * request leaving (pretransfer) and the first response byte (ttfb): the midpoint of that window,
 * placed on the wall clock backwards from now, which leaves out connection setup and any wait in
 * the pool's or curl's queues before the request left. Without curl timings, the midpoint of the
 * whole call (send_wall_us = ru_wall_us() when the call was made .. now). A sample whose window
 * is longer than RU_TIME_MAX_RTT_MS is -ETIMEDOUT with a message in err (its error could put
 * signed requests outside the exchange's window: Binance refuses a timestamp 1 s ahead);
 * otherwise 0 and *offset_ms. */
#define RU_TIME_MAX_RTT_MS 1000
int ru_time_offset(const struct rest_resp *r, int64_t send_wall_us, int64_t server_ms,
                   int64_t *offset_ms, char *err, size_t errlen);
/* A reply that would not parse: err -EBADMSG (-ENOMEM kept), error_msg = msg. */
void ru_parse_failed(struct exch_status *st, int rc, const char *msg);
/* A request that could not be sent: st cleared, err = rc, "<what>: cannot send: <strerror>". */
void ru_send_failed(struct exch_status *st, int rc, const char *what);

#endif
