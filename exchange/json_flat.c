#include "json_flat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yajl_parse.h>

#include "json_util.h"

struct jf_ctx {
    struct jflat *f;        /* the table members go to: top, or inner inside the nested object */
    struct jflat *top, *inner;
    const char *nest_key;   /* the one member that may be an object (NULL: none) */
    int depth;              /* 1 inside the top-level object, 2 inside the nested one */
    bool done;              /* the top-level object has ended: anything after it is an error */
    bool have_key;          /* a key waits for its value */
    int err;                /* why a callback stopped the parse */
};

/* Appends s (len bytes) and a NUL to the table's text; its offset, or -1 when full. */
static long put_text(struct jflat *f, const unsigned char *s, size_t len) {
    if (len > UINT16_MAX || f->used + len + 1 > sizeof f->text) return -1;
    long at = (long)f->used;
    memcpy(f->text + f->used, s, len);
    f->text[f->used + len] = '\0';
    f->used += len + 1;
    return at;
}

/* The member a value belongs to: the last key of the object being read. */
static struct jf_member *value_slot(struct jf_ctx *x) {
    if (x->depth < 1 || !x->have_key) {
        x->err = -ENOTSUP; /* a top-level scalar, or a value inside a nested one */
        return NULL;
    }
    x->have_key = false;
    return &x->f->m[x->f->n - 1];
}

static int on_null(void *ud) {
    struct jf_member *m = value_slot(ud);
    if (!m) return 0;
    m->type = JF_NULL;
    return 1;
}

static int on_bool(void *ud, int b) {
    struct jf_member *m = value_slot(ud);
    if (!m) return 0;
    m->type = b ? JF_TRUE : JF_FALSE;
    return 1;
}

/* jansson's integers: strtoll, refusing what overflows; reals are left to it. */
static int on_number(void *ud, const char *s, size_t len) {
    struct jf_ctx *x = ud;
    char buf[24];
    char *end;
    struct jf_member *m = value_slot(x);
    if (!m) return 0;
    if (len >= sizeof buf || memchr(s, '.', len) || memchr(s, 'e', len) || memchr(s, 'E', len)) {
        x->err = -ENOTSUP;
        return 0;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno == ERANGE || *end) {
        x->err = -ENOTSUP;
        return 0;
    }
    m->type = JF_INTEGER;
    m->i = v;
    return 1;
}

static int on_string(void *ud, const unsigned char *s, size_t len) {
    struct jf_ctx *x = ud;
    struct jf_member *m = value_slot(x);
    long at;
    if (!m) return 0;
    if ((at = put_text(x->f, s, len)) < 0) {
        x->err = -ENOTSUP;
        return 0;
    }
    m->type = JF_STRING;
    m->val = (uint16_t)at;
    m->val_len = (uint16_t)len;
    return 1;
}

static int on_key(void *ud, const unsigned char *s, size_t len) {
    struct jf_ctx *x = ud;
    struct jflat *f = x->f;
    long at;
    if (x->depth < 1 || f->n >= JF_MAX) {
        x->err = -ENOTSUP;
        return 0;
    }
    for (unsigned i = 0; i < f->n; i++) /* jansson's JSON_REJECT_DUPLICATES: let it say so */
        if (f->m[i].key_len == len && !memcmp(f->text + f->m[i].key, s, len)) {
            x->err = -ENOTSUP;
            return 0;
        }
    if ((at = put_text(f, s, len)) < 0) {
        x->err = -ENOTSUP;
        return 0;
    }
    f->m[f->n++] = (struct jf_member){.key = (uint16_t)at, .key_len = (uint16_t)len};
    x->have_key = true;
    return 1;
}

static int on_start_map(void *ud) {
    struct jf_ctx *x = ud;
    if (x->depth == 0 && !x->done) {
        x->depth = 1;
        return 1;
    }
    /* The value of the member named nest_key, once: its members go to the inner table. */
    if (x->depth == 1 && x->have_key && x->nest_key && !x->top->child) {
        struct jf_member *m = &x->top->m[x->top->n - 1];
        if (!strcmp(x->top->text + m->key, x->nest_key)) {
            x->have_key = false;
            m->type = JF_OBJECT;
            x->top->child = x->inner;
            x->f = x->inner;
            x->depth = 2;
            return 1;
        }
    }
    x->err = -ENOTSUP;
    return 0;
}

static int on_end_map(void *ud) {
    struct jf_ctx *x = ud;
    if (x->depth == 2) {
        x->f = x->top;
        x->depth = 1;
    } else {
        x->depth = 0;
        x->done = true;
    }
    return 1;
}

static int on_array(void *ud) {
    ((struct jf_ctx *)ud)->err = -ENOTSUP;
    return 0;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null, .yajl_boolean = on_bool, .yajl_number = on_number,
    .yajl_string = on_string, .yajl_start_map = on_start_map, .yajl_map_key = on_key,
    .yajl_end_map = on_end_map, .yajl_start_array = on_array, .yajl_end_array = on_array,
};

/* yajl's end of input accepts an unfinished token after the value ("{} \"x"), which jansson
 * refuses: only whitespace may follow the object's closing brace, the first '}' outside a string
 * that closes as many braces as were opened (one nested object at most gets this far). */
