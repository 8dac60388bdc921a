/* bench_sign: nanoseconds and OpenSSL allocations per Binance request signature (HMAC-SHA256 of a
 * ~250-byte order query) for the ways of keeping a secret keyed. Prints numbers; asserts nothing
 * beyond every variant giving the same signature. Pin it (taskset -c N) for stable numbers.
 *
 *   bench_sign [-n signatures] [-r rounds] [-u]
 *
 * -u: OpenSSL's allocations uncounted (no hooks: the timings without their small cost).
 *
 * Variants (each keyed once, then signing n times; the best of r rounds is printed):
 *   oneshot       binance_sign: OpenSSL's HMAC() per request (fetch + key pads every time)
 *   evp_mac       the earlier binance_key: a keyed EVP_MAC_CTX behind a mutex, re-initialised
 *                 with the same key for each signature (replicated here for comparison)
 *   evp_md_copy   HMAC midstates as two keyed EVP_MD_CTX, EVP_MD_CTX_copy_ex'd per signature
 *   sha256_ctx    HMAC midstates as two SHA256_CTX, copied by assignment (OpenSSL's low-level
 *                 SHA-256, deprecated in 3.0 but built into every 3.x libcrypto)
 *   binance_key   the library's binance_key_new / binance_sign_key as built
 * plus the heap each keyed secret holds: glibc's bytes in use before and after keying one (with its
 * per-thread cache off, so that freed blocks do not count as in use; the program re-executes itself
 * with GLIBC_TUNABLES for that), including the allocator's per-block overhead, less the counting
 * hooks' own 16-byte headers. */
#define OPENSSL_SUPPRESS_DEPRECATED /* the sha256_ctx variant: see the note above */

#include <inttypes.h>
#include <malloc.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "binance_sign.h"

/* ---- OpenSSL's allocations, counted (installed before OpenSSL allocates anything) ---- */

static uint64_t n_malloc, n_free;
struct hdr {
    size_t n;
    size_t pad;
};
static void *c_malloc(size_t n, const char *f, int l) {
    (void)f, (void)l;
    struct hdr *h = malloc(sizeof(*h) + n);
    if (!h) return NULL;
    h->n = n;
    n_malloc++;
    return h + 1;
}
static void c_free(void *p, const char *f, int l) {
    (void)f, (void)l;
    if (!p) return;
    struct hdr *h = (struct hdr *)p - 1;
    n_free++;
    free(h);
}
static void *c_realloc(void *p, size_t n, const char *f, int l) {
    if (!p) return c_malloc(n, f, l);
    if (!n) {
        c_free(p, f, l);
        return NULL;
    }
    struct hdr *h = (struct hdr *)p - 1;
    struct hdr *nh = realloc(h, sizeof(*nh) + n);
    if (!nh) return NULL;
    nh->n = n;
    n_malloc++, n_free++;
    return nh + 1;
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void hexify(const unsigned char *mac, char out[65]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 0xf];
    }
    out[64] = '\0';
}

/* The key's 64-byte block: the key, or its SHA-256 when longer than a block (RFC 2104). */
static void key_block(const char *secret, size_t len, unsigned char blk[64]) {
    memset(blk, 0, 64);
    if (len > 64)
        SHA256((const unsigned char *)secret, len, blk);
    else
        memcpy(blk, secret, len);
}

/* ---- evp_mac: the earlier binance_key ---- */

