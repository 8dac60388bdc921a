/* config_schema: see config_schema.h.
 *
 * Nothing stops at the first error: each one is recorded with its file and position and the walk
 * goes on; the errors are sorted by file and position before they are handed back. */
#include "config_schema.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "secret_file.h"

#define UNIX_PATH_MAX_LEN 107 /* sizeof(sun_path) - 1 */

/* ------------------------------------------------------------------------------------------------
 * Error collection */

struct cs_err {
    size_t file;   /* index of the file: sorts errors by file, then position */
    size_t line, col, seq;
    char *msg;
};

static void err_vadd(struct cs_ctx *cx, size_t fidx, const char *file, yaml_mark_t m, bool has_mark,
                     const char *path, const char *fmt, va_list ap)
{
    char body[512];
    char *msg = NULL;

    cx->n_total++;
    if (cx->n_errs >= CFG_ERRORS_MAX) return;
    vsnprintf(body, sizeof body, fmt, ap);
    int n;
    if (has_mark)
        n = asprintf(&msg, "%s:%zu:%zu: %s%s%s", file, m.line + 1, m.column + 1, path ? path : "",
                     path && *path ? ": " : "", body);
    else
        n = asprintf(&msg, "%s: %s%s%s", file, path ? path : "", path && *path ? ": " : "", body);
    if (n < 0) {
        cx->oom = true;
        return;
    }
    if (cx->n_errs == cx->cap_errs) {
        size_t cap = cx->cap_errs ? cx->cap_errs * 2 : 16;
        struct cs_err *e = realloc(cx->errs, cap * sizeof *e);
        if (!e) {
            free(msg);
            cx->oom = true;
            return;
        }
        cx->errs = e;
        cx->cap_errs = cap;
    }
    /* Errors found inside a secret file sort where its secret_file key is. */
    yaml_mark_t sm = cx->in_secret ? cx->anchor : m;
    cx->errs[cx->n_errs++] = (struct cs_err){ fidx, has_mark ? sm.line + 1 : 0,
                                              has_mark ? sm.column + 1 : 0, cx->n_total, msg };
}

void cs_err_at(struct cs_ctx *cx, yaml_mark_t m, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vadd(cx, cx->fidx, cx->file, m, true, path, fmt, ap);
    va_end(ap);
}

void cs_err_in(struct cs_ctx *cx, size_t fidx, const char *file, yaml_mark_t m, const char *path,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vadd(cx, fidx, file, m, true, path, fmt, ap);
    va_end(ap);
}

void cs_err_file(struct cs_ctx *cx, const char *fmt, ...)
{
    va_list ap;
    yaml_mark_t none = { 0, 0, 0 };
    va_start(ap, fmt);
    err_vadd(cx, cx->fidx, cx->file, none, false, NULL, fmt, ap);
    va_end(ap);
}

static int err_cmp(const void *a, const void *b)
{
    const struct cs_err *x = a, *y = b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    if (x->col != y->col) return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

size_t cs_errors_finish(struct cs_ctx *cx, struct cfg_errors *errs)
{
    size_t total = cx->n_total;

    if (cx->n_errs) qsort(cx->errs, cx->n_errs, sizeof *cx->errs, err_cmp);
    for (size_t i = 0; i < cx->n_errs; i++) {
        if (errs && errs->n < CFG_ERRORS_MAX)
            errs->msg[errs->n++] = cx->errs[i].msg;
        else
            free(cx->errs[i].msg);
    }
    if (errs) errs->dropped = total - errs->n;
    free(cx->errs);
    cx->errs = NULL;
    cx->n_errs = cx->cap_errs = 0;
    return total;
}

/* ------------------------------------------------------------------------------------------------
 * Small helpers */

char *cs_path_join(char *buf, size_t n, const char *prefix, const char *key)
{
    if (prefix && *prefix)
        snprintf(buf, n, "%s.%s", prefix, key);
    else
        snprintf(buf, n, "%s", key);
    return buf;
}

const char *cs_node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a sequence";
    default: return "a scalar";
    }
}

