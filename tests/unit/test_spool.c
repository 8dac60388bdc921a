/* Unit tests for daemon/spool: framing, replay/ack, crash recovery, corruption, permissions. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "spool.h"

/* The on-disk format documented in spool.h. */
#define SEG_HDR 40u
#define REC_HDR 32u

static char g_root[256]; /* a fresh temporary directory per test */
static char g_dir[300];  /* g_root/spool */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    chmod(p, 0700);
    return remove(p);
}

static void rm_rf(const char *p)
{
    nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(g_root, sizeof g_root, "%s/test_spool.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(g_root))
        return -1;
    snprintf(g_dir, sizeof g_dir, "%s/spool", g_root);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(g_root);
    return 0;
}

static void fill(uint8_t *b, uint64_t seq, size_t len)
{
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(seq * 31u + i * 7u + 1u);
}

static bool check_fill(const uint8_t *b, uint64_t seq, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (b[i] != (uint8_t)(seq * 31u + i * 7u + 1u))
            return false;
    return true;
}

static size_t len_for(uint64_t seq) { return (size_t)((seq * 37u) % 301u); }

static struct spool *open_ok(const struct spool_opts *o, struct spool_open_report *rep)
{
    struct spool *sp = NULL;
    char err[1024];
    int rc = spool_open(g_dir, o, &sp, rep, err, sizeof err);
    if (rc != 0)
        fail_msg("spool_open: %d %s", rc, err);
    assert_non_null(sp);
    return sp;
}

static uint64_t append_seq(struct spool *sp, uint64_t expect_seq, size_t len)
{
    uint8_t buf[4096];
    assert_true(len <= sizeof buf);
    fill(buf, expect_seq, len);
    uint64_t seq = 0;
    int rc = spool_append(sp, (uint16_t)(expect_seq % 7), buf, len, &seq);
    if (rc != 0)
        fail_msg("spool_append: %d %s", rc, spool_last_error(sp));
    assert_int_equal(seq, expect_seq);
    return seq;
}

/* Replays everything left; checks it is first..last in order with the fill pattern. */
static uint64_t replay_check(struct spool *sp, uint64_t first, uint64_t last)
{
    assert_int_equal(spool_replay_begin(sp), 0);
    struct spool_record r;
    uint64_t want = first, n = 0;
    int rc;
    while ((rc = spool_replay_next(sp, &r)) == 1) {
        assert_int_equal(r.seq, want);
        assert_int_equal(r.type, want % 7);
        assert_int_equal(r.len, len_for(want));
        assert_true(check_fill(r.payload, want, r.len));
        want++;
        n++;
    }
    if (rc != 0)
        fail_msg("spool_replay_next: %d %s", rc, spool_last_error(sp));
    assert_int_equal(want, last + 1);
    return n;
}

static size_t count_files(const char *suffix)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls -1 %s | grep -c '%s$'", g_dir, suffix);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    unsigned n = 0;
    if (fscanf(f, "%u", &n) != 1)
        n = 0;
    pclose(f);
    return n;
}

static void seg_file(char *buf, size_t n, uint64_t no)
{
    snprintf(buf, n, "%s/%012" PRIu64 ".spool", g_dir, no);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *b = malloc((size_t)st.st_size + 1);
    assert_non_null(b);
    assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, len), (ssize_t)len);
    close(fd);
}