static bool only_space_after_object(const char *p, const char *end) {
    bool in_str = false;
    int depth = 0;
    for (; p < end; p++) {
        if (in_str) {
            if (*p == '\\') p++;
            else if (*p == '"') in_str = false;
        } else if (*p == '"') {
            in_str = true;
        } else if (*p == '{') {
            depth++;
        } else if (*p == '}' && --depth <= 0) {
            break;
        }
    }
    if (p >= end) return false;
    for (p++; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') return false;
    return true;
}

int jflat_parse(struct jflat *f, const char *body, size_t len) {
    return jflat_parse_nested(f, NULL, NULL, body, len);
}

int jflat_parse_nested(struct jflat *f, const char *nest_key, struct jflat *inner, const char *body,
                       size_t len) {
    struct jf_ctx x = {.f = f, .top = f, .inner = inner, .nest_key = inner ? nest_key : NULL};
    f->n = 0;
    f->used = 0;
    f->child = NULL;
    if (inner) {
        inner->n = 0;
        inner->used = 0;
        inner->child = NULL;
    }
    if (!body || !len) return -ENOTSUP;
    /* Escapes jansson and yajl decode differently (lone surrogates, \u0000), bytes yajl skips
     * as whitespace where JSON has none, and any byte beyond ASCII (yajl's UTF-8 check lets
     * overlong forms through, jansson refuses them): jansson's call. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c >= 0x80 || c == '\f' || c == '\v' || (c == '\\' && i + 1 < len && body[i + 1] == 'u'))
            return -ENOTSUP;
    }
    if (!only_space_after_object(body, body + len)) return -ENOTSUP;
    yajl_handle h = yajl_alloc(&callbacks, NULL, &x);
    if (!h) return -ENOMEM;
    yajl_status st = yajl_parse(h, (const unsigned char *)body, len);
    if (st == yajl_status_ok) st = yajl_complete_parse(h);
    yajl_free(h);
    if (st != yajl_status_ok || !x.done) return x.err == -ENOMEM ? -ENOMEM : -ENOTSUP;
    return 0;
}

/* ---- field access ------------------------------------------------------------------------ */

static const struct jf_member *find(const struct jflat *f, const char *key) {
    size_t len = strlen(key);
    for (unsigned i = 0; i < f->n; i++)
        if (f->m[i].key_len == len && !memcmp(f->text + f->m[i].key, key, len)) return &f->m[i];
    return NULL;
}

bool js_is_object(const struct jsrc *s) { return s->flat || json_is_object(s->obj); }

int js_get_str(const struct jsrc *s, const char *key, const char **out) {
    if (!s->flat) return ju_get_str(s->obj, key, out);
    const struct jf_member *m = find(s->flat, key);
    if (!m) return -ENOENT;
    if (m->type != JF_STRING) return -EINVAL;
    *out = s->flat->text + m->val;
    return 0;
}

int js_get_strbuf(const struct jsrc *s, const char *key, char *buf, size_t n) {
    if (!s->flat) return ju_get_strbuf(s->obj, key, buf, n);
    const struct jf_member *m = find(s->flat, key);
    if (!m) return -ENOENT;
    if (m->type != JF_STRING) return -EINVAL;
    if (m->val_len >= n) return -ERANGE;
    memcpy(buf, s->flat->text + m->val, (size_t)m->val_len + 1);
    return 0;
}

int js_get_i64(const struct jsrc *s, const char *key, int64_t *out) {
    if (!s->flat) return ju_get_i64(s->obj, key, out);
    const struct jf_member *m = find(s->flat, key);
    if (!m) return -ENOENT;
    if (m->type != JF_INTEGER) return -EINVAL;
    *out = m->i;
    return 0;
}

int js_get_bool(const struct jsrc *s, const char *key, bool *out) {
    if (!s->flat) return ju_get_bool(s->obj, key, out);
    const struct jf_member *m = find(s->flat, key);
    if (!m) return -ENOENT;
    if (m->type != JF_TRUE && m->type != JF_FALSE) return -EINVAL;
    *out = m->type == JF_TRUE;
    return 0;
}

int js_get_obj(const struct jsrc *s, const char *key, struct jsrc *out) {
    if (!s->flat) {
        const json_t *v = json_object_get(s->obj, key);
        if (!v) return -ENOENT;
        if (!json_is_object(v)) return -EINVAL;
        *out = (struct jsrc){.obj = v};
        return 0;
    }
    const struct jf_member *m = find(s->flat, key);
    if (!m) return -ENOENT;
    if (m->type != JF_OBJECT) return -EINVAL;
    *out = (struct jsrc){.flat = s->flat->child};
    return 0;
}

int js_get_dec(const struct jsrc *s, const char *key, dec_t *out) {
    if (!s->flat) return ju_get_dec(s->obj, key, out);
    const struct jf_member *m = find(s->flat, key);
    if (!m) return -ENOENT;
    if (m->type == JF_STRING) return dec_parse(s->flat->text + m->val, m->val_len, out);
    if (m->type == JF_INTEGER) {
        *out = dec_from_int(m->i);
        return 0;
    }
    return -EINVAL;
}
