/* Seams between the parts of exchange/ (REST adapter <-> user stream). Not for the daemon. */
#ifndef CT_EXCHANGE_INTERNAL_H
#define CT_EXCHANGE_INTERNAL_H

#include "exchange.h"

const char *exch_account_ws_url(const struct exch_account *a);
enum exch_kind exch_account_kind(const struct exch_account *a);
uv_loop_t *exch_account_loop(const struct exch_account *a);

/* Binance listenKey lifecycle (USER_STREAM security: API key header, no signature).
 * listen_key is NULL on failure; st->error_code is -1125 when the key does not exist. */
typedef void (*exch_listen_key_cb)(void *ud, const struct exch_status *st, const char *listen_key);
int exch_listen_key_create(struct exch_account *a, exch_listen_key_cb cb, void *ud);
int exch_listen_key_keepalive(struct exch_account *a, const char *listen_key, exch_listen_key_cb cb, void *ud);
int exch_listen_key_delete(struct exch_account *a, const char *listen_key, exch_listen_key_cb cb, void *ud);

/* ---- account internals for the adapters (added by the REST helper; exchange.c owns the account) */
struct rest_pool *exch_account_pool(const struct exch_account *a);
const char *exch_account_rest_url(const struct exch_account *a); /* no trailing '/' */
const char *exch_account_api_key(const struct exch_account *a);  /* for headers only, never logged */
int exch_account_recv_window_ms(const struct exch_account *a);
int exch_account_timeout_ms(const struct exch_account *a);
/* The configured stream ping and silence bound (0 = the stream's default). */
int exch_account_stream_ping_ms(const struct exch_account *a);
int exch_account_stream_silence_ms(const struct exch_account *a);
void exch_account_set_time_offset_ms(struct exch_account *a, int64_t offset_ms);
/* Merges the values >= 0 of u into the account's last seen usage. */
void exch_account_note_usage(struct exch_account *a, const struct exch_usage *u);
/* Merges the values >= 0 of u into the account's last seen Bybit usage. */
void exch_account_note_bybit_usage(struct exch_account *a, const struct exch_bybit_usage *u);
/* Lowercase hex HMAC-SHA256 of payload with the account's secret (the secret itself never leaves
 * exchange.c). 0, -ESHUTDOWN after exch_account_free, -EIO. */
int exch_account_sign_hex(const struct exch_account *a, const char *payload, size_t len,
                          char out[65]);
/* Requests in flight hold a reference: exch_account_free() wipes the credentials at once, the
 * memory lives until the last reference is dropped. */
struct exch_account *exch_account_ref(struct exch_account *a);
void exch_account_unref(struct exch_account *a);
bool exch_account_is_closed(const struct exch_account *a);

#endif
