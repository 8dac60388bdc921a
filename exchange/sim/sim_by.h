/* sim_by: the simulator's Bybit v5 (category=linear) front end — REST routes under /v5/ on the
 * REST port, the websockets /v5/private and /v5/public/linear (sim_by_ws), and the Bybit view of
 * the book's events (order / execution / position / wallet topics, and the per-account execution
 * list behind GET /v5/execution/list). Every account of the book is reachable over both APIs
 * with the same key and secret; sim.c routes /v5/ requests and upgrades here and calls
 * sim_by_on_event for every book event. Internal to exchange/sim. */
#ifndef CT_SIM_BY_H
#define CT_SIM_BY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim_book.h"
#include "sim_http.h"

struct sim;
struct sim_by;

/* Default seconds a private connection may stay unauthenticated; the environment variable
 * EXSIM_BYBIT_AUTH_TIMEOUT_MS overrides it (tests). */
#define SIM_BY_AUTH_TIMEOUT_MS 30000

/* After the sim's book has its symbols and accounts. NULL and a message on failure. */
struct sim_by *sim_by_new(struct sim *s, char *err, size_t errlen);
/* Shutdown step 1 (with sim_stop) and step 2 (with sim_free), see sim_ws.h. */
void sim_by_stop(struct sim_by *b);
struct sim_by *sim_by_free(struct sim_by *b);

/* Is this a Bybit request (path under /v5/)? */
bool sim_by_owns(const struct shttp_req *req);
/* Is the start of a handed-over connection (the upgrade request) a Bybit path? */
bool sim_by_owns_bytes(const char *bytes, size_t len);
/* shttp handler, upgrade and adopt for Bybit paths; ud is the struct sim. */
void sim_by_handle(void *ud, const struct shttp_req *req, struct shttp_resp *resp);
bool sim_by_upgrade(void *ud, const struct shttp_req *req, struct shttp_resp *resp);
void sim_by_adopt(struct sim_by *b, int fd, const char *bytes, size_t len);

/* Every book event (called from the book's emit callback). */
void sim_by_on_event(struct sim_by *b, struct sbook_account *ba, const struct sbook_event *ev);

/* Authenticated Bybit private connections of an account (admin). */
size_t sim_by_connections(const struct sim_by *b, const struct sbook_account *ba);

/* Stream faults on Bybit private connections (admin, POST /admin/fault; see sim_by_ws.h):
 * ba NULL = every private connection. Each returns how many connections it acted on. */
size_t sim_by_ws_drop(struct sim_by *b, const struct sbook_account *ba);
/* Silence until until_ms (sim_now_ms clock; <= 0: until sim_by_ws_unsilence). */
size_t sim_by_ws_silence(struct sim_by *b, const struct sbook_account *ba, int64_t until_ms);
size_t sim_by_ws_unsilence(struct sim_by *b, const struct sbook_account *ba);
/* Frames lost to silenced Bybit connections of ba (NULL: of every account). */
uint64_t sim_by_silenced_frames(const struct sim_by *b, const struct sbook_account *ba);

#endif
