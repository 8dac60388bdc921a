/* client_id: deterministic client order ids (see client_id.h). */
#include "client_id.h"

#include <errno.h>
#include <string.h>

__extension__ typedef unsigned __int128 u128;

#define HASH_CHARS 22 /* 62^22 > 2^128, so base62 of any 128-bit value fits */

/* FNV-1a 128-bit parameters (offset basis 0x6c62272e07bb014262b821756295c58d,
 * prime 2^88 + 2^8 + 0x3b). */
static u128 fnv_offset(void)
{
    return ((u128)0x6c62272e07bb0142ULL << 64) | 0x62b821756295c58dULL;
}

static u128 fnv_prime(void)
{
    return ((u128)1 << 88) | 0x13bU;
}

static u128 fnv_bytes(u128 h, const void *p, size_t n)
{
    const unsigned char *b = p;
    const u128 prime = fnv_prime();
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= prime;
    }
    return h;
}

/* A fixed little-endian 8-byte encoding: the id must not depend on the host. */
static u128 fnv_u64(u128 h, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    return fnv_bytes(h, b, sizeof b);
}

/* Length prefix first, so ("ab","c") and ("a","bc") hash different byte streams. */
static u128 fnv_field(u128 h, const char *s)
{
    size_t n = strlen(s);
    h = fnv_u64(h, (uint64_t)n);
    return fnv_bytes(h, s, n);
}

/* FNV's last bytes only reach the high bits through one multiply; this finalizer spreads every
 * input bit over the whole value. Each step (xor with a right shift, multiply by an odd
 * constant) is a bijection on 128 bits, so it cannot create collisions. */
static u128 mix128(u128 h)
{
    const u128 k1 = ((u128)0x9e3779b97f4a7c15ULL << 64) | 0xbf58476d1ce4e5b9ULL;
    const u128 k2 = ((u128)0x94d049bb133111ebULL << 64) | 0xd6e8feb86659fd93ULL;
    h ^= h >> 67;
    h *= k1;
    h ^= h >> 59;
    h *= k2;
    h ^= h >> 64;
    return h;
}

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

int client_id_make(const char *leader_account, const char *symbol, const char *trade_id,
                   const char *rule_id, unsigned leg, char out[MKT_CLIENT_ID_MAX])
{
    if (leader_account == NULL || symbol == NULL || trade_id == NULL || rule_id == NULL || out == NULL)
        return -EINVAL;
    if (leg > CLIENT_ID_MAX_LEG)
        return -EINVAL;

    u128 h = fnv_offset();
    /* Domain/version tag: a future scheme hashes a different tag, never the same stream. */
    h = fnv_field(h, "copytrader-client-id-v2"); /* v2: trade ids as text (Bybit execIds) */
    h = fnv_field(h, leader_account);
    h = fnv_field(h, symbol);
    h = fnv_field(h, trade_id);
    h = fnv_field(h, rule_id);
    h = mix128(h);

    size_t p = 0;
    memcpy(out, CLIENT_ID_PREFIX, sizeof CLIENT_ID_PREFIX - 1);
    p += sizeof CLIENT_ID_PREFIX - 1;
    /* Fixed width, most significant digit first: every id has the same length. */
    for (int i = HASH_CHARS - 1; i >= 0; i--) {
        out[p + (size_t)i] = base62[h % 62];
        h /= 62;
    }
    p += HASH_CHARS;
    out[p++] = '_';
    out[p++] = (char)('0' + leg);
    out[p] = '\0';
    return 0;
}

static bool is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool client_id_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= MKT_CLIENT_ID_MAX - 1)
            return false;
        if (!is_alnum(s[n]) && s[n] != '_' && s[n] != '-')
            return false;
    }
    return n >= 1;
}

bool client_id_is_ours(const char *s, unsigned *leg)
{
    if (s == NULL || strncmp(s, CLIENT_ID_PREFIX, sizeof CLIENT_ID_PREFIX - 1) != 0)
        return false;
    const char *h = s + sizeof CLIENT_ID_PREFIX - 1;
    for (int i = 0; i < HASH_CHARS; i++)
        if (!is_alnum(h[i]))
            return false;
    if (h[HASH_CHARS] != '_' || h[HASH_CHARS + 1] < '0' || h[HASH_CHARS + 1] > '9' ||
        h[HASH_CHARS + 2] != '\0')
        return false;
    if (leg != NULL)
        *leg = (unsigned)(h[HASH_CHARS + 1] - '0');
    return true;
}
