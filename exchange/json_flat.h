/* json_flat: one JSON object whose members are all strings, integers, true, false or null, read
 * with yajl's event parser into a fixed table, with no allocation per member. A Binance order
 * response is such an object, one per follower order: jansson builds a tree of it in 14-16 us,
 * the yajl events take 2-3 us (this machine).
 *
 * jflat_parse refuses (-ENOTSUP) whatever it does not read exactly as jansson would: nested
 * values (but see jflat_parse_nested), reals, \u escapes, \f or \v bytes (yajl takes them for
 * whitespace), bytes beyond ASCII (yajl lets overlong UTF-8 through), duplicate keys, integers
 * beyond int64, a top level that is not an object, invalid JSON, more than JF_MAX members or
 * JF_TEXT_MAX bytes of text. The caller then parses the body with jansson as before, so the
 * outcome and the error messages stay jansson's (fuzz_binance_rest and fuzz_binance_stream check
 * that both agree).
 *
 * jsrc reads a field from either: the table, or a jansson object (ju_get_* semantics, same codes:
 * 0, -ENOENT missing, -EINVAL wrong type, -ERANGE too long / out of range). */
#ifndef CT_JSON_FLAT_H
#define CT_JSON_FLAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decimal.h"

#define JF_MAX 64
#define JF_TEXT_MAX 4096

enum jf_type { JF_STRING, JF_INTEGER, JF_TRUE, JF_FALSE, JF_NULL, JF_OBJECT };

struct jf_member {
    uint16_t key, key_len; /* offsets into text; NUL-terminated there */
    uint16_t val, val_len; /* strings only */
    enum jf_type type;
    int64_t i; /* integers */
};

struct jflat {
    unsigned n;
    struct jf_member m[JF_MAX];
    const struct jflat *child; /* the members of its JF_OBJECT member (jflat_parse_nested) */
    size_t used;
    char text[JF_TEXT_MAX];
};

/* 0, or -ENOTSUP (parse it with jansson instead), or -ENOMEM. */
int jflat_parse(struct jflat *f, const char *body, size_t len);
/* The same, except that the top-level member named nest_key may be an object of the same kind
 * (flat, same limits), once: its members go to *inner, and f's member is a JF_OBJECT
 * (js_get_obj). A Binance ORDER_TRADE_UPDATE event, its order in "o". Any other nesting is
 * refused as by jflat_parse. */
int jflat_parse_nested(struct jflat *f, const char *nest_key, struct jflat *inner, const char *body,
                       size_t len);

/* A field source: exactly one of flat and obj is set. */
struct jsrc {
    const struct jflat *flat;
    const json_t *obj;
};

bool js_is_object(const struct jsrc *s);
int js_get_str(const struct jsrc *s, const char *key, const char **out);
int js_get_strbuf(const struct jsrc *s, const char *key, char *buf, size_t n);
int js_get_i64(const struct jsrc *s, const char *key, int64_t *out);
int js_get_dec(const struct jsrc *s, const char *key, dec_t *out);
int js_get_bool(const struct jsrc *s, const char *key, bool *out);
/* The object member key as a field source of its own (-ENOENT, -EINVAL when not an object). */
int js_get_obj(const struct jsrc *s, const char *key, struct jsrc *out);

#endif