bool cs_scalar_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *s = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || !strcmp(s, "~") || !strcmp(s, "null") ||
           !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* The value quoted back in a message: escaped, shortened. */
const char *cs_show(const char *s, char *buf, size_t n)
{
    size_t o = 0, i = 0;
    buf[o++] = '"';
    for (; s[i] && o + 8 < n && i < CS_SHOW_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(buf + o, n - o, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    if (s[i]) o += (size_t)snprintf(buf + o, n - o, "...");
    snprintf(buf + o, n - o, "\"");
    return buf;
}

void *cs_grow(struct cs_ctx *cx, void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return arr;
    size_t c = *cap ? *cap * 2 : 8;
    void *p = realloc(arr, c * elem);
    if (!p) {
        cx->oom = true;
        return NULL;
    }
    memset((char *)p + *cap * elem, 0, (c - *cap) * elem);
    *cap = c;
    return p;
}

/* ------------------------------------------------------------------------------------------------
 * Key tables */

static const char *key_what(const struct cs_key *k, char *buf, size_t n)
{
    if (k->what) return k->what;
    switch (k->type) {
    case CS_INT:
        snprintf(buf, n, "an integer in %lld..%lld", k->min, k->max);
        return buf;
    case CS_BOOL: return "true or false";
    case CS_DEC: return "a decimal number";
    case CS_ADDR: return (k->flags & CS_UNIX) ? "unix:/path or host:port" : "host:port";
    case CS_LIST: return "a list";
    case CS_ENUM: { /* "a, b or c" */
        size_t o = 0, total = 0, i = 0;
        for (const struct cs_choice *c = k->choices; c->name; c++) total++;
        buf[0] = '\0';
        for (const struct cs_choice *c = k->choices; c->name && o < n; c++) {
            const char *sep = i == 0 ? "" : i + 1 == total ? " or " : ", ";
            o += (size_t)snprintf(buf + o, n - o, "%s%s", sep, c->name);
            i++;
        }
        return buf;
    }
    default: return "a string";
    }
}

static int parse_int(const char *s, long long *out)
{
    const char *p = s;
    if (*p == '-' || *p == '+') p++;
    if (!isdigit((unsigned char)*p)) return -EINVAL;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q)) return -EINVAL;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end) return -ERANGE;
    *out = v;
    return 0;
}

/* "host:port", "[v6]:port", or "unix:/abs/path" when allowed. */
static int addr_parse(const char *s, bool unix_ok, struct cfg_addr *a, char *why, size_t n)
{
    const char *host, *hend, *port;

    memset(a, 0, sizeof *a);
    if (!strncmp(s, "unix:", 5)) {
        const char *p = s + 5;
        if (!unix_ok) {
            snprintf(why, n, "a unix socket is not supported here");
            return -EINVAL;
        }
        if (p[0] != '/' || strlen(p) > UNIX_PATH_MAX_LEN) {
            snprintf(why, n, "the socket path must be absolute and at most %d bytes",
                     UNIX_PATH_MAX_LEN);
            return -EINVAL;
        }
        a->unix_path = strdup(p);
        return a->unix_path ? 0 : -ENOMEM;
    }
    if (s[0] == '[') {
        host = s + 1;
        hend = strchr(host, ']');
        if (!hend || hend[1] != ':') return -EINVAL;
        for (const char *c = host; c < hend; c++)
            if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.') return -EINVAL;
        port = hend + 2;
    } else {
        host = s;
        hend = strrchr(s, ':');
        if (!hend) return -EINVAL;
        for (const char *c = host; c < hend; c++) {
            if (*c == ':') {
                snprintf(why, n, "write an IPv6 address as [address]:port");
                return -EINVAL;
            }
            if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-' && *c != '_') return -EINVAL;
        }
        port = hend + 1;
    }
    long long p;
    if (hend == host || parse_int(port, &p) || port[0] == '+' || port[0] == '-' || p < 1 ||
        p > 65535)
        return -EINVAL;
    a->host = strndup(host, (size_t)(hend - host));
    if (!a->host) return -ENOMEM;
    a->port = (uint16_t)p;
    return 0;
}

