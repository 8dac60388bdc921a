/* sim_fault: the simulator's fault table (pure: no I/O, the clock is passed in). The admin API
 * adds faults (POST /admin/fault), the REST dispatch asks which faults hit a request
 * (sfault_match_http), the websocket layer asks per stream event (sfault_match_ws_event); the
 * caller applies the effect. Every application is counted in the fault's hits.
 *
 * A fault: {"account":"f1"|"*", "endpoint":"POST /fapi/v1/order"|"*"|"/fapi/v1/order"|
 * "POST /v5/order/" + star (a trailing star matches a prefix), "kind":..., "count":N (next N matching requests; default unlimited),
 * "probability":p (default 1), "seed":n (default 1), "duration_ms":d (active for d ms; default
 * until cleared), kind parameters}. Kinds and parameters:
 *   latency      "ms" | "min_ms"+"max_ms" (uniform) | "mean_ms"+"sd_ms" (normal, >= 0);
 *                "after_place" (default true): the request is handled at once and only the
 *                answer waits; false: the request itself waits, then is handled
 *   http_5xx     "status" 500..599 (default 500); nothing is handled
 *   429, 418     "retry_after_s" (default 1 / 120); nothing is handled
 *   503_unknown  the request IS handled (an order is placed and its events published), then
 *                answered 503 "Unknown error, please check your request or try again later."
 *   reset        the connection is closed (TCP RST) without an answer; "after_place" (default
 *                false): handled first
 *   ws_drop, ws_silent, listen_key_expire: applied once when added (by the caller), kept for
 *                the record; ws_silent lasts "duration_ms" or until cleared
 *   ws_duplicate, ws_reorder: per stream event of the account
 * Stream kinds act on the account's Binance user-data streams (sim_ws) and Bybit private
 * websockets (sim_by_ws); listen_key_expire on Binance only (Bybit has no listen key).
 * Latency combines with one other HTTP kind on the same request (the earliest added wins). */
#ifndef CT_SIM_FAULT_H
#define CT_SIM_FAULT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim_buf.h"

enum sfault_kind {
    SFAULT_LATENCY = 0,
    SFAULT_HTTP_5XX,
    SFAULT_429,
    SFAULT_418,
    SFAULT_503_UNKNOWN,
    SFAULT_RESET,
    SFAULT_WS_DROP,
    SFAULT_WS_SILENT,
    SFAULT_WS_DUPLICATE,
    SFAULT_WS_REORDER,
    SFAULT_LISTEN_KEY_EXPIRE,
};

enum sfault_dist { SFAULT_FIXED = 0, SFAULT_UNIFORM, SFAULT_NORMAL };

#define SFAULT_ACCOUNT_MAX 64
#define SFAULT_PATH_MAX 160

struct sfault_spec {
    enum sfault_kind kind;
    char account[SFAULT_ACCOUNT_MAX]; /* "*" = every account, and requests without one */
    char method[16];                  /* "*" = any */
    char path[SFAULT_PATH_MAX];       /* "*" = any; a trailing star = prefix */
    enum sfault_dist dist;
    int ms, min_ms, max_ms;           /* latency */
    double mean_ms, sd_ms;            /* latency, normal */
    bool after_place;                 /* latency (default true), reset (default false) */
    int status;                       /* http_5xx */
    int retry_after_s;                /* 429, 418 */
    int64_t duration_ms;              /* 0: until cleared */
    int64_t count;                    /* -1: unlimited */
    double probability;               /* 0..1 */
    uint64_t seed;
};

/* One fault as held by the table; read-only outside sim_fault.c. */
struct sfault {
    int64_t id;
    struct sfault_spec spec;
    int64_t created_ms;
    int64_t hits;      /* applications */
    int64_t remaining; /* -1 unlimited */
    uint64_t rng;
    json_t *orig;      /* the object it was added with */
};

struct sfault_table;

struct sfault_table *sfault_new(void);
struct sfault_table *sfault_free(struct sfault_table *t);

const char *sfault_kind_name(enum sfault_kind k);
/* Parses a fault object (see above). 0, or -EINVAL with a message and the offending field. */
int sfault_parse(json_t *o, struct sfault_spec *out, char *err, size_t errlen, const char **field);
/* Adds a fault (orig is kept, a reference is taken; may be NULL). Returns it or NULL (ENOMEM). */
const struct sfault *sfault_add(struct sfault_table *t, const struct sfault_spec *spec, json_t *orig,
                                int64_t now_ms);
/* Removes one fault (-ENOENT if unknown) or, with id < 0, all; returns how many were removed. */
int sfault_clear(struct sfault_table *t, int64_t id);
size_t sfault_count(const struct sfault_table *t);
const struct sfault *sfault_at(const struct sfault_table *t, size_t i); /* oldest first */
const struct sfault *sfault_by_id(const struct sfault_table *t, int64_t id);
/* Adds n applications to a fault's hits (immediate kinds). */
void sfault_note(struct sfault_table *t, int64_t id, int64_t n);
/* A one-shot fault is done: no longer active (it stays listed). */
void sfault_finish(struct sfault_table *t, int64_t id);
/* Active: not expired and count not used up. */
bool sfault_active(const struct sfault *f, int64_t now_ms);

struct sfault_http_hit {
    bool latency;       /* delay_ms applies */
    int delay_ms;
    bool hold;          /* latency with after_place false: handle the request after the delay */
    bool outcome;       /* kind applies */
    enum sfault_kind kind;
    int status;         /* http_5xx */
    int retry_after_s;  /* 429, 418 */
    bool after_place;   /* reset */
    int64_t latency_id, outcome_id;
};

/* The faults hitting one request of account (NULL: no account) on method + path; counts them.
 * Returns true if anything applies. */
bool sfault_match_http(struct sfault_table *t, const char *account, const char *method,
                       const char *path, int64_t now_ms, struct sfault_http_hit *out);

#define SFAULT_WS_DUP 1u
#define SFAULT_WS_HOLD 2u
/* For one stream event of account: SFAULT_WS_DUP and/or SFAULT_WS_HOLD (counted). */
unsigned sfault_match_ws_event(struct sfault_table *t, const char *account, int64_t now_ms);

/* GET /admin/faults: [{"id","kind","account","endpoint","hits","remaining" (null: unlimited),
 * "active","created","spec":{as added}}]. */
void sfault_list_json(const struct sfault_table *t, int64_t now_ms, struct sbuf *b);
void sfault_json(const struct sfault *f, int64_t now_ms, struct sbuf *b);

#endif
