/* metrics: Prometheus registry and text exposition format 0.0.4 (see metrics.h). */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum met_kind { MET_COUNTER, MET_GAUGE, MET_HISTOGRAM };

#define MET_MAX_LABELS 16

/* A callback-driven series' callback, and its stored value meanwhile (met_*_set_fn). Only the
 * few series with a callback have one: in every child, two more pointers would be 16 of its
 * ~64 bytes, for ~190,000 series of 10,000 accounts. */
struct met_fn_rec {
    union {
        uint64_t (*c)(void *ud);
        double (*g)(void *ud);
    } fn;
    void *ud;
    union {
        uint64_t u;
        double d;
    } stored;
};

/* The value, or (has_fn) the callback's record. */
struct met_counter {
    union {
        uint64_t value;
        struct met_fn_rec *rec;
    };
};

struct met_gauge {
    union {
        double value;
        struct met_fn_rec *rec;
    };
};

struct met_hist {
    const double *bounds; /* the family's, nbounds entries */
    size_t nbounds;
    double sum;
    uint64_t count;
    uint64_t buckets[]; /* nbounds + 1, per bucket (not cumulative); last is +Inf */
};

/* One child, in one block carved from the registry's arena (never moved, never freed before the
 * registry, so the pointers handed out stay valid): 32 bytes and its label values, 64 for
 * ct_follower_orders_total{follower,exchange,result}. It was five mallocs, a uthash handle and
 * a callback (~260 bytes), 48 MB for the ~190,000 series of 10,000 follower accounts. The label
 * values are stored once, as the lookup key: each value followed by a NUL (unambiguous, since a
 * family's number of values is fixed and a value has no NUL). */
struct met_child {
    struct met_child *next;  /* the family's children in creation order (rendering) */
    struct met_child *hnext; /* the family's hash chain */
    union {
        struct met_counter counter;
        struct met_gauge gauge;
        struct met_hist *hist; /* in the arena too: flexible array */
    } u;
    uint32_t hash;
    uint32_t klen : 30;     /* bytes of key, the NULs included */
    uint32_t show_zero : 1; /* a counter: the next render shows 0 (met_counter_from_zero) */
    uint32_t has_fn : 1;    /* a counter or gauge with a callback: u holds its record */
    char key[];
};

struct met_family {
    enum met_kind kind;
    char *name;
    char *help;
    size_t nlabels;
    char **labels;
    double *bounds; /* histograms only */
    size_t nbounds;
    struct met_child *first, *last; /* creation order */
    size_t nchildren;
    struct met_child **buckets; /* hash index (chains), nbuckets a power of 2, or NULL */
    size_t nbuckets;
    struct met_registry *reg; /* whose arena the children come from */
};

/* Bump allocator for children: blocks of ARENA_BLOCK bytes, zeroed; a larger request gets a
 * block of its own. Nothing is freed before the registry. */
#define ARENA_BLOCK 65536
struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    uint64_t data[]; /* 8-aligned */
};

struct met_registry {
    struct met_family **fams;
    size_t nfams, cap;
    struct arena_block *arena;
    /* Kept by met_render, which takes the registry const: a separate block. */
    struct render_state {
        size_t last_len; /* the last page's length, to size the next one's buffer */
    } *rs;
};

/* ---- names ---------------------------------------------------------------------------- */

