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

#define HASH_NONFATAL_OOM 1 /* a failed add leaves the child out of the index (hh.tbl == NULL) */
#include <uthash.h>

enum met_kind { MET_COUNTER, MET_GAUGE, MET_HISTOGRAM };

#define MET_MAX_LABELS 16

struct met_counter {
    uint64_t value;
    uint64_t (*fn)(void *ud);
    void *ud;
};

struct met_gauge {
    double value;
    double (*fn)(void *ud);
    void *ud;
};

struct met_hist {
    const double *bounds; /* the family's, nbounds entries */
    size_t nbounds;
    double sum;
    uint64_t count;
    uint64_t buckets[]; /* nbounds + 1, per bucket (not cumulative); last is +Inf */
};

/* One child: its label values, then the kind-specific value. Children are allocated one by one
 * (never moved) so the pointers handed out stay valid while the family's array grows. */
struct met_child {
    char **values;
    char *key;         /* the values as one hash key (key_of) */
    UT_hash_handle hh; /* in the family's index, by key */
    union {
        struct met_counter counter;
        struct met_gauge gauge;
        struct met_hist *hist; /* separate block: flexible array */
    } u;
};

struct met_family {
    enum met_kind kind;
    char *name;
    char *help;
    size_t nlabels;
    char **labels;
    double *bounds; /* histograms only */
    size_t nbounds;
    struct met_child **children;
    size_t nchildren, cap;
    struct met_child *index; /* uthash by key: lookups were a scan, 10^9 strcmp a second with
                              * 10,000 accounts' rate budgets sampled every second */
};

struct met_registry {
    struct met_family **fams;
    size_t nfams, cap;
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
    return calloc(1, sizeof(struct met_registry));
}

static void child_free(struct met_child *ch, size_t nlabels)
{
    if (!ch) return;
    if (ch->values)
        for (size_t i = 0; i < nlabels; i++) free(ch->values[i]);
    free(ch->values);
    free(ch->key);
    free(ch);
}

static void family_free(struct met_family *f)
{
    if (!f) return;
    HASH_CLEAR(hh, f->index);
    for (size_t i = 0; i < f->nchildren; i++) {
        if (f->kind == MET_HISTOGRAM) free(f->children[i]->u.hist);
        child_free(f->children[i], f->nlabels);
    }
    free(f->children);
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

/* The label values as one hash key: each value's length, then its bytes (no separator can be
 * confused with a value's content). Malloc'ed; NULL on ENOMEM. */
static char *key_of(const char *const *vals, size_t n, size_t *len)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++) total += 21 + strlen(vals[i]);
    char *k = malloc(total), *p = k;
    if (!k) return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(vals[i]);
        p += sprintf(p, "%zu:", l);
        memcpy(p, vals[i], l);
        p += l;
    }
    *p = '\0';
    *len = (size_t)(p - k);
    return k;
}

static struct met_child *child_find_or_new(struct met_family *f, const char *const *vals,
                                           size_t n)
{
    struct met_child *ch = NULL;
    size_t klen = 0;
    char *key = key_of(vals, n, &klen);

    if (!key) goto fail;
    HASH_FIND(hh, f->index, key, klen, ch);
    if (ch) {
        free(key);
        return ch;
    }
    ch = calloc(1, sizeof *ch);
    if (!ch) goto fail;
    ch->key = key;
    key = NULL;
    if (n) {
        ch->values = calloc(n, sizeof *ch->values);
        if (!ch->values) goto fail;
        for (size_t i = 0; i < n; i++)
            if (!(ch->values[i] = strdup(vals[i]))) goto fail;
    }
    if (f->kind == MET_HISTOGRAM) {
        struct met_hist *h = calloc(1, sizeof *h + (f->nbounds + 1) * sizeof h->buckets[0]);
        if (!h) goto fail;
        h->bounds = f->bounds;
        h->nbounds = f->nbounds;
        ch->u.hist = h;
    }
    if (f->nchildren == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        struct met_child **c = realloc(f->children, cap * sizeof *c);
        if (!c) goto fail_hist;
        f->children = c;
        f->cap = cap;
    }
    HASH_ADD_KEYPTR(hh, f->index, ch->key, klen, ch);
    if (!ch->hh.tbl) goto fail_hist; /* uthash could not grow */
    f->children[f->nchildren++] = ch;
    return ch;

fail_hist:
    if (f->kind == MET_HISTOGRAM) free(ch->u.hist);
fail:
    free(key);
    child_free(ch, n);
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

void met_counter_inc(struct met_counter *c) { c->value++; }
void met_counter_add(struct met_counter *c, uint64_t n) { c->value += n; }
uint64_t met_counter_value(const struct met_counter *c)
{
    return c->fn ? c->fn(c->ud) : c->value;
}

void met_counter_set_fn(struct met_counter *c, uint64_t (*fn)(void *ud), void *ud)
{
    c->fn = fn;
    c->ud = fn ? ud : NULL;
}

void met_gauge_set(struct met_gauge *g, double v) { g->value = v; }
void met_gauge_add(struct met_gauge *g, double d) { g->value += d; }

void met_gauge_set_fn(struct met_gauge *g, double (*fn)(void *ud), void *ud)
{
    g->fn = fn;
    g->ud = fn ? ud : NULL;
}

double met_gauge_value(const struct met_gauge *g)
{
    return g->fn ? g->fn(g->ud) : g->value;
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
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1) cap *= 2;
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
        for (size_t i = 0; i < f->nlabels; i++) {
            if (i) buf_put(b, ",", 1);
            buf_puts(b, f->labels[i]);
            buf_put(b, "=\"", 2);
            buf_escaped(b, ch->values[i], true);
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

    for (size_t i = 0; i < f->nchildren; i++) {
        const struct met_child *ch = f->children[i];
        switch (f->kind) {
        case MET_COUNTER:
            series(b, f, ch, NULL, NULL);
            buf_u64(b, met_counter_value(&ch->u.counter));
            buf_put(b, "\n", 1);
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
    struct buf b = {0};
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
    return 0;
}
