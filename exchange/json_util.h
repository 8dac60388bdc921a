/* json_util: typed field access on jansson objects for exchange payloads. Every getter returns 0,
 * -ENOENT (missing), -EINVAL (wrong type or malformed) or -ERANGE, so a caller can say exactly which
 * field of which payload was bad. Binance sends prices and quantities as strings; numbers are
 * accepted too but only through their exact text (never through a double). */
#ifndef CT_JSON_UTIL_H
#define CT_JSON_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "decimal.h"

int ju_get_str(const json_t *obj, const char *key, const char **out);
/* Copies into buf (NUL-terminated); -ERANGE if it does not fit. */
int ju_get_strbuf(const json_t *obj, const char *key, char *buf, size_t n);
int ju_get_i64(const json_t *obj, const char *key, int64_t *out);
int ju_get_bool(const json_t *obj, const char *key, bool *out);
/* Decimal from a JSON string ("0.001") or an integer. Reals are refused (-EINVAL): their exact
 * text is lost once jansson has turned them into a double. */
int ju_get_dec(const json_t *obj, const char *key, dec_t *out);

#endif
