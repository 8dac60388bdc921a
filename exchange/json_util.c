#include "json_util.h"

#include <errno.h>
#include <string.h>

int ju_get_str(const json_t *obj, const char *key, const char **out) {
    json_t *v = json_object_get(obj, key);
    if (!v) return -ENOENT;
    if (!json_is_string(v)) return -EINVAL;
    *out = json_string_value(v);
    return 0;
}

int ju_get_strbuf(const json_t *obj, const char *key, char *buf, size_t n) {
    const char *s;
    int r = ju_get_str(obj, key, &s);
    if (r < 0) return r;
    size_t len = strlen(s);
    if (len >= n) return -ERANGE;
    memcpy(buf, s, len + 1);
    return 0;
}

int ju_get_i64(const json_t *obj, const char *key, int64_t *out) {
    json_t *v = json_object_get(obj, key);
    if (!v) return -ENOENT;
    if (!json_is_integer(v)) return -EINVAL;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int ju_get_bool(const json_t *obj, const char *key, bool *out) {
    json_t *v = json_object_get(obj, key);
    if (!v) return -ENOENT;
    if (!json_is_boolean(v)) return -EINVAL;
    *out = json_is_true(v);
    return 0;
}

int ju_get_dec(const json_t *obj, const char *key, dec_t *out) {
    json_t *v = json_object_get(obj, key);
    if (!v) return -ENOENT;
    if (json_is_string(v)) return dec_parse(json_string_value(v), json_string_length(v), out);
    if (json_is_integer(v)) {
        *out = dec_from_int((int64_t)json_integer_value(v));
        return 0;
    }
    return -EINVAL;
}
