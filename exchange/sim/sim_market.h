/* sim_market: the simulator's Binance USD-M market streams (exchange-protocols.md A5), in an lws
 * context of their own (a guest on the sim's libuv loop; sim.c hands over upgrade requests whose
 * path smkt_owns_path accepts).
 *
 * Paths: /public/stream, /market/stream, /stream (combined: ?streams=a/b, each message wrapped
 * as {"stream":"<name>","data":{...}}) and /public/ws[/<streams>], /market/ws[/<streams>],
 * /ws/<streams> (raw payloads; bare /ws stays the user stream's, and /ws/<x> is a market stream
 * only when x contains '@': a listenKey never does). Streams: <symbol>@bookTicker and
 * <symbol>@ticker (24hrTicker), symbols lowercase; both on every route (the real routing puts
 * bookTicker on /public and ticker on /market; the simulator does not refuse the other).
 * Control messages {"method":"SUBSCRIBE"|"UNSUBSCRIBE"|"LIST_SUBSCRIPTIONS","params":[..],"id":N}
 * -> {"result":null|[..],"id":N}, errors {"error":{"code":2,"msg":".."},"id":N}.
 *
 * A market without depth: bid = ask = last = the book's price; sizes "1000". A subscription
 * gets the stream's current message at once (a live market would send one within milliseconds),
 * then one on every price change (polled every 20 ms). Server pings every 180 s, no pong for 600 s
 * more: closed. */
#ifndef CT_SIM_MARKET_H
#define CT_SIM_MARKET_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "sim_book.h"
#include "sim_http.h"

struct smkt;

/* book must outlive the smkt. NULL on failure. */
struct smkt *smkt_new(uv_loop_t *loop, struct sbook *book);
/* Teardown as sim_ws: begin, run the loop until idle, finish. Both take NULL. */
void smkt_destroy_begin(struct smkt *m);
struct smkt *smkt_destroy_finish(struct smkt *m);

/* Is this raw request path (up to '?') a market stream path? */
bool smkt_owns_path(const char *path, size_t len);
/* The same for the start of a handed-over connection ("GET <path>[?query] HTTP/1.1..."). */
bool smkt_owns_bytes(const char *bytes, size_t len);
/* Checks an upgrade request to an owned path: every stream named in the path or ?streams= must
 * exist (else 400 {"code":-1121,"msg":"Invalid symbol."} or {"code":-1100,...}); true = accept. */
bool smkt_upgrade(struct smkt *m, const struct shttp_req *req, struct shttp_resp *resp);
/* Takes ownership of fd (closed on failure). 0 or -EIO. */
int smkt_adopt(struct smkt *m, int fd, const char *bytes, size_t len);

size_t smkt_count(const struct smkt *m);
/* Ends every market connection now without a close frame (tests). Returns how many. */
size_t smkt_drop_all(struct smkt *m);

#endif
