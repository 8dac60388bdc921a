#include "sim_config.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

struct pctx {
    const char *origin;
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int fail(struct pctx *p, const char *field,
                                                      const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(p->err, p->errlen, "%s: field '%s': ", p->origin, field);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static int check_keys(struct pctx *p, json_t *obj, const char *where, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(k, allowed[i]) == 0)
                ok = true;
        if (!ok) {
            char f[160];
            snprintf(f, sizeof(f), "%s%s%s", where, where[0] ? "." : "", k);
            return fail(p, f, "unknown key");
        }
    }
    return 0;
}

static int get_int(struct pctx *p, json_t *o, const char *key, int lo, int hi, int def, int *out)
{
    int64_t v;
    int rc = ju_get_i64(o, key, &v);
    if (rc == -ENOENT) {
        *out = def;
        return 0;
    }
    if (rc < 0 || v < lo || v > hi)
        return fail(p, key, "must be an integer in [%d, %d]", lo, hi);
    *out = (int)v;
    return 0;
}

/* Decimal field of obj; path names it in errors. min_sign: -2 any, 0 >= 0, 1 > 0. */
static int get_dec(struct pctx *p, json_t *o, const char *path, const char *key, bool required,
                   dec_t def, int min_sign, dec_t *out)
{
    char f[160];
    snprintf(f, sizeof(f), "%s.%s", path, key);
    int rc = ju_get_dec(o, key, out);
    if (rc == -ENOENT) {
        if (required)
            return fail(p, f, "missing");
        *out = def;
        return 0;
    }
    if (rc < 0)
        return fail(p, f, "must be a decimal string such as \"0.001\"");
    if (min_sign == 1 && dec_sign(*out) <= 0)
        return fail(p, f, "must be > 0");
    if (min_sign == 0 && dec_sign(*out) < 0)
        return fail(p, f, "must be >= 0");
    return 0;
}

static int get_str(struct pctx *p, json_t *o, const char *path, const char *key, size_t maxlen,
                   const char **out)
{
    char f[160];
    snprintf(f, sizeof(f), "%s.%s", path, key);
    int rc = ju_get_str(o, key, out);
    if (rc == -ENOENT)
        return fail(p, f, "missing");
    if (rc < 0)
        return fail(p, f, "must be a string");
    size_t n = strlen(*out);
    if (n == 0 || n > maxlen)
        return fail(p, f, "must be 1..%zu characters", maxlen);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)(*out)[i];
        if (c <= 0x20 || c >= 0x7f)
            return fail(p, f, "must be printable ASCII without spaces");
    }
    return 0;
}

static int parse_account(struct pctx *p, json_t *o, size_t i, struct scfg_account *a)
{
    static const char *const keys[] = {"name", "api_key", "api_secret", "balance", "position_mode",
                                       "leverage", "unsigned_ok", NULL};
    char path[64];
    const char *s;
    snprintf(path, sizeof(path), "accounts[%zu]", i);
    if (!json_is_object(o))
        return fail(p, path, "must be an object");
    int rc = check_keys(p, o, path, keys);
    if (rc < 0)
        return rc;
    if ((rc = get_str(p, o, path, "name", MKT_ACCOUNT_MAX - 1, &s)) < 0)
        return rc;
    for (const char *c = s; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                  *c == '_' || *c == '-' || *c == '.';
        if (!ok) {
            char f[96];
            snprintf(f, sizeof(f), "%s.name", path);
            return fail(p, f, "only letters, digits, '_', '-' and '.' are allowed");
        }
    }
    snprintf(a->name, sizeof(a->name), "%s", s);
    if ((rc = get_str(p, o, path, "api_key", 256, &s)) < 0)
        return rc;
    if (!(a->api_key = strdup(s)))
        return -ENOMEM;
    if ((rc = get_str(p, o, path, "api_secret", 256, &s)) < 0)
        return rc;
    if (!(a->api_secret = strdup(s)))
        return -ENOMEM;
    if ((rc = get_dec(p, o, path, "balance", false, DEC_ZERO, -2, &a->balance)) < 0)
        return rc;
    char f[96];
    a->position_mode = MKT_PM_ONE_WAY;
    json_t *pm = json_object_get(o, "position_mode");
    if (pm) {
        snprintf(f, sizeof(f), "%s.position_mode", path);
        if (!json_is_string(pm))
            return fail(p, f, "must be \"oneway\" or \"hedge\"");
        if (!strcmp(json_string_value(pm), "hedge"))
            a->position_mode = MKT_PM_HEDGE;
        else if (strcmp(json_string_value(pm), "oneway") != 0)
            return fail(p, f, "must be \"oneway\" or \"hedge\"");
    }
    int64_t lev = 20;
    rc = ju_get_i64(o, "leverage", &lev);
    if (rc == -ENOENT)
        lev = 20;
    else if (rc < 0 || lev < 1 || lev > 125) {
        snprintf(f, sizeof(f), "%s.leverage", path);
        return fail(p, f, "must be an integer in [1, 125]");
    }
    a->leverage = (int)lev;
    json_t *uo = json_object_get(o, "unsigned_ok");
    if (uo && !json_is_boolean(uo)) {
        snprintf(f, sizeof(f), "%s.unsigned_ok", path);
        return fail(p, f, "must be true or false");
    }
    a->unsigned_ok = uo && json_is_true(uo);
    return 0;
}