void cs_addr_free(struct cfg_addr *a)
{
    free(a->text);
    free(a->host);
    free(a->unix_path);
    memset(a, 0, sizeof *a);
}

void cs_list_free(struct cfg_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* Convert text into the field. 0, or -1 with why possibly explained (-ENOMEM sets cx->oom). */
static int key_convert(struct cs_ctx *cx, const struct cs_key *k, const char *s, void *target,
                       char *why, size_t n)
{
    void *f = (char *)target + k->off;

    switch (k->type) {
    case CS_STR: {
        if (!*s) return -1;
        char *d = strdup(s);
        if (!d) goto oom;
        char **p = f;
        if (k->flags & CS_SECRET)
            secret_free_str(*p);
        else
            free(*p);
        *p = d;
        break;
    }
    case CS_INT: {
        long long v;
        if (parse_int(s, &v) || v < k->min || v > k->max) return -1;
        *(int *)f = (int)v;
        break;
    }
    case CS_BOOL:
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
            *(bool *)f = true;
        else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
            *(bool *)f = false;
        else
            return -1;
        break;
    case CS_ENUM:
        for (const struct cs_choice *c = k->choices; c->name; c++) {
            if (strcmp(c->name, s)) continue;
            *(int *)f = c->value;
            goto checked;
        }
        return -1;
    case CS_DEC: {
        /* From the scalar's text, never through a double: 0.013 stays exactly 0.013. */
        int rc = dec_parse(s, strlen(s), (dec_t *)f);
        if (rc == -ERANGE) snprintf(why, n, "too many digits for an exact decimal");
        if (rc) return -1;
        break;
    }
    case CS_ADDR: {
        struct cfg_addr a;
        int rc = addr_parse(s, (k->flags & CS_UNIX) != 0, &a, why, n);
        if (rc == -ENOMEM) goto oom;
        if (rc) return -1;
        a.text = strdup(s);
        if (!a.text) {
            cs_addr_free(&a);
            goto oom;
        }
        cs_addr_free(f);
        *(struct cfg_addr *)f = a;
        break;
    }
    case CS_LIST:
        return -1; /* never from text: a list has no default but the empty one */
    }
checked:
    if (k->check && !k->check(f, why, n)) {
        /* Drop a rejected string so later checks do not trip over it a second time. */
        if (k->type == CS_STR) {
            char **p = f;
            if (k->flags & CS_SECRET)
                secret_free_str(*p);
            else
                free(*p);
            *p = NULL;
        }
        return -1;
    }
    return 0;
oom:
    cx->oom = true;
    return -1;
}

/* The text of a scalar fit for conversion, or NULL with *problem saying what the node is instead
 * ("a mapping", "nothing", ...). */
static const char *scalar_text(const yaml_node_t *v, const char **problem)
{
    if (v->type != YAML_SCALAR_NODE) {
        *problem = cs_node_kind(v);
        return NULL;
    }
    if (cs_scalar_is_null(v)) {
        *problem = "nothing";
        return NULL;
    }
    const char *s = (const char *)v->data.scalar.value;
    if (strlen(s) != v->data.scalar.length) {
        *problem = "a value with a NUL character";
        return NULL;
    }
    return s;
}

static void value_error(struct cs_ctx *cx, const struct cs_key *k, yaml_mark_t m, const char *kpath,
                        const char *what, const char *s, const char *why)
{
    char sbuf[CS_SHOW_BUF];

    if (k->flags & CS_NOECHO)
        cs_err_at(cx, m, kpath, "expected %s%s%s", what, *why ? ": " : "", why);
    else
        cs_err_at(cx, m, kpath, "expected %s, got %s%s%s", what, cs_show(s, sbuf, sizeof sbuf),
                  *why ? ": " : "", why);
}

static int item_cmp(const void *a, const void *b)
{
    const struct cs_item *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* A list: a sequence of scalars, each converted like a string and checked, none twice. Items that
 * fail are reported at their own position (key[i]) and left out. */
static bool list_set(struct cs_ctx *cx, const struct cs_key *k, const yaml_node_t *v,
                     const char *kpath, void *target)
{
    struct cfg_list *l = (struct cfg_list *)((char *)target + k->off);
    const char *what = k->what ? k->what : "a list";
    const char *item_what = k->item_what ? k->item_what : "a string";
    char ipath[CS_PATH_MAX + 96], why[256], sbuf[CS_SHOW_BUF];
    const char *problem = NULL;
    struct cs_item *seen = NULL;
    bool ok = true;

    if (v->type != YAML_SEQUENCE_NODE) {
        const char *s = scalar_text(v, &problem);
        if (s)
            cs_err_at(cx, v->start_mark, kpath, "expected %s, got %s", what,
                      cs_show(s, sbuf, sizeof sbuf));
        else if (cs_scalar_is_null(v))
            cs_err_at(cx, v->start_mark, kpath, "expected %s, got nothing (write [] for none)",
                      what);
        else
            cs_err_at(cx, v->start_mark, kpath, "expected %s, got %s", what, problem);
        return false;
    }
    cs_list_free(l);
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0) return true;
    l->items = calloc(n, sizeof *l->items);
    seen = calloc(n, sizeof *seen);
    if (!l->items || !seen) goto oom;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *it = yaml_document_get_node(cx->doc, v->data.sequence.items.start[i]);
        if (!it) continue;
        snprintf(ipath, sizeof ipath, "%s[%zu]", kpath, i);
        const char *s = scalar_text(it, &problem);
        if (!s) {
            cs_err_at(cx, it->start_mark, ipath, "expected %s, got %s", item_what, problem);
            ok = false;
            continue;
        }
        char *d = strdup(s);
        if (!d) goto oom;
        why[0] = '\0';
        if (!*d || (k->check && !k->check(&d, why, sizeof why))) {
            value_error(cx, k, it->start_mark, ipath, item_what, s, why);
            free(d);
            ok = false;
            continue;
        }
        seen[l->n] = (struct cs_item){ d, i, it->start_mark };
        l->items[l->n++] = d;
    }
    /* Duplicates: sorted by text, then by position, so the first of each run is the original. */
    qsort(seen, l->n, sizeof *seen, item_cmp);
    for (size_t j = 1, first = 0; j < l->n; j++) {
        if (strcmp(seen[first].s, seen[j].s)) {
            first = j;
            continue;
        }
        snprintf(ipath, sizeof ipath, "%s[%zu]", kpath, seen[j].idx);
        cs_err_at(cx, seen[j].mark, ipath, "duplicate %s (already listed as %s[%zu])",
                  cs_show(seen[j].s, sbuf, sizeof sbuf), k->name, seen[first].idx);
        ok = false;
    }
    free(seen);
    return ok;
oom:
    free(seen);
    cx->oom = true;
    return false;
}

