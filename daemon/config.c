/* config: see config.h.
 *
 * Shape: every section is a table of keys (name, type, required, default, bounds, offsetof into the
 * target struct, extra check), read by one generic walker over libyaml's document nodes, so a later
 * key is one more row. Nothing stops at the first error: each one is recorded with its file and
 * position and the walk goes on; cross-file checks (unique names, rule -> account links) run once
 * every file is read. Errors are sorted by file and position before they are handed back. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "secret_file.h"

#define CFG_FILE_MAX (4u << 20) /* a config file larger than this is a mistake */
#define SHOW_MAX 60             /* longest value quoted back in a message */
#define KEYS_MAX 16             /* keys per table */
#define PATH_MAX_LEN 96         /* "copy_rules[12345].multiplier" */
#define UNIX_PATH_MAX_LEN 107   /* sizeof(sun_path) - 1 */

/* ------------------------------------------------------------------------------------------------
 * Error collection */

struct err_ent {
    size_t file;   /* index in cfg->files: sorts errors by file, then position */
    size_t line, col, seq;
    char *msg;
};

struct acc_src {   /* where an account was defined, for cross-file messages */
    size_t file;
    yaml_mark_t name_mark;
    char path[PATH_MAX_LEN];
};

struct rule_src {
    size_t file;
    yaml_mark_t node_mark, id_mark, leader_mark, follower_mark;
    char *leader, *follower; /* names as written, resolved at the end */
    char path[PATH_MAX_LEN];
};

struct ld {
    struct cfg *cfg;
    size_t fidx;            /* file being read */
    const char *file;       /* name used in messages: the config file, or a secret file */
    const char *dir;        /* directory of the config file being read */
    bool hide_keys;         /* reading a secret file: never echo a key name */
    yaml_mark_t anchor;     /* while reading a secret file: where its errors sort */
    bool in_secret;
    yaml_document_t *doc;   /* document being walked */
    struct err_ent *errs;
    size_t n_errs, cap_errs, n_total;
    struct acc_src *asrc;   /* parallel to cfg->accounts */
    struct rule_src *rsrc;  /* parallel to cfg->rules */
    size_t cap_acc, cap_rules, cap_asrc, cap_rsrc;
    bool oom;
};

static void err_vadd(struct ld *ld, size_t fidx, const char *file, yaml_mark_t m, bool has_mark,
                     const char *path, const char *fmt, va_list ap)
{
    char body[512];
    char *msg = NULL;

    ld->n_total++;
    if (ld->n_errs >= CFG_ERRORS_MAX) return;
    vsnprintf(body, sizeof body, fmt, ap);
    int n;
    if (has_mark)
        n = asprintf(&msg, "%s:%zu:%zu: %s%s%s", file, m.line + 1, m.column + 1, path ? path : "",
                     path && *path ? ": " : "", body);
    else
        n = asprintf(&msg, "%s: %s%s%s", file, path ? path : "", path && *path ? ": " : "", body);
    if (n < 0) {
        ld->oom = true;
        return;
    }
    if (ld->n_errs == ld->cap_errs) {
        size_t cap = ld->cap_errs ? ld->cap_errs * 2 : 16;
        struct err_ent *e = realloc(ld->errs, cap * sizeof *e);
        if (!e) {
            free(msg);
            ld->oom = true;
            return;
        }
        ld->errs = e;
        ld->cap_errs = cap;
    }
    /* Errors found inside a secret file sort where its secret_file key is. */
    yaml_mark_t sm = ld->in_secret ? ld->anchor : m;
    ld->errs[ld->n_errs++] = (struct err_ent){ fidx, has_mark ? sm.line + 1 : 0,
                                               has_mark ? sm.column + 1 : 0, ld->n_total, msg };
}

/* file:line:col: path: message, in the file being read. */
__attribute__((format(printf, 4, 5)))
static void err_at(struct ld *ld, yaml_mark_t m, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vadd(ld, ld->fidx, ld->file, m, true, path, fmt, ap);
    va_end(ap);
}

/* Same, for a position in another file (cross-file checks run after all files are read). */
__attribute__((format(printf, 5, 6)))
static void err_in(struct ld *ld, size_t fidx, yaml_mark_t m, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vadd(ld, fidx, ld->cfg->files[fidx], m, true, path, fmt, ap);
    va_end(ap);
}

/* No position (file cannot be opened). */
__attribute__((format(printf, 2, 3)))
static void err_file(struct ld *ld, const char *fmt, ...)
{
    va_list ap;
    yaml_mark_t none = { 0, 0, 0 };
    va_start(ap, fmt);
    err_vadd(ld, ld->fidx, ld->file, none, false, NULL, fmt, ap);
    va_end(ap);
}

static int err_cmp(const void *a, const void *b)
{
    const struct err_ent *x = a, *y = b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    if (x->col != y->col) return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void cfg_errors_reset(struct cfg_errors *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->n; i++) free(e->msg[i]);
    memset(e, 0, sizeof *e);
}

/* ------------------------------------------------------------------------------------------------
 * Small helpers */

static char *path_join(char *buf, size_t n, const char *prefix, const char *key)
{
    if (prefix && *prefix)
        snprintf(buf, n, "%s.%s", prefix, key);
    else
        snprintf(buf, n, "%s", key);
    return buf;
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a sequence";
    default: return "a scalar";
    }
}

static bool scalar_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *s = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || !strcmp(s, "~") || !strcmp(s, "null") ||
           !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* The value quoted back in a message: escaped, shortened. */