static int parse_symbol(struct pctx *p, json_t *o, size_t i, struct scfg_symbol *sy)
{
    static const char *const keys[] = {"symbol", "price", "step_size", "min_qty", "max_qty",
                                       "market_step_size", "market_min_qty", "market_max_qty",
                                       "tick_size", "min_price", "max_price", "min_notional", NULL};
    char path[64];
    const char *s;
    struct mkt_instrument *in = &sy->ins;
    snprintf(path, sizeof(path), "symbols[%zu]", i);
    if (!json_is_object(o))
        return fail(p, path, "must be an object");
    int rc = check_keys(p, o, path, keys);
    if (rc < 0)
        return rc;
    if ((rc = get_str(p, o, path, "symbol", MKT_SYMBOL_MAX - 1, &s)) < 0)
        return rc;
    for (const char *c = s; *c; c++) {
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))) {
            char f[96];
            snprintf(f, sizeof(f), "%s.symbol", path);
            return fail(p, f, "only upper-case letters and digits are allowed");
        }
    }
    snprintf(in->symbol, sizeof(in->symbol), "%s", s);
    if ((rc = get_dec(p, o, path, "price", true, DEC_ZERO, 1, &sy->price)) < 0 ||
        (rc = get_dec(p, o, path, "step_size", true, DEC_ZERO, 1, &in->step)) < 0 ||
        (rc = get_dec(p, o, path, "min_qty", false, in->step, 0, &in->min_qty)) < 0 ||
        (rc = get_dec(p, o, path, "max_qty", false, DEC_ZERO, 0, &in->max_qty)) < 0 ||
        (rc = get_dec(p, o, path, "market_step_size", false, in->step, 1, &in->mkt_step)) < 0 ||
        (rc = get_dec(p, o, path, "market_min_qty", false, in->min_qty, 0, &in->mkt_min_qty)) < 0 ||
        (rc = get_dec(p, o, path, "market_max_qty", false, in->max_qty, 0, &in->mkt_max_qty)) < 0 ||
        (rc = get_dec(p, o, path, "tick_size", true, DEC_ZERO, 1, &in->tick)) < 0 ||
        (rc = get_dec(p, o, path, "min_price", false, DEC_ZERO, 0, &in->min_price)) < 0 ||
        (rc = get_dec(p, o, path, "max_price", false, DEC_ZERO, 0, &in->max_price)) < 0 ||
        (rc = get_dec(p, o, path, "min_notional", false, DEC_ZERO, 0, &in->min_notional)) < 0)
        return rc;
    char f[96];
    if (dec_sign(in->max_qty) > 0 && dec_cmp(in->max_qty, in->min_qty) < 0) {
        snprintf(f, sizeof(f), "%s.max_qty", path);
        return fail(p, f, "must be >= min_qty");
    }
    if (dec_sign(in->mkt_max_qty) > 0 && dec_cmp(in->mkt_max_qty, in->mkt_min_qty) < 0) {
        snprintf(f, sizeof(f), "%s.market_max_qty", path);
        return fail(p, f, "must be >= market_min_qty");
    }
    if (dec_sign(in->max_price) > 0 && dec_cmp(in->max_price, in->min_price) < 0) {
        snprintf(f, sizeof(f), "%s.max_price", path);
        return fail(p, f, "must be >= min_price");
    }
    if (dec_sign(in->max_price) > 0 && dec_cmp(sy->price, in->max_price) > 0) {
        snprintf(f, sizeof(f), "%s.price", path);
        return fail(p, f, "must be <= max_price");
    }
    return 0;
}

