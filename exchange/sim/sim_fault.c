#include "sim_fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sfault_table {
    struct sfault **v; /* oldest first */
    size_t n, cap;
    int64_t next_id;
};

static const char *const kind_names[] = {
    [SFAULT_LATENCY] = "latency",
    [SFAULT_HTTP_5XX] = "http_5xx",
    [SFAULT_429] = "429",
    [SFAULT_418] = "418",
    [SFAULT_503_UNKNOWN] = "503_unknown",
    [SFAULT_RESET] = "reset",
    [SFAULT_WS_DROP] = "ws_drop",
    [SFAULT_WS_SILENT] = "ws_silent",
    [SFAULT_WS_DUPLICATE] = "ws_duplicate",
    [SFAULT_WS_REORDER] = "ws_reorder",
    [SFAULT_LISTEN_KEY_EXPIRE] = "listen_key_expire",
};

const char *sfault_kind_name(enum sfault_kind k)
{
    return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

static bool is_ws_kind(enum sfault_kind k)
{
    return k >= SFAULT_WS_DROP;
}

struct sfault_table *sfault_new(void)
{
    struct sfault_table *t = calloc(1, sizeof(*t));
    if (t)
        t->next_id = 1;
    return t;
}

static void fault_free(struct sfault *f)
{
    if (f) {
        json_decref(f->orig);
        free(f);
    }
}

struct sfault_table *sfault_free(struct sfault_table *t)
{
    if (!t)
        return NULL;
    for (size_t i = 0; i < t->n; i++)
        fault_free(t->v[i]);
    free(t->v);
    free(t);
    return NULL;
}

/* ---- parsing ---- */

#define FAIL(fld, ...)                                                                              \
    do {                                                                                            \
        snprintf(err, errlen, __VA_ARGS__);                                                         \
        *field = (fld);                                                                             \
        return -EINVAL;                                                                             \
    } while (0)

/* Integer field in [lo, hi]: 1 found, 0 absent, -1 bad. */
static int get_int(json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return -1;
    *out = json_integer_value(v);
    return 1;
}

static int get_num(json_t *o, const char *key, double lo, double hi, double *out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi))
        return -1;
    *out = d;
    return 1;
}

static int get_bool(json_t *o, const char *key, bool *out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return -1;
    *out = json_is_true(v);
    return 1;
}

#define MAX_MS 600000

