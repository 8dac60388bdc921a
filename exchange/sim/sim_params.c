#include "sim_params.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sp_init(struct sp_list *l)
{
    l->n = 0;
}

void sp_free(struct sp_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->mem[i]);
    l->n = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sp_url_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int h, l;
            if (i + 2 >= n)
                return -EINVAL;
            h = hexval(s[i + 1]);
            l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -EINVAL;
            c = (char)(h << 4 | l);
            i += 2;
        }
        if (c == '\0')
            return -EINVAL; /* values are used as C strings: refuse what would truncate them */
        out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}

static int add_one(struct sp_list *l, const char *seg, size_t len)
{
    const char *eq = memchr(seg, '=', len);
    size_t klen = eq ? (size_t)(eq - seg) : len;
    size_t vlen = eq ? len - klen - 1 : 0;
    if (l->n >= SP_MAX_PARAMS)
        return -E2BIG;
    char *m = malloc(klen + vlen + 2);
    if (!m)
        return -ENOMEM;
    int kn = sp_url_decode(seg, klen, m);
    if (kn < 0)
        goto bad;
    char *v = m + kn + 1;
    int vn = eq ? sp_url_decode(eq + 1, vlen, v) : 0;
    if (vn < 0)
        goto bad;
    if (!eq)
        v[0] = '\0';
    l->mem[l->n] = m;
    l->v[l->n] = (struct sp_param){m, v, (size_t)kn, (size_t)vn};
    l->n++;
    return 0;
bad:
    free(m);
    return -EINVAL;
}

int sp_parse(struct sp_list *l, const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '&')
            continue;
        if (i > start) {
            int rc = add_one(l, s + start, i - start);
            if (rc < 0)
                return rc;
        }
        start = i + 1;
    }
    return 0;
}

const char *sp_get(const struct sp_list *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].key, key) == 0)
            return l->v[i].val;
    return NULL;
}

/* Is the raw segment s[0..n) a parameter named "signature"? */
static bool is_sig_seg(const char *s, size_t n)
{
    static const char name[] = "signature";
    const size_t nl = sizeof(name) - 1;
    return n >= nl && memcmp(s, name, nl) == 0 && (n == nl || s[nl] == '=');
}

/* Any signature segment in s[0..n) before offset `limit`? */
static bool sig_before(const char *s, size_t n, size_t limit)
{
    size_t start = 0;
    for (size_t i = 0; i <= n && start < limit; i++) {
        if (i < n && s[i] != '&')
            continue;
        if (i > start && start < limit && is_sig_seg(s + start, i - start))
            return true;
        start = i + 1;
    }
    return false;
}

int sp_split_signature(const char *query, size_t q_len, const char *body, size_t b_len,
                       struct sp_signed *out)
{
    /* The last parameter lives in the body when the body has any bytes, else in the query. */
    const char *s = b_len ? body : query;
    size_t n = b_len ? b_len : q_len;
    size_t end = n;

    while (end > 0 && s[end - 1] == '&') /* tolerate a trailing '&' */
        end--;
    size_t seg = end;
    while (seg > 0 && s[seg - 1] != '&')
        seg--;
    if (!is_sig_seg(s + seg, end - seg)) {
        bool anywhere = sig_before(query, q_len, q_len) || sig_before(body, b_len, b_len);
        return anywhere ? -EINVAL : -ENOENT;
    }
    /* A second signature earlier on is just as ambiguous as one in the middle. */
    if (sig_before(s, n, seg) || (b_len && sig_before(query, q_len, q_len)))
        return -EINVAL;
    size_t nl = sizeof("signature") - 1;
    out->sig = s + seg + nl + (end - seg > nl ? 1 : 0);
    out->sig_len = end - seg > nl ? end - seg - nl - 1 : 0;
    if (out->sig_len == 0)
        return -EINVAL;
    size_t keep = seg > 0 ? seg - 1 : 0; /* drop the '&' before "signature=" */
    if (b_len) {
        out->q = query;
        out->q_len = q_len;
        out->b = body;
        out->b_len = keep;
    } else {
        out->q = query;
        out->q_len = keep;
        out->b = body;
        out->b_len = 0;
    }
    return 0;
}
