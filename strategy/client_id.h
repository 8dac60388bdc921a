/* client_id: deterministic client order ids for follower orders (safety invariant 1).
 *
 * One id per (leader account, symbol, leader trade id (text), copy rule id, leg). The same inputs give
 * the same id on every run and every host, so a resend or a restart reuses the id and the
 * exchange (and our journal) can recognise the order. Format, 26 characters:
 *
 *     "ct" <22 base62 chars: 128-bit hash of the fields> "_" <leg digit 0..9>
 *
 * which matches [A-Za-z0-9_-]{1,36} (Binance newClientOrderId and Bybit orderLinkId).
 * The hash is FNV-1a 128 over length-prefixed fields, then a bijective mix: distinct inputs
 * collide only with probability ~n^2/2^129. It is not a secret and not meant to resist an
 * adversary; the leg is appended in clear so the legs of one decision share a stem. */
#ifndef CT_CLIENT_ID_H
#define CT_CLIENT_ID_H

#include <stdbool.h>
#include <stdint.h>

#include "market.h"

#define CLIENT_ID_PREFIX "ct"
#define CLIENT_ID_LEN 26      /* strlen of every id client_id_make writes */
#define CLIENT_ID_MAX_LEG 9u

/* Write the id into out (NUL-terminated, CLIENT_ID_LEN chars). Strings may be any length and
 * content; "" is a valid field. Returns 0, or -EINVAL for a NULL pointer or leg > 9. */
int client_id_make(const char *leader_account, const char *symbol, const char *trade_id,
                   const char *rule_id, unsigned leg, char out[MKT_CLIENT_ID_MAX]);

/* true if s is acceptable to both exchanges: [A-Za-z0-9_-]{1,36}. */
bool client_id_valid(const char *s);

/* true if s has the exact shape client_id_make produces (so the order is one of ours, e.g. a
 * follower that is also a leader elsewhere); *leg gets the leg when leg is not NULL. */
bool client_id_is_ours(const char *s, unsigned *leg);

#endif