struct cs_item *cs_seq_sorted(struct cs_ctx *cx, const yaml_node_t *seq, size_t *n)
{
    struct cs_item *v = NULL;
    size_t k = 0;
    const char *problem;

    *n = 0;
    if (seq->type != YAML_SEQUENCE_NODE) return NULL;
    size_t len = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (len == 0) return NULL;
    if (!(v = calloc(len, sizeof *v))) {
        cx->oom = true;
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        const yaml_node_t *it = yaml_document_get_node(cx->doc, seq->data.sequence.items.start[i]);
        const char *s = it ? scalar_text(it, &problem) : NULL;
        if (s) v[k++] = (struct cs_item){ s, i, it->start_mark };
    }
    qsort(v, k, sizeof *v, item_cmp);
    *n = k;
    return v;
}

/* One key's value: type of node, null, NUL bytes, conversion; errors at the value. */
static bool key_set(struct cs_ctx *cx, const struct cs_key *k, const yaml_node_t *v,
                    const char *kpath, void *target)
{
    char wbuf[160], why[256] = "";
    const char *what = key_what(k, wbuf, sizeof wbuf);
    const char *problem = NULL;

    if (k->type == CS_LIST) return list_set(cx, k, v, kpath, target);
    const char *s = scalar_text(v, &problem);
    if (!s) {
        cs_err_at(cx, v->start_mark, kpath, "expected %s, got %s", what, problem);
        return false;
    }
    int rc = key_convert(cx, k, s, target, why, sizeof why);
    if (rc == 0 || cx->oom) return rc == 0;
    value_error(cx, k, v->start_mark, kpath, what, s, why);
    return false;
}