/* Bitwise CRC32C, independent of the module's table. */
static uint32_t crc32c_ref(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
    }
    return ~c;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_format_on_disk(void **state)
{
    (void)state;
    assert_int_equal(crc32c_ref((const uint8_t *)"123456789", 9), 0xe3069283u); /* check value */
    struct spool *sp = open_ok(NULL, NULL);
    append_seq(sp, 1, len_for(1));
    sp = spool_close(sp);
    assert_null(sp);
    char path[512];
    seg_file(path, sizeof path, 1);
    size_t n;
    uint8_t *b = slurp(path, &n);
    assert_int_equal(n, SEG_HDR + REC_HDR + len_for(1));
    assert_memory_equal(b, "CTSPOOL\n", 8);
    assert_int_equal(le64(b + 16), 1); /* segment number */
    assert_int_equal(le64(b + 24), 1); /* first seq */
    assert_int_equal(le32(b + 32), crc32c_ref(b, 32));
    const uint8_t *r = b + SEG_HDR;
    assert_int_equal(le32(r + 4), len_for(1));
    assert_int_equal(le64(r + 12), 1);
    uint8_t *tmp = malloc(28 + len_for(1));
    memcpy(tmp, r, 28);
    memcpy(tmp + 28, r + REC_HDR, len_for(1));
    assert_int_equal(le32(r + 28), crc32c_ref(tmp, 28 + len_for(1)));
    free(tmp);
    free(b);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(g_dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

static void test_roundtrip_segments_reopen(void **state)
{
    (void)state;
    struct spool_opts o = {.durability = SPOOL_OS, .segment_bytes = 4096};
    struct spool *sp = open_ok(&o, NULL);
    for (uint64_t s = 1; s <= 200; s++)
        append_seq(sp, s, len_for(s));
    struct spool_stats st;
    spool_get_stats(sp, &st);
    assert_true(st.segments > 5);
    assert_int_equal(st.records_unacked, 200);
    assert_int_equal(st.next_seq, 201);
    assert_int_equal(st.appends, 200);
    assert_int_equal(st.syncs, st.segments - 1); /* os mode: only at rotation */
    assert_int_equal(spool_sync(sp), 0);
    assert_int_equal(replay_check(sp, 1, 200), 200);
    assert_int_equal(spool_ack(sp, 100), 0);
    spool_get_stats(sp, &st);
    assert_int_equal(st.records_unacked, 100);
    sp = spool_close(sp);

    struct spool_open_report rep;
    sp = open_ok(&o, &rep);
    assert_int_equal(rep.torn_bytes, 0);
    assert_int_equal(rep.salvaged_ranges, 0);
    /* Segments fully acked went at the ack; the partly acked one is checked whole. */
    assert_true(rep.records >= 100 && rep.records < 200);
    assert_int_equal(rep.segments_deleted, 0);
    assert_int_equal(replay_check(sp, 101, 200), 100);
    append_seq(sp, 201, len_for(201)); /* numbering continues after a restart */
    assert_int_equal(replay_check(sp, 101, 201), 101);
    sp = spool_close(sp);
}

static void test_append_many_group_commit(void **state)
{
    (void)state;
    struct spool *sp = open_ok(NULL, NULL); /* fsync mode */
    uint8_t bufs[10][300];
    struct spool_rec_in in[10];
    for (uint64_t i = 0; i < 10; i++) {
        fill(bufs[i], i + 1, len_for(i + 1));
        in[i] = (struct spool_rec_in){(uint16_t)((i + 1) % 7), bufs[i], len_for(i + 1)};
    }
    uint64_t first = 0;
    assert_int_equal(spool_append_many(sp, in, 10, &first), 0);
    assert_int_equal(first, 1);
    struct spool_stats st;
    spool_get_stats(sp, &st);
    assert_int_equal(st.syncs, 1); /* one fdatasync for all ten */
    assert_int_equal(st.appends, 10);
    append_seq(sp, 11, len_for(11));
    spool_get_stats(sp, &st);
    assert_int_equal(st.syncs, 2);
    assert_int_equal(spool_sync(sp), 0); /* nothing pending: no sync */
    spool_get_stats(sp, &st);
    assert_int_equal(st.syncs, 2);
    assert_int_equal(replay_check(sp, 1, 11), 11);
    /* Refusals. */
    assert_int_equal(spool_append_many(sp, in, 0, &first), -EINVAL);
    struct spool_opts small = {.max_payload = 100};
    sp = spool_close(sp);
    sp = open_ok(&small, NULL);
    uint8_t big[101] = {0};
    assert_int_equal(spool_append(sp, 1, big, sizeof big, NULL), -EMSGSIZE);
    assert_int_equal(spool_append(sp, 1, NULL, 0, &first), 0); /* empty payloads are fine */
    assert_int_equal(first, 12);
    spool_close(sp);
}

static void test_replay_sees_later_appends(void **state)
{
    (void)state;
    struct spool_opts o = {.durability = SPOOL_OS, .segment_bytes = 4096};
    struct spool *sp = open_ok(&o, NULL);
    struct spool_record r;
    assert_int_equal(spool_replay_begin(sp), 0);
    assert_int_equal(spool_replay_next(sp, &r), 0);
    for (uint64_t s = 1; s <= 60; s++) {
        append_seq(sp, s, len_for(s));
        assert_int_equal(spool_replay_next(sp, &r), 1);
        assert_int_equal(r.seq, s);
        assert_true(check_fill(r.payload, s, r.len));
        assert_int_equal(spool_replay_next(sp, &r), 0);
        if (s % 9 == 0)
            assert_int_equal(spool_ack(sp, s - 3), 0);
    }
    /* Ack ahead of the cursor: the cursor jumps. */
    assert_int_equal(spool_replay_begin(sp), 0);
    assert_int_equal(spool_ack(sp, 55), 0);
    assert_int_equal(spool_replay_next(sp, &r), 1);
    assert_int_equal(r.seq, 56);
    /* Ack below the watermark is a no-op, past the end an error. */
    assert_int_equal(spool_ack(sp, 10), 0);
    assert_int_equal(spool_ack(sp, 61), -EINVAL);
    assert_non_null(strstr(spool_last_error(sp), "past the last record"));
    struct spool_stats st;
    spool_get_stats(sp, &st);
    assert_int_equal(st.acked_seq, 55);
    assert_int_equal(st.records_unacked, 5);
    spool_close(sp);
}

static void test_ack_persists_and_deletes_segments(void **state)
{
    (void)state;
    struct spool_opts o = {.durability = SPOOL_FSYNC, .segment_bytes = 4096};
    struct spool *sp = open_ok(&o, NULL);
    for (uint64_t s = 1; s <= 100; s++)
        append_seq(sp, s, len_for(s));
    struct spool_stats st;
    spool_get_stats(sp, &st);
    size_t segs = st.segments;
    assert_int_equal(count_files(".spool"), segs);
    assert_int_equal(spool_ack(sp, 60), 0);
    spool_get_stats(sp, &st);
    assert_true(st.segments < segs);
    assert_int_equal(count_files(".spool"), st.segments);
    /* Everything acked: all but the active segment go. */
    assert_int_equal(spool_ack(sp, 100), 0);
    spool_get_stats(sp, &st);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.records_unacked, 0);
    assert_int_equal(st.bytes_unacked, 0);
    assert_int_equal(st.oldest_unacked_us, 0);
    sp = spool_close(sp);
    /* Reopen: nothing left to replay, the last segment is deleted, numbering continues. */
    struct spool_open_report rep;
    sp = open_ok(&o, &rep);
    assert_int_equal(rep.segments_deleted, 1);
    assert_int_equal(count_files(".spool"), 0);
    assert_int_equal(replay_check(sp, 101, 100), 0);
    append_seq(sp, 101, len_for(101));
    sp = spool_close(sp);
    sp = open_ok(&o, NULL);
    assert_int_equal(replay_check(sp, 101, 101), 1);
    spool_close(sp);
}

/* A crash between the PostgreSQL commit and nothing else: records up to the persisted watermark
 * never come back, whatever happened to the process. */
static void test_ack_watermark_not_replayed_twice(void **state)
{
    (void)state;
    struct spool *sp = open_ok(NULL, NULL);
    for (uint64_t s = 1; s <= 10; s++)
        append_seq(sp, s, len_for(s));
    assert_int_equal(replay_check(sp, 1, 10), 10);
    assert_int_equal(spool_ack(sp, 6), 0);
    sp = spool_close(sp); /* "crash" after the ack */
    sp = open_ok(NULL, NULL);
    struct spool_stats st;
    spool_get_stats(sp, &st);
    assert_int_equal(st.acked_seq, 6);
    assert_int_equal(st.records_unacked, 4);
    assert_int_equal(replay_check(sp, 7, 10), 4);
    spool_close(sp);
}

/* The off-loop sync and ack (spool_bg_*): nothing to do is 0; one at a time; the disk work on
 * another thread; the outcome applied like spool_sync + spool_ack, and it persists. */
struct bg_thread_arg { struct spool_bg *bg; };
static void *bg_thread(void *p)
{
    spool_bg_run(((struct bg_thread_arg *)p)->bg);
    return NULL;
}

static void test_bg_sync_and_ack(void **state)
{
    (void)state;
    struct spool_opts o = {.durability = SPOOL_OS, .segment_bytes = 4096};
    struct spool *sp = open_ok(&o, NULL);
    struct spool_bg bg;
    assert_int_equal(spool_bg_prepare(sp, 0, &bg), 0); /* nothing appended, nothing to ack */
    for (uint64_t s = 1; s <= 40; s++)
        append_seq(sp, s, len_for(s));
    struct spool_stats st;
    spool_get_stats(sp, &st);
    uint64_t syncs = st.syncs;
    assert_int_equal(spool_bg_prepare(sp, 41, &bg), -EINVAL); /* past the last record */
    assert_int_equal(spool_bg_prepare(sp, 30, &bg), 1);
    assert_true(bg.fd >= 0);
    assert_true(bg.dirfd >= 0);
    struct spool_bg bg2;
    assert_int_equal(spool_bg_prepare(sp, 35, &bg2), -EBUSY);
    assert_int_equal(spool_ack(sp, 35), -EBUSY);
    append_seq(sp, 41, len_for(41)); /* appends go on meanwhile */
    pthread_t t;
    struct bg_thread_arg a = {&bg};
    assert_int_equal(pthread_create(&t, NULL, bg_thread, &a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(bg.sync_rc, 0);
    assert_int_equal(bg.ack_rc, 0);
    assert_int_equal(spool_bg_finish(sp, &bg), 0);
    spool_get_stats(sp, &st);
    assert_int_equal(st.acked_seq, 30);
    assert_int_equal(st.records_unacked, 11);
    assert_int_equal(st.syncs, syncs + 1);
    /* Record 41 came after the sync began: still to sync, so the next one has work. */
    assert_int_equal(spool_bg_prepare(sp, 0, &bg), 1);
    assert_true(bg.fd >= 0);
    assert_int_equal(bg.dirfd, -1);
    spool_bg_run(&bg);
    assert_int_equal(spool_bg_finish(sp, &bg), 0);
    assert_int_equal(spool_bg_prepare(sp, 0, &bg), 0);
    sp = spool_close(sp);
    /* The watermark persisted. */
    sp = open_ok(&o, NULL);
    spool_get_stats(sp, &st);
    assert_int_equal(st.acked_seq, 30);
    assert_int_equal(replay_check(sp, 31, 41), 11);
    /* Closed meanwhile: finish(NULL) only closes the descriptors. */
    assert_int_equal(spool_bg_prepare(sp, 35, &bg), 1);
    sp = spool_close(sp);
    spool_bg_run(&bg);
    assert_int_equal(spool_bg_finish(NULL, &bg), 0);
    assert_int_equal(bg.fd, -1);
}

static void test_stats_depth_and_lag(void **state)
{
    (void)state;
    struct spool *sp = open_ok(NULL, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    append_seq(sp, 1, 10);
    clock_gettime(CLOCK_REALTIME, &t1);
    append_seq(sp, 2, 20);
    append_seq(sp, 3, 30);
    struct spool_stats st;
    spool_get_stats(sp, &st);
    assert_int_equal(st.records_unacked, 3);
    assert_int_equal(st.bytes_unacked, 3 * REC_HDR + 60);
    assert_int_equal(st.bytes_on_disk, SEG_HDR + 3 * REC_HDR + 60);
    int64_t lo = (int64_t)t0.tv_sec * 1000000 + t0.tv_nsec / 1000;
    int64_t hi = (int64_t)t1.tv_sec * 1000000 + t1.tv_nsec / 1000;
    assert_true(st.oldest_unacked_us >= lo && st.oldest_unacked_us <= hi);
    assert_int_equal(st.append_bytes, 60);
    assert_int_equal(spool_ack(sp, 1), 0);
    spool_get_stats(sp, &st);
    assert_int_equal(st.records_unacked, 2);
    assert_int_equal(st.bytes_unacked, 2 * REC_HDR + 50);
    assert_true(st.oldest_unacked_us >= hi);
    sp = spool_close(sp);
    sp = open_ok(NULL, NULL); /* the same after a restart */
    spool_get_stats(sp, &st);
    assert_int_equal(st.records_unacked, 2);
    assert_int_equal(st.bytes_unacked, 2 * REC_HDR + 50);
    assert_true(st.oldest_unacked_us >= hi);
    spool_close(sp);
}

/* Writes K records, returns the segment's bytes and the last record's offset. */
static uint8_t *five_records(size_t *n, size_t *last_off)
{
    struct spool *sp = open_ok(NULL, NULL);
    for (uint64_t s = 1; s <= 5; s++)
        append_seq(sp, s, len_for(s));
    spool_close(sp);
    char path[512];
    seg_file(path, sizeof path, 1);
    uint8_t *b = slurp(path, n);
    *last_off = *n - REC_HDR - len_for(5);
    return b;
}

static void reset_dir(const uint8_t *seg, size_t n)
{
    rm_rf(g_dir);
    assert_int_equal(mkdir(g_dir, 0700), 0);
    char path[512];
    seg_file(path, sizeof path, 1);
    spit(path, seg, n);
}

static void test_torn_last_record_every_length(void **state)
{
    (void)state;
    size_t n, last;
    uint8_t *seg = five_records(&n, &last);
    for (size_t t = 0; t < n - last; t++) {
        reset_dir(seg, last + t);
        struct spool_open_report rep;
        struct spool *sp = open_ok(NULL, &rep);
        assert_int_equal(rep.torn_bytes, t);
        if (t) {
            assert_int_equal(rep.torn_offset, last);
            assert_non_null(strstr(rep.torn_file, "000000000001.spool"));
        }
        assert_int_equal(rep.records, 4);
        assert_int_equal(replay_check(sp, 1, 4), 4);
        append_seq(sp, 5, len_for(5)); /* the dropped record's number is free again */
        spool_close(sp);
        sp = open_ok(NULL, &rep);
        assert_int_equal(rep.torn_bytes, 0);
        assert_int_equal(replay_check(sp, 1, 5), 5);
        spool_close(sp);
    }
    free(seg);
}

static void test_flipped_bit_in_last_record_dropped(void **state)
{
    (void)state;
    size_t n, last;
    uint8_t *seg = five_records(&n, &last);
    for (size_t bit = 0; bit < (n - last) * 8; bit++) {
        seg[last + bit / 8] ^= (uint8_t)(1u << (bit % 8));
        reset_dir(seg, n);
        seg[last + bit / 8] ^= (uint8_t)(1u << (bit % 8));
        struct spool_open_report rep;
        struct spool *sp = open_ok(NULL, &rep);
        assert_int_equal(rep.torn_bytes, n - last);
        assert_int_equal(rep.torn_offset, last);
        assert_int_equal(replay_check(sp, 1, 4), 4);
        spool_close(sp);
    }
    free(seg);
}

static void test_garbage_after_last_record_dropped(void **state)
{
    (void)state;
    size_t n, last;
    uint8_t *seg = five_records(&n, &last);
    uint8_t *more = calloc(1, n + 8192); /* zeros, as a filesystem may leave after power loss */
    memcpy(more, seg, n);
    reset_dir(more, n + 8192);
    struct spool_open_report rep;
    struct spool *sp = open_ok(NULL, &rep);
    assert_int_equal(rep.torn_bytes, 8192);
    assert_int_equal(rep.torn_offset, n);
    assert_int_equal(replay_check(sp, 1, 5), 5);
    spool_close(sp);
    free(more);
    free(seg);
}

static void test_flipped_bit_in_middle_is_error_then_salvage(void **state)
{
    (void)state;
    size_t n, last;
    uint8_t *seg = five_records(&n, &last);
    size_t off3 = SEG_HDR + (REC_HDR + len_for(1)) + (REC_HDR + len_for(2));
    size_t len3 = REC_HDR + len_for(3);
    size_t where[] = {off3, off3 + 5, off3 + 13, off3 + 29, off3 + REC_HDR + 1};
    for (size_t w = 0; w < sizeof where / sizeof *where; w++) {
        seg[where[w]] ^= 0x10;
        reset_dir(seg, n);
        seg[where[w]] ^= 0x10;
        struct spool *sp = NULL;
        char err[1024];
        assert_int_equal(spool_open(g_dir, NULL, &sp, NULL, err, sizeof err), -EBADMSG);
        assert_null(sp);
        char want[64];
        snprintf(want, sizeof want, "offset %zu:", off3);
        assert_non_null(strstr(err, "000000000001.spool"));
        if (!strstr(err, want))
            fail_msg("error does not name offset %zu: %s", off3, err);

        struct spool_opts o = {.salvage = true};
        struct spool_open_report rep;
        sp = open_ok(&o, &rep);
        assert_int_equal(rep.salvaged_ranges, 1);
        assert_int_equal(rep.salvage_offset, off3);
        assert_int_equal(rep.salvaged_bytes, len3);
        assert_int_equal(rep.salvaged_seqs, 1);
        assert_non_null(strstr(rep.salvage_file, "000000000001.spool"));
        assert_int_equal(rep.torn_bytes, 0);
        uint64_t want_seq[] = {1, 2, 4, 5};
        struct spool_record r;
        assert_int_equal(spool_replay_begin(sp), 0);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(spool_replay_next(sp, &r), 1);
            assert_int_equal(r.seq, want_seq[i]);
            assert_true(check_fill(r.payload, r.seq, r.len));
        }
        assert_int_equal(spool_replay_next(sp, &r), 0);
        struct spool_stats st;
        spool_get_stats(sp, &st);
        assert_int_equal(st.next_seq, 6);
        /* Once the salvaged segment is acked away, a normal open works again. */
        append_seq(sp, 6, len_for(6));
        assert_int_equal(spool_ack(sp, 5), 0);
        spool_close(sp);
        sp = open_ok(NULL, NULL);
        assert_int_equal(replay_check(sp, 6, 6), 1);
        spool_close(sp);
    }
    free(seg);
}

/* A bad tail is only "torn" in the last segment: earlier segments were complete when the next
 * one was created. */
static void test_bad_tail_of_earlier_segment_is_error(void **state)
{
    (void)state;
    struct spool_opts o = {.durability = SPOOL_OS, .segment_bytes = 4096};
    struct spool *sp = open_ok(&o, NULL);
    for (uint64_t s = 1; s <= 120; s++)
        append_seq(sp, s, len_for(s));
    struct spool_stats st;
    spool_get_stats(sp, &st);
    assert_true(st.segments >= 3);
    spool_close(sp);
    char path[512];
    seg_file(path, sizeof path, 1);
    size_t n;
    uint8_t *b = slurp(path, &n);
    spit(path, b, n - 3); /* cut the first segment short */
    sp = NULL;
    char err[1024];
    assert_int_equal(spool_open(g_dir, &o, &sp, NULL, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "000000000001.spool"));
    assert_non_null(strstr(err, "later segments follow"));
    /* A whole missing segment is caught by the sequence numbers. */
    o.salvage = true;
    struct spool_open_report rep;
    sp = open_ok(&o, &rep);
    assert_int_equal(rep.salvaged_ranges, 1);
    assert_int_equal(rep.salvaged_seqs, 1);
    spool_close(sp);
    spit(path, b, n); /* repaired; now lose the second segment instead */
    free(b);
    seg_file(path, sizeof path, 2);
    assert_int_equal(unlink(path), 0);
    o.salvage = false;
    assert_int_equal(spool_open(g_dir, &o, &sp, NULL, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "missing"));
}

static void test_bad_segment_header(void **state)
{
    (void)state;
    struct spool_opts o = {.durability = SPOOL_OS, .segment_bytes = 4096};
    struct spool *sp = open_ok(&o, NULL);
    for (uint64_t s = 1; s <= 120; s++)
        append_seq(sp, s, len_for(s));
    spool_close(sp);
    char path[512];
    seg_file(path, sizeof path, 2);
    size_t n;
    uint8_t *b = slurp(path, &n);
    b[3] ^= 0x40; /* the magic */
    spit(path, b, n);
    free(b);
    char err[1024];
    assert_int_equal(spool_open(g_dir, &o, &sp, NULL, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "000000000002.spool: offset 0: bad segment header"));
    /* Salvage sets the segment aside as .bad and replays around it. */
    o.salvage = true;
    struct spool_open_report rep;
    sp = open_ok(&o, &rep);
    assert_int_equal(rep.salvaged_ranges, 1);
    assert_int_equal(rep.salvaged_bytes, n);
    assert_non_null(strstr(rep.salvage_file, "000000000002.spool.bad"));
    assert_int_equal(count_files(".bad"), 1);
    assert_true(rep.salvaged_seqs > 0);
    assert_int_equal(spool_replay_begin(sp), 0);
    struct spool_record r;
    uint64_t prev = 0, got = 0;
    int rc;
    while ((rc = spool_replay_next(sp, &r)) == 1) {
        assert_true(r.seq > prev);
        assert_true(check_fill(r.payload, r.seq, r.len));
        prev = r.seq;
        got++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(prev, 120);
    assert_int_equal(got + rep.salvaged_seqs, 120);
    spool_close(sp);
}

static void test_leftover_tmp_files_removed(void **state)
{
    (void)state;
    struct spool *sp = open_ok(NULL, NULL);
    append_seq(sp, 1, len_for(1));
    spool_close(sp);
    char p[600];
    snprintf(p, sizeof p, "%s/000000000002.spool.tmp", g_dir);
    spit(p, (const uint8_t *)"CTSP", 4); /* a crash while creating a segment */
    snprintf(p, sizeof p, "%s/acked.tmp", g_dir);
    spit(p, (const uint8_t *)"x", 1);
    struct spool_open_report rep;
    sp = open_ok(NULL, &rep);
    assert_int_equal(rep.tmp_removed, 2);
    assert_int_equal(count_files(".tmp"), 0);
    assert_int_equal(replay_check(sp, 1, 1), 1);
    spool_close(sp);
}

static void test_corrupt_watermark(void **state)
{
    (void)state;
    struct spool *sp = open_ok(NULL, NULL);
    for (uint64_t s = 1; s <= 4; s++)
        append_seq(sp, s, len_for(s));
    assert_int_equal(spool_ack(sp, 2), 0);
    spool_close(sp);
    char p[600];
    snprintf(p, sizeof p, "%s/acked", g_dir);
    size_t n;
    uint8_t *b = slurp(p, &n);
    assert_int_equal(n, 32);
    b[16] ^= 1;
    spit(p, b, n);
    free(b);
    char err[1024];
    assert_int_equal(spool_open(g_dir, NULL, &sp, NULL, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "acked"));
    /* Salvage replays everything still on disk (PostgreSQL's unique keys absorb the repeats). */
    struct spool_opts o = {.salvage = true};
    struct spool_open_report rep;
    sp = open_ok(&o, &rep);
    assert_int_equal(rep.salvaged_ranges, 1);
    assert_int_equal(replay_check(sp, 1, 4), 4);
    spool_close(sp);
    sp = open_ok(NULL, NULL); /* the watermark file was rewritten */
    spool_close(sp);
}

static void test_permissions_and_lock(void **state)
{
    (void)state;
    struct spool *sp = open_ok(NULL, NULL);
    append_seq(sp, 1, 5);
    struct spool *sp2 = NULL;
    char err[1024];
    assert_int_equal(spool_open(g_dir, NULL, &sp2, NULL, err, sizeof err), -EBUSY);
    assert_null(sp2);
    assert_non_null(strstr(err, "in use"));
    spool_close(sp);

    assert_int_equal(chmod(g_dir, 0777), 0);
    assert_int_equal(spool_open(g_dir, NULL, &sp, NULL, err, sizeof err), -EPERM);
    assert_non_null(strstr(err, "writable by group or others"));
    assert_int_equal(chmod(g_dir, 0770), 0);
    assert_int_equal(spool_open(g_dir, NULL, &sp, NULL, err, sizeof err), -EPERM);
    assert_int_equal(chmod(g_dir, 0750), 0); /* readable is fine, writable is not */
    sp = open_ok(NULL, NULL);
    spool_close(sp);

    char seg[512];
    seg_file(seg, sizeof seg, 1);
    assert_int_equal(chmod(seg, 0666), 0);
    assert_int_equal(spool_open(g_dir, NULL, &sp, NULL, err, sizeof err), -EPERM);
    assert_non_null(strstr(err, "000000000001.spool"));
    assert_int_equal(chmod(seg, 0600), 0);

    /* A symlink planted in place of a segment is not followed. */
    char other[600];
    snprintf(other, sizeof other, "%s/elsewhere", g_root);
    spit(other, (const uint8_t *)"x", 1);
    char link[512];
    seg_file(link, sizeof link, 7);
    assert_int_equal(symlink(other, link), 0);
    assert_int_equal(spool_open(g_dir, NULL, &sp, NULL, err, sizeof err), -ELOOP);
    assert_int_equal(unlink(link), 0);

    /* A world-writable directory such as /tmp itself is refused. */
    const char *t = getenv("TMPDIR");
    struct stat st;
    if (stat("/tmp", &st) == 0 && (st.st_mode & S_IWOTH) && !(t && *t))
        assert_int_equal(spool_open("/tmp", NULL, &sp, NULL, err, sizeof err), -EPERM);

    if (geteuid() == 0) { /* root can plant a directory owned by someone else */
        assert_int_equal(chown(g_dir, 12345, 12345), 0);
        assert_int_equal(spool_open(g_dir, NULL, &sp, NULL, err, sizeof err), -EPERM);
        assert_non_null(strstr(err, "owned by uid 12345"));
        assert_int_equal(chown(g_dir, 0, 0), 0);
    }
    /* A file where the directory should be. */
    char f[600];
    snprintf(f, sizeof f, "%s/plainfile", g_root);
    spit(f, (const uint8_t *)"x", 1);
    assert_int_equal(spool_open(f, NULL, &sp, NULL, err, sizeof err), -ENOTDIR);
    /* Bad arguments. */
    assert_int_equal(spool_open(NULL, NULL, &sp, NULL, err, sizeof err), -EINVAL);
    struct spool_opts bad = {.segment_bytes = 100};
    assert_int_equal(spool_open(g_dir, &bad, &sp, NULL, err, sizeof err), -EINVAL);
    assert_null(spool_close(NULL));
}

/* ---- watermark consistency (fuzz findings; tests/fuzz/crashes/spool-*) ---------------------- */

static void put32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A checksum-valid watermark file, as spool_ack writes it. */
static void write_ack_file(uint64_t seq)
{
    uint8_t b[32] = {0};
    memcpy(b, "CTSPACK\n", 8);
    put32le(b + 8, 1);
    put64le(b + 16, seq);
    put32le(b + 24, crc32c_ref(b, 24));
    char p[600];
    snprintf(p, sizeof p, "%s/acked", g_dir);
    spit(p, b, sizeof b);
}

/* A valid segment header for segment `no` starting at first_seq, followed by `tail`. */
static void write_seg_file(uint64_t no, uint64_t first_seq, const uint8_t *tail, size_t n)
{
    uint8_t *b = calloc(1, SEG_HDR + n + 1);
    assert_non_null(b);
    memcpy(b, "CTSPOOL\n", 8);
    put32le(b + 8, 1);
    put32le(b + 12, SEG_HDR);
    put64le(b + 16, no);
    put64le(b + 24, first_seq);
    put32le(b + 32, crc32c_ref(b, 32));
    if (n)
        memcpy(b + SEG_HDR, tail, n);
    char path[512];
    seg_file(path, sizeof path, no);
    spit(path, b, SEG_HDR + n);
    free(b);
}

static uint64_t stat_acked(struct spool *sp)
{
    struct spool_stats st;
    spool_get_stats(sp, &st);
    return st.acked_seq;
}

/* fuzz: spool-salvage-watermark-not-persisted. No watermark file and the oldest segment starts
 * after record 1: salvage takes the segment's start as the watermark, and must write it down, or
 * the next normal open refuses the very files the salvage accepted. */
static void test_salvage_writes_the_watermark_it_chose(void **state)
{
    (void)state;
    struct spool_opts o = {.durability = SPOOL_OS, .segment_bytes = 4096};
    struct spool *sp = open_ok(&o, NULL);
    for (uint64_t s = 1; s <= 120; s++)
        append_seq(sp, s, len_for(s));
    spool_close(sp);
    char path[512];
    seg_file(path, sizeof path, 2);
    size_t n;
    uint8_t *b = slurp(path, &n);
    uint64_t first = le64(b + 24);
    free(b);
    assert_true(first > 1 && first < 120);
    seg_file(path, sizeof path, 1);
    assert_int_equal(unlink(path), 0); /* segment 1 lost, never acked: no watermark file */
    char err[1024];
    assert_int_equal(spool_open(g_dir, &o, &sp, NULL, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "acked: missing"));

    o.salvage = true;
    struct spool_open_report rep;
    sp = open_ok(&o, &rep);
    assert_int_equal(rep.salvaged_ranges, 1);
    assert_non_null(strstr(rep.salvage_file, "/acked"));
    assert_int_equal(stat_acked(sp), first - 1);
    spool_close(sp); /* nothing replayed or acked */

    o.salvage = false;
    sp = open_ok(&o, &rep); /* failed with "acked: missing" before the fix */
    assert_int_equal(rep.salvaged_ranges, 0);
    assert_int_equal(stat_acked(sp), first - 1);
    assert_int_equal(replay_check(sp, first, 120), 121 - first);
    append_seq(sp, 121, len_for(121));
    spool_close(sp);
    sp = open_ok(&o, NULL);
    assert_int_equal(replay_check(sp, first, 121), 122 - first);
    spool_close(sp);
}

/* fuzz: spool-reopen-gap. Salvage accepts a gap between segments (records 2..5 lost; the empty
 * segment whose header claimed them is deleted at open). Once record 1 is acked nothing is left
 * to explain the gap: the watermark must cover it, or the next normal open refuses the files. */
static void test_ack_covers_a_salvaged_gap(void **state)
{
    (void)state;
    struct spool_opts o = {.durability = SPOOL_OS, .segment_bytes = 4096};
    struct spool *sp = open_ok(&o, NULL);
    append_seq(sp, 1, len_for(1));
    spool_close(sp);
    write_seg_file(2, 6, NULL, 0);

    char err[1024];
    assert_int_equal(spool_open(g_dir, &o, &sp, NULL, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "missing"));

    o.salvage = true;
    struct spool_open_report rep;
    sp = open_ok(&o, &rep);
    assert_int_equal(rep.salvaged_seqs, 4);
    assert_int_equal(replay_check(sp, 1, 1), 1);
    assert_int_equal(spool_ack(sp, 1), 0);
    assert_int_equal(stat_acked(sp), 5); /* 2..5 can never be replayed */
    struct spool_stats st;
    spool_get_stats(sp, &st);
    assert_int_equal(st.records_unacked, 0);
    append_seq(sp, 6, len_for(6));
    spool_close(sp);

    o.salvage = false;
    sp = open_ok(&o, &rep); /* "records 2..5 are missing" before the fix */
    assert_int_equal(rep.salvaged_ranges, 0);
    assert_int_equal(replay_check(sp, 6, 6), 1);
    spool_close(sp);
}

/* fuzz: spool-empty-segment-skips-watermark. Acked up to 66, and the only segment's header says
 * it starts at 113 but it holds just a torn record: 67..112 are missing although no surviving
 * record shows it. */
static void test_gap_after_watermark_seen_in_empty_segment(void **state)
{
    (void)state;
    struct spool *sp = open_ok(NULL, NULL);
    for (uint64_t s = 1; s <= 66; s++)
        append_seq(sp, s, len_for(s));
    assert_int_equal(spool_ack(sp, 66), 0);
    spool_close(sp);
    sp = open_ok(NULL, NULL); /* deletes the fully acked segment */
    spool_close(sp);
    assert_int_equal(count_files(".spool"), 0);
    const uint8_t torn[10] = {0xd5, 0x70, 0x6f, 0x9e, 4, 0, 0, 0, 1, 0};
    write_seg_file(2, 113, torn, sizeof torn);

    char err[1024];
    assert_int_equal(spool_open(g_dir, NULL, &sp, NULL, err, sizeof err), -EBADMSG);
    assert_null(sp);
    assert_non_null(strstr(err, "000000000002.spool"));
    assert_non_null(strstr(err, "67..112"));

    struct spool_opts o = {.salvage = true};
    struct spool_open_report rep;
    sp = open_ok(&o, &rep); /* the torn record was cut off by the refused open already */
    assert_int_equal(rep.salvaged_seqs, 112 - 66);
    assert_int_equal(stat_acked(sp), 112);
    assert_int_equal(replay_check(sp, 113, 112), 0);
    append_seq(sp, 113, len_for(113)); /* never reuses a number that may have been applied */
    spool_close(sp);
    sp = open_ok(NULL, &rep); /* refused the gap before the fix */
    assert_int_equal(rep.salvaged_ranges + rep.salvaged_seqs + rep.torn_bytes, 0);
    assert_int_equal(replay_check(sp, 113, 113), 1);
    spool_close(sp);

    /* Two empty segments (a crash right after creating each): the first one is named. */
    rm_rf(g_dir);
    assert_int_equal(mkdir(g_dir, 0700), 0);
    write_ack_file(150);
    write_seg_file(9, 200, NULL, 0);
    write_seg_file(10, 200, NULL, 0);
    assert_int_equal(spool_open(g_dir, NULL, &sp, NULL, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "000000000009.spool: offset 0: starts at record 200 but only "
                                "records up to 150 are acked: records 151..199 are missing"));
    /* ... and a gap ahead of records, as before. */
    rm_rf(g_dir);
    struct spool_opts os = {.durability = SPOOL_OS, .segment_bytes = 4096};
    sp = open_ok(&os, NULL);
    for (uint64_t s = 1; s <= 120; s++)
        append_seq(sp, s, len_for(s));
    assert_int_equal(spool_ack(sp, 10), 0);
    spool_close(sp);
    char path[512];
    seg_file(path, sizeof path, 2);
    size_t n;
    uint8_t *b = slurp(path, &n);
    uint64_t first = le64(b + 24);
    free(b);
    seg_file(path, sizeof path, 1);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(spool_open(g_dir, &os, &sp, NULL, err, sizeof err), -EBADMSG);
    char want[128];
    snprintf(want, sizeof want, "000000000002.spool: offset 0: starts at record %" PRIu64
             " but only records up to 10 are acked: records 11..%" PRIu64 " are missing",
             first, first - 1);
    if (!strstr(err, want))
        fail_msg("want \"%s\" in: %s", want, err);
}

/* fuzz: spool-watermark-uint64-max-wraps. A checksum-valid watermark past every record used to
 * be accepted: next_seq wrapped to 0 and an append returned seq 0, never replayed. */
static void test_watermark_past_last_record_refused(void **state)
{
    (void)state;
    struct spool *sp = open_ok(NULL, NULL);
    for (uint64_t s = 1; s <= 5; s++)
        append_seq(sp, s, len_for(s));
    spool_close(sp);
    char err[1024];
    uint64_t bad[] = {UINT64_MAX, (uint64_t)INT64_MAX + 1, (uint64_t)INT64_MAX, 6, 1000};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_ack_file(bad[i]);
        sp = NULL;
        int rc = spool_open(g_dir, NULL, &sp, NULL, err, sizeof err);
        if (rc != -EBADMSG)
            fail_msg("watermark %" PRIu64 ": open returned %d: %s", bad[i], rc, err);
        assert_null(sp);
        assert_non_null(strstr(err, "acked"));
    }
    /* Salvage replays everything still there and writes a watermark that fits. */
    struct spool_opts o = {.salvage = true};
    struct spool_open_report rep;
    sp = open_ok(&o, &rep);
    assert_int_equal(rep.salvaged_ranges, 1);
    assert_int_equal(stat_acked(sp), 0);
    assert_int_equal(replay_check(sp, 1, 5), 5);
    append_seq(sp, 6, len_for(6));
    spool_close(sp);
    sp = open_ok(NULL, NULL);
    assert_int_equal(replay_check(sp, 1, 6), 6);
    spool_close(sp);

    /* No segment to compare with: the range still holds, and appends stop at the last number. */
    rm_rf(g_dir);
    assert_int_equal(mkdir(g_dir, 0700), 0);
    write_ack_file(UINT64_MAX);
    assert_int_equal(spool_open(g_dir, NULL, &sp, NULL, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "beyond the largest sequence number"));
    write_ack_file((uint64_t)INT64_MAX - 2);
    sp = open_ok(NULL, NULL);
    uint64_t seq = 0;
    assert_int_equal(spool_append(sp, 1, "a", 1, &seq), 0);
    assert_int_equal(seq, (uint64_t)INT64_MAX - 1);
    struct spool_rec_in two[2] = {{1, "b", 1}, {1, "c", 1}};
    assert_int_equal(spool_append_many(sp, two, 2, &seq), -EOVERFLOW);
    assert_int_equal(spool_append(sp, 1, "b", 1, &seq), 0);
    assert_int_equal(seq, (uint64_t)INT64_MAX);
    seq = 0;
    assert_int_equal(spool_append(sp, 1, "c", 1, &seq), -EOVERFLOW);
    assert_int_equal(seq, 0);
    assert_non_null(strstr(spool_last_error(sp), "no sequence numbers left"));
    struct spool_stats st;
    spool_get_stats(sp, &st);
    assert_int_equal(st.next_seq, (uint64_t)INT64_MAX + 1);
    assert_int_equal(st.records_unacked, 2);
    assert_false(st.broken);
    spool_close(sp);
    /* What was appended reopens and replays; appending stays refused. */
    sp = open_ok(NULL, NULL);
    struct spool_record r;
    assert_int_equal(spool_replay_begin(sp), 0);
    assert_int_equal(spool_replay_next(sp, &r), 1);
    assert_int_equal(r.seq, (uint64_t)INT64_MAX - 1);
    assert_int_equal(spool_replay_next(sp, &r), 1);
    assert_int_equal(r.seq, (uint64_t)INT64_MAX);
    assert_int_equal(spool_replay_next(sp, &r), 0);
    assert_int_equal(spool_append(sp, 1, "c", 1, NULL), -EOVERFLOW);
    assert_int_equal(spool_ack(sp, (uint64_t)INT64_MAX), 0);
    spool_close(sp);
}

/* SPOOL_OS: the records an ack covers are synced before the watermark is written, so a power
 * loss cannot leave a watermark past the records on disk (which spool_open refuses). */
static void test_ack_syncs_covered_records_first(void **state)
{
    (void)state;
    struct spool_opts o = {.durability = SPOOL_OS};
    struct spool *sp = open_ok(&o, NULL);
    for (uint64_t s = 1; s <= 3; s++)
        append_seq(sp, s, len_for(s));
    struct spool_stats st;
    spool_get_stats(sp, &st);
    assert_int_equal(st.syncs, 0);
    assert_int_equal(spool_ack(sp, 2), 0);
    spool_get_stats(sp, &st);
    assert_int_equal(st.syncs, 1);
    assert_int_equal(spool_ack(sp, 3), 0); /* nothing appended since: no sync */
    spool_get_stats(sp, &st);
    assert_int_equal(st.syncs, 1);
    append_seq(sp, 4, len_for(4));
    assert_int_equal(spool_ack(sp, 4), 0);
    spool_get_stats(sp, &st);
    assert_int_equal(st.syncs, 2);
    spool_close(sp);
}

/* ---- crash simulation ------------------------------------------------------------------------ */

#define CHILD_CHECK(c)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "child check failed at line %d: %s\n", __LINE__, #c);                  \
            _exit(3);                                                                              \
        }                                                                                          \
    } while (0)

static size_t crash_len(uint64_t seq)
{
    /* Mostly small, sometimes large: a large write(2) can be cut short by SIGKILL. */
    return seq % 5 == 0 ? (size_t)((seq * 7919u) % (1u << 20)) : (size_t)((seq * 37u) % 700u);
}

static void crash_child(int wfd, enum spool_durability d)
{
    struct spool_opts o = {.durability = d, .segment_bytes = 256 << 10};
    struct spool *sp = NULL;
    char err[512];
    int rc = spool_open(g_dir, &o, &sp, NULL, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "child open: %s\n", err);
        _exit(2);
    }
    struct spool_stats st;
    spool_get_stats(sp, &st);
    uint8_t *buf = malloc(1u << 20);
    CHILD_CHECK(buf);
    for (uint64_t s = st.next_seq;; s++) {
        size_t len = crash_len(s);
        fill(buf, s, len);
        uint64_t got;
        CHILD_CHECK(spool_append(sp, (uint16_t)s, buf, len, &got) == 0);
        CHILD_CHECK(got == s);
        /* Tell the parent: this one returned, so it must survive. */
        CHILD_CHECK(write(wfd, &s, sizeof s) == (ssize_t)sizeof s);
    }
}

