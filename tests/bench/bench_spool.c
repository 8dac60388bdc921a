/* bench_spool: append throughput and latency of daemon/spool in its durability modes, and replay
 * speed. Prints numbers; asserts nothing. Pin it (taskset -c N) for stable latencies.
 *
 *   bench_spool [-d parent_dir] [-s payload_bytes] [-n fsync_appends] [-N os_appends] [-b batch]
 *
 * The spool goes in a fresh directory under parent_dir ($TMPDIR or /tmp by default) and is removed
 * afterwards. The default payload (600 bytes) is about one leader fill with a few intents. */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "spool.h"

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static double pct(const uint64_t *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

/* n calls of `batch` records each; prints records/s and per-call latency. */
static int run(const char *dir, enum spool_durability d, size_t n, size_t batch, size_t len,
               const char *label)
{
    struct spool_opts o = {.durability = d};
    struct spool *sp = NULL;
    char err[1024];
    int rc = spool_open(dir, &o, &sp, NULL, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "bench_spool: %s\n", err);
        return rc;
    }
    uint8_t *payload = malloc(len ? len : 1);
    uint64_t *lat = calloc(n, sizeof *lat);
    struct spool_rec_in *in = calloc(batch, sizeof *in);
    if (!payload || !lat || !in) {
        rc = -ENOMEM;
        goto out;
    }
    memset(payload, 'x', len);
    for (size_t i = 0; i < batch; i++)
        in[i] = (struct spool_rec_in){1, payload, len};
    uint64_t t0 = mono_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t a = mono_ns();
        rc = spool_append_many(sp, in, batch, NULL);
        lat[i] = mono_ns() - a;
        if (rc < 0) {
            fprintf(stderr, "bench_spool: append: %s\n", spool_last_error(sp));
            goto out;
        }
    }
    if (d == SPOOL_OS)
        spool_sync(sp); /* not timed: what a shutdown would pay once */
    uint64_t el = mono_ns() - t0;
    qsort(lat, n, sizeof *lat, cmp_u64);
    printf("%-22s %8zu calls x %3zu rec  %10.0f rec/s  call latency us: p50 %8.1f  p99 %8.1f  "
           "p99.9 %8.1f  max %8.1f\n",
           label, n, batch, (double)(n * batch) * 1e9 / (double)el, pct(lat, n, 0.5),
           pct(lat, n, 0.99), pct(lat, n, 0.999), (double)lat[n - 1] / 1000.0);

    /* Replay everything and ack in batches of 1000, as the journal would after PostgreSQL is
     * back (without PostgreSQL's cost). */
    t0 = mono_ns();
    spool_replay_begin(sp);
    struct spool_record r;
    uint64_t got = 0, last = 0, acks = 0;
    while ((rc = spool_replay_next(sp, &r)) == 1) {
        last = r.seq;
        if (++got % 1000 == 0) {
            spool_ack(sp, last);
            acks++;
        }
    }
    if (rc == 0 && last) {
        rc = spool_ack(sp, last);
        acks++;
    }
    el = mono_ns() - t0;
    if (rc < 0) {
        fprintf(stderr, "bench_spool: replay: %s\n", spool_last_error(sp));
        goto out;
    }
    printf("%-22s %8" PRIu64 " records replayed, %" PRIu64 " acks: %10.0f rec/s\n", "  replay+ack",
           got, acks, (double)got * 1e9 / (double)el);
    rc = 0;
out:
    free(payload);
    free(lat);
    free(in);
    spool_close(sp);
    return rc;
}

int main(int argc, char **argv)
{
    const char *parent = getenv("TMPDIR");
    if (!parent || !*parent)
        parent = "/tmp";
    size_t len = 600, nf = 2000, no = 200000, batch = 10;
    int c;
    while ((c = getopt(argc, argv, "d:s:n:N:b:h")) != -1) {
        switch (c) {
        case 'd': parent = optarg; break;
        case 's': len = strtoul(optarg, NULL, 10); break;
        case 'n': nf = strtoul(optarg, NULL, 10); break;
        case 'N': no = strtoul(optarg, NULL, 10); break;
        case 'b': batch = strtoul(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: %s [-d parent_dir] [-s payload_bytes] [-n fsync_appends] "
                            "[-N os_appends] [-b batch]\n", argv[0]);
            return 2;
        }
    }
    if (!nf || !no || !batch) {
        fprintf(stderr, "bench_spool: counts must be > 0\n");
        return 2;
    }
    char root[512];
    snprintf(root, sizeof root, "%s/bench_spool.XXXXXX", parent);
    if (!mkdtemp(root)) {
        perror("bench_spool: mkdtemp");
        return 1;
    }
    struct statfs sf;
    printf("bench_spool: dir %s (fs type 0x%lx), payload %zu bytes, cpu %d\n", root,
           statfs(root, &sf) == 0 ? (unsigned long)sf.f_type : 0ul, len, sched_getcpu());
    int rc = 0;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/fsync", root);
    rc |= run(dir, SPOOL_FSYNC, nf, 1, len, "fsync, 1 per call");
    snprintf(dir, sizeof dir, "%s/group", root);
    rc |= run(dir, SPOOL_FSYNC, nf, batch, len, "fsync, group commit");
    snprintf(dir, sizeof dir, "%s/os", root);
    rc |= run(dir, SPOOL_OS, no, 1, len, "os, 1 per call");
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return rc ? 1 : 0;
}