/* Edit distance, for "did you mean" on misspelt keys (short strings only). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[33];
    if (la > 32 || lb > 32) return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const char *suggest(const char *name, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t bd = 3; /* at most two edits away */
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(name, cands[i]);
        if (d < bd) {
            bd = d;
            best = cands[i];
        }
    }
    return best;
}

/* A key name fit to print in a path; anything odd is quoted and escaped. */
static const char *key_text(const yaml_node_t *kn, char *buf, size_t n)
{
    const char *s = (const char *)kn->data.scalar.value;
    bool plain = kn->data.scalar.length > 0 && strlen(s) == kn->data.scalar.length &&
                 kn->data.scalar.length <= CS_SHOW_MAX;
    for (const char *c = s; plain && *c; c++)
        if (*c <= ' ' || *c > '~' || *c == '"') plain = false;
    return plain ? s : cs_show(s, buf, n);
}

void cs_unknown_key(struct cs_ctx *cx, const yaml_node_t *kn, const char *path,
                    const char *const *cands, size_t n)
{
    char kbuf[CS_SHOW_MAX * 4 + 16], kpath[CS_PATH_MAX + CS_SHOW_MAX * 4 + 16];

    if (cx->hide_keys) {
        /* A secret file written as "KEY: SECRET" would otherwise print the key. */
        size_t o = (size_t)snprintf(kbuf, sizeof kbuf, "unknown key (not shown: secret file; allowed:");
        for (size_t i = 0; i < n && o < sizeof kbuf; i++)
            o += (size_t)snprintf(kbuf + o, sizeof kbuf - o, "%s %s", i ? "," : "", cands[i]);
        cs_err_at(cx, kn->start_mark, path, "%s)", kbuf);
        return;
    }
    const char *name = key_text(kn, kbuf, sizeof kbuf);
    const char *s = suggest(name, cands, n);
    cs_path_join(kpath, sizeof kpath, path, name);
    if (s)
        cs_err_at(cx, kn->start_mark, kpath, "unknown key (did you mean '%s'?)", s);
    else
        cs_err_at(cx, kn->start_mark, kpath, "unknown key");
}

uint32_t cs_walk_map(struct cs_ctx *cx, const yaml_node_t *map, const char *path,
                     const struct cs_key *keys, void *target, const yaml_node_t **found)
{
    uint32_t bad = 0;
    const yaml_node_t *seen[CS_KEYS_MAX] = { 0 };
    const char *names[CS_KEYS_MAX];
    char kpath[CS_PATH_MAX + 64], why[160];
    size_t nkeys = 0;

    while (keys[nkeys].name) {
        if (nkeys == CS_KEYS_MAX) abort(); /* a bigger table is a programming error */
        names[nkeys] = keys[nkeys].name;
        nkeys++;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *kn = yaml_document_get_node(cx->doc, p->key);
        const yaml_node_t *vn = yaml_document_get_node(cx->doc, p->value);
        if (!kn || !vn) continue;
        if (kn->type != YAML_SCALAR_NODE) {
            cs_err_at(cx, kn->start_mark, path, "a key must be a plain name, got %s",
                      cs_node_kind(kn));
            continue;
        }
        size_t i = 0;
        while (i < nkeys && strcmp(names[i], (const char *)kn->data.scalar.value)) i++;
        if (i == nkeys) {
            cs_unknown_key(cx, kn, path, names, nkeys);
            continue;
        }
        cs_path_join(kpath, sizeof kpath, path, names[i]);
        if (seen[i]) {
            cs_err_at(cx, kn->start_mark, kpath, "duplicate key (first at line %zu)",
                      seen[i]->start_mark.line + 1);
            continue;
        }
        seen[i] = kn;
        if (found) found[i] = vn;
        if (!key_set(cx, &keys[i], vn, kpath, target)) bad |= UINT32_C(1) << i;
    }
    for (size_t i = 0; i < nkeys; i++) {
        if (seen[i]) continue;
        if (keys[i].required) {
            cs_err_at(cx, map->start_mark, path, "missing required key '%s'", names[i]);
        } else if (keys[i].def) {
            why[0] = '\0';
            if (key_convert(cx, &keys[i], keys[i].def, target, why, sizeof why) && !cx->oom)
                cs_err_at(cx, map->start_mark, path, "internal error: bad default for '%s'",
                          names[i]);
        }
    }
    return bad;
}

