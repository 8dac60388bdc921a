/* health: the readiness verdict behind /health/ready, pure (no I/O, no clock): the caller gathers
 * the facts (journal, start-up, leader streams) and this module decides and renders the JSON body.
 *
 * Ready means: the journal can take a fill (its PostgreSQL session is up, or PostgreSQL is away
 * and the local spool takes the writes: then "journal" reads "spool"), start-up
 * is done (time, instruments, the leaders' positions, reconciliation, every leader stream up once
 * with its start-up backfill) and every leader stream is up now. Followers whose state is still
 * loading do not make it unready (their copies wait for it; copier.h): "followers_loading" counts
 * them. A stream's freshness is enforced below us: the websocket client hangs up a link with no
 * PONG within its silence bound, so "up" implies a frame or pong within that bound.
 *
 * Body when ready:     {"status":"ready","journal":"up","streams_up":N,"streams":N,"followers_loading":N}
 * Body when not ready: {"status":"not_ready",...the same fields...,"problems":[{"check":"journal","detail":"..."},
 *                        {"check":"stream","account":"lead","detail":"down since ... (reason)"},
 *                        {"check":"startup","detail":"..."}]} */
#ifndef CT_HEALTH_H
#define CT_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct health_stream {
    const char *account;  /* the leader account's name */
    bool up;
    int64_t since_ms;     /* wall clock (ms since the epoch) of the last state change; 0 = never */
    const char *reason;   /* why it is not up ("connect failed: ..."); NULL or "" = none known */
};

struct health_facts {
    bool journal_connected;
    bool journal_spooling;     /* PostgreSQL away (or slow), the spool takes the writes */
    bool journal_writable;     /* connected, or spooling to a working spool */
    const char *journal_error; /* the journal's last error; NULL or "" = none */
    bool started;              /* copier_ready: start-up done, every leader stream up once */
    size_t followers_loading;  /* followers whose state still loads (after READY: not a problem) */
    bool draining;             /* shutting down: never ready */
    const struct health_stream *streams;
    size_t n_streams;
    int64_t now_ms;            /* wall clock, for "down for N s" */
};

/* Decides readiness and renders the JSON body (malloc'd, NUL-terminated, caller frees *body;
 * *len excludes the NUL). Returns the HTTP status, 200 (ready) or 503 (not ready), or -EINVAL
 * (f, body or len NULL, or streams NULL with n_streams > 0) or -ENOMEM. */
int health_ready(const struct health_facts *f, char **body, size_t *len);

#endif