static void test_crash_kill9_keeps_gap_free_prefix(void **state)
{
    (void)state;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    print_message("crash test seed %u\n", seed);
    uint64_t acked = 0, torn = 0, killed_mid = 0;
    for (int iter = 0; iter < 24; iter++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            crash_child(p[1], iter % 3 == 0 ? SPOOL_FSYNC : SPOOL_OS);
        }
        close(p[1]);
        /* Let it run a random while, then kill it wherever it is (the assertions below do not
         * depend on where that is). */
        struct timespec ts = {0, (long)(rand() % 30000) * 1000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        uint64_t s, returned = 0;
        while (read(p[0], &s, sizeof s) == (ssize_t)sizeof s)
            returned = s;
        close(p[0]);

        struct spool_open_report rep;
        struct spool *sp = open_ok(NULL, &rep);
        torn += rep.torn_bytes > 0;
        assert_int_equal(rep.salvaged_ranges, 0);
        struct spool_stats st;
        spool_get_stats(sp, &st);
        assert_int_equal(st.acked_seq, acked);
        /* Every record that spool_append returned is there, in a gap-free run after the
         * watermark, with its content intact. */
        assert_true(st.next_seq - 1 >= returned);
        killed_mid += st.next_seq - 1 > returned;
        assert_int_equal(spool_replay_begin(sp), 0);
        struct spool_record r;
        uint64_t want = acked + 1;
        int rc;
        while ((rc = spool_replay_next(sp, &r)) == 1) {
            assert_int_equal(r.seq, want);
            assert_int_equal(r.type, (uint16_t)want);
            assert_int_equal(r.len, crash_len(want));
            assert_true(check_fill(r.payload, want, r.len));
            want++;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(want, st.next_seq);
        /* Ack some of it now and then, as a replay into PostgreSQL would. */
        if (iter % 2 && st.next_seq - 1 > acked) {
            acked += (st.next_seq - 1 - acked) / 2 + 1;
            assert_int_equal(spool_ack(sp, acked), 0);
        }
        spool_close(sp);
    }
    print_message("crash test: %" PRIu64 " torn tails cut, %" PRIu64
                  " kills left a record that had not returned\n", torn, killed_mid);
}

/* ---- disk full ------------------------------------------------------------------------------ */

static int enospc_child(void)
{
    /* A private mount namespace with a 256 KiB tmpfs: needs root (or CAP_SYS_ADMIN). */
    if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("tmpfs", g_root, "tmpfs", 0, "size=256k,mode=0700") < 0)
        return 77;
    CHILD_CHECK(mkdir(g_dir, 0700) == 0);
    char filler[600];
    snprintf(filler, sizeof filler, "%s/filler", g_root);
    int ffd = open(filler, O_WRONLY | O_CREAT, 0600);
    CHILD_CHECK(ffd >= 0);
    static uint8_t junk[64 << 10];
    CHILD_CHECK(write(ffd, junk, sizeof junk) == (ssize_t)sizeof junk);
    close(ffd);

    struct spool *sp = NULL;
    char err[512];
    CHILD_CHECK(spool_open(g_dir, NULL, &sp, NULL, err, sizeof err) == 0);
    static uint8_t buf[10000];
    uint64_t s = 1;
    int rc;
    for (;; s++) {
        fill(buf, s, sizeof buf);
        uint64_t got;
        rc = spool_append(sp, 1, buf, sizeof buf, &got);
        if (rc != 0)
            break;
        CHILD_CHECK(got == s);
        CHILD_CHECK(s < 1000);
    }
    CHILD_CHECK(rc == -ENOSPC);
    CHILD_CHECK(strstr(spool_last_error(sp), "disk full") != NULL);
    struct spool_stats st;
    spool_get_stats(sp, &st);
    CHILD_CHECK(!st.broken);
    CHILD_CHECK(st.next_seq == s);
    CHILD_CHECK(st.append_errors == 1);
    CHILD_CHECK(spool_append(sp, 1, buf, sizeof buf, NULL) == -ENOSPC);
    /* Space comes back: appending works again, with the next number. */
    CHILD_CHECK(unlink(filler) == 0);
    fill(buf, s, sizeof buf);
    uint64_t got = 0;
    CHILD_CHECK(spool_append(sp, 1, buf, sizeof buf, &got) == 0);
    CHILD_CHECK(got == s);
    spool_close(sp);
    /* The failed writes left no partial record behind. */
    struct spool_open_report rep;
    CHILD_CHECK(spool_open(g_dir, NULL, &sp, &rep, err, sizeof err) == 0);
    CHILD_CHECK(rep.torn_bytes == 0);
    CHILD_CHECK(rep.records == s);
    struct spool_record r;
    uint64_t want = 1;
    while ((rc = spool_replay_next(sp, &r)) == 1) {
        CHILD_CHECK(r.seq == want && r.len == sizeof buf && check_fill(r.payload, want, r.len));
        want++;
    }
    CHILD_CHECK(rc == 0 && want == s + 1);
    spool_close(sp);
    umount2(g_root, MNT_DETACH);
    return 0;
}

static void test_disk_full(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(enospc_child());
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        print_message("skipped: cannot mount a small tmpfs (needs root in a mount namespace)\n");
        skip();
    }
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_format_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_segments_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_many_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_sees_later_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_persists_and_deletes_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_watermark_not_replayed_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bg_sync_and_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_depth_and_lag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_last_record_every_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_bit_in_last_record_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_after_last_record_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_bit_in_middle_is_error_then_salvage, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_tail_of_earlier_segment_is_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_segment_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftover_tmp_files_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_watermark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permissions_and_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_salvage_writes_the_watermark_it_chose, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gap_after_watermark_seen_in_empty_segment, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ack_covers_a_salvaged_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watermark_past_last_record_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_syncs_covered_records_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_kill9_keeps_gap_free_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