static const char *show(const char *s, char *buf, size_t n)
{
    size_t o = 0, i = 0;
    buf[o++] = '"';
    for (; s[i] && o + 8 < n && i < SHOW_MAX; i++) {
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

static void *grow(struct ld *ld, void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return arr;
    size_t c = *cap ? *cap * 2 : 8;
    void *p = realloc(arr, c * elem);
    if (!p) {
        ld->oom = true;
        return NULL;
    }
    memset((char *)p + *cap * elem, 0, (c - *cap) * elem);
    *cap = c;
    return p;
}

/* ------------------------------------------------------------------------------------------------
 * The key table */

enum ktype { KT_STR, KT_INT, KT_BOOL, KT_ENUM, KT_DEC, KT_ADDR };

#define K_NOECHO 1u   /* never quote the value back (secrets, conninfo with a password) */
#define K_SECRET 2u   /* zero the old value when it is replaced */
#define K_UNIX 4u     /* KT_ADDR: unix:/path allowed */

struct choice {
    const char *name;
    int value;
    bool unsupported; /* recognised, refused with "not supported yet" */
};

struct cfg_key {
    const char *name;
    enum ktype type;
    bool required;
    const char *def;        /* default as YAML text, converted like a value from the file */
    long long min, max;     /* KT_INT bounds */
    size_t off;             /* offsetof the field in the target struct */
    const struct choice *choices; /* KT_ENUM, ends with {NULL} */
    const char *what;       /* "expected <what>"; derived from the type when NULL */
    /* Extra check after conversion; may explain in why. */
    bool (*check)(const void *field, char *why, size_t n);
    unsigned flags;
};

static const char *key_what(const struct cfg_key *k, char *buf, size_t n)
{
    if (k->what) return k->what;
    switch (k->type) {
    case KT_INT:
        snprintf(buf, n, "an integer in %lld..%lld", k->min, k->max);
        return buf;
    case KT_BOOL: return "true or false";
    case KT_DEC: return "a decimal number";
    case KT_ADDR: return (k->flags & K_UNIX) ? "unix:/path or host:port" : "host:port";
    case KT_ENUM: { /* "a, b or c" */
        size_t o = 0, total = 0, i = 0;
        for (const struct choice *c = k->choices; c->name; c++) total += !c->unsupported;
        buf[0] = '\0';
        for (const struct choice *c = k->choices; c->name && o < n; c++) {
            if (c->unsupported) continue;
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

static void addr_free(struct cfg_addr *a)
{
    free(a->text);
    free(a->host);
    free(a->unix_path);
    memset(a, 0, sizeof *a);
}

/* Convert text into the field. 0, or -1 with why possibly explained (-ENOMEM sets ld->oom). */
static int key_convert(struct ld *ld, const struct cfg_key *k, const char *s, void *target, char *why,
                       size_t n)
{
    void *f = (char *)target + k->off;

    switch (k->type) {
    case KT_STR: {
        if (!*s) return -1;
        char *d = strdup(s);
        if (!d) goto oom;
        char **p = f;
        if (k->flags & K_SECRET)
            secret_free_str(*p);
        else
            free(*p);
        *p = d;
        break;
    }
    case KT_INT: {
        long long v;
        if (parse_int(s, &v) || v < k->min || v > k->max) return -1;
        *(int *)f = (int)v;
        break;
    }
    case KT_BOOL:
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
            *(bool *)f = true;
        else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
            *(bool *)f = false;
        else
            return -1;
        break;
    case KT_ENUM:
        for (const struct choice *c = k->choices; c->name; c++) {
            if (strcmp(c->name, s)) continue;
            if (c->unsupported) {
                size_t o = (size_t)snprintf(why, n, "\"%s\" is not supported yet (supported:", s);
                for (const struct choice *d = k->choices; d->name && o < n; d++)
                    if (!d->unsupported) o += (size_t)snprintf(why + o, n - o, " %s,", d->name);
                if (o < n && why[o - 1] == ',') snprintf(why + o - 1, n - o + 1, ")");
                return -2; /* why is the whole message */
            }
            *(int *)f = c->value;
            goto checked;
        }
        return -1;
    case KT_DEC:
        /* From the scalar's text, never through a double: 0.013 stays exactly 0.013. */
        if (dec_parse(s, strlen(s), (dec_t *)f)) return -1;
        break;
    case KT_ADDR: {
        struct cfg_addr a;
        int rc = addr_parse(s, (k->flags & K_UNIX) != 0, &a, why, n);
        if (rc == -ENOMEM) goto oom;
        if (rc) return -1;
        a.text = strdup(s);
        if (!a.text) {
            addr_free(&a);
            goto oom;
        }
        addr_free(f);
        *(struct cfg_addr *)f = a;
        break;
    }
    }
checked:
    if (k->check && !k->check(f, why, n)) {
        /* Drop a rejected string so later checks do not trip over it a second time. */
        if (k->type == KT_STR) {
            char **p = f;
            if (k->flags & K_SECRET)
                secret_free_str(*p);
            else
                free(*p);
            *p = NULL;
        }
        return -1;
    }
    return 0;
oom:
    ld->oom = true;
    return -1;
}

/* One key's value: type of node, null, NUL bytes, conversion; errors at the value. */
static void key_set(struct ld *ld, const struct cfg_key *k, const yaml_node_t *v, const char *kpath,
                    void *target)
{
    char wbuf[160], why[256] = "", sbuf[SHOW_MAX * 4 + 16];
    const char *what = key_what(k, wbuf, sizeof wbuf);

    if (v->type != YAML_SCALAR_NODE) {
        err_at(ld, v->start_mark, kpath, "expected %s, got %s", what, node_kind(v));
        return;
    }
    const char *s = (const char *)v->data.scalar.value;
    if (scalar_is_null(v)) {
        err_at(ld, v->start_mark, kpath, "expected %s, got nothing", what);
        return;
    }
    if (strlen(s) != v->data.scalar.length) {
        err_at(ld, v->start_mark, kpath, "expected %s, got a value with a NUL character", what);
        return;
    }
    int rc = key_convert(ld, k, s, target, why, sizeof why);
    if (rc == 0 || ld->oom) return;
    if (rc == -2)
        err_at(ld, v->start_mark, kpath, "%s", why);
    else if (k->flags & K_NOECHO)
        err_at(ld, v->start_mark, kpath, "expected %s%s%s", what, *why ? ": " : "", why);
    else
        err_at(ld, v->start_mark, kpath, "expected %s, got %s%s%s", what, show(s, sbuf, sizeof sbuf),
               *why ? ": " : "", why);
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
                 kn->data.scalar.length <= SHOW_MAX;
    for (const char *c = s; plain && *c; c++)
        if (*c <= ' ' || *c > '~' || *c == '"') plain = false;
    return plain ? s : show(s, buf, n);
}

static void unknown_key(struct ld *ld, const yaml_node_t *kn, const char *path, const char *const *cands,
                        size_t n)
{
    char kbuf[SHOW_MAX * 4 + 16], kpath[PATH_MAX_LEN + SHOW_MAX * 4 + 16];

    if (ld->hide_keys) {
        /* A secret file written as "KEY: SECRET" would otherwise print the key. */
        size_t o = (size_t)snprintf(kbuf, sizeof kbuf, "unknown key (not shown: secret file; allowed:");
        for (size_t i = 0; i < n && o < sizeof kbuf; i++)
            o += (size_t)snprintf(kbuf + o, sizeof kbuf - o, "%s %s", i ? "," : "", cands[i]);
        err_at(ld, kn->start_mark, path, "%s)", kbuf);
        return;
    }
    const char *name = key_text(kn, kbuf, sizeof kbuf);
    const char *s = suggest(name, cands, n);
    path_join(kpath, sizeof kpath, path, name);
    if (s)
        err_at(ld, kn->start_mark, kpath, "unknown key (did you mean '%s'?)", s);
    else
        err_at(ld, kn->start_mark, kpath, "unknown key");
}

/* Walk a mapping against a key table. found[i] receives the value node of keys[i] (or stays NULL):
 * callers use it for positions and for keys required only in some cases. */
static void walk_map(struct ld *ld, const yaml_node_t *map, const char *path,
                     const struct cfg_key *keys, void *target, const yaml_node_t **found)
{
    const yaml_node_t *seen[KEYS_MAX] = { 0 };
    const char *names[KEYS_MAX];
    char kpath[PATH_MAX_LEN + 64], why[160];
    size_t nkeys = 0;

    while (keys[nkeys].name) {
        if (nkeys == KEYS_MAX) abort(); /* a bigger table is a programming error */
        names[nkeys] = keys[nkeys].name;
        nkeys++;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        const yaml_node_t *vn = yaml_document_get_node(ld->doc, p->value);
        if (!kn || !vn) continue;
        if (kn->type != YAML_SCALAR_NODE) {
            err_at(ld, kn->start_mark, path, "a key must be a plain name, got %s", node_kind(kn));
            continue;
        }
        size_t i = 0;
        while (i < nkeys && strcmp(names[i], (const char *)kn->data.scalar.value)) i++;
        if (i == nkeys) {
            unknown_key(ld, kn, path, names, nkeys);
            continue;
        }
        path_join(kpath, sizeof kpath, path, names[i]);
        if (seen[i]) {
            err_at(ld, kn->start_mark, kpath, "duplicate key (first at line %zu)",
                   seen[i]->start_mark.line + 1);
            continue;
        }
        seen[i] = kn;
        if (found) found[i] = vn;
        key_set(ld, &keys[i], vn, kpath, target);
    }
    for (size_t i = 0; i < nkeys; i++) {
        if (seen[i]) continue;
        if (keys[i].required) {
            err_at(ld, map->start_mark, path, "missing required key '%s'", names[i]);
        } else if (keys[i].def) {
            why[0] = '\0';
            if (key_convert(ld, &keys[i], keys[i].def, target, why, sizeof why) && !ld->oom)
                err_at(ld, map->start_mark, path, "internal error: bad default for '%s'", names[i]);
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * Checks run after conversion */

static bool check_name(const void *f, char *why, size_t n)
{
    (void)why, (void)n;
    const char *s = *(char *const *)f;
    size_t len = strlen(s);
    if (len < 1 || len > CFG_NAME_MAX) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-') return false;
    return true;
}

static bool url_ok(const char *s, const char *const *schemes)
{
    for (; *schemes; schemes++) {
        size_t l = strlen(*schemes);
        if (strncmp(s, *schemes, l)) continue;
        const char *host = s + l;
        if (!*host || *host == '/' || *host == ':') return false;
        for (const char *c = host; *c; c++)
            if (*c <= ' ' || *c > '~') return false;
        return true;
    }
    return false;
}

static bool check_http_url(const void *f, char *why, size_t n)
{
    (void)why, (void)n;
    static const char *const schemes[] = { "http://", "https://", NULL };
    return url_ok(*(char *const *)f, schemes);
}

static bool check_ws_url(const void *f, char *why, size_t n)
{
    (void)why, (void)n;
    static const char *const schemes[] = { "ws://", "wss://", NULL };
    return url_ok(*(char *const *)f, schemes);
}

static bool check_dec_pos(const void *f, char *why, size_t n)
{
    (void)why, (void)n;
    return dec_sign(*(const dec_t *)f) > 0;
}

/* API keys go into HTTP headers and signatures: printable ASCII, no spaces, bounded. */
static bool check_secret_text(const void *f, char *why, size_t n)
{
    (void)why, (void)n;
    const char *s = *(char *const *)f;
    size_t len = strlen(s);
    if (len < 1 || len > 512) return false;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~') return false;
    return true;
}

/* libpq's own parser catches typos in the conninfo now rather than at the first connection. Its
 * message quotes parts of the string, so it is left out when the string carries a password. */
static bool check_conninfo(const void *f, char *why, size_t n)
{
    const char *s = *(char *const *)f;
    char *msg = NULL;
    PQconninfoOption *o = PQconninfoParse(s, &msg);
    if (o) {
        PQconninfoFree(o);
        return true;
    }
    if (strcasestr(s, "password") || (strstr(s, "://") && strchr(s, '@')))
        snprintf(why, n, "libpq rejects it (its message is not shown: the string holds a password)");
    else if (msg)
        snprintf(why, n, "%.*s", (int)strcspn(msg, "\n"), msg);
    if (msg) PQfreemem(msg);
    return false;
}

/* ------------------------------------------------------------------------------------------------
 * Schema */

_Static_assert(sizeof(enum log_level) == sizeof(int), "enum stored through int *");
_Static_assert(sizeof(enum exch_kind) == sizeof(int), "enum stored through int *");
_Static_assert(sizeof(enum cfg_durability) == sizeof(int), "enum stored through int *");
_Static_assert(sizeof(enum cfg_sizing) == sizeof(int), "enum stored through int *");

static const struct choice log_levels[] = {
    { "debug", LOG_LVL_DEBUG, false }, { "info", LOG_LVL_INFO, false },
    { "warn", LOG_LVL_WARN, false },   { "error", LOG_LVL_ERROR, false }, { NULL, 0, false },
};
static const struct choice durabilities[] = {
    { "fsync", CFG_DURABILITY_FSYNC, false }, { "os", CFG_DURABILITY_OS, false }, { NULL, 0, false },
};
/* Local table rather than exch_kind_parse: config must not link the adapters. */
static const struct choice exchanges[] = {
    { "binance-usdm", EXCH_BINANCE_USDM, false },
    { "bybit-linear", EXCH_BYBIT_LINEAR, false },
    { NULL, 0, false },
};
static const struct choice sizings[] = {
    { "multiplier", CFG_SIZING_MULTIPLIER, false },
    { "fixed_notional", 0, true },
    { "equity_ratio", 0, true },
    { NULL, 0, false },
};

#define WHAT_NAME "a name of 1 to 63 characters from A-Z a-z 0-9 _ . -"

static const struct cfg_key daemon_keys[] = {
    { .name = "log_level", .type = KT_ENUM, .def = "info", .choices = log_levels,
      .off = offsetof(struct cfg_daemon, log_level) },
    { .name = "http_listen", .type = KT_ADDR, .def = "127.0.0.1:9464",
      .off = offsetof(struct cfg_daemon, http_listen) },
    { .name = "database", .type = KT_STR, .required = true, .what = "a libpq connection string",
      .check = check_conninfo, .flags = K_NOECHO | K_SECRET,
      .off = offsetof(struct cfg_daemon, database) },
    { .name = "redis", .type = KT_ADDR, .required = true, .flags = K_UNIX,
      .off = offsetof(struct cfg_daemon, redis) },
    { .name = "journal_durability", .type = KT_ENUM, .def = "fsync", .choices = durabilities,
      .off = offsetof(struct cfg_daemon, journal_durability) },
    { .name = "batch_size", .type = KT_INT, .def = "100", .min = 1, .max = 10000,
      .off = offsetof(struct cfg_daemon, batch_size) },
    { .name = "flush_interval_ms", .type = KT_INT, .def = "0", .min = 0, .max = 1000,
      .off = offsetof(struct cfg_daemon, flush_interval_ms) },
    { .name = NULL },
};

enum { AK_NAME, AK_EXCHANGE, AK_REST_URL, AK_WS_URL, AK_SECRET_FILE, AK_RECV_WINDOW, AK_TIMEOUT };
static const struct cfg_key account_keys[] = {
    [AK_NAME] = { .name = "name", .type = KT_STR, .required = true, .what = WHAT_NAME,
                  .check = check_name, .off = offsetof(struct cfg_account, name) },
    [AK_EXCHANGE] = { .name = "exchange", .type = KT_ENUM, .required = true, .choices = exchanges,
                      .off = offsetof(struct cfg_account, exchange) },
    [AK_REST_URL] = { .name = "rest_url", .type = KT_STR, .required = true,
                      .what = "an http:// or https:// URL", .check = check_http_url,
                      .off = offsetof(struct cfg_account, rest_url) },
    [AK_WS_URL] = { .name = "ws_url", .type = KT_STR, .required = true,
                    .what = "a ws:// or wss:// URL", .check = check_ws_url,
                    .off = offsetof(struct cfg_account, ws_url) },
    [AK_SECRET_FILE] = { .name = "secret_file", .type = KT_STR, .required = true,
                         .what = "a file name", .off = offsetof(struct cfg_account, secret_file) },
    [AK_RECV_WINDOW] = { .name = "recv_window_ms", .type = KT_INT, .def = "5000", .min = 1,
                         .max = 60000, .off = offsetof(struct cfg_account, recv_window_ms) },
    [AK_TIMEOUT] = { .name = "timeout_ms", .type = KT_INT, .def = "5000", .min = 100, .max = 60000,
                     .off = offsetof(struct cfg_account, timeout_ms) },
    { .name = NULL },
};

/* A rule as read, before its account names are resolved to indices. */
struct rule_build {
    struct cfg_rule r;
    char *leader, *follower;
};

enum { RK_ID, RK_LEADER, RK_FOLLOWER, RK_SIZING, RK_MULTIPLIER, RK_ENABLED };
static const struct cfg_key rule_keys[] = {
    [RK_ID] = { .name = "id", .type = KT_STR, .required = true, .what = WHAT_NAME,
                .check = check_name, .off = offsetof(struct rule_build, r.id) },
    [RK_LEADER] = { .name = "leader", .type = KT_STR, .required = true, .what = "an account name",
                    .off = offsetof(struct rule_build, leader) },
    [RK_FOLLOWER] = { .name = "follower", .type = KT_STR, .required = true,
                      .what = "an account name", .off = offsetof(struct rule_build, follower) },
    [RK_SIZING] = { .name = "sizing", .type = KT_ENUM, .required = true, .choices = sizings,
                    .off = offsetof(struct rule_build, r.sizing) },
    /* Required by sizing: multiplier (checked in load_rule), meaningless for the others. */
    [RK_MULTIPLIER] = { .name = "multiplier", .type = KT_DEC, .what = "a decimal > 0",
                        .check = check_dec_pos, .off = offsetof(struct rule_build, r.multiplier) },
    [RK_ENABLED] = { .name = "enabled", .type = KT_BOOL, .def = "true",
                     .off = offsetof(struct rule_build, r.enabled) },
    { .name = NULL },
};

struct secret_build {
    char *api_key, *api_secret;
};

#define WHAT_SECRET "1 to 512 printable ASCII characters without spaces"
static const struct cfg_key secret_keys[] = {
    { .name = "api_key", .type = KT_STR, .required = true, .what = WHAT_SECRET,
      .check = check_secret_text, .flags = K_NOECHO | K_SECRET,
      .off = offsetof(struct secret_build, api_key) },
    { .name = "api_secret", .type = KT_STR, .required = true, .what = WHAT_SECRET,
      .check = check_secret_text, .flags = K_NOECHO | K_SECRET,
      .off = offsetof(struct secret_build, api_secret) },
    { .name = NULL },
};

/* ------------------------------------------------------------------------------------------------
 * YAML documents */

typedef void (*root_fn)(struct ld *ld, const yaml_node_t *root, void *arg);

static void syntax_error(struct ld *ld, const yaml_parser_t *p, const char *buf, size_t len)
{
    yaml_mark_t m = p->problem_mark;

    if (p->error == YAML_MEMORY_ERROR) {
        ld->oom = true;
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
        err_at(ld, m, "", "YAML syntax error: %s (%s at line %zu, column %zu)", problem, p->context,
               p->context_mark.line + 1, p->context_mark.column + 1);
    else
        err_at(ld, m, "", "YAML syntax error: %s", problem);
}

/* Parse buf as one YAML document and hand its root (NULL when empty) to fn. With wipe, every copy of
 * the text libyaml made is zeroed before it is freed. */
static void parse_yaml(struct ld *ld, const char *buf, size_t len, root_fn fn, void *arg, bool wipe)
{
    yaml_parser_t p;
    yaml_document_t doc, doc2;
    bool have_doc = false;
    yaml_document_t *saved = ld->doc;

    if (!yaml_parser_initialize(&p)) {
        ld->oom = true;
        return;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&p, &doc)) {
        syntax_error(ld, &p, buf, len);
        goto out;
    }
    have_doc = true;
    ld->doc = &doc;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    fn(ld, root, arg);
    ld->doc = saved;
    if (root) {
        if (!yaml_parser_load(&p, &doc2)) {
            syntax_error(ld, &p, buf, len);
        } else {
            if (yaml_document_get_root_node(&doc2))
                err_at(ld, doc2.start_mark, "",
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
static char *read_config_file(struct ld *ld, const char *path, size_t *len)
{
    struct stat st;
    char *b = NULL;
    size_t got = 0;
    FILE *f = fopen(path, "rbe");

    if (!f) {
        err_file(ld, "cannot open: %s", strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        err_file(ld, "not a regular file");
        goto fail;
    }
    if (st.st_size > (off_t)CFG_FILE_MAX) {
        err_file(ld, "larger than %u bytes", CFG_FILE_MAX);
        goto fail;
    }
    b = malloc((size_t)st.st_size + 1);
    if (!b) {
        ld->oom = true;
        goto fail;
    }
    got = fread(b, 1, (size_t)st.st_size, f);
    if (ferror(f)) {
        err_file(ld, "cannot read: %s", strerror(errno));
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

/* ------------------------------------------------------------------------------------------------
 * Secret files */

static void secret_root(struct ld *ld, const yaml_node_t *root, void *arg)
{
    if (!root) {
        err_at(ld, (yaml_mark_t){ 0, 0, 0 }, "", "the file is empty; expected api_key and api_secret");
        return;
    }
    if (root->type != YAML_MAPPING_NODE) {
        err_at(ld, root->start_mark, "", "expected a mapping with api_key and api_secret, got %s",
               node_kind(root));
        return;
    }
    walk_map(ld, root, "", secret_keys, arg, NULL);
}

static void load_secret(struct ld *ld, struct cfg_account *a, yaml_mark_t at, const char *kpath)
{
    char why[PATH_MAX_LEN * 2 + 8192];
    char *buf = NULL, *path = NULL;
    size_t len = 0;
    struct secret_build sb = { 0 };

    if (a->secret_file[0] == '/') {
        path = strdup(a->secret_file);
    } else {
        const char *base = getenv("CREDENTIALS_DIRECTORY");
        if (!base || !*base) base = ld->dir;
        if (asprintf(&path, "%s/%s", base, a->secret_file) < 0) path = NULL;
    }
    if (!path) {
        ld->oom = true;
        return;
    }
    free(a->secret_file);
    a->secret_file = path;

    int rc = secret_file_read(path, &buf, &len, why, sizeof why);
    if (rc == -ENOMEM) {
        ld->oom = true;
        return;
    }
    if (rc) {
        err_at(ld, at, kpath, "%s", why);
        return;
    }
    /* Errors inside the secret file name it and its positions, and sort at the secret_file key. */
    const char *file = ld->file;
    ld->file = path;
    ld->hide_keys = true;
    ld->in_secret = true;
    ld->anchor = at;
    parse_yaml(ld, buf, len, secret_root, &sb, true);
    ld->file = file;
    ld->hide_keys = false;
    ld->in_secret = false;
    secret_free(buf, len);
    a->api_key = sb.api_key;
    a->api_secret = sb.api_secret;
}

/* ------------------------------------------------------------------------------------------------
 * Sections */

static void load_account(struct ld *ld, const yaml_node_t *n, size_t i)
{
    struct cfg *c = ld->cfg;
    const yaml_node_t *found[KEYS_MAX] = { 0 };
    char path[PATH_MAX_LEN], kpath[PATH_MAX_LEN + 16];

    snprintf(path, sizeof path, "accounts[%zu]", i);
    if (n->type != YAML_MAPPING_NODE) {
        err_at(ld, n->start_mark, path, "expected a mapping (name: ..., exchange: ...), got %s",
               node_kind(n));
        return;
    }
    struct cfg_account *acc = grow(ld, c->accounts, &ld->cap_acc, c->n_accounts, sizeof *acc);
    if (!acc) return;
    c->accounts = acc;
    struct acc_src *as = grow(ld, ld->asrc, &ld->cap_asrc, c->n_accounts, sizeof *as);
    if (!as) return;
    ld->asrc = as;

    struct cfg_account *a = &c->accounts[c->n_accounts];
    memset(a, 0, sizeof *a);
    walk_map(ld, n, path, account_keys, a, found);
    a->file = c->files[ld->fidx];
    a->line = (unsigned)n->start_mark.line + 1;
    as = &ld->asrc[c->n_accounts];
    as->file = ld->fidx;
    as->name_mark = found[AK_NAME] ? found[AK_NAME]->start_mark : n->start_mark;
    snprintf(as->path, sizeof as->path, "%s", path);
    c->n_accounts++;
    if (a->secret_file && !ld->oom)
        load_secret(ld, a, found[AK_SECRET_FILE]->start_mark,
                    path_join(kpath, sizeof kpath, path, "secret_file"));
}

static void load_rule(struct ld *ld, const yaml_node_t *n, size_t i)
{
    struct cfg *c = ld->cfg;
    const yaml_node_t *found[KEYS_MAX] = { 0 };
    char path[PATH_MAX_LEN], kpath[PATH_MAX_LEN + 16], sbuf[SHOW_MAX * 4 + 16];
    struct rule_build rb = { 0 };

    snprintf(path, sizeof path, "copy_rules[%zu]", i);
    if (n->type != YAML_MAPPING_NODE) {
        err_at(ld, n->start_mark, path, "expected a mapping (id: ..., leader: ...), got %s",
               node_kind(n));
        return;
    }
    struct cfg_rule *rules = grow(ld, c->rules, &ld->cap_rules, c->n_rules, sizeof *rules);
    if (!rules) return;
    c->rules = rules;
    struct rule_src *rs = grow(ld, ld->rsrc, &ld->cap_rsrc, c->n_rules, sizeof *rs);
    if (!rs) return;
    ld->rsrc = rs;

    walk_map(ld, n, path, rule_keys, &rb, found);
    if (rb.r.sizing == CFG_SIZING_MULTIPLIER && !found[RK_MULTIPLIER])
        err_at(ld, n->start_mark, path, "missing required key 'multiplier' (sizing: multiplier)");
    if (rb.leader && rb.follower && !strcmp(rb.leader, rb.follower))
        err_at(ld, found[RK_FOLLOWER]->start_mark, path_join(kpath, sizeof kpath, path, "follower"),
               "%s is also the leader; a rule copies one account onto another",
               show(rb.follower, sbuf, sizeof sbuf));
    rb.r.file = c->files[ld->fidx];
    rb.r.line = (unsigned)n->start_mark.line + 1;
    c->rules[c->n_rules] = rb.r;
    rs = &ld->rsrc[c->n_rules];
    *rs = (struct rule_src){
        .file = ld->fidx,
        .node_mark = n->start_mark,
        .id_mark = found[RK_ID] ? found[RK_ID]->start_mark : n->start_mark,
        .leader_mark = found[RK_LEADER] ? found[RK_LEADER]->start_mark : n->start_mark,
        .follower_mark = found[RK_FOLLOWER] ? found[RK_FOLLOWER]->start_mark : n->start_mark,
        .leader = rb.leader,
        .follower = rb.follower,
    };
    snprintf(rs->path, sizeof rs->path, "%s", path);
    c->n_rules++;
}

static void load_daemon(struct ld *ld, const yaml_node_t *n)
{
    if (n->type != YAML_MAPPING_NODE) {
        err_at(ld, n->start_mark, "daemon", "expected a mapping, got %s", node_kind(n));
        return;
    }
    walk_map(ld, n, "daemon", daemon_keys, &ld->cfg->daemon, NULL);
}

static void load_list(struct ld *ld, const yaml_node_t *n, const char *name,
                      void (*item)(struct ld *, const yaml_node_t *, size_t))
{
    if (scalar_is_null(n)) return; /* "accounts:" with every entry commented out */
    if (n->type != YAML_SEQUENCE_NODE) {
        err_at(ld, n->start_mark, name, "expected a list of '- ...' entries, got %s", node_kind(n));
        return;
    }
    size_t i = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        const yaml_node_t *v = yaml_document_get_node(ld->doc, *it);
        if (v && !ld->oom) item(ld, v, i);
        i++;
    }
}

static void config_root(struct ld *ld, const yaml_node_t *root, void *arg)
{
    static const char *const sections[] = { "daemon", "accounts", "copy_rules" };
    const yaml_node_t *seen[3] = { 0 };
    bool is_main = *(const bool *)arg;

    if (!root) {
        if (is_main)
            err_at(ld, (yaml_mark_t){ 0, 0, 0 }, "", "the file is empty; expected a 'daemon' section");
        return;
    }
    if (root->type != YAML_MAPPING_NODE) {
        err_at(ld, root->start_mark, "", "expected a mapping of daemon, accounts and copy_rules, got %s",
               node_kind(root));
        return;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        const yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        const yaml_node_t *vn = yaml_document_get_node(ld->doc, p->value);
        if (!kn || !vn || ld->oom) continue;
        if (kn->type != YAML_SCALAR_NODE) {
            err_at(ld, kn->start_mark, "", "a key must be a plain name, got %s", node_kind(kn));
            continue;
        }
        size_t s = 0;
        while (s < 3 && strcmp(sections[s], (const char *)kn->data.scalar.value)) s++;
        if (s == 3) {
            unknown_key(ld, kn, "", is_main ? sections : sections + 1, is_main ? 3 : 2);
            continue;
        }
        if (seen[s]) {
            err_at(ld, kn->start_mark, sections[s], "duplicate key (first at line %zu)",
                   seen[s]->start_mark.line + 1);
            continue;
        }
        seen[s] = kn;
        if (s == 0 && !is_main)
            err_at(ld, kn->start_mark, "daemon", "only allowed in the main config file");
        else if (s == 0)
            load_daemon(ld, vn);
        else if (s == 1)
            load_list(ld, vn, "accounts", load_account);
        else
            load_list(ld, vn, "copy_rules", load_rule);
    }
    if (is_main && !seen[0])
        err_at(ld, root->start_mark, "", "missing required key 'daemon'");
}

/* ------------------------------------------------------------------------------------------------
 * Checks across files: unique names and ids, rule -> account links */

struct named {
    const char *name;
    size_t idx;
};

static int named_cmp(const void *a, const void *b)
{
    const struct named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Sorted (name, index) pairs; within a name the first defined comes first. NULL on OOM. */
static struct named *sorted_names(struct ld *ld, size_t n, const char *(*get)(struct ld *, size_t),
                                  size_t *out_n)
{
    struct named *v = malloc((n ? n : 1) * sizeof *v);
    size_t k = 0;
    if (!v) {
        ld->oom = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = get(ld, i);
        if (s) v[k++] = (struct named){ s, i };
    }
    qsort(v, k, sizeof *v, named_cmp);
    *out_n = k;
    return v;
}

static const char *acc_name(struct ld *ld, size_t i) { return ld->cfg->accounts[i].name; }
static const char *rule_id(struct ld *ld, size_t i) { return ld->cfg->rules[i].id; }

static long find_account(const struct named *v, size_t n, const char *name)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* first entry >= name */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(v[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && !strcmp(v[lo].name, name) ? (long)v[lo].idx : -1;
}

struct pair {
    size_t leader, follower, idx;
};

static int pair_cmp(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    if (x->leader != y->leader) return x->leader < y->leader ? -1 : 1;
    if (x->follower != y->follower) return x->follower < y->follower ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void check_links(struct ld *ld)
{
    struct cfg *c = ld->cfg;
    char kpath[PATH_MAX_LEN + 16], sbuf[SHOW_MAX * 4 + 16];
    size_t na = 0, nr = 0, np = 0;
    struct named *acc = sorted_names(ld, c->n_accounts, acc_name, &na);
    struct named *ids = sorted_names(ld, c->n_rules, rule_id, &nr);
    struct pair *pairs = malloc((c->n_rules ? c->n_rules : 1) * sizeof *pairs);
    size_t *follows = malloc((c->n_accounts ? c->n_accounts : 1) * sizeof *follows);

    if (!acc || !ids || !pairs || !follows) {
        ld->oom = true;
        goto out;
    }
    for (size_t i = 1; i < na; i++) {
        if (strcmp(acc[i].name, acc[i - 1].name)) continue;
        size_t first = acc[i - 1].idx;
        while (i < na && !strcmp(acc[i].name, c->accounts[first].name)) {
            struct acc_src *s = &ld->asrc[acc[i].idx];
            err_in(ld, s->file, s->name_mark, path_join(kpath, sizeof kpath, s->path, "name"),
                   "duplicate account name \"%s\" (first defined at %s:%u)", acc[i].name,
                   c->accounts[first].file, c->accounts[first].line);
            i++;
        }
    }
    for (size_t i = 1; i < nr; i++) {
        if (strcmp(ids[i].name, ids[i - 1].name)) continue;
        size_t first = ids[i - 1].idx;
        while (i < nr && !strcmp(ids[i].name, c->rules[first].id)) {
            struct rule_src *s = &ld->rsrc[ids[i].idx];
            err_in(ld, s->file, s->id_mark, path_join(kpath, sizeof kpath, s->path, "id"),
                   "duplicate copy rule id \"%s\" (first defined at %s:%u)", ids[i].name,
                   c->rules[first].file, c->rules[first].line);
            i++;
        }
    }

    /* Resolve names; remember, per account, the first rule that follows it. */
    for (size_t a = 0; a < c->n_accounts; a++) follows[a] = SIZE_MAX;
    for (size_t r = 0; r < c->n_rules; r++) {
        struct rule_src *s = &ld->rsrc[r];
        long l = -1, f = -1;
        if (s->leader && (l = find_account(acc, na, s->leader)) < 0)
            err_in(ld, s->file, s->leader_mark, path_join(kpath, sizeof kpath, s->path, "leader"),
                   "no account named %s", show(s->leader, sbuf, sizeof sbuf));
        if (s->follower && (f = find_account(acc, na, s->follower)) < 0)
            err_in(ld, s->file, s->follower_mark, path_join(kpath, sizeof kpath, s->path, "follower"),
                   "no account named %s", show(s->follower, sbuf, sizeof sbuf));
        if (l < 0 || f < 0 || l == f) continue;
        c->rules[r].leader = (size_t)l;
        c->rules[r].follower = (size_t)f;
        pairs[np++] = (struct pair){ (size_t)l, (size_t)f, r };
        if (follows[f] == SIZE_MAX) follows[f] = r;
    }

    /* An account that follows must not lead: its copies would be copied again, and a loop
     * (a copies b, b copies a) would trade without end. */
    for (size_t k = 0; k < np; k++) {
        size_t r = pairs[k].idx, by = follows[pairs[k].leader];
        if (by == SIZE_MAX) continue;
        struct rule_src *s = &ld->rsrc[r];
        err_in(ld, s->file, s->leader_mark, path_join(kpath, sizeof kpath, s->path, "leader"),
               "account \"%s\" already follows \"%s\" (copy rule at %s:%u); an account cannot both "
               "lead and follow", c->accounts[pairs[k].leader].name,
               c->accounts[c->rules[by].leader].name, c->rules[by].file, c->rules[by].line);
    }

    /* Two rules for one leader/follower pair would place every copy twice. */
    qsort(pairs, np, sizeof *pairs, pair_cmp);
    for (size_t k = 1; k < np; k++) {
        size_t j = k - 1;
        while (j > 0 && pairs[j - 1].leader == pairs[k].leader && pairs[j - 1].follower == pairs[k].follower)
            j--;
        if (pairs[j].leader != pairs[k].leader || pairs[j].follower != pairs[k].follower) continue;
        const struct cfg_rule *first = &c->rules[pairs[j].idx];
        struct rule_src *s = &ld->rsrc[pairs[k].idx];
        err_in(ld, s->file, s->node_mark, s->path,
               "copies \"%s\" onto \"%s\" again (copy rule \"%s\" at %s:%u already does); one rule per "
               "leader and follower", c->accounts[pairs[k].leader].name,
               c->accounts[pairs[k].follower].name, first->id ? first->id : "?", first->file,
               first->line);
    }
out:
    free(acc);
    free(ids);
    free(pairs);
    free(follows);
}

/* ------------------------------------------------------------------------------------------------
 * Public API */

static void load_config_file(struct ld *ld, size_t fidx, bool is_main)
{
    size_t len = 0;
    const char *path = ld->cfg->files[fidx];
    const char *slash = strrchr(path, '/');
    char *dir = slash == path ? strdup("/") : slash ? strndup(path, (size_t)(slash - path)) : strdup(".");

    if (!dir) {
        ld->oom = true;
        return;
    }
    ld->fidx = fidx;
    ld->file = path;
    ld->dir = dir;
    char *buf = read_config_file(ld, path, &len);
    if (buf) {
        /* Wiped like a secret file: daemon.database may carry a password. */
        parse_yaml(ld, buf, len, config_root, &is_main, true);
        secret_free(buf, len);
    }
    ld->dir = NULL;
    free(dir);
}

struct cfg *cfg_load_files(const char *path, const char *const *trader_files, size_t n_trader_files,
                           struct cfg_errors *errs)
{
    struct ld ld = { 0 };
    struct cfg *c = calloc(1, sizeof *c);

    cfg_errors_reset(errs);
    if (!c || !(c->files = calloc(n_trader_files + 1, sizeof *c->files))) {
        ld.oom = true;
        goto done;
    }
    ld.cfg = c;
    for (size_t i = 0; i <= n_trader_files && !ld.oom; i++) {
        c->files[i] = strdup(i ? trader_files[i - 1] : path);
        if (!c->files[i]) {
            ld.oom = true;
            break;
        }
        c->n_files++;
        load_config_file(&ld, i, i == 0);
    }
    if (!ld.oom) check_links(&ld);

done:
    if (ld.oom) {
        /* Reported whatever else happened; the message itself may not fit in memory. */
        ld.file = "copytraderd";
        ld.fidx = SIZE_MAX;
        err_file(&ld, "out of memory while loading the configuration");
        if (ld.n_total == 0) ld.n_total = 1;
    }
    if (ld.n_errs) qsort(ld.errs, ld.n_errs, sizeof *ld.errs, err_cmp);
    for (size_t i = 0; i < ld.n_errs; i++) {
        if (errs && errs->n < CFG_ERRORS_MAX)
            errs->msg[errs->n++] = ld.errs[i].msg;
        else
            free(ld.errs[i].msg);
    }
    if (errs) errs->dropped = ld.n_total - errs->n;
    free(ld.errs);
    if (c)
        for (size_t r = 0; r < c->n_rules; r++) {
            free(ld.rsrc[r].leader);
            free(ld.rsrc[r].follower);
        }
    free(ld.asrc);
    free(ld.rsrc);
    if (ld.n_total) c = cfg_free(c);
    return c;
}

struct cfg *cfg_load(const char *path, struct cfg_errors *errs)
{
    return cfg_load_files(path, NULL, 0, errs);
}

struct cfg *cfg_free(struct cfg *c)
{
    if (!c) return NULL;
    for (size_t i = 0; i < c->n_accounts; i++) {
        struct cfg_account *a = &c->accounts[i];
        free(a->name);
        free(a->rest_url);
        free(a->ws_url);
        free(a->secret_file);
        secret_free_str(a->api_key);
        secret_free_str(a->api_secret);
    }
    free(c->accounts);
    for (size_t i = 0; i < c->n_rules; i++) free(c->rules[i].id);
    free(c->rules);
    addr_free(&c->daemon.http_listen);
    addr_free(&c->daemon.redis);
    secret_free_str(c->daemon.database);
    for (size_t i = 0; i < c->n_files; i++) free(c->files[i]);
    free(c->files);
    free(c);
    return NULL;
}

long cfg_account_find(const struct cfg *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->n_accounts; i++)
        if (c->accounts[i].name && !strcmp(c->accounts[i].name, name)) return (long)i;
    return -1;
}

const char *cfg_durability_name(enum cfg_durability d)
{
    for (const struct choice *c = durabilities; c->name; c++)
        if (c->value == (int)d) return c->name;
    return "?";
}

const char *cfg_sizing_name(enum cfg_sizing s)
{
    for (const struct choice *c = sizings; c->name; c++)
        if (!c->unsupported && c->value == (int)s) return c->name;
    return "?";
}
