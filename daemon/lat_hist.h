/* lat_hist: a latency histogram in the HdrHistogram layout (log-linear buckets, 3 significant
 * decimal digits, values in microseconds from 1 us to 2^36 us (~19 h); larger values are clamped
 * and counted). Fixed memory (~140 KB), O(1) record, no allocation after lat_hist_new: it can
 * sit on the hot path. Percentiles are read as HdrHistogram does: the highest value equivalent
 * to the bucket that holds the rank. Debian 12 packages no C HdrHistogram, hence this. */
#ifndef CT_LAT_HIST_H
#define CT_LAT_HIST_H

#include <stddef.h>
#include <stdint.h>

struct lat_hist;

struct lat_hist *lat_hist_new(void);
struct lat_hist *lat_hist_free(struct lat_hist *h); /* takes NULL, returns NULL */
void lat_hist_record(struct lat_hist *h, int64_t us); /* < 0 counts as 0 */
void lat_hist_reset(struct lat_hist *h);
uint64_t lat_hist_count(const struct lat_hist *h);
int64_t lat_hist_min(const struct lat_hist *h); /* 0 when empty */
int64_t lat_hist_max(const struct lat_hist *h); /* exact, 0 when empty */
/* The value at percentile p (0..100): the highest value of its bucket; 0 when empty. */
int64_t lat_hist_percentile(const struct lat_hist *h, double p);

/* Calls fn for every non-empty bucket, lowest first, with the bucket's highest equivalent value
 * and its count. */
void lat_hist_foreach(const struct lat_hist *h, void (*fn)(void *ud, int64_t upper_us, uint64_t n),
                      void *ud);

/* {"count", "min", "max", "p50", "p90", "p99", "p999", "buckets": [[upper_us, count], ...]} (only
 * non-empty buckets), a new jansson reference; NULL when out of memory. */
struct json_t;
struct json_t *lat_hist_json(const struct lat_hist *h);

#endif