int sfault_parse(json_t *o, struct sfault_spec *out, char *err, size_t errlen, const char **field)
{
    static const char *const keys[] = {"kind", "account", "endpoint", "count", "probability", "seed",
                                       "duration_ms", "ms", "min_ms", "max_ms", "mean_ms", "sd_ms",
                                       "after_place", "status", "retry_after_s", NULL};
    const char *k;
    json_t *v;
    int64_t iv;
    int rc;

    *field = NULL;
    memset(out, 0, sizeof(*out));
    if (!json_is_object(o))
        FAIL(NULL, "the fault must be a JSON object");
    json_object_foreach(o, k, v) {
        bool ok = false;
        for (size_t i = 0; keys[i]; i++)
            if (!strcmp(k, keys[i]))
                ok = true;
        if (!ok) {
            snprintf(err, errlen, "unknown key '%s'", k);
            return -EINVAL;
        }
    }

    v = json_object_get(o, "kind");
    if (!v || !json_is_string(v))
        FAIL("kind", "field 'kind' is missing or not a string");
    bool found = false;
    for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
        if (!strcmp(json_string_value(v), kind_names[i])) {
            out->kind = (enum sfault_kind)i;
            found = true;
        }
    }
    if (!found)
        FAIL("kind", "unknown kind '%s' (latency, http_5xx, 429, 418, 503_unknown, reset, ws_drop, "
                     "ws_silent, ws_duplicate, ws_reorder, listen_key_expire)",
             json_string_value(v));

    v = json_object_get(o, "account");
    if (v && (!json_is_string(v) || json_string_length(v) == 0 ||
              json_string_length(v) >= sizeof(out->account)))
        FAIL("account", "field 'account' must be an account name or \"*\"");
    snprintf(out->account, sizeof(out->account), "%s", v ? json_string_value(v) : "*");

    v = json_object_get(o, "endpoint");
    const char *ep = "*";
    if (v) {
        if (!json_is_string(v) || json_string_length(v) == 0)
            FAIL("endpoint", "field 'endpoint' must be \"METHOD /path\", \"/path\" or \"*\"");
        ep = json_string_value(v);
    }
    if (is_ws_kind(out->kind) && strcmp(ep, "*") != 0)
        FAIL("endpoint", "kind %s applies to the account's streams: leave 'endpoint' out (or \"*\")",
             kind_names[out->kind]);
    const char *sp = strchr(ep, ' ');
    if (!strcmp(ep, "*")) {
        strcpy(out->method, "*");
        strcpy(out->path, "*");
    } else {
        const char *path = ep;
        if (sp) {
            size_t ml = (size_t)(sp - ep);
            if (ml == 0 || ml >= sizeof(out->method))
                FAIL("endpoint", "bad method in 'endpoint'");
            memcpy(out->method, ep, ml);
            out->method[ml] = '\0';
            path = sp + 1;
        } else {
            strcpy(out->method, "*");
        }
        if ((*path != '/' && strcmp(path, "*") != 0) || strlen(path) >= sizeof(out->path) || strchr(path, ' '))
            FAIL("endpoint", "the path in 'endpoint' must start with '/' (or be \"*\")");
        snprintf(out->path, sizeof(out->path), "%s", path);
    }

    out->count = -1;
    if ((rc = get_int(o, "count", 1, INT64_MAX / 2, &iv)) < 0)
        FAIL("count", "field 'count' must be an integer >= 1");
    if (rc)
        out->count = iv;
    out->probability = 1.0;
    if (get_num(o, "probability", 0.0, 1.0, &out->probability) < 0)
        FAIL("probability", "field 'probability' must be a number in [0, 1]");
    out->seed = 1;
    if ((rc = get_int(o, "seed", 0, INT64_MAX, &iv)) < 0)
        FAIL("seed", "field 'seed' must be an integer >= 0");
    if (rc)
        out->seed = (uint64_t)iv;
    if ((rc = get_int(o, "duration_ms", 1, INT64_MAX / 4, &iv)) < 0)
        FAIL("duration_ms", "field 'duration_ms' must be an integer >= 1");
    if (rc)
        out->duration_ms = iv;

    bool has_ms = json_object_get(o, "ms") != NULL;
    bool has_uni = json_object_get(o, "min_ms") || json_object_get(o, "max_ms");
    bool has_norm = json_object_get(o, "mean_ms") || json_object_get(o, "sd_ms");
    if (out->kind != SFAULT_LATENCY && (has_ms || has_uni || has_norm))
        FAIL("ms", "latency parameters are for kind latency only");
    if (out->kind == SFAULT_LATENCY) {
        if (has_ms + has_uni + has_norm != 1)
            FAIL("ms", "latency needs exactly one of: ms, min_ms+max_ms, mean_ms+sd_ms");
        if (has_ms) {
            if (get_int(o, "ms", 0, MAX_MS, &iv) < 0)
                FAIL("ms", "field 'ms' must be an integer in [0, %d]", MAX_MS);
            out->dist = SFAULT_FIXED;
            out->ms = (int)iv;
        } else if (has_uni) {
            int64_t lo, hi;
            if (get_int(o, "min_ms", 0, MAX_MS, &lo) <= 0)
                FAIL("min_ms", "field 'min_ms' must be an integer in [0, %d]", MAX_MS);
            if (get_int(o, "max_ms", 0, MAX_MS, &hi) <= 0 || hi < lo)
                FAIL("max_ms", "field 'max_ms' must be an integer in [min_ms, %d]", MAX_MS);
            out->dist = SFAULT_UNIFORM;
            out->min_ms = (int)lo;
            out->max_ms = (int)hi;
        } else {
            if (get_num(o, "mean_ms", 0, MAX_MS, &out->mean_ms) <= 0)
                FAIL("mean_ms", "field 'mean_ms' must be a number in [0, %d]", MAX_MS);
            if (get_num(o, "sd_ms", 0, MAX_MS, &out->sd_ms) <= 0)
                FAIL("sd_ms", "field 'sd_ms' must be a number in [0, %d]", MAX_MS);
            out->dist = SFAULT_NORMAL;
        }
    }

    out->after_place = out->kind == SFAULT_LATENCY;
    rc = get_bool(o, "after_place", &out->after_place);
    if (rc < 0)
        FAIL("after_place", "field 'after_place' must be true or false");
    if (rc && out->kind != SFAULT_LATENCY && out->kind != SFAULT_RESET)
        FAIL("after_place", "field 'after_place' is for kinds latency and reset only");

    out->status = 500;
    if ((rc = get_int(o, "status", 500, 599, &iv)) < 0)
        FAIL("status", "field 'status' must be an integer in [500, 599]");
    if (rc && out->kind != SFAULT_HTTP_5XX)
        FAIL("status", "field 'status' is for kind http_5xx only");
    if (rc)
        out->status = (int)iv;

    out->retry_after_s = out->kind == SFAULT_418 ? 120 : 1;
    if ((rc = get_int(o, "retry_after_s", 0, 100000000, &iv)) < 0)
        FAIL("retry_after_s", "field 'retry_after_s' must be an integer >= 0");
    if (rc && out->kind != SFAULT_429 && out->kind != SFAULT_418)
        FAIL("retry_after_s", "field 'retry_after_s' is for kinds 429 and 418 only");
    if (rc)
        out->retry_after_s = (int)iv;
    return 0;
}