/* "rate_limits" (optional object). */
static int parse_limits(struct pctx *p, json_t *o, struct slim_cfg *l)
{
    static const char *const keys[] = {"enabled", "weight_1m", "orders_10s", "orders_1m", "ban_after",
                                       "ban_s", "ban_max_s", "bybit_trade_per_s", "bybit_query_per_s",
                                       NULL};
    static const struct {
        const char *key;
        size_t off;
        int lo;
    } ints[] = {
        {"weight_1m", offsetof(struct slim_cfg, weight_1m), 1},
        {"orders_10s", offsetof(struct slim_cfg, orders_10s), 1},
        {"orders_1m", offsetof(struct slim_cfg, orders_1m), 1},
        {"ban_after", offsetof(struct slim_cfg, ban_after), 0},
        {"ban_s", offsetof(struct slim_cfg, ban_s), 1},
        {"ban_max_s", offsetof(struct slim_cfg, ban_max_s), 1},
        {"bybit_trade_per_s", offsetof(struct slim_cfg, bybit_trade_per_s), 1},
        {"bybit_query_per_s", offsetof(struct slim_cfg, bybit_query_per_s), 1},
    };
    int rc;
    slim_cfg_default(l);
    if (!o)
        return 0;
    if (!json_is_object(o))
        return fail(p, "rate_limits", "must be an object");
    if ((rc = check_keys(p, o, "rate_limits", keys)) < 0)
        return rc;
    json_t *en = json_object_get(o, "enabled");
    if (en && !json_is_boolean(en))
        return fail(p, "rate_limits.enabled", "must be true or false");
    if (en)
        l->enabled = json_is_true(en);
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        int *dst = (int *)((char *)l + ints[i].off);
        int64_t v;
        rc = ju_get_i64(o, ints[i].key, &v);
        if (rc == -ENOENT)
            continue;
        if (rc < 0 || v < ints[i].lo || v > 1000000000) {
            char f[64];
            snprintf(f, sizeof(f), "rate_limits.%s", ints[i].key);
            return fail(p, f, "must be an integer in [%d, 1000000000]", ints[i].lo);
        }
        *dst = (int)v;
    }
    if (l->ban_max_s < l->ban_s)
        return fail(p, "rate_limits.ban_max_s", "must be >= ban_s");
    return 0;
}

struct scfg *scfg_free(struct scfg *c)
{
    if (!c)
        return NULL;
    for (size_t i = 0; i < c->naccounts; i++) {
        free(c->accounts[i].api_key);
        if (c->accounts[i].api_secret)
            memset(c->accounts[i].api_secret, 0, strlen(c->accounts[i].api_secret));
        free(c->accounts[i].api_secret);
    }
    free(c->accounts);
    free(c->symbols);
    free(c);
    return NULL;
}