static bool valid_metric_name(const char *s)
{
    if (!s || !*s) return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

static bool valid_label_name(const char *s)
{
    if (!s || !*s || strncmp(s, "__", 2) == 0) return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static struct met_child *child_find_or_new(struct met_family *f, const char *const *vals,
                                           size_t n);

/* ---- registry ------------------------------------------------------------------------- */

struct met_registry *met_registry_new(void)
{
    struct met_registry *reg = calloc(1, sizeof(struct met_registry));
    if (reg && !(reg->rs = calloc(1, sizeof *reg->rs))) {
        free(reg);
        return NULL;
    }
    return reg;
}

/* n zeroed bytes, aligned like malloc's, that live until the registry is freed. */
static void *arena_alloc(struct met_registry *reg, size_t n)
{
    const size_t al = 8; /* children and histograms hold nothing wider than 8 bytes */
    n = (n + al - 1) / al * al;
    struct arena_block *b = reg->arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK - sizeof *b;
        struct arena_block *nb = calloc(1, sizeof *nb + cap);
        if (!nb) return NULL;
        nb->cap = cap;
        if (b && cap != ARENA_BLOCK - sizeof *b) { /* an oversized one: keep filling the current */
            nb->next = b->next;
            b->next = nb;
            nb->used = n;
            return nb->data;
        }
        nb->next = b;
        reg->arena = b = nb;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

static void family_free(struct met_family *f)
{
    if (!f) return;
    if (f->kind != MET_HISTOGRAM)
        for (struct met_child *ch = f->first; ch; ch = ch->next)
            if (ch->has_fn) free(ch->u.counter.rec);
    free(f->buckets); /* the children themselves are in the arena */
    if (f->labels)
        for (size_t i = 0; i < f->nlabels; i++) free(f->labels[i]);
    free(f->labels);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

struct met_registry *met_registry_free(struct met_registry *reg)
{
    if (!reg) return NULL;
    for (size_t i = 0; i < reg->nfams; i++) family_free(reg->fams[i]);
    free(reg->fams);
    for (struct arena_block *b = reg->arena, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(reg->rs);
    free(reg);
    return NULL;
}

/* Histogram series names add suffixes; reject a new family whose series would collide with an
 * existing family's (e.g. gauge "x_count" next to histogram "x"), since the scrape would be
 * ambiguous and promtool rejects it. */
static bool name_taken(const struct met_registry *reg, const char *name, enum met_kind kind)
{
    static const char *const hsuf[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < reg->nfams; i++) {
        const struct met_family *f = reg->fams[i];
        if (strcmp(f->name, name) == 0) return true;
        size_t fl = strlen(f->name), nl = strlen(name);
        for (size_t k = 0; k < 3; k++) {
            size_t sl = strlen(hsuf[k]);
            if (f->kind == MET_HISTOGRAM && nl == fl + sl && strncmp(name, f->name, fl) == 0 &&
                strcmp(name + fl, hsuf[k]) == 0)
                return true;
            if (kind == MET_HISTOGRAM && fl == nl + sl && strncmp(f->name, name, nl) == 0 &&
                strcmp(f->name + nl, hsuf[k]) == 0)
                return true;
        }
    }
    return false;
}

static struct met_family *family_new(struct met_registry *reg, enum met_kind kind,
                                     const char *name, const char *help, const double *bounds,
                                     size_t nbounds, va_list ap)
{
    struct met_family *f = NULL;
    const char *labels[MET_MAX_LABELS];
    size_t nlabels = 0;
    int err = EINVAL;

    if (!reg || !valid_metric_name(name) || !help) goto fail;
    if (kind == MET_COUNTER && !ends_with(name, "_total")) goto fail;
    for (const char *l; (l = va_arg(ap, const char *)) != NULL;) {
        if (nlabels == sizeof labels / sizeof labels[0] || !valid_label_name(l)) goto fail;
        if (kind == MET_HISTOGRAM && strcmp(l, "le") == 0) goto fail;
        for (size_t i = 0; i < nlabels; i++)
            if (strcmp(labels[i], l) == 0) goto fail;
        labels[nlabels++] = l;
    }
    if (kind == MET_HISTOGRAM) {
        if (nbounds && !bounds) goto fail;
        /* A trailing +Inf is the implicit bucket; drop it. */
        if (nbounds && isinf(bounds[nbounds - 1]) && bounds[nbounds - 1] > 0) nbounds--;
        for (size_t i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) goto fail;
    }
    err = EEXIST;
    if (name_taken(reg, name, kind)) goto fail;

    err = ENOMEM;
    f = calloc(1, sizeof *f);
    if (!f) goto fail;
    f->kind = kind;
    f->reg = reg;
    f->name = strdup(name);
    f->help = strdup(help);
    if (!f->name || !f->help) goto fail;
    if (nlabels) {
        f->labels = calloc(nlabels, sizeof *f->labels);
        if (!f->labels) goto fail;
        f->nlabels = nlabels;
        for (size_t i = 0; i < nlabels; i++)
            if (!(f->labels[i] = strdup(labels[i]))) goto fail;
    }
    if (kind == MET_HISTOGRAM && nbounds) {
        f->bounds = malloc(nbounds * sizeof *f->bounds);
        if (!f->bounds) goto fail;
        memcpy(f->bounds, bounds, nbounds * sizeof *f->bounds);
    }
    f->nbounds = kind == MET_HISTOGRAM ? nbounds : 0;
    /* A family without labels has exactly one series: create it now so it renders (as 0)
     * before its first update, the way the official clients do. */
    if (!nlabels && !child_find_or_new(f, NULL, 0)) goto fail;

    if (reg->nfams == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        struct met_family **n = realloc(reg->fams, cap * sizeof *n);
        if (!n) goto fail;
        reg->fams = n;
        reg->cap = cap;
    }
    reg->fams[reg->nfams++] = f;
    return f;

fail:
    family_free(f);
    errno = err;
    return NULL;
}

struct met_family *met_counter_new_(struct met_registry *reg, const char *name, const char *help,
                                    ...)
{
    va_list ap;
    va_start(ap, help);
    struct met_family *f = family_new(reg, MET_COUNTER, name, help, NULL, 0, ap);
    va_end(ap);
    return f;
}

struct met_family *met_gauge_new_(struct met_registry *reg, const char *name, const char *help,
                                  ...)
{
    va_list ap;
    va_start(ap, help);
    struct met_family *f = family_new(reg, MET_GAUGE, name, help, NULL, 0, ap);
    va_end(ap);
    return f;
}

struct met_family *met_histogram_new_(struct met_registry *reg, const char *name,
                                      const char *help, const double *bounds, size_t nbounds,
                                      ...)
{
    va_list ap;
    va_start(ap, nbounds);
    struct met_family *f = family_new(reg, MET_HISTOGRAM, name, help, bounds, nbounds, ap);
    va_end(ap);
    return f;
}

/* ---- children ------------------------------------------------------------------------- */

/* FNV-1a, 32 bits: the index only needs a spread, not a strong hash. */
static uint32_t hash_of(const char *k, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 16777619u;
    return h;
}

/* Doubles the index (a power of 2, at least 16); on ENOMEM the old one stays (longer chains). */
static void index_grow(struct met_family *f)
{
    size_t nb = f->nbuckets ? f->nbuckets * 2 : 16;
    struct met_child **v = calloc(nb, sizeof *v);
    if (!v) return;
    for (struct met_child *ch = f->first; ch; ch = ch->next) {
        size_t i = ch->hash & (nb - 1);
        ch->hnext = v[i];
        v[i] = ch;
    }
    free(f->buckets);
    f->buckets = v;
    f->nbuckets = nb;
}

static struct met_child *child_find_or_new(struct met_family *f, const char *const *vals,
                                           size_t n)
{
    char stack_key[256], *key = stack_key;
    size_t klen = 0;
    struct met_child *ch = NULL;

    for (size_t i = 0; i < n; i++) klen += strlen(vals[i]) + 1;
    if (klen >= (1u << 30)) goto fail;
    if (klen > sizeof stack_key && !(key = malloc(klen))) goto fail;
    for (size_t i = 0, o = 0; i < n; i++) {
        size_t l = strlen(vals[i]) + 1;
        memcpy(key + o, vals[i], l);
        o += l;
    }
    uint32_t h = hash_of(key, klen);
    if (f->nbuckets)
        for (ch = f->buckets[h & (f->nbuckets - 1)]; ch; ch = ch->hnext)
            if (ch->hash == h && ch->klen == klen && memcmp(ch->key, key, klen) == 0) goto out;
    ch = arena_alloc(f->reg, sizeof *ch + klen);
    if (!ch) goto fail;
    ch->hash = h;
    ch->klen = (uint32_t)klen & 0x3fffffffu;
    memcpy(ch->key, key, klen);
    if (f->kind == MET_HISTOGRAM) {
        ch->u.hist = arena_alloc(f->reg, sizeof *ch->u.hist +
                                             (f->nbounds + 1) * sizeof ch->u.hist->buckets[0]);
        if (!ch->u.hist) goto fail; /* the child's block stays unused in the arena */
        ch->u.hist->bounds = f->bounds;
        ch->u.hist->nbounds = f->nbounds;
    }
    if (f->nchildren >= f->nbuckets) index_grow(f);
    if (!f->nbuckets) goto fail;
    size_t i = h & (f->nbuckets - 1);
    ch->hnext = f->buckets[i];
    f->buckets[i] = ch;
    if (f->last) f->last->next = ch;
    else f->first = ch;
    f->last = ch;
    f->nchildren++;
out:
    if (key != stack_key) free(key);
    return ch;
fail:
    if (key != stack_key) free(key);
    errno = ENOMEM;
    return NULL;
}

static struct met_child *child_get(struct met_family *f, enum met_kind kind, va_list ap)
{
    const char *vals[MET_MAX_LABELS];
    size_t n = 0;

    if (!f || f->kind != kind) goto inval;
    for (const char *v; (v = va_arg(ap, const char *)) != NULL;) {
        if (n == f->nlabels) goto inval;
        vals[n++] = v;
    }
    if (n != f->nlabels) goto inval;
    return child_find_or_new(f, vals, n);

inval:
    errno = EINVAL;
    return NULL;
}

struct met_counter *met_counter_child_(struct met_family *fam, ...)
{
    va_list ap;
    va_start(ap, fam);
    struct met_child *ch = child_get(fam, MET_COUNTER, ap);
    va_end(ap);
    return ch ? &ch->u.counter : NULL;
}

struct met_gauge *met_gauge_child_(struct met_family *fam, ...)
{
    va_list ap;
    va_start(ap, fam);
    struct met_child *ch = child_get(fam, MET_GAUGE, ap);
    va_end(ap);
    return ch ? &ch->u.gauge : NULL;
}

struct met_hist *met_hist_child_(struct met_family *fam, ...)
{
    va_list ap;
    va_start(ap, fam);
    struct met_child *ch = child_get(fam, MET_HISTOGRAM, ap);
    va_end(ap);
    return ch ? ch->u.hist : NULL;
}

/* ---- updates -------------------------------------------------------------------------- */

static struct met_child *child_of_counter(const struct met_counter *c)
{
    return (struct met_child *)((char *)c - offsetof(struct met_child, u.counter));
}

static struct met_child *child_of_gauge(const struct met_gauge *g)
{
    return (struct met_child *)((char *)g - offsetof(struct met_child, u.gauge));
}

void met_counter_inc(struct met_counter *c) { met_counter_add(c, 1); }

void met_counter_add(struct met_counter *c, uint64_t n)
{
    if (child_of_counter(c)->has_fn) c->rec->stored.u += n;
    else c->value += n;
}

uint64_t met_counter_value(const struct met_counter *c)
{
    return child_of_counter(c)->has_fn ? c->rec->fn.c(c->rec->ud) : c->value;
}

/* A series' 8 bytes hold its value, or (has_fn) its callback record with the value kept in it:
 * attaching moves the value into a new record, detaching moves it back. *out: the record. */
static int fn_rec_set(struct met_child *ch, void *series, bool attach, struct met_fn_rec **out)
{
    _Static_assert(sizeof(uint64_t) == sizeof(double), "values are 8 bytes");
    struct met_fn_rec *r;
    if (!attach) {
        if (ch->has_fn) {
            memcpy(&r, series, sizeof r);
            memcpy(series, &r->stored, sizeof r->stored);
            ch->has_fn = 0;
            free(r);
        }
        return 0;
    }
    if (!ch->has_fn) {
        if (!(r = malloc(sizeof *r))) return -ENOMEM;
        memcpy(&r->stored, series, sizeof r->stored);
        memcpy(series, &r, sizeof r);
        ch->has_fn = 1;
    }
    memcpy(out, series, sizeof *out);
    return 0;
}

int met_counter_set_fn(struct met_counter *c, uint64_t (*fn)(void *ud), void *ud)
{
    struct met_fn_rec *r;
    int e = fn_rec_set(child_of_counter(c), c, fn != NULL, &r);
    if (e < 0 || !fn) return e;
    r->fn.c = fn;
    r->ud = ud;
    return 0;
}

void met_counter_from_zero(struct met_counter *c)
{
    child_of_counter(c)->show_zero = 1;
}

void met_gauge_set(struct met_gauge *g, double v)
{
    if (child_of_gauge(g)->has_fn) g->rec->stored.d = v;
    else g->value = v;
}

void met_gauge_add(struct met_gauge *g, double d)
{
    if (child_of_gauge(g)->has_fn) g->rec->stored.d += d;
    else g->value += d;
}

int met_gauge_set_fn(struct met_gauge *g, double (*fn)(void *ud), void *ud)
{
    struct met_fn_rec *r;
    int e = fn_rec_set(child_of_gauge(g), g, fn != NULL, &r);
    if (e < 0 || !fn) return e;
    r->fn.g = fn;
    r->ud = ud;
    return 0;
}

double met_gauge_value(const struct met_gauge *g)
{
    return child_of_gauge(g)->has_fn ? g->rec->fn.g(g->rec->ud) : g->value;
}

void met_hist_observe(struct met_hist *h, double v)
{
    /* First bound >= v; NaN compares false everywhere and lands in +Inf, like the Go client. */
    size_t lo = 0, hi = h->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    if (isnan(v)) lo = h->nbounds;
    h->buckets[lo]++;
    h->count++;
    h->sum += v;
}

uint64_t met_hist_count(const struct met_hist *h) { return h->count; }

/* ---- rendering ------------------------------------------------------------------------ */

struct buf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void buf_reserve(struct buf *b, size_t extra)
{
    if (b->oom || b->len + extra + 1 <= b->cap) return;
    size_t need = b->len + extra + 1, cap = b->cap ? b->cap : need > 4096 ? need : 4096;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void buf_put(struct buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    if (b->oom) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s) { buf_put(b, s, strlen(s)); }

/* Escapes for HELP text (\\ and \n) and label values (also \"). */
static void buf_escaped(struct buf *b, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (quote && *s == '"')
            rep = "\\\"";
        if (!rep) continue;
        buf_put(b, run, (size_t)(s - run));
        buf_puts(b, rep);
        run = s + 1;
    }
    buf_put(b, run, (size_t)(s - run));
}

/* Shortest decimal that reads back as the same double ("0.1", not "0.10000000000000001"), as
 * Go's strconv 'g' -1 does for the official clients; Inf and NaN spelled the Prometheus way. */
static void fmt_double(char out[32], double v)
{
    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

static void buf_double(struct buf *b, double v)
{
    char tmp[32];
    fmt_double(tmp, v);
    buf_puts(b, tmp);
}

static void buf_u64(struct buf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    buf_put(b, tmp, (size_t)n);
}

/* `name{a="x",b="y"[,le="..."]} ` — braces omitted when there are no labels at all. */
static void series(struct buf *b, const struct met_family *f, const struct met_child *ch,
                   const char *suffix, const char *le)
{
    buf_puts(b, f->name);
    if (suffix) buf_puts(b, suffix);
    if (f->nlabels || le) {
        buf_put(b, "{", 1);
        const char *v = ch->key;
        for (size_t i = 0; i < f->nlabels; i++, v += strlen(v) + 1) {
            if (i) buf_put(b, ",", 1);
            buf_puts(b, f->labels[i]);
            buf_put(b, "=\"", 2);
            buf_escaped(b, v, true);
            buf_put(b, "\"", 1);
        }
        if (le) {
            if (f->nlabels) buf_put(b, ",", 1);
            buf_put(b, "le=\"", 4);
            buf_puts(b, le);
            buf_put(b, "\"", 1);
        }
        buf_put(b, "}", 1);
    }
    buf_put(b, " ", 1);
}

/* Clears the counters' show_zero (children are not const when their family is). */
static void render_family(struct buf *b, const struct met_family *f)
{
    static const char *const type[] = {"counter", "gauge", "histogram"};
    buf_puts(b, "# HELP ");
    buf_puts(b, f->name);
    buf_put(b, " ", 1);
    buf_escaped(b, f->help, false);
    buf_puts(b, "\n# TYPE ");
    buf_puts(b, f->name);
    buf_put(b, " ", 1);
    buf_puts(b, type[f->kind]);
    buf_put(b, "\n", 1);

    for (struct met_child *ch = f->first; ch; ch = ch->next) {
        switch (f->kind) {
        case MET_COUNTER:
            series(b, f, ch, NULL, NULL);
            buf_u64(b, ch->show_zero ? 0 : met_counter_value(&ch->u.counter));
            buf_put(b, "\n", 1);
            ch->show_zero = 0;
            break;
        case MET_GAUGE:
            series(b, f, ch, NULL, NULL);
            buf_double(b, met_gauge_value(&ch->u.gauge));
            buf_put(b, "\n", 1);
            break;
        case MET_HISTOGRAM: {
            const struct met_hist *h = ch->u.hist;
            uint64_t cum = 0;
            char le[32];
            for (size_t k = 0; k <= h->nbounds; k++) {
                cum += h->buckets[k];
                if (k < h->nbounds)
                    fmt_double(le, h->bounds[k]);
                else
                    strcpy(le, "+Inf");
                series(b, f, ch, "_bucket", le);
                buf_u64(b, cum);
                buf_put(b, "\n", 1);
            }
            series(b, f, ch, "_sum", NULL);
            buf_double(b, h->sum);
            buf_put(b, "\n", 1);
            series(b, f, ch, "_count", NULL);
            buf_u64(b, h->count);
            buf_put(b, "\n", 1);
            break;
        }
        }
    }
}

int met_render(const struct met_registry *reg, char **out, size_t *len)
{
    /* Sized from the last page (+1/8): doubling from 4 KiB to a 13 MB page would leave a 16 MB
     * block behind in the heap after every scrape. */
    struct buf b = {0};
    if (reg && reg->rs->last_len) buf_reserve(&b, reg->rs->last_len + reg->rs->last_len / 8);
    *out = NULL;
    *len = 0;
    buf_put(&b, "", 0); /* an empty registry still renders "" */
    for (size_t i = 0; reg && i < reg->nfams; i++) render_family(&b, reg->fams[i]);
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    if (reg) reg->rs->last_len = b.len;
    return 0;
}