/* ---- table ---- */

const struct sfault *sfault_add(struct sfault_table *t, const struct sfault_spec *spec, json_t *orig,
                                int64_t now_ms)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        struct sfault **nv = realloc(t->v, cap * sizeof(*nv));
        if (!nv)
            return NULL;
        t->v = nv;
        t->cap = cap;
    }
    struct sfault *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->id = t->next_id++;
    f->spec = *spec;
    f->created_ms = now_ms;
    f->remaining = spec->count;
    f->rng = spec->seed;
    f->orig = orig ? json_incref(orig) : NULL;
    t->v[t->n++] = f;
    return f;
}

int sfault_clear(struct sfault_table *t, int64_t id)
{
    if (id < 0) {
        int n = (int)t->n;
        for (size_t i = 0; i < t->n; i++)
            fault_free(t->v[i]);
        t->n = 0;
        return n;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (t->v[i]->id == id) {
            fault_free(t->v[i]);
            memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(t->v[0]));
            t->n--;
            return 1;
        }
    }
    return -ENOENT;
}

size_t sfault_count(const struct sfault_table *t)
{
    return t->n;
}

const struct sfault *sfault_at(const struct sfault_table *t, size_t i)
{
    return i < t->n ? t->v[i] : NULL;
}

static struct sfault *find(const struct sfault_table *t, int64_t id)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i]->id == id)
            return t->v[i];
    return NULL;
}

const struct sfault *sfault_by_id(const struct sfault_table *t, int64_t id)
{
    return find(t, id);
}

void sfault_note(struct sfault_table *t, int64_t id, int64_t n)
{
    struct sfault *f = find(t, id);
    if (f)
        f->hits += n;
}

void sfault_finish(struct sfault_table *t, int64_t id)
{
    struct sfault *f = find(t, id);
    if (f)
        f->remaining = 0;
}

bool sfault_active(const struct sfault *f, int64_t now_ms)
{
    if (f->remaining == 0)
        return false;
    return f->spec.duration_ms == 0 || now_ms < f->created_ms + f->spec.duration_ms;
}

/* ---- matching ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rnd01(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Does it fire this time? Consumes one of count when it does. */
static bool fire(struct sfault *f)
{
    if (f->spec.probability < 1.0 && rnd01(&f->rng) >= f->spec.probability)
        return false;
    if (f->remaining > 0)
        f->remaining--;
    f->hits++;
    return true;
}

static bool account_matches(const struct sfault *f, const char *account)
{
    if (!strcmp(f->spec.account, "*"))
        return true;
    return account && !strcmp(f->spec.account, account);
}

static bool endpoint_matches(const struct sfault *f, const char *method, const char *path)
{
    if (strcmp(f->spec.method, "*") != 0 && strcmp(f->spec.method, method) != 0)
        return false;
    const char *p = f->spec.path;
    size_t n = strlen(p);
    if (!strcmp(p, "*"))
        return true;
    if (n && p[n - 1] == '*')
        return strncmp(p, path, n - 1) == 0;
    return strcmp(p, path) == 0;
}