int scfg_parse(const char *text, size_t len, const char *origin, struct scfg **out, char *err,
               size_t errlen)
{
    static const char *const keys[] = {"port", "admin_port", "ping_interval_s", "listen_key_ttl_s",
                                       "event_log_limit", "accounts", "symbols", "rate_limits", NULL};
    struct pctx p = {origin, err, errlen};
    json_error_t je;
    int rc;
    struct scfg *c = NULL;
    json_t *seen_names = NULL, *seen_keys = NULL;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);

    if (!root) {
        snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", origin, je.line, je.column, je.text);
        return -EINVAL;
    }
    if (!json_is_object(root)) {
        rc = fail(&p, "(top level)", "must be an object");
        goto out;
    }
    if ((rc = check_keys(&p, root, "", keys)) < 0)
        goto out;
    c = calloc(1, sizeof(*c));
    if (!c) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = get_int(&p, root, "port", 0, 65535, 0, &c->port)) < 0 ||
        (rc = get_int(&p, root, "admin_port", 0, 65535, 0, &c->admin_port)) < 0 ||
        (rc = get_int(&p, root, "ping_interval_s", 1, 65000, 180, &c->ping_interval_s)) < 0 ||
        (rc = get_int(&p, root, "listen_key_ttl_s", 1, 100000000, 3600, &c->listen_key_ttl_s)) < 0 ||
        (rc = get_int(&p, root, "event_log_limit", 0, 1000000000, 0, &c->event_log_limit)) < 0)
        goto out;
    if ((rc = parse_limits(&p, json_object_get(root, "rate_limits"), &c->limits)) < 0)
        goto out;

    json_t *accts = json_object_get(root, "accounts");
    if (!json_is_array(accts) || json_array_size(accts) == 0) {
        rc = fail(&p, "accounts", "must be a non-empty array");
        goto out;
    }
    c->accounts = calloc(json_array_size(accts), sizeof(*c->accounts));
    if (!c->accounts) {
        rc = -ENOMEM;
        goto out;
    }
    /* Names and keys seen so far -> their index (jansson objects as hash tables: comparing
     * every pair took 100 s with 100,000 accounts). The first clash in account order is
     * reported, against the earliest account it repeats (a name before a key of the same one). */
    seen_names = json_object();
    seen_keys = json_object();
    if (!seen_names || !seen_keys) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < json_array_size(accts); i++) {
        c->naccounts = i + 1;
        if ((rc = parse_account(&p, json_array_get(accts, i), i, &c->accounts[i])) < 0)
            goto out;
        json_t *jn = json_object_get(seen_names, c->accounts[i].name);
        json_t *jk = json_object_get(seen_keys, c->accounts[i].api_key);
        if (jn || jk) {
            char f[64];
            size_t dn = jn ? (size_t)json_integer_value(jn) : SIZE_MAX;
            size_t dk = jk ? (size_t)json_integer_value(jk) : SIZE_MAX;
            if (dn <= dk) {
                snprintf(f, sizeof(f), "accounts[%zu].name", i);
                rc = fail(&p, f, "duplicate of accounts[%zu].name", dn);
            } else {
                snprintf(f, sizeof(f), "accounts[%zu].api_key", i);
                rc = fail(&p, f, "same API key as accounts[%zu]", dk);
            }
            goto out;
        }
        if (json_object_set_new(seen_names, c->accounts[i].name, json_integer((json_int_t)i)) < 0 ||
            json_object_set_new(seen_keys, c->accounts[i].api_key, json_integer((json_int_t)i)) < 0) {
            rc = -ENOMEM;
            goto out;
        }
    }

    json_t *syms = json_object_get(root, "symbols");
    if (!json_is_array(syms) || json_array_size(syms) == 0) {
        rc = fail(&p, "symbols", "must be a non-empty array");
        goto out;
    }
    c->symbols = calloc(json_array_size(syms), sizeof(*c->symbols));
    if (!c->symbols) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < json_array_size(syms); i++) {
        c->nsymbols = i + 1;
        if ((rc = parse_symbol(&p, json_array_get(syms, i), i, &c->symbols[i])) < 0)
            goto out;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->symbols[j].ins.symbol, c->symbols[i].ins.symbol) == 0) {
                char f[64];
                snprintf(f, sizeof(f), "symbols[%zu].symbol", i);
                rc = fail(&p, f, "duplicate of symbols[%zu].symbol", j);
                goto out;
            }
        }
    }
    rc = 0;
out:
    json_decref(seen_names);
    json_decref(seen_keys);
    json_decref(root);
    if (rc < 0) {
        if (rc == -ENOMEM)
            snprintf(err, errlen, "%s: out of memory", origin);
        scfg_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int scfg_load(const char *path, struct scfg **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;

    if (!f) {
        rc = -errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return rc;
    }
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            if (cap > (16u << 20)) {
                snprintf(err, errlen, "%s: file too large", path);
                rc = -EFBIG;
                goto out;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = -ENOMEM;
                snprintf(err, errlen, "%s: out of memory", path);
                goto out;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        rc = -EIO;
        snprintf(err, errlen, "%s: read error", path);
        goto out;
    }
    rc = scfg_parse(buf ? buf : "", len, path, out, err, errlen);
out:
    free(buf);
    fclose(f);
    return rc;
}
