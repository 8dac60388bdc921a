/* sim_evlog: an account's log of emitted user-stream events, kept byte for byte so they can be
 * replayed identically (duplicate-event injection) and inspected by tests. Sequence numbers
 * start at 1 and increase by one per event. With a limit, the oldest events are dropped once
 * more than `limit` are held (sequence numbers are never reused). */
#ifndef CT_SIM_EVLOG_H
#define CT_SIM_EVLOG_H

#include <stddef.h>
#include <stdint.h>

struct sevlog;

struct sevlog_entry {
    int64_t seq;
    int64_t time_ms;
    size_t len;
    char *text; /* NUL-terminated JSON text */
};

/* limit 0 = keep everything. */
struct sevlog *sevlog_new(size_t limit);
struct sevlog *sevlog_free(struct sevlog *l);
/* Copies text; returns the new entry's seq or -ENOMEM. */
int64_t sevlog_append(struct sevlog *l, const char *text, size_t len, int64_t time_ms);
/* Events held now (at most the limit). */
size_t sevlog_count(const struct sevlog *l);
/* Index (0..count) of the first held event with seq >= from_seq; count if none. */
size_t sevlog_first_from(const struct sevlog *l, int64_t from_seq);
/* Held event by index, oldest first. */
const struct sevlog_entry *sevlog_at(const struct sevlog *l, size_t i);
/* Seq of the next event to be appended. */
int64_t sevlog_next_seq(const struct sevlog *l);

#endif
