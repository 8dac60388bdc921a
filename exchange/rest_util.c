#include "rest_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void ru_sanitize(char *s) {
    for (unsigned char *c = (unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c > 0x7e) *c = '?';
}

void ru_copy_text(char *dst, size_t cap, const char *src, size_t len) {
    if (!cap) return;
    if (len >= cap) len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    ru_sanitize(dst);
}

void ru_seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    ru_sanitize(err);
}

const char *ru_why(int r) {
    switch (r) {
    case -ENOENT: return "missing";
    case -ERANGE: return "out of range";
    default: return "wrong type";
    }
}

const char *ru_why_dec(int r) {
    switch (r) {
    case -ENOENT: return "missing";
    case -ERANGE: return "out of range";
    default: return "not a decimal";
    }
}

int64_t ru_wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

json_t *ru_load_json(const char *body, size_t len, const char *what, char *err, size_t errlen) {
    json_error_t je;
    if (!body) body = "";
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        ru_seterr(err, errlen, "%s: invalid JSON: %s (line %d, column %d)", what, je.text, je.line,
                  je.column);
    return j;
}

static int pct_encode(char *buf, size_t cap, size_t o, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        bool plain = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
                     (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.' || *c == '~';
        size_t need = plain ? 1 : 3;
        if (o + need >= cap) return -ENOSPC;
        if (plain) {
            buf[o++] = (char)*c;
        } else {
            buf[o++] = '%';
            buf[o++] = hex[*c >> 4];
            buf[o++] = hex[*c & 15];
        }
    }
    return (int)o;
}

int ru_qs_add(char *buf, size_t cap, size_t len, const char *key, const char *value) {
    if (!buf || !key || !value || len >= cap) return -ENOSPC;
    int o = (int)len;
    if (len > 0) {
        if ((size_t)o + 1 >= cap) goto nospace;
        buf[o++] = '&';
    }
    o = pct_encode(buf, cap, (size_t)o, key);
    if (o < 0 || (size_t)o + 1 >= cap) goto nospace;
    buf[o++] = '=';
    o = pct_encode(buf, cap, (size_t)o, value);
    if (o < 0) goto nospace;
    buf[o] = '\0';
    return o;
nospace:
    buf[len] = '\0';
    return -ENOSPC;
}

void ru_http_msg(char *dst, size_t cap, const struct rest_resp *r, bool has_err, int code,
                 const char *emsg) {
    if (has_err) {
        snprintf(dst, cap, "HTTP %ld: %d %s", r->http_status, code, emsg);
    } else {
        char snip[64];
        ru_copy_text(snip, sizeof snip, r->body ? r->body : "", r->body_len);
        snprintf(dst, cap, "HTTP %ld: %s", r->http_status, snip[0] ? snip : "(empty body)");
    }
    ru_sanitize(dst);
}

int ru_time_offset(const struct rest_resp *r, int64_t send_wall_us, int64_t server_ms,
                   int64_t *offset_ms, char *err, size_t errlen) {
    int64_t now = ru_wall_us(), sent, rcvd;
    if (r->pretransfer_us > 0 && r->ttfb_us >= r->pretransfer_us && r->total_us >= r->ttfb_us) {
        rcvd = now - (r->total_us - r->ttfb_us);
        sent = rcvd - (r->ttfb_us - r->pretransfer_us);
    } else {
        sent = send_wall_us;
        rcvd = now;
    }
    int64_t rtt_ms = (rcvd - sent) / 1000;
    if (rtt_ms > RU_TIME_MAX_RTT_MS) {
        ru_seterr(err, errlen, "server time sample refused: its round trip took %" PRId64
                  " ms (at most %d ms keeps the offset's error under the exchange's window)",
                  rtt_ms, RU_TIME_MAX_RTT_MS);
        return -ETIMEDOUT;
    }
    *offset_ms = server_ms - (sent + (rcvd - sent) / 2) / 1000;
    return 0;
}

void ru_parse_failed(struct exch_status *st, int rc, const char *msg) {
    st->err = rc == -ENOMEM ? -ENOMEM : -EBADMSG;
    ru_seterr(st->error_msg, sizeof st->error_msg, "%s", msg);
}

void ru_send_failed(struct exch_status *st, int rc, const char *what) {
    memset(st, 0, sizeof *st);
    st->err = rc;
    ru_seterr(st->error_msg, sizeof st->error_msg, "%s: cannot send: %s", what, strerror(-rc));
}
