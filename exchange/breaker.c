/* breaker: see breaker.h. */
#include "breaker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct breaker {
    pthread_mutex_t mu;
    unsigned refs;
    char name[80];
    char *probe_url;
    int failures, ratio_pct, ratio_min;
    int64_t ratio_window_ms, cooldown_ms, cooldown_max_ms;

    enum breaker_state state;
    int consecutive;
    int64_t win_start;
    int win_total, win_fail;
    int64_t open_until;
    int64_t cur_cooldown;
    bool probe_out;
    struct breaker_stats st;
};

static void apply_cfg(struct breaker *b, const struct breaker_cfg *c) {
    if (c->failures > 0) b->failures = c->failures;
    if (c->ratio_pct > 0) b->ratio_pct = c->ratio_pct;
    if (c->ratio_min > 0) b->ratio_min = c->ratio_min;
    if (c->ratio_window_ms > 0) b->ratio_window_ms = c->ratio_window_ms;
    if (c->cooldown_ms > 0) b->cooldown_ms = c->cooldown_ms;
    if (c->cooldown_max_ms > 0) b->cooldown_max_ms = c->cooldown_max_ms;
    if (b->cooldown_max_ms < b->cooldown_ms) b->cooldown_max_ms = b->cooldown_ms;
}

static bool cfg_ok(const struct breaker_cfg *c) {
    return c && c->failures >= 0 && c->ratio_pct >= 0 && c->ratio_pct <= 100 && c->ratio_min >= 0 &&
           c->ratio_window_ms >= 0 && c->cooldown_ms >= 0 && c->cooldown_max_ms >= 0;
}

struct breaker *breaker_new(const struct breaker_cfg *cfg) {
    if (!cfg_ok(cfg)) {
        errno = EINVAL;
        return NULL;
    }
    struct breaker *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b);
        errno = ENOMEM;
        return NULL;
    }
    if (cfg->probe_url && *cfg->probe_url && !(b->probe_url = strdup(cfg->probe_url))) {
        pthread_mutex_destroy(&b->mu);
        free(b);
        errno = ENOMEM;
        return NULL;
    }
    b->refs = 1;
    snprintf(b->name, sizeof b->name, "%s", cfg->name ? cfg->name : "");
    b->failures = 5;
    b->ratio_pct = 50;
    b->ratio_min = 20;
    b->ratio_window_ms = 10000;
    b->cooldown_ms = 5000;
    b->cooldown_max_ms = 60000;
    apply_cfg(b, cfg);
    b->cur_cooldown = b->cooldown_ms;
    b->state = BREAKER_CLOSED;
    return b;
}

struct breaker *breaker_ref(struct breaker *b) {
    if (!b) return NULL;
    pthread_mutex_lock(&b->mu);
    b->refs++;
    pthread_mutex_unlock(&b->mu);
    return b;
}

struct breaker *breaker_unref(struct breaker *b) {
    if (!b) return NULL;
    pthread_mutex_lock(&b->mu);
    unsigned left = --b->refs;
    pthread_mutex_unlock(&b->mu);
    if (left == 0) {
        free(b->probe_url);
        pthread_mutex_destroy(&b->mu);
        free(b);
    }
    return NULL;
}

int breaker_configure(struct breaker *b, const struct breaker_cfg *cfg) {
    if (!b || !cfg_ok(cfg)) return -EINVAL;
    pthread_mutex_lock(&b->mu);
    apply_cfg(b, cfg);
    if (b->state == BREAKER_CLOSED) b->cur_cooldown = b->cooldown_ms;
    pthread_mutex_unlock(&b->mu);
    return 0;
}

/* OPEN past its cool-down becomes HALF_OPEN (lazily, when someone looks). */
static void tick(struct breaker *b, int64_t now) {
    if (b->state == BREAKER_OPEN && now >= b->open_until) {
        b->state = BREAKER_HALF_OPEN;
        b->probe_out = false;
        b->st.half_opens++;
    }
}

static void open_now(struct breaker *b, int64_t now) {
    b->state = BREAKER_OPEN;
    b->open_until = now + b->cur_cooldown;
    b->probe_out = false;
    b->st.opens++;
}

