/* lat_hist: see lat_hist.h. Index arithmetic as in HdrHistogram with unit magnitude 0 and 2048
 * sub-buckets (the smallest power of two >= 2 x 10^3 gives 3 significant digits): values below
 * 2048 are exact, each further power of two is split into 1024 equal slots. */
#include "lat_hist.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define SUB_MAG 11                 /* log2 of the sub-bucket count */
#define SUB_COUNT (1 << SUB_MAG)   /* 2048 */
#define SUB_HALF (SUB_COUNT / 2)   /* 1024 */
#define SUB_HALF_MAG (SUB_MAG - 1)
#define MAX_MAG 36                 /* values up to 2^36 - 1 us */
#define BUCKETS (MAX_MAG - SUB_MAG + 1)
#define COUNTS ((BUCKETS + 1) * SUB_HALF)
#define MAX_VALUE ((INT64_C(1) << MAX_MAG) - 1)

struct lat_hist {
    uint64_t total;
    int64_t min, max;
    uint64_t counts[COUNTS];
};

struct lat_hist *lat_hist_new(void)
{
    struct lat_hist *h = calloc(1, sizeof *h);
    if (h) h->min = INT64_MAX;
    return h;
}

struct lat_hist *lat_hist_free(struct lat_hist *h)
{
    free(h);
    return NULL;
}

void lat_hist_reset(struct lat_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = INT64_MAX;
}

static size_t index_of(int64_t v)
{
    uint64_t u = (uint64_t)v;
    int pow2ceil = 64 - __builtin_clzll(u | (SUB_COUNT - 1));
    int bucket = pow2ceil - (SUB_HALF_MAG + 1);
    size_t sub = (size_t)(u >> bucket);
    return ((size_t)(bucket + 1) << SUB_HALF_MAG) + (sub - SUB_HALF);
}

/* The lowest value of counts[i] and the width of its slot. */
static void slot_of(size_t i, int64_t *low, int64_t *width)
{
    int bucket = (int)(i >> SUB_HALF_MAG) - 1;
    int64_t sub = (int64_t)(i & (SUB_HALF - 1)) + SUB_HALF;
    if (bucket < 0) {
        sub -= SUB_HALF;
        bucket = 0;
    }
    *low = sub << bucket;
    *width = INT64_C(1) << bucket;
}

void lat_hist_record(struct lat_hist *h, int64_t us)
{
    if (us < 0) us = 0;
    if (us > MAX_VALUE) us = MAX_VALUE;
    h->counts[index_of(us)]++;
    h->total++;
    if (us < h->min) h->min = us;
    if (us > h->max) h->max = us;
}

uint64_t lat_hist_count(const struct lat_hist *h) { return h->total; }
int64_t lat_hist_min(const struct lat_hist *h) { return h->total ? h->min : 0; }
int64_t lat_hist_max(const struct lat_hist *h) { return h->max; }

int64_t lat_hist_percentile(const struct lat_hist *h, double p)
{
    if (!h->total) return 0;
    if (p < 0) p = 0;
    if (p > 100) p = 100;
    /* The rank as HdrHistogram computes it: at least 1, rounded half up. */
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->total + 0.5);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < COUNTS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            int64_t low, width;
            slot_of(i, &low, &width);
            int64_t hi = low + width - 1;
            return hi < h->max ? hi : h->max;
        }
    }
    return h->max;
}

static size_t lat_hist_count_buckets(const struct lat_hist *h)
{
    size_t n = 0;
    for (size_t i = 0; i < COUNTS; i++) n += h->counts[i] != 0;
    return n;
}

void lat_hist_foreach(const struct lat_hist *h, void (*fn)(void *ud, int64_t upper_us, uint64_t n),
                      void *ud)
{
    for (size_t i = 0; i < COUNTS; i++) {
        if (!h->counts[i]) continue;
        int64_t low, width;
        slot_of(i, &low, &width);
        fn(ud, low + width - 1, h->counts[i]);
    }
}

static void bucket_json(void *ud, int64_t upper, uint64_t n)
{
    json_t *pair = json_pack("[II]", (json_int_t)upper, (json_int_t)n);
    if (pair) json_array_append_new(ud, pair);
}

json_t *lat_hist_json(const struct lat_hist *h)
{
    json_t *b = json_array();
    if (!b) return NULL;
    lat_hist_foreach(h, bucket_json, b);
    if (json_array_size(b) != lat_hist_count_buckets(h)) {
        json_decref(b);
        return NULL;
    }
    return json_pack("{sI sI sI sI sI sI sI so}", "count", (json_int_t)h->total,
                     "min", (json_int_t)lat_hist_min(h), "max", (json_int_t)h->max,
                     "p50", (json_int_t)lat_hist_percentile(h, 50),
                     "p90", (json_int_t)lat_hist_percentile(h, 90),
                     "p99", (json_int_t)lat_hist_percentile(h, 99),
                     "p999", (json_int_t)lat_hist_percentile(h, 99.9), "buckets", b);
}
