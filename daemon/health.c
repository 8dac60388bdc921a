/* health: see health.h. jansson builds the body so account names and error texts are escaped. */
#include "health.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

static int add_problem(json_t *problems, const char *check, const char *account, const char *detail) {
    json_t *p = json_object();
    if (!p) return -ENOMEM;
    if (json_object_set_new(p, "check", json_string(check)) < 0 ||
        (account && json_object_set_new(p, "account", json_string(account)) < 0) ||
        json_object_set_new(p, "detail", json_string(detail)) < 0 || json_array_append_new(problems, p) < 0)
        return -ENOMEM;
    return 0;
}

/* "2026-11-21T23:30:00Z" from ms since the epoch. */
static void fmt_time(int64_t ms, char *buf, size_t n) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) snprintf(buf, n, "?");
}

static int stream_problem(json_t *problems, const struct health_stream *s, int64_t now_ms) {
    char detail[384], when[32];
    const char *why = s->reason && s->reason[0] ? s->reason : NULL;
    if (s->since_ms <= 0) {
        snprintf(detail, sizeof(detail), "never up%s%s", why ? ": " : "", why ? why : "");
    } else {
        int64_t for_s = now_ms > s->since_ms ? (now_ms - s->since_ms) / 1000 : 0;
        fmt_time(s->since_ms, when, sizeof(when));
        snprintf(detail, sizeof(detail), "down since %s (%" PRId64 " s)%s%s", when, for_s,
                 why ? ": " : "", why ? why : "");
    }
    return add_problem(problems, "stream", s->account ? s->account : "", detail);
}

int health_ready(const struct health_facts *f, char **body, size_t *len) {
    json_t *root = NULL, *problems = NULL;
    size_t up = 0;
    int r = -ENOMEM, status;

    if (!f || !body || !len || (f->n_streams && !f->streams)) return -EINVAL;
    *body = NULL;
    *len = 0;
    root = json_object();
    problems = json_array();
    if (!root || !problems) goto out;

    if (f->draining && add_problem(problems, "shutdown", NULL, "draining: not taking new fills") < 0) goto out;
    if (!f->journal_writable) {
        char detail[384];
        const char *e = f->journal_error && f->journal_error[0] ? f->journal_error : NULL;
        snprintf(detail, sizeof(detail), "%s%s%s",
                 f->journal_spooling ? "not connected and the spool refuses writes" : "not connected",
                 e ? ": " : "", e ? e : "");
        if (add_problem(problems, "journal", NULL, detail) < 0) goto out;
    }
    for (size_t i = 0; i < f->n_streams; i++) {
        if (f->streams[i].up) up++;
        else if (stream_problem(problems, &f->streams[i], f->now_ms) < 0) goto out;
    }
    /* Start-up not done while every stream is up now means time, instruments or positions are
     * still being fetched; otherwise the stream problems above already say why. */
    if (!f->started &&
        add_problem(problems, "startup", NULL,
                    up == f->n_streams ? "start-up not finished (time, instruments, leader positions, "
                                         "reconciliation, backfill)"
                                       : "start-up not finished (waiting for the leader streams)") < 0)
        goto out;

    status = json_array_size(problems) ? 503 : 200;
    if (json_object_set_new(root, "status", json_string(status == 200 ? "ready" : "not_ready")) < 0 ||
        json_object_set_new(root, "journal", json_string(!f->journal_writable ? "down"
                                                         : f->journal_spooling || !f->journal_connected
                                                             ? "spool" : "up")) < 0 ||
        json_object_set_new(root, "streams_up", json_integer((json_int_t)up)) < 0 ||
        json_object_set_new(root, "streams", json_integer((json_int_t)f->n_streams)) < 0 ||
        json_object_set_new(root, "followers_loading", json_integer((json_int_t)f->followers_loading)) < 0)
        goto out;
    if (status != 200) {
        if (json_object_set(root, "problems", problems) < 0) goto out;
    }
    *body = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*body) goto out;
    *len = strlen(*body);
    r = status;
out:
    json_decref(problems);
    json_decref(root);
    return r;
}
