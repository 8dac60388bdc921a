/* fill_dedupe: the in-memory half of invariant 4 (a leader fill is processed once). Remembers the
 * most recent (account, symbol, trade id) keys, bounded: the oldest are forgotten first. Forgetting
 * is safe because the journal's unique key is the durable half; this set only spares the hot path a
 * database round trip for the duplicates a reconnect or a replaying exchange sends. */
#ifndef CT_FILL_DEDUPE_H
#define CT_FILL_DEDUPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fill_dedupe;

struct fill_dedupe *fill_dedupe_new(size_t capacity);
struct fill_dedupe *fill_dedupe_free(struct fill_dedupe *d);
/* true if the key was seen (and is still remembered); otherwise remembers it and returns false. */
bool fill_dedupe_seen(struct fill_dedupe *d, const char *account, const char *symbol, const char *trade_id);
/* true if the key is remembered; never adds it. */
bool fill_dedupe_contains(const struct fill_dedupe *d, const char *account, const char *symbol,
                          const char *trade_id);
/* Forget a key (its processing failed before it was journaled, so a later copy must be taken). */
void fill_dedupe_forget(struct fill_dedupe *d, const char *account, const char *symbol, const char *trade_id);
size_t fill_dedupe_size(const struct fill_dedupe *d);

#endif