struct v_mac {
    pthread_mutex_t mu;
    EVP_MAC_CTX *ctx;
};
static void *mac_new(const char *s, size_t n) {
    static EVP_MAC *alg;
    if (!alg) alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    struct v_mac *k = calloc(1, sizeof(*k));
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    k->ctx = EVP_MAC_CTX_new(alg);
    if (!EVP_MAC_init(k->ctx, (const unsigned char *)s, n, params)) abort();
    pthread_mutex_init(&k->mu, NULL);
    return k;
}
static int mac_sign(void *vk, const char *p, size_t n, char out[65]) {
    struct v_mac *k = vk;
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t ml = 0;
    pthread_mutex_lock(&k->mu);
    int ok = EVP_MAC_init(k->ctx, NULL, 0, NULL) &&
             EVP_MAC_update(k->ctx, (const unsigned char *)p, n) &&
             EVP_MAC_final(k->ctx, mac, &ml, sizeof(mac));
    pthread_mutex_unlock(&k->mu);
    if (!ok) return -1;
    hexify(mac, out);
    return 0;
}
static void mac_free(void *vk) {
    struct v_mac *k = vk;
    EVP_MAC_CTX_free(k->ctx);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

/* ---- evp_md_copy: midstates as EVP_MD_CTX ---- */

struct v_md {
    EVP_MD_CTX *in, *out;
};
static void *md_new(const char *s, size_t n) {
    unsigned char blk[64], pad[64];
    key_block(s, n, blk);
    struct v_md *k = calloc(1, sizeof(*k));
    k->in = EVP_MD_CTX_new();
    k->out = EVP_MD_CTX_new();
    for (int i = 0; i < 64; i++) pad[i] = blk[i] ^ 0x36;
    if (!EVP_DigestInit_ex(k->in, EVP_sha256(), NULL) || !EVP_DigestUpdate(k->in, pad, 64)) abort();
    for (int i = 0; i < 64; i++) pad[i] = blk[i] ^ 0x5c;
    if (!EVP_DigestInit_ex(k->out, EVP_sha256(), NULL) || !EVP_DigestUpdate(k->out, pad, 64))
        abort();
    return k;
}
static int md_sign(void *vk, const char *p, size_t n, char out[65]) {
    struct v_md *k = vk;
    static __thread EVP_MD_CTX *w;
    unsigned char h[32], mac[32];
    unsigned hl = 0;
    if (!w) w = EVP_MD_CTX_new();
    if (!EVP_MD_CTX_copy_ex(w, k->in) || !EVP_DigestUpdate(w, p, n) || !EVP_DigestFinal_ex(w, h, &hl) ||
        !EVP_MD_CTX_copy_ex(w, k->out) || !EVP_DigestUpdate(w, h, 32) ||
        !EVP_DigestFinal_ex(w, mac, &hl))
        return -1;
    hexify(mac, out);
    return 0;
}
static void md_free(void *vk) {
    struct v_md *k = vk;
    EVP_MD_CTX_free(k->in);
    EVP_MD_CTX_free(k->out);
    free(k);
}

/* ---- sha256_ctx: midstates as SHA256_CTX ---- */

struct v_sha {
    SHA256_CTX in, out;
};
static void *sha_new(const char *s, size_t n) {
    unsigned char blk[64], pad[64];
    key_block(s, n, blk);
    struct v_sha *k = calloc(1, sizeof(*k));
    for (int i = 0; i < 64; i++) pad[i] = blk[i] ^ 0x36;
    SHA256_Init(&k->in);
    SHA256_Update(&k->in, pad, 64);
    for (int i = 0; i < 64; i++) pad[i] = blk[i] ^ 0x5c;
    SHA256_Init(&k->out);
    SHA256_Update(&k->out, pad, 64);
    return k;
}
static int sha_sign(void *vk, const char *p, size_t n, char out[65]) {
    struct v_sha *k = vk;
    unsigned char h[32], mac[32];
    SHA256_CTX c = k->in;
    SHA256_Update(&c, p, n);
    SHA256_Final(h, &c);
    c = k->out;
    SHA256_Update(&c, h, 32);
    SHA256_Final(mac, &c);
    OPENSSL_cleanse(&c, sizeof(c));
    hexify(mac, out);
    return 0;
}
static void sha_free(void *vk) {
    OPENSSL_cleanse(vk, sizeof(struct v_sha));
    free(vk);
}

/* ---- the library ---- */

static void *lib_new(const char *s, size_t n) { return binance_key_new(s, n); }
static int lib_sign(void *k, const char *p, size_t n, char out[65]) {
    return binance_sign_key(k, p, n, out);
}
static void lib_free(void *k) { binance_key_free(k); }

static const char *g_secret;
static size_t g_secret_len;
static void *one_new(const char *s, size_t n) {
    g_secret = s, g_secret_len = n;
    return (void *)s;
}
static int one_sign(void *k, const char *p, size_t n, char out[65]) {
    (void)k;
    return binance_sign(g_secret, g_secret_len, p, n, out);
}
static void one_free(void *k) { (void)k; }

struct variant {
    const char *name;
    void *(*mk)(const char *, size_t);
    int (*sign)(void *, const char *, size_t, char[65]);
    void (*rm)(void *);
};

int main(int argc, char **argv) {
    if (!getenv("GLIBC_TUNABLES")) {
        setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0", 1);
        execv("/proc/self/exe", argv);
    }
    bool count = true;
    for (int i = 1; i < argc; i++) count = count && strcmp(argv[i], "-u") != 0;
    /* Before anything of OpenSSL's runs, so that every allocation goes through the counters. */
    int counting = count && CRYPTO_set_mem_functions(c_malloc, c_realloc, c_free);
    long n = 200000, rounds = 5;
    int opt;
    while ((opt = getopt(argc, argv, "n:r:u")) != -1) {
        if (opt == 'n') n = atol(optarg);
        else if (opt == 'r') rounds = atol(optarg);
        else if (opt != 'u') {
            fprintf(stderr, "usage: bench_sign [-n signatures] [-r rounds] [-u]\n");
            return 2;
        }
    }
    if (n < 1 || rounds < 1) return 2;
    /* A typical follower order (POST /fapi/v1/order), 64-char secret as Binance issues them. */
    const char *secret = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9";
    char payload[512];
    snprintf(payload, sizeof payload,
             "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=IOC&quantity=0.012&price=64123.40&"
             "positionSide=BOTH&reduceOnly=false&newClientOrderId=ct-7f3a9c21d4e8b6a0-r0042-0001&"
             "newOrderRespType=RESULT&selfTradePreventionMode=NONE&recvWindow=5000&"
             "timestamp=1732281234567");
    size_t plen = strlen(payload);
    static const struct variant vs[] = {
        {"oneshot", one_new, one_sign, one_free},
        {"evp_mac", mac_new, mac_sign, mac_free},
        {"evp_md_copy", md_new, md_sign, md_free},
        {"sha256_ctx", sha_new, sha_sign, sha_free},
        {"binance_key", lib_new, lib_sign, lib_free},
    };
    char want[65];
    if (binance_sign(secret, strlen(secret), payload, plen, want) < 0) return 1;
    printf("payload %zu bytes, %ld signatures x %ld rounds%s\n", plen, n, rounds,
           counting ? "" : " (OpenSSL's allocations not counted)");
    printf("%-12s %10s %12s %14s\n", "variant", "ns/sig", "allocs/sig", "key heap (B)");
    for (size_t v = 0; v < sizeof vs / sizeof vs[0]; v++) {
        /* Warm OpenSSL's lazy set-up (provider, fetches) before counting the key's heap. */
        void *w = vs[v].mk(secret, strlen(secret));
        char got[65];
        vs[v].sign(w, payload, plen, got);
        vs[v].rm(w);
        size_t live0 = mallinfo2().uordblks;
        uint64_t blocks0 = n_malloc - n_free;
        void *k = vs[v].mk(secret, strlen(secret));
        int64_t key_heap = (int64_t)(mallinfo2().uordblks - live0) -
                           (int64_t)sizeof(struct hdr) * (int64_t)(n_malloc - n_free - blocks0);
        if (vs[v].sign(k, payload, plen, got) < 0 || strcmp(got, want) != 0) {
            printf("%-12s WRONG SIGNATURE %s\n", vs[v].name, got);
            return 1;
        }
        double best = 1e18;
        uint64_t m0 = n_malloc;
        for (long r = 0; r < rounds; r++) {
            uint64_t t0 = mono_ns();
            for (long i = 0; i < n; i++) vs[v].sign(k, payload, plen, got);
            double ns = (double)(mono_ns() - t0) / (double)n;
            if (ns < best) best = ns;
        }
        double allocs = counting ? (double)(n_malloc - m0) / (double)(n * rounds) : -1;
        vs[v].rm(k);
        char a[32] = "-", h[32] = "-";
        if (counting) snprintf(a, sizeof a, "%.2f", allocs);
        if (v) snprintf(h, sizeof h, "%" PRId64, key_heap); /* oneshot keeps no key */
        printf("%-12s %10.1f %12s %14s\n", vs[v].name, best, a, h);
    }
    return 0;
}