static int latency_ms(struct sfault *f)
{
    const struct sfault_spec *s = &f->spec;
    switch (s->dist) {
    case SFAULT_UNIFORM:
        return s->min_ms + (int)(rnd01(&f->rng) * (double)(s->max_ms - s->min_ms + 1));
    case SFAULT_NORMAL: {
        /* Irwin-Hall: the sum of 12 uniforms minus 6 is close enough to a standard normal for
         * latency (and needs no libm); clamped to [0, MAX_MS]. */
        double z = -6.0;
        for (int i = 0; i < 12; i++)
            z += rnd01(&f->rng);
        double v = s->mean_ms + s->sd_ms * z;
        return v < 0 ? 0 : v > MAX_MS ? MAX_MS : (int)(v + 0.5);
    }
    case SFAULT_FIXED:
    default:
        return s->ms;
    }
}

bool sfault_match_http(struct sfault_table *t, const char *account, const char *method,
                       const char *path, int64_t now_ms, struct sfault_http_hit *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < t->n; i++) {
        struct sfault *f = t->v[i];
        if (is_ws_kind(f->spec.kind) || !sfault_active(f, now_ms) || !account_matches(f, account) ||
            !endpoint_matches(f, method, path))
            continue;
        if (f->spec.kind == SFAULT_LATENCY) {
            if (out->latency || !fire(f))
                continue;
            out->latency = true;
            out->delay_ms = latency_ms(f);
            out->hold = !f->spec.after_place;
            out->latency_id = f->id;
        } else {
            if (out->outcome || !fire(f))
                continue;
            out->outcome = true;
            out->kind = f->spec.kind;
            out->status = f->spec.status;
            out->retry_after_s = f->spec.retry_after_s;
            out->after_place = f->spec.after_place;
            out->outcome_id = f->id;
        }
    }
    return out->latency || out->outcome;
}

unsigned sfault_match_ws_event(struct sfault_table *t, const char *account, int64_t now_ms)
{
    unsigned flags = 0;
    for (size_t i = 0; i < t->n; i++) {
        struct sfault *f = t->v[i];
        unsigned bit = f->spec.kind == SFAULT_WS_DUPLICATE ? SFAULT_WS_DUP
                       : f->spec.kind == SFAULT_WS_REORDER ? SFAULT_WS_HOLD : 0;
        if (!bit || (flags & bit) || !sfault_active(f, now_ms) || !account_matches(f, account))
            continue;
        if (fire(f))
            flags |= bit;
    }
    return flags;
}

/* ---- listing ---- */

void sfault_json(const struct sfault *f, int64_t now_ms, struct sbuf *b)
{
    sbuf_adds(b, "{\"id\":");
    sbuf_add_i64(b, f->id);
    sbuf_adds(b, ",\"kind\":");
    sbuf_add_jstr(b, sfault_kind_name(f->spec.kind));
    sbuf_adds(b, ",\"account\":");
    sbuf_add_jstr(b, f->spec.account);
    sbuf_adds(b, ",\"endpoint\":");
    if (!strcmp(f->spec.method, "*") && !strcmp(f->spec.path, "*")) {
        sbuf_adds(b, "\"*\"");
    } else {
        char ep[sizeof(f->spec.method) + sizeof(f->spec.path) + 2];
        snprintf(ep, sizeof(ep), "%s %s", f->spec.method, f->spec.path);
        sbuf_add_jstr(b, ep);
    }
    sbuf_adds(b, ",\"hits\":");
    sbuf_add_i64(b, f->hits);
    sbuf_adds(b, ",\"remaining\":");
    if (f->remaining < 0)
        sbuf_adds(b, "null");
    else
        sbuf_add_i64(b, f->remaining);
    sbuf_adds(b, sfault_active(f, now_ms) ? ",\"active\":true" : ",\"active\":false");
    sbuf_adds(b, ",\"created\":");
    sbuf_add_i64(b, f->created_ms);
    sbuf_adds(b, ",\"spec\":");
    char *s = f->orig ? json_dumps(f->orig, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    sbuf_adds(b, s ? s : "null");
    free(s);
    sbuf_addc(b, '}');
}

void sfault_list_json(const struct sfault_table *t, int64_t now_ms, struct sbuf *b)
{
    sbuf_addc(b, '[');
    for (size_t i = 0; i < t->n; i++) {
        if (i)
            sbuf_addc(b, ',');
        sfault_json(t->v[i], now_ms, b);
    }
    sbuf_addc(b, ']');
}