enum breaker_verdict breaker_allow(struct breaker *b, bool can_probe, int64_t now_ms) {
    if (!b) return BREAKER_ALLOW;
    enum breaker_verdict v = BREAKER_DENY;
    pthread_mutex_lock(&b->mu);
    tick(b, now_ms);
    if (b->state == BREAKER_CLOSED) {
        v = BREAKER_ALLOW;
    } else if (b->state == BREAKER_HALF_OPEN && !b->probe_out && can_probe) {
        b->probe_out = true;
        b->st.probes++;
        v = BREAKER_PROBE;
    }
    if (v == BREAKER_DENY) b->st.denied++;
    pthread_mutex_unlock(&b->mu);
    return v;
}

bool breaker_refusing(struct breaker *b, int64_t now_ms) {
    if (!b) return false;
    pthread_mutex_lock(&b->mu);
    tick(b, now_ms);
    bool r = b->state == BREAKER_OPEN || (b->state == BREAKER_HALF_OPEN && b->probe_out);
    if (r) b->st.denied++;
    pthread_mutex_unlock(&b->mu);
    return r;
}

bool breaker_take_probe(struct breaker *b, int64_t now_ms) {
    if (!b) return false;
    pthread_mutex_lock(&b->mu);
    tick(b, now_ms);
    bool r = b->state == BREAKER_HALF_OPEN && !b->probe_out;
    if (r) {
        b->probe_out = true;
        b->st.probes++;
    }
    pthread_mutex_unlock(&b->mu);
    return r;
}

void breaker_record(struct breaker *b, bool ok, bool was_probe, int64_t now_ms) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    tick(b, now_ms);
    if (ok) b->st.successes_total++;
    else b->st.failures_total++;
    if (was_probe) {
        b->probe_out = false;
        if (b->state == BREAKER_HALF_OPEN) {
            if (ok) {
                b->state = BREAKER_CLOSED;
                b->st.closes++;
                b->consecutive = 0;
                b->win_total = b->win_fail = 0;
                b->cur_cooldown = b->cooldown_ms;
            } else {
                b->cur_cooldown *= 2;
                if (b->cur_cooldown > b->cooldown_max_ms) b->cur_cooldown = b->cooldown_max_ms;
                open_now(b, now_ms);
            }
        }
        pthread_mutex_unlock(&b->mu);
        return;
    }
    if (b->state != BREAKER_CLOSED) { /* a straggler from before it opened */
        pthread_mutex_unlock(&b->mu);
        return;
    }
    if (b->win_total == 0 || now_ms < b->win_start || now_ms - b->win_start >= b->ratio_window_ms) {
        b->win_start = now_ms;
        b->win_total = b->win_fail = 0;
    }
    b->win_total++;
    if (ok) {
        b->consecutive = 0;
    } else {
        b->consecutive++;
        b->win_fail++;
        bool ratio = b->win_total >= b->ratio_min &&
                     (int64_t)b->win_fail * 100 >= (int64_t)b->ratio_pct * b->win_total;
        if (b->consecutive >= b->failures || ratio) {
            b->cur_cooldown = b->cooldown_ms;
            open_now(b, now_ms);
        }
    }
    pthread_mutex_unlock(&b->mu);
}

void breaker_probe_abort(struct breaker *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->probe_out = false;
    pthread_mutex_unlock(&b->mu);
}

enum breaker_state breaker_state(struct breaker *b, int64_t now_ms) {
    if (!b) return BREAKER_CLOSED;
    pthread_mutex_lock(&b->mu);
    tick(b, now_ms);
    enum breaker_state s = b->state;
    pthread_mutex_unlock(&b->mu);
    return s;
}

const char *breaker_probe_url(const struct breaker *b) { return b ? b->probe_url : NULL; }

const char *breaker_state_name(enum breaker_state s) {
    switch (s) {
    case BREAKER_CLOSED: return "closed";
    case BREAKER_OPEN: return "open";
    case BREAKER_HALF_OPEN: return "half_open";
    }
    return "unknown";
}

void breaker_get_stats(struct breaker *b, int64_t now_ms, struct breaker_stats *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    tick(b, now_ms);
    *out = b->st;
    snprintf(out->name, sizeof out->name, "%s", b->name);
    out->state = b->state;
    out->consecutive_failures = b->consecutive;
    out->open_ms_left = b->state == BREAKER_OPEN ? b->open_until - now_ms : 0;
    pthread_mutex_unlock(&b->mu);
}