const char *cs_choice_name(const struct cs_choice *choices, int value)
{
    for (const struct cs_choice *c = choices; c->name; c++)
        if (c->value == value) return c->name;
    return "?";
}

/* ------------------------------------------------------------------------------------------------
 * YAML documents and files */

static void syntax_error(struct cs_ctx *cx, const yaml_parser_t *p, const char *buf, size_t len)
{
    yaml_mark_t m = p->problem_mark;

    if (p->error == YAML_MEMORY_ERROR) {
        cx->oom = true;
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset only (bad UTF-8, control characters). */
        m = (yaml_mark_t){ 0, 0, 0 };
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (buf[i] == '\n') {
                m.line++;
                m.column = 0;
            } else {
                m.column++;
            }
        }
    }
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->context)
        cs_err_at(cx, m, "", "YAML syntax error: %s (%s at line %zu, column %zu)", problem,
                  p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    else
        cs_err_at(cx, m, "", "YAML syntax error: %s", problem);
}

void cs_parse_yaml(struct cs_ctx *cx, const char *buf, size_t len, cs_root_fn fn, void *arg,
                   bool wipe)
{
    yaml_parser_t p;
    yaml_document_t doc, doc2;
    bool have_doc = false;
    yaml_document_t *saved = cx->doc;

    if (!yaml_parser_initialize(&p)) {
        cx->oom = true;
        return;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&p, &doc)) {
        syntax_error(cx, &p, buf, len);
        goto out;
    }
    have_doc = true;
    cx->doc = &doc;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    fn(cx, root, arg);
    cx->doc = saved;
    if (root) {
        if (!yaml_parser_load(&p, &doc2)) {
            syntax_error(cx, &p, buf, len);
        } else {
            if (yaml_document_get_root_node(&doc2))
                cs_err_at(cx, doc2.start_mark, "",
                          "a second YAML document starts here; a file holds one document");
            if (wipe) secret_yaml_wipe(NULL, &doc2);
            yaml_document_delete(&doc2);
        }
    }
out:
    if (wipe) secret_yaml_wipe(&p, have_doc ? &doc : NULL);
    if (have_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&p);
}

/* A config file: regular, bounded. NULL with an error recorded. */
char *cs_read_file(struct cs_ctx *cx, const char *path, size_t *len)
{
    struct stat st;
    char *b = NULL;
    size_t got = 0;
    FILE *f = fopen(path, "rbe");

    if (!f) {
        cs_err_file(cx, "cannot open: %s", strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        cs_err_file(cx, "not a regular file");
        goto fail;
    }
    if (st.st_size > (off_t)CS_FILE_MAX) {
        cs_err_file(cx, "larger than %u bytes", CS_FILE_MAX);
        goto fail;
    }
    b = malloc((size_t)st.st_size + 1);
    if (!b) {
        cx->oom = true;
        goto fail;
    }
    got = fread(b, 1, (size_t)st.st_size, f);
    if (ferror(f)) {
        cs_err_file(cx, "cannot read: %s", strerror(errno));
        goto fail;
    }
    fclose(f);
    b[got] = '\0';
    *len = got;
    return b;
fail:
    free(b);
    fclose(f);
    return NULL;
}

