/* metrics: a small Prometheus registry (counters, gauges, histograms) rendered in the text
 * exposition format 0.0.4. Debian 12 packages no Prometheus C client, hence this module.
 *
 * A family has a name, help text and a fixed list of label names; a child is one set of label
 * values. Look a child up once at setup and keep the pointer: updating it is a plain add on a
 * field (no allocation, no lookup), which is what the hot path needs.
 *
 * Label lists are variadic and end with the sentinel the macros below append, so
 *     fam = met_counter_new(reg, "ct_orders_total", "Follower orders.", "result", "exchange");
 *     c   = met_counter_child(fam, "filled", "binance-usdm");
 *     met_counter_inc(c);
 * A family without labels is met_counter_new(reg, name, help) and met_counter_child(fam); its one
 * series exists from registration on (rendered as 0), labelled series appear when first looked up.
 * Label values may be any UTF-8 text (escaped when rendered); NULL is not a value, use "".
 *
 * Threads: NOT thread-safe. Everything here belongs to the one loop thread. When executors are
 * sharded over several loops, give each loop its own registry (or switch the value fields to
 * relaxed atomics) and merge at scrape time; do not share one registry between threads.
 *
 * Memory: a child is 32 bytes plus its label values (stored once, as its lookup key), carved
 * from the registry's arena; children are never freed before the registry. A callback (the
 * *_set_fn calls) takes a small block of its own.
 *
 * Rendering: families in registration order, children in creation order, so the output is
 * deterministic. Numbers use printf, so the process must keep the "C" numeric locale. */
#ifndef CT_METRICS_H
#define CT_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct met_registry;
struct met_family;
struct met_counter;
struct met_gauge;
struct met_hist;

struct met_registry *met_registry_new(void);
/* Frees every family and child (cached child pointers become invalid). Takes NULL; returns NULL. */
struct met_registry *met_registry_free(struct met_registry *reg);

/* Family constructors. Return NULL with errno set: EINVAL for a bad or reserved metric/label name
 * (metric [a-zA-Z_:][a-zA-Z0-9_:]*, label [a-zA-Z_][a-zA-Z0-9_]* not starting "__", histograms
 * may not use "le"), a counter name not ending in "_total", duplicate label names, or histogram
 * bounds that are not finite and strictly increasing, more than 16 labels; EEXIST when the name
 * (or, for histograms, a _bucket/_sum/_count series name) is taken; ENOMEM.
 * `help` is required (may be ""), and is copied. A histogram's bounds are the upper bounds
 * ("le") of its buckets, copied; the +Inf bucket is implicit (a trailing +Inf bound is accepted
 * and ignored). */
struct met_family *met_counter_new_(struct met_registry *reg, const char *name, const char *help,
                                    ...) __attribute__((sentinel));
struct met_family *met_gauge_new_(struct met_registry *reg, const char *name, const char *help,
                                  ...) __attribute__((sentinel));
struct met_family *met_histogram_new_(struct met_registry *reg, const char *name,
                                      const char *help, const double *bounds, size_t nbounds,
                                      ...) __attribute__((sentinel));
#define met_counter_new(...)   met_counter_new_(__VA_ARGS__, (const char *)NULL)
#define met_gauge_new(...)     met_gauge_new_(__VA_ARGS__, (const char *)NULL)
#define met_histogram_new(...) met_histogram_new_(__VA_ARGS__, (const char *)NULL)

/* Child lookup (get-or-create). Exactly as many values as the family has label names, else NULL
 * with errno EINVAL; also EINVAL when the family is of another kind; ENOMEM. Setup-time cost:
 * a linear scan of the family's children. The pointer stays valid until met_registry_free. */
struct met_counter *met_counter_child_(struct met_family *fam, ...) __attribute__((sentinel));
struct met_gauge *met_gauge_child_(struct met_family *fam, ...) __attribute__((sentinel));
struct met_hist *met_hist_child_(struct met_family *fam, ...) __attribute__((sentinel));
#define met_counter_child(...) met_counter_child_(__VA_ARGS__, (const char *)NULL)
#define met_gauge_child(...)   met_gauge_child_(__VA_ARGS__, (const char *)NULL)
#define met_hist_child(...)    met_hist_child_(__VA_ARGS__, (const char *)NULL)

/* Hot-path updates: plain arithmetic on the child, no allocation, no lookup. */
void met_counter_inc(struct met_counter *c);
void met_counter_add(struct met_counter *c, uint64_t n);
/* Callback-driven counter, for totals another module already keeps (rds_get_stats, ...): fn(ud)
 * is read at render time instead of the stored value; it must never go down. NULL removes it. */
int met_counter_set_fn(struct met_counter *c, uint64_t (*fn)(void *ud), void *ud); /* 0, -ENOMEM */
uint64_t met_counter_value(const struct met_counter *c); /* calls the callback if one is set */
/* For a counter series made lazily, at its first event rather than at setup (10,000 accounts'
 * series that would only ever say 0): the next met_render shows it at 0, the ones after that its
 * value. Prometheus's increase() counts a series' growth from its first sample, so a counter
 * that appeared at 1 would never trip an alert on increase(...) > 0; this one is seen at 0 one
 * scrape later than an eager one would have been. Updates are counted meanwhile as always. */
void met_counter_from_zero(struct met_counter *c);

void met_gauge_set(struct met_gauge *g, double v);
void met_gauge_add(struct met_gauge *g, double d); /* negative d decrements */
/* Callback-driven gauge: fn(ud) is called at render time and its result is the value (the
 * stored value is ignored while a callback is set). fn NULL removes the callback. fn must not
 * touch the registry. */
int met_gauge_set_fn(struct met_gauge *g, double (*fn)(void *ud), void *ud); /* 0, -ENOMEM */
double met_gauge_value(const struct met_gauge *g); /* calls the callback if one is set */

/* Adds v to the first bucket whose bound is >= v (the +Inf bucket if none), to _sum and
 * _count. Cost: a binary search over the family's bounds. */
void met_hist_observe(struct met_hist *h, double v);
uint64_t met_hist_count(const struct met_hist *h);

/* Renders the whole registry as text format 0.0.4 into a malloc'd, NUL-terminated buffer the
 * caller frees (*out); *len excludes the NUL. 0 or -ENOMEM. */
int met_render(const struct met_registry *reg, char **out, size_t *len);

/* Content-Type to serve met_render's output with. */
#define MET_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
