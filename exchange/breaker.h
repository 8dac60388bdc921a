/* breaker: a circuit breaker for one exchange host.
 *
 *   CLOSED --(failures in a row >= failures, or failure ratio >= ratio_pct over ratio_window_ms
 *             with >= ratio_min results)--> OPEN
 *   OPEN --(cool-down over; the next admission attempt)--> HALF_OPEN
 *   HALF_OPEN: exactly one probe request goes out (a cheap idempotent one: a request marked
 *             probe-able, or the configured probe URL — never an order); everything else is
 *             refused. Probe ok -> CLOSED; probe failed -> OPEN again with the cool-down doubled
 *             (up to cooldown_max_ms).
 *
 * A failure is a transport error or an HTTP 5xx (the host is unwell); 4xx answers, throttles
 * and business rejections are successes here (the host answered). Results of requests sent
 * before the breaker opened do not move it while it is open or half-open.
 *
 * Pure logic with the time passed in (wall or monotonic ms, consistently); thread-safe (one
 * mutex), as a host's breaker is shared by every account on that host. */
#ifndef CT_BREAKER_H
#define CT_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum breaker_state { BREAKER_CLOSED = 0, BREAKER_OPEN = 1, BREAKER_HALF_OPEN = 2 };

struct breaker_cfg {
    const char *name;          /* for metrics (copied) */
    int failures;              /* consecutive failures that open it; 0 = 5 */
    int ratio_pct;             /* failure ratio that opens it, 1..100; 0 = 50 */
    int ratio_min;             /* results needed in the window before the ratio counts; 0 = 20 */
    int64_t ratio_window_ms;   /* 0 = 10000 */
    int64_t cooldown_ms;       /* open before the first probe; 0 = 5000 */
    int64_t cooldown_max_ms;   /* cap of the doubling; 0 = 60000 */
    const char *probe_url;     /* GET used as the probe when no probe-able request comes (e.g.
                                  ".../fapi/v1/time"); NULL = wait for a probe-able request */
};

enum breaker_verdict {
    BREAKER_ALLOW = 0, /* closed: send */
    BREAKER_PROBE,     /* send it as the one half-open probe; report with was_probe = true */
    BREAKER_DENY,      /* do not send (open, or half-open with the probe taken or not probe-able) */
};

struct breaker_stats {
    char name[80];
    enum breaker_state state;
    int consecutive_failures;
    int64_t open_ms_left;     /* OPEN: cool-down left */
    uint64_t opens;           /* CLOSED/HALF_OPEN -> OPEN */
    uint64_t half_opens;      /* OPEN -> HALF_OPEN */
    uint64_t closes;          /* HALF_OPEN -> CLOSED */
    uint64_t denied;          /* requests refused (failed fast) */
    uint64_t probes;          /* probes granted */
    uint64_t failures_total, successes_total;
};

struct breaker;

/* NULL with errno EINVAL / ENOMEM. One reference. */
struct breaker *breaker_new(const struct breaker_cfg *cfg);
struct breaker *breaker_ref(struct breaker *b);
struct breaker *breaker_unref(struct breaker *b); /* takes NULL, returns NULL */
/* Replaces the thresholds (0 fields keep the current value; name and probe_url unchanged). */
int breaker_configure(struct breaker *b, const struct breaker_cfg *cfg);

/* May a request go out now? can_probe: the request is fit to be the half-open probe. */
enum breaker_verdict breaker_allow(struct breaker *b, bool can_probe, int64_t now_ms);
/* True when requests would be refused right now without a probe chance (OPEN, cooling down,
 * or HALF_OPEN with the probe out): callers fail fast before queueing. */
bool breaker_refusing(struct breaker *b, int64_t now_ms);
/* HALF_OPEN (or OPEN past its cool-down) with no probe out: claims the probe for the caller's
 * own probe request (the probe URL) and returns true; else false. */
bool breaker_take_probe(struct breaker *b, int64_t now_ms);
/* The result of a request that was let through. */
void breaker_record(struct breaker *b, bool ok, bool was_probe, int64_t now_ms);
/* A granted probe that was not sent (or was cancelled without an answer): another may go. */
void breaker_probe_abort(struct breaker *b);

enum breaker_state breaker_state(struct breaker *b, int64_t now_ms);
const char *breaker_probe_url(const struct breaker *b); /* NULL if none */
const char *breaker_state_name(enum breaker_state s);    /* "closed" / "open" / "half_open" */
void breaker_get_stats(struct breaker *b, int64_t now_ms, struct breaker_stats *out);

#endif
