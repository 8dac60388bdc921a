/* spool: see spool.h for the format and the guarantees. */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SEG_HDR 40u
#define REC_HDR 32u
#define ACK_SIZE 32u
#define REC_MARKER 0x9e6f70d5u
#define VERSION 1u
#define SEG_MAGIC "CTSPOOL\n"
#define ACK_MAGIC "CTSPACK\n"
#define ACK_NAME "acked"
#define ACK_TMP "acked.tmp"
#define SEG_DIGITS 12
#define READ_CHUNK (64u << 10)
#define DEF_SEGMENT_BYTES (64ull << 20)
#define DEF_MAX_PAYLOAD (16u << 20)
#define NONE UINT64_MAX
/* The largest sequence number: PostgreSQL keeps them as bigint (the journal's spool_applied.seq).
 * A watermark, segment header or record beyond it is corruption; an append past it is
 * -EOVERFLOW (at a million records a second that is 292 000 years away). */
#define SEQ_MAX ((uint64_t)INT64_MAX)

/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), byte-wise table: records are small and an
 * fdatasync costs far more than the checksum. */
static const uint32_t crc_tab[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu,
    0x26a1e7e8u, 0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu,
    0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu,
    0xf165b798u, 0x030e349bu, 0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u,
    0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u, 0x5d1d08bfu, 0xaf768bbcu,
    0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u, 0x33ed7d2au,
    0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
    0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau,
    0x30e349b1u, 0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu,
    0x1642ae59u, 0xe4292d5au, 0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
    0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu,
    0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u, 0x67dafa54u, 0x95b17957u,
    0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu, 0xfe53516fu,
    0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
    0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu,
    0x3ac7f2ebu, 0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u,
    0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu,
    0x4767748au, 0xb50cf789u, 0xeb1fcbadu, 0x197448aeu, 0x0a24bb5au, 0xf84f3859u,
    0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u, 0x7198540du, 0x83f3d70eu,
    0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
    0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
    0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu,
    0x456cac67u, 0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u,
    0xe9141340u, 0x1b7f9043u, 0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu,
    0x92a8fc17u, 0x60c37f14u, 0x73938ce0u, 0x81f80fe3u, 0x55326b08u, 0xa759e80bu,
    0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu, 0x0b21572cu,
    0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u, 0x502036a5u,
    0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
    0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u,
    0x0e330a81u, 0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
    0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u,
    0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u, 0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu,
    0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u, 0x0417b1dbu, 0xf67c32d8u,
    0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu,
    0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
    0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u,
    0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u,
    0x7fab5e8cu, 0x8dc0dd8fu, 0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu,
    0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u, 0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u,
    0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
    0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au, 0xc69f7b69u,
    0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
    0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

static uint32_t crc32c_update(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--)
        crc = crc_tab[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- system call wrappers: EINTR and short transfers -------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads up to n bytes at off; *got < n only at the end of the file. */
static int pread_full(int fd, uint8_t *p, size_t n, uint64_t off, size_t *got)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, p + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

static int sync_fd(int fd, bool data_only)
{
    for (;;) {
        int rc = data_only ? fdatasync(fd) : fsync(fd);
        if (rc == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

static int ftruncate_retry(int fd, uint64_t len)
{
    while (ftruncate(fd, (off_t)len) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

/* ---- a buffered reader over one segment file ---------------------------------------------- */

struct rdr {
    int fd;
    uint64_t limit; /* never read at or past this: bytes beyond are not known to be complete */
    uint64_t boff;  /* the buffer holds [boff, boff + blen) */
    size_t blen, cap;
    uint8_t *buf;
};

static void rdr_close(struct rdr *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->blen = 0;
}

/* *p = bytes [off, off + len). -ENODATA when that passes the limit. The buffer only ever holds
 * bytes below the limit, which never change (append-only), so it stays valid as the limit grows. */
static int rdr_get(struct rdr *r, uint64_t off, size_t len, const uint8_t **p)
{
    if (off > r->limit || len > r->limit - off)
        return -ENODATA;
    if (off >= r->boff && off + len <= r->boff + r->blen) {
        *p = r->buf + (off - r->boff);
        return 0;
    }
    size_t want = len > READ_CHUNK ? len : READ_CHUNK;
    if (want > r->limit - off)
        want = (size_t)(r->limit - off);
    if (want > r->cap) {
        uint8_t *nb = realloc(r->buf, want);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = want;
    }
    size_t got;
    r->blen = 0;
    int rc = pread_full(r->fd, r->buf, want, off, &got);
    if (rc < 0)
        return rc;
    r->boff = off;
    r->blen = got;
    if (got < len)
        return -EIO; /* the file is shorter than it was: changed behind our back */
    *p = r->buf;
    return 0;
}

/* ---- records ------------------------------------------------------------------------------- */

struct rec {
    uint32_t len;
    uint16_t type;
    uint64_t seq;
    int64_t us;
    const uint8_t *payload;
};

enum bad {
    BAD_NONE = 0,
    BAD_SHORT_HDR,
    BAD_MARKER,
    BAD_FLAGS,
    BAD_LEN,
    BAD_SHORT,
    BAD_CRC,
    BAD_SEQ,
};

static const char *bad_name(int b)
{
    switch (b) {
    case BAD_SHORT_HDR: return "truncated record header";
    case BAD_MARKER: return "no record marker";
    case BAD_FLAGS: return "unknown record flags";
    case BAD_LEN: return "record length out of range";
    case BAD_SHORT: return "record runs past the end of the file";
    case BAD_CRC: return "record checksum mismatch";
    case BAD_SEQ: return "record sequence number out of order";
    }
    return "bad record";
}

static void rec_encode(uint8_t *h, uint16_t type, const void *payload, size_t len, uint64_t seq,
                       int64_t us)
{
    put32(h, REC_MARKER);
    put32(h + 4, (uint32_t)len);
    put16(h + 8, type);
    put16(h + 10, 0);
    put64(h + 12, seq);
    put64(h + 20, (uint64_t)us);
    uint32_t c = crc32c_update(0, h, 28);
    if (len)
        c = crc32c_update(c, payload, len);
    put32(h + 28, c);
}

/* Only the header, no checksum: for walking records already checked. BAD_* > 0, or -errno. */
static int rec_peek(struct rdr *r, uint64_t off, struct rec *rc_out)
{
    const uint8_t *h;
    int rc = rdr_get(r, off, REC_HDR, &h);
    if (rc == -ENODATA)
        return BAD_SHORT_HDR;
    if (rc < 0)
        return rc;
    if (get32(h) != REC_MARKER)
        return BAD_MARKER;
    if (get16(h + 10) != 0)
        return BAD_FLAGS;
    rc_out->len = get32(h + 4);
    if (rc_out->len > SPOOL_PAYLOAD_MAX)
        return BAD_LEN;
    rc_out->type = get16(h + 8);
    rc_out->seq = get64(h + 12);
    rc_out->us = (int64_t)get64(h + 20);
    if (rc_out->seq == 0 || rc_out->seq == NONE)
        return BAD_SEQ;
    if ((uint64_t)REC_HDR + rc_out->len > r->limit - off)
        return BAD_SHORT;
    return 0;
}

/* The whole record, checksum verified. 0, BAD_* > 0, or -errno. */
static int rec_read(struct rdr *r, uint64_t off, struct rec *out)
{
    int rc = rec_peek(r, off, out);
    if (rc != 0)
        return rc;
    const uint8_t *p;
    rc = rdr_get(r, off, REC_HDR + (size_t)out->len, &p);
    if (rc == -ENODATA)
        return BAD_SHORT;
    if (rc < 0)
        return rc;
    uint32_t c = crc32c_update(0, p, 28);
    c = crc32c_update(c, p + REC_HDR, out->len);
    if (c != get32(p + 28))
        return BAD_CRC;
    if (out->seq > SEQ_MAX)
        return BAD_SEQ; /* after the checksum: a flipped bit in a torn record is a torn record */
    out->payload = p + REC_HDR;
    return 0;
}

/* The offset of the first valid record at or after `from`, or NONE. Only used on corruption. */
static int resync(struct rdr *r, uint64_t from, uint64_t *found)
{
    *found = NONE;
    for (uint64_t p = from; p + REC_HDR <= r->limit; p++) {
        const uint8_t *h;
        int rc = rdr_get(r, p, 4, &h);
        if (rc < 0)
            return rc;
        if (get32(h) != REC_MARKER)
            continue;
        struct rec rec;
        rc = rec_read(r, p, &rec);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            *found = p;
            return 0;
        }
    }
    return 0;
}

/* ---- the spool ----------------------------------------------------------------------------- */

struct seg {
    uint64_t no;
    uint64_t first_seq;     /* from the header: the seq its first record was to have */
    uint64_t last_seq;      /* of its last record; first_seq - 1 while empty */
    uint64_t nrec;
    uint64_t size;          /* end of its last valid record (or of the header) */
    uint64_t first_rec_seq; /* its first valid record (differs from first_seq after salvage) */
    uint64_t first_rec_off;
    int64_t first_us;
};

struct skip { /* a salvaged range, jumped over when walking records */
    uint64_t segno, off, len;
};

struct pos { /* a record's place */
    bool valid;
    uint64_t segno, off, seq;
    int64_t us;
};

struct spool {
    int dirfd;
    char *dir;
    struct spool_opts o;
    struct seg *segs;
    size_t nseg, capseg;
    struct skip *skips;
    size_t nskip, capskip;
    int wfd;             /* the active (last) segment, open for appends; -1 before the first */
    bool dirty;          /* appended since the last fdatasync */
    uint64_t wgen;       /* appends so far (an off-loop sync knows what it covered) */
    bool bg_busy;        /* a spool_bg is prepared and not finished */
    int broken;          /* 0, or the sticky error */
    uint64_t next_segno;
    uint64_t next_seq;
    uint64_t acked;
    struct pos ackpos;   /* the first record after the watermark, when there is one */
    uint64_t cur_seq;    /* replay: the next seq to return (0 = replay not begun) */
    struct pos cur;      /* ... and where it probably is */
    struct rdr rd;       /* reads segment rd_segno */
    uint64_t rd_segno;
    uint8_t *wbuf;
    size_t wcap;
    struct spool_stats st;
    char err[SPOOL_PATH_MAX + 256];
};

static void seterr(struct spool *sp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(struct spool *sp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sp->err, sizeof sp->err, fmt, ap);
    va_end(ap);
}

static void seg_name(char *buf, size_t n, uint64_t no, const char *suffix)
{
    snprintf(buf, n, "%0*" PRIu64 ".spool%s", SEG_DIGITS, no, suffix);
}

/* "<dir>/<name>" for messages and reports. */
static void seg_path(const struct spool *sp, char *buf, size_t n, uint64_t no)
{
    char name[64];
    seg_name(name, sizeof name, no, "");
    snprintf(buf, n, "%s/%s", sp->dir, name);
}

static struct seg *seg_find(struct spool *sp, uint64_t no)
{
    for (size_t i = 0; i < sp->nseg; i++)
        if (sp->segs[i].no == no)
            return &sp->segs[i];
    return NULL;
}

static const struct skip *skip_at(const struct spool *sp, uint64_t segno, uint64_t off)
{
    for (size_t i = 0; i < sp->nskip; i++)
        if (sp->skips[i].segno == segno && sp->skips[i].off == off)
            return &sp->skips[i];
    return NULL;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    while (nc < need)
        nc *= 2;
    void *na = realloc(*arr, nc * elem);
    if (!na)
        return -ENOMEM;
    *arr = na;
    *cap = nc;
    return 0;
}

/* Refuses files and directories another user could have planted or could change. */
static int check_owner(struct spool *sp, const struct stat *st, bool dir, const char *what)
{
    if (dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode)) {
        seterr(sp, "%s: not a %s", what, dir ? "directory" : "regular file");
        return -EPERM;
    }
    if (st->st_uid != geteuid()) {
        seterr(sp, "%s: owned by uid %u, not by this process's uid %u", what,
               (unsigned)st->st_uid, (unsigned)geteuid());
        return -EPERM;
    }
    if (st->st_mode & (S_IWGRP | S_IWOTH)) {
        seterr(sp, "%s: writable by group or others (mode %04o); expected %s", what,
               (unsigned)(st->st_mode & 07777), dir ? "0700" : "0600");
        return -EPERM;
    }
    return 0;
}

/* Points the reader at segment `no`, limited to its known end. */
static int rd_use(struct spool *sp, const struct seg *s)
{
    if (sp->rd.fd < 0 || sp->rd_segno != s->no) {
        rdr_close(&sp->rd);
        char name[64];
        seg_name(name, sizeof name, s->no, "");
        int fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            int e = -errno;
            seterr(sp, "%s/%s: open: %s", sp->dir, name, strerror(-e));
            return e;
        }
        sp->rd.fd = fd;
        sp->rd.blen = 0;
        sp->rd_segno = s->no;
    }
    sp->rd.limit = s->size;
    return 0;
}

/* The first record with seq >= target (salvage may have left gaps): *out, or out->valid false
 * when there is none. */
static int locate(struct spool *sp, uint64_t target, struct pos *out)
{
    out->valid = false;
    for (size_t i = 0; i < sp->nseg; i++) {
        struct seg *s = &sp->segs[i];
        if (s->nrec == 0 || s->last_seq < target)
            continue;
        if (target <= s->first_rec_seq) {
            *out = (struct pos){true, s->no, s->first_rec_off, s->first_rec_seq, s->first_us};
            return 0;
        }
        /* Walk the headers from the nearest known place before the target. */
        uint64_t off = s->first_rec_off;
        uint64_t seq = s->first_rec_seq;
        const struct pos *hints[2] = {&sp->ackpos, &sp->cur};
        for (int h = 0; h < 2; h++)
            if (hints[h]->valid && hints[h]->segno == s->no && hints[h]->seq <= target &&
                hints[h]->seq > seq) {
                off = hints[h]->off;
                seq = hints[h]->seq;
            }
        int rc = rd_use(sp, s);
        if (rc < 0)
            return rc;
        while (off < s->size) {
            const struct skip *k = skip_at(sp, s->no, off);
            if (k) {
                off += k->len;
                continue;
            }
            struct rec r;
            rc = rec_peek(&sp->rd, off, &r);
            if (rc != 0) {
                char path[SPOOL_PATH_MAX];
                seg_path(sp, path, sizeof path, s->no);
                seterr(sp, "%s: offset %" PRIu64 ": %s (changed since it was checked)", path, off,
                       rc > 0 ? bad_name(rc) : strerror(-rc));
                return rc > 0 ? -EBADMSG : rc;
            }
            if (r.seq >= target) {
                *out = (struct pos){true, s->no, off, r.seq, r.us};
                return 0;
            }
            off += REC_HDR + r.len;
        }
        char path[SPOOL_PATH_MAX];
        seg_path(sp, path, sizeof path, s->no);
        seterr(sp, "%s: record %" PRIu64 " not found (changed since it was checked)", path,
               target);
        return -EBADMSG;
    }
    return 0;
}

/* Deletes leading segments whose records are all acked, except the one appends go to. A failed
 * unlink is left for the next ack or open (the watermark already covers it). */
static void drop_acked(struct spool *sp, uint64_t *deleted)
{
    size_t n = 0;
    while (n < sp->nseg) {
        struct seg *s = &sp->segs[n];
        bool active = sp->wfd >= 0 && n == sp->nseg - 1;
        if (active || (s->nrec > 0 && s->last_seq > sp->acked))
            break;
        char name[64];
        seg_name(name, sizeof name, s->no, "");
        if (unlinkat(sp->dirfd, name, 0) < 0 && errno != ENOENT) {
            seterr(sp, "%s/%s: unlink: %s (retried at the next ack)", sp->dir, name,
                   strerror(errno));
            break;
        }
        if (sp->rd.fd >= 0 && sp->rd_segno == s->no)
            rdr_close(&sp->rd);
        size_t k = 0;
        for (size_t i = 0; i < sp->nskip; i++)
            if (sp->skips[i].segno != s->no)
                sp->skips[k++] = sp->skips[i];
        sp->nskip = k;
        if (deleted)
            (*deleted)++;
        n++;
    }
    if (n) {
        memmove(sp->segs, sp->segs + n, (sp->nseg - n) * sizeof *sp->segs);
        sp->nseg -= n;
    }
}

/* Writes the ack file for seq through dirfd (tmp, fsync, rename, directory fsync). Touches
 * nothing of the spool: it also runs off the loop (spool_bg_run). 0 or a negative errno, with
 * what failed in err. */
static int ack_file_put(int dirfd, uint64_t seq, char *err, size_t errlen)
{
    uint8_t b[ACK_SIZE] = {0};
    memcpy(b, ACK_MAGIC, 8);
    put32(b + 8, VERSION);
    put64(b + 16, seq);
    put32(b + 24, crc32c_update(0, b, 24));
    int fd = openat(dirfd, ACK_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = -errno;
        snprintf(err, errlen, ACK_TMP ": open: %s", strerror(-e));
        return e;
    }
    int rc = write_all(fd, b, sizeof b);
    const char *step = "write";
    if (rc == 0) {
        rc = sync_fd(fd, false);
        step = "fsync";
    }
    close(fd);
    if (rc == 0 && renameat(dirfd, ACK_TMP, dirfd, ACK_NAME) < 0) {
        rc = -errno;
        step = "rename";
    }
    if (rc == 0) {
        rc = sync_fd(dirfd, false);
        if (rc < 0) {
            snprintf(err, errlen, "fsync of the directory after writing " ACK_NAME ": %s",
                     strerror(-rc));
            return rc;
        }
        return 0;
    }
    snprintf(err, errlen, ACK_TMP ": %s: %s", step, strerror(-rc));
    unlinkat(dirfd, ACK_TMP, 0);
    return rc;
}

static int ack_file_write(struct spool *sp, uint64_t seq)
{
    char err[200];
    int rc = ack_file_put(sp->dirfd, seq, err, sizeof err);
    if (rc < 0)
        seterr(sp, "%s/%s", sp->dir, err);
    return rc;
}

/* Starts segment next_segno: header written to a .tmp, synced, renamed into place, directory
 * synced, so a segment file never exists with a partial header. */
static int seg_create(struct spool *sp)
{
    if (sp->wfd >= 0) {
        /* The old segment's records reach the disk before the new segment exists: a power loss
         * then never leaves a torn record anywhere but at the very end. */
        if (sp->dirty) {
            int rc = sync_fd(sp->wfd, true);
            sp->st.syncs++;
            if (rc < 0) {
                sp->broken = -EIO;
                seterr(sp, "%s: fdatasync of the last segment: %s", sp->dir, strerror(-rc));
                return -EIO;
            }
            sp->dirty = false;
        }
        close(sp->wfd);
        sp->wfd = -1;
    }
    int rc = grow((void **)&sp->segs, &sp->capseg, sp->nseg + 1, sizeof *sp->segs);
    if (rc < 0)
        return rc;
    uint64_t no = sp->next_segno;
    char tmp[64], name[64];
    seg_name(tmp, sizeof tmp, no, ".tmp");
    seg_name(name, sizeof name, no, "");
    unlinkat(sp->dirfd, tmp, 0);
    int fd = openat(sp->dirfd, tmp,
                    O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = -errno;
        seterr(sp, "%s/%s: create: %s", sp->dir, tmp, strerror(-rc));
        return rc;
    }
    uint8_t h[SEG_HDR] = {0};
    memcpy(h, SEG_MAGIC, 8);
    put32(h + 8, VERSION);
    put32(h + 12, SEG_HDR);
    put64(h + 16, no);
    put64(h + 24, sp->next_seq);
    put32(h + 32, crc32c_update(0, h, 32));
    const char *step = "write";
    rc = write_all(fd, h, sizeof h);
    if (rc == 0) {
        step = "fdatasync";
        rc = sync_fd(fd, true);
    }
    if (rc == 0 && renameat(sp->dirfd, tmp, sp->dirfd, name) < 0) {
        step = "rename";
        rc = -errno;
    }
    if (rc < 0) {
        seterr(sp, "%s/%s: %s: %s", sp->dir, tmp, step, strerror(-rc));
        close(fd);
        unlinkat(sp->dirfd, tmp, 0);
        return rc;
    }
    rc = sync_fd(sp->dirfd, false);
    if (rc < 0) {
        /* The rename may or may not be durable; do not build on it. */
        seterr(sp, "%s: fsync of the directory after creating %s: %s", sp->dir, name,
               strerror(-rc));
        close(fd);
        sp->broken = -EIO;
        return -EIO;
    }
    sp->segs[sp->nseg++] = (struct seg){.no = no, .first_seq = sp->next_seq,
                                        .last_seq = sp->next_seq - 1, .size = SEG_HDR,
                                        .first_rec_off = SEG_HDR};
    sp->next_segno++;
    sp->wfd = fd;
    return 0;
}

/* ---- appending ----------------------------------------------------------------------------- */

int spool_append_many(struct spool *sp, const struct spool_rec_in *recs, size_t n,
                      uint64_t *first_seq)
{
    if (!sp || (!recs && n) || n == 0)
        return -EINVAL;
    if (sp->broken) {
        seterr(sp, "%s: spool broken by an earlier failed sync or write; reopen it", sp->dir);
        return sp->broken;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].len > sp->o.max_payload) {
            seterr(sp, "%s: record of %zu bytes is over the %" PRIu32 "-byte limit", sp->dir,
                   recs[i].len, sp->o.max_payload);
            return -EMSGSIZE;
        }
        if (recs[i].len && !recs[i].payload)
            return -EINVAL;
        if (total > SIZE_MAX / 2)
            return -EMSGSIZE;
        total += REC_HDR + recs[i].len;
    }
    int rc = 0;
    if (n > SEQ_MAX + 1 - sp->next_seq) { /* next_seq <= SEQ_MAX + 1 always */
        seterr(sp, "%s: no sequence numbers left for %zu record(s) after %" PRIu64, sp->dir, n,
               sp->next_seq - 1);
        rc = -EOVERFLOW;
        goto fail;
    }
    struct seg *s = sp->wfd >= 0 ? &sp->segs[sp->nseg - 1] : NULL;
    if (!s || (s->nrec > 0 && s->size + total > sp->o.segment_bytes)) {
        rc = seg_create(sp);
        if (rc < 0)
            goto fail;
        s = &sp->segs[sp->nseg - 1];
    }
    rc = grow((void **)&sp->wbuf, &sp->wcap, total, 1);
    if (rc < 0)
        goto fail;
    int64_t us = now_us();
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        rec_encode(sp->wbuf + at, recs[i].type, recs[i].payload, recs[i].len, sp->next_seq + i,
                   us);
        if (recs[i].len)
            memcpy(sp->wbuf + at + REC_HDR, recs[i].payload, recs[i].len);
        at += REC_HDR + recs[i].len;
    }
    char path[SPOOL_PATH_MAX];
    uint64_t start = s->size;
    rc = write_all(sp->wfd, sp->wbuf, total);
    if (rc < 0) {
        /* Cut the partial record off, so that the next append does not land behind it. */
        seg_path(sp, path, sizeof path, s->no);
        int trc = ftruncate_retry(sp->wfd, start);
        if (trc < 0) {
            sp->broken = -EIO;
            seterr(sp, "%s: offset %" PRIu64 ": write: %s; cutting the partial record off "
                   "failed too (%s): spool broken", path, start, strerror(-rc), strerror(-trc));
        } else {
            seterr(sp, "%s: offset %" PRIu64 ": write: %s%s", path, start, strerror(-rc),
                   rc == -ENOSPC ? " (disk full)" : "");
        }
        goto fail;
    }
    sp->dirty = true;
    sp->wgen++;
    if (sp->o.durability == SPOOL_FSYNC) {
        rc = sync_fd(sp->wfd, true);
        sp->st.syncs++;
        if (rc < 0) {
            /* After a failed fdatasync the page cache can no longer be trusted to match the
             * disk (the kernel may have dropped the dirty pages): stop appending. */
            seg_path(sp, path, sizeof path, s->no);
            sp->broken = -EIO;
            seterr(sp, "%s: offset %" PRIu64 ": fdatasync: %s: spool broken", path, start,
                   strerror(-rc));
            rc = -EIO;
            goto fail;
        }
        sp->dirty = false;
    }
    if (s->nrec == 0) {
        s->first_rec_seq = sp->next_seq;
        s->first_rec_off = start;
        s->first_us = us;
    }
    if (sp->acked == sp->next_seq - 1)
        sp->ackpos = (struct pos){true, s->no, start, sp->next_seq, us};
    s->size += total;
    s->nrec += n;
    s->last_seq += n;
    if (first_seq)
        *first_seq = sp->next_seq;
    sp->next_seq += n;
    sp->st.appends += n;
    sp->st.append_bytes += total - n * REC_HDR;
    return 0;
fail:
    sp->st.append_errors++;
    return rc;
}

int spool_append(struct spool *sp, uint16_t type, const void *payload, size_t len, uint64_t *seq)
{
    struct spool_rec_in r = {type, payload, len};
    return spool_append_many(sp, &r, 1, seq);
}

int spool_sync(struct spool *sp)
{
    if (!sp)
        return -EINVAL;
    if (sp->broken)
        return sp->broken;
    if (!sp->dirty || sp->wfd < 0)
        return 0;
    int rc = sync_fd(sp->wfd, true);
    sp->st.syncs++;
    if (rc < 0) {
        sp->broken = -EIO;
        seterr(sp, "%s: fdatasync: %s: spool broken", sp->dir, strerror(-rc));
        return -EIO;
    }
    sp->dirty = false;
    return 0;
}

/* ---- replay and ack ------------------------------------------------------------------------ */

int spool_replay_begin(struct spool *sp)
{
    if (!sp)
        return -EINVAL;
    sp->cur_seq = sp->acked + 1;
    sp->cur = sp->ackpos;
    return 0;
}

int spool_replay_next(struct spool *sp, struct spool_record *out)
{
    if (!sp || !out)
        return -EINVAL;
    if (sp->cur_seq <= sp->acked) {
        sp->cur_seq = sp->acked + 1;
        sp->cur = sp->ackpos;
    }
    for (;;) {
        if (sp->cur_seq >= sp->next_seq)
            return 0;
        struct seg *s = sp->cur.valid ? seg_find(sp, sp->cur.segno) : NULL;
        if (!s) {
            int rc = locate(sp, sp->cur_seq, &sp->cur);
            if (rc < 0)
                return rc;
            if (!sp->cur.valid)
                return 0;
            continue;
        }
        if (sp->cur.off >= s->size) {
            /* On to the next segment's first record. */
            size_t i = (size_t)(s - sp->segs);
            if (i + 1 >= sp->nseg)
                return 0;
            struct seg *ns = &sp->segs[i + 1];
            sp->cur = (struct pos){true, ns->no, ns->first_rec_off, ns->first_rec_seq,
                                   ns->first_us};
            if (ns->nrec == 0)
                sp->cur.off = ns->size;
            continue;
        }
        const struct skip *k = skip_at(sp, s->no, sp->cur.off);
        if (k) {
            sp->cur.off += k->len;
            continue;
        }
        int rc = rd_use(sp, s);
        if (rc < 0)
            return rc;
        struct rec r;
        rc = rec_read(&sp->rd, sp->cur.off, &r);
        if (rc == 0 && r.seq < sp->cur_seq) {
            if (sp->cur_seq > sp->acked + 1 || r.seq > sp->acked)
                rc = BAD_SEQ; /* going backwards: never expected after the open check */
            else {
                sp->cur.off += REC_HDR + r.len; /* acked meanwhile: skip it */
                continue;
            }
        }
        if (rc != 0) {
            char path[SPOOL_PATH_MAX];
            seg_path(sp, path, sizeof path, s->no);
            seterr(sp, "%s: offset %" PRIu64 ": %s (changed since it was checked)", path,
                   sp->cur.off, rc > 0 ? bad_name(rc) : strerror(-rc));
            return rc > 0 ? -EBADMSG : rc;
        }
        out->seq = r.seq;
        out->type = r.type;
        out->payload = r.payload;
        out->len = r.len;
        out->append_us = r.us;
        sp->cur.off += REC_HDR + r.len;
        sp->cur.seq = r.seq + 1;
        sp->cur_seq = r.seq + 1;
        sp->st.replayed++;
        return 1;
    }
}

/* The watermark an ack of seq writes. Records after seq that salvage skipped (lost: a gap up to
 * the next record held, or up to next_seq when none is held) are covered too: once nothing
 * unacked is left before such a gap, no file may be left to explain it (an empty segment whose
 * header claimed it is deleted at open), and a later open without salvage would refuse the gap
 * between the watermark and the next record. Without salvage there are no gaps: seq itself. */
static uint64_t ack_target(struct spool *sp, uint64_t seq)
{
    struct pos p = {0};
    if (seq + 1 >= sp->next_seq || locate(sp, seq + 1, &p) < 0)
        return seq;
    uint64_t next = p.valid ? p.seq : sp->next_seq;
    return next > seq + 1 ? next - 1 : seq;
}

/* The watermark moved to seq (its ack file is written): the in-memory half of an ack. */
static int ack_moved(struct spool *sp, uint64_t seq)
{
    sp->acked = seq;
    sp->st.acks++;
    struct pos p = {0};
    int rc = locate(sp, seq + 1, &p);
    sp->ackpos = p;
    drop_acked(sp, NULL);
    if (sp->cur.valid && !seg_find(sp, sp->cur.segno))
        sp->cur.valid = false;
    return rc;
}

int spool_ack(struct spool *sp, uint64_t seq)
{
    if (!sp)
        return -EINVAL;
    if (seq <= sp->acked)
        return 0;
    if (sp->bg_busy)
        return -EBUSY; /* its ack file is being written off the loop */
    if (seq >= sp->next_seq) {
        seterr(sp, "%s: ack of %" PRIu64 " past the last record %" PRIu64, sp->dir, seq,
               sp->next_seq - 1);
        return -EINVAL;
    }
    /* The records reach the disk before the watermark that covers them (SPOOL_OS: the active
     * segment may be dirty; earlier ones were synced when it was started). So a watermark is
     * never past the last record on disk, and spool_open can treat one that is as corruption
     * instead of guessing whether a power loss took the records. */
    seq = ack_target(sp, seq);
    int rc = 0;
    if (sp->dirty && sp->wfd >= 0 && seq >= sp->segs[sp->nseg - 1].first_seq)
        rc = spool_sync(sp);
    if (rc == 0)
        rc = ack_file_write(sp, seq);
    if (rc < 0)
        return rc;
    return ack_moved(sp, seq);
}

int spool_bg_prepare(struct spool *sp, uint64_t ack_seq, struct spool_bg *bg)
{
    memset(bg, 0, sizeof *bg);
    bg->fd = bg->dirfd = -1;
    if (!sp)
        return -EINVAL;
    if (sp->broken)
        return sp->broken;
    if (sp->bg_busy)
        return -EBUSY;
    if (ack_seq >= sp->next_seq)
        return -EINVAL;
    bool sync = sp->dirty && sp->wfd >= 0;
    if (ack_seq > sp->acked)
        ack_seq = ack_target(sp, ack_seq);
    bool ack = ack_seq > sp->acked;
    if (!sync && !ack)
        return 0;
    if (sync && (bg->fd = fcntl(sp->wfd, F_DUPFD_CLOEXEC, 0)) < 0)
        return -errno;
    if (ack && (bg->dirfd = fcntl(sp->dirfd, F_DUPFD_CLOEXEC, 0)) < 0) {
        int e = -errno;
        if (bg->fd >= 0)
            close(bg->fd);
        bg->fd = -1;
        return e;
    }
    bg->wgen = sp->wgen;
    bg->ack_seq = ack ? ack_seq : 0;
    sp->bg_busy = true;
    return 1;
}

void spool_bg_run(struct spool_bg *bg)
{
    /* The data first: a watermark never covers a record that is not on disk (spool_ack). */
    if (bg->fd >= 0 && (bg->sync_rc = sync_fd(bg->fd, true)) < 0)
        return;
    if (bg->dirfd >= 0)
        bg->ack_rc = ack_file_put(bg->dirfd, bg->ack_seq, bg->err, sizeof bg->err);
}

int spool_bg_finish(struct spool *sp, struct spool_bg *bg)
{
    int rc = 0;
    bool synced = bg->fd >= 0;
    if (bg->fd >= 0)
        close(bg->fd);
    if (bg->dirfd >= 0)
        close(bg->dirfd);
    bg->fd = bg->dirfd = -1;
    if (!sp)
        return 0;
    sp->bg_busy = false;
    if (bg->sync_rc < 0) {
        sp->broken = -EIO;
        seterr(sp, "%s: fdatasync: %s: spool broken", sp->dir, strerror(-bg->sync_rc));
        return -EIO;
    }
    if (synced) {
        sp->st.syncs++;
        if (sp->wgen == bg->wgen)
            sp->dirty = false; /* nothing appended since: all of it is on disk */
    }
    if (bg->ack_rc < 0) {
        seterr(sp, "%s/%s", sp->dir, bg->err);
        return bg->ack_rc;
    }
    if (bg->ack_seq > sp->acked)
        rc = ack_moved(sp, bg->ack_seq);
    return rc;
}

/* ---- stats, errors, close ------------------------------------------------------------------ */

void spool_get_stats(const struct spool *sp, struct spool_stats *out)
{
    if (!sp) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = sp->st;
    out->next_seq = sp->next_seq;
    out->acked_seq = sp->acked;
    out->records_unacked = sp->next_seq - 1 - sp->acked;
    out->broken = sp->broken != 0;
    out->segments = sp->nseg;
    out->bytes_on_disk = 0;
    out->bytes_unacked = 0;
    out->oldest_unacked_us = 0;
    bool after = false;
    for (size_t i = 0; i < sp->nseg; i++) {
        const struct seg *s = &sp->segs[i];
        out->bytes_on_disk += s->size;
        if (!out->records_unacked || !sp->ackpos.valid)
            continue;
        if (after)
            out->bytes_unacked += s->size - SEG_HDR;
        else if (s->no == sp->ackpos.segno) {
            out->bytes_unacked += s->size - sp->ackpos.off;
            after = true;
        }
    }
    if (out->records_unacked && sp->ackpos.valid)
        out->oldest_unacked_us = sp->ackpos.us;
}

const char *spool_last_error(const struct spool *sp)
{
    return sp ? sp->err : "";
}

struct spool *spool_close(struct spool *sp)
{
    if (!sp)
        return NULL;
    if (sp->wfd >= 0)
        close(sp->wfd);
    rdr_close(&sp->rd);
    free(sp->rd.buf);
    if (sp->dirfd >= 0)
        close(sp->dirfd); /* releases the flock */
    free(sp->segs);
    free(sp->skips);
    free(sp->wbuf);
    free(sp->dir);
    free(sp);
    return NULL;
}

/* ---- open: find, check and repair ---------------------------------------------------------- */

static int read_ack_file(struct spool *sp, bool *have, uint64_t *acked)
{
    *have = false;
    *acked = 0;
    int fd = openat(sp->dirfd, ACK_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        int e = -errno;
        seterr(sp, "%s/" ACK_NAME ": open: %s", sp->dir, strerror(-e));
        return e;
    }
    char what[SPOOL_PATH_MAX];
    snprintf(what, sizeof what, "%s/" ACK_NAME, sp->dir);
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : check_owner(sp, &st, false, what);
    uint8_t b[ACK_SIZE];
    size_t got = 0;
    if (rc == 0)
        rc = pread_full(fd, b, sizeof b, 0, &got);
    close(fd);
    if (rc < 0) {
        if (rc != -EPERM)
            seterr(sp, "%s: read: %s", what, strerror(-rc));
        return rc;
    }
    if (got != ACK_SIZE || memcmp(b, ACK_MAGIC, 8) != 0 || get32(b + 8) != VERSION ||
        get32(b + 24) != crc32c_update(0, b, 24)) {
        seterr(sp, "%s: offset 0: corrupt watermark file (%zu bytes, bad magic, version or "
               "checksum)", what, got);
        return -EBADMSG;
    }
    if (get64(b + 16) > SEQ_MAX) {
        seterr(sp, "%s: offset 16: corrupt watermark file (watermark %" PRIu64 " is beyond the "
               "largest sequence number %" PRIu64 ")", what, get64(b + 16), SEQ_MAX);
        return -EBADMSG;
    }
    *have = true;
    *acked = get64(b + 16);
    return 0;
}

static int add_skip(struct spool *sp, struct spool_open_report *rep, uint64_t segno, uint64_t off,
                    uint64_t len)
{
    int rc = grow((void **)&sp->skips, &sp->capskip, sp->nskip + 1, sizeof *sp->skips);
    if (rc < 0)
        return rc;
    sp->skips[sp->nskip++] = (struct skip){segno, off, len};
    if (rep->salvaged_ranges++ == 0) {
        seg_path(sp, rep->salvage_file, sizeof rep->salvage_file, segno);
        rep->salvage_offset = off;
    }
    rep->salvaged_bytes += len;
    return 0;
}

/* Checks every record of segment s (its number set), fills in the rest of s. A bad tail of the
 * last segment is cut off; anything else bad is -EBADMSG, or skipped with opts.salvage. */
static int scan_seg(struct spool *sp, struct seg *s, bool last, struct spool_open_report *rep)
{
    char name[64], path[SPOOL_PATH_MAX];
    seg_name(name, sizeof name, s->no, "");
    seg_path(sp, path, sizeof path, s->no);
    struct rdr r = {.fd = -1};
    r.fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (r.fd < 0) {
        int e = -errno;
        seterr(sp, "%s: open: %s", path, strerror(-e));
        return e;
    }
    struct stat st;
    int rc = fstat(r.fd, &st) < 0 ? -errno : check_owner(sp, &st, false, path);
    if (rc < 0)
        goto out;
    r.limit = (uint64_t)st.st_size;
    const uint8_t *h;
    rc = rdr_get(&r, 0, SEG_HDR, &h);
    if (rc < 0 && rc != -ENODATA)
        goto out;
    if (rc == -ENODATA || memcmp(h, SEG_MAGIC, 8) != 0 || get32(h + 8) != VERSION ||
        get32(h + 12) != SEG_HDR || get32(h + 32) != crc32c_update(0, h, 32) ||
        get64(h + 16) != s->no || get64(h + 24) == 0 || get64(h + 24) > SEQ_MAX) {
        rc = -EBADMSG;
        seterr(sp, "%s: offset 0: bad segment header", path);
        goto out;
    }
    s->first_seq = get64(h + 24);
    s->last_seq = s->first_seq - 1;
    s->nrec = 0;
    s->first_rec_off = SEG_HDR;
    uint64_t off = SEG_HDR, expect = s->first_seq;
    while (off < r.limit) {
        struct rec rec;
        rc = rec_read(&r, off, &rec);
        if (rc < 0)
            goto out;
        if (rc == 0 && rec.seq != expect && (!sp->o.salvage || rec.seq < expect))
            rc = BAD_SEQ;
        if (rc == 0) {
            if (rec.seq > expect)
                rep->salvaged_seqs += rec.seq - expect;
            if (s->nrec++ == 0) {
                s->first_rec_seq = rec.seq;
                s->first_rec_off = off;
                s->first_us = rec.us;
            }
            s->last_seq = rec.seq;
            expect = rec.seq + 1;
            off += REC_HDR + rec.len;
            rep->records++;
            continue;
        }
        int why = rc;
        uint64_t next;
        rc = resync(&r, off + 1, &next);
        if (rc < 0)
            goto out;
        if (next == NONE && last && why != BAD_SEQ) {
            /* A torn tail: a crash in the middle of the last write. Nothing follows it. */
            int wfd = openat(sp->dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
            rc = wfd < 0 ? -errno : ftruncate_retry(wfd, off);
            if (rc == 0)
                rc = sync_fd(wfd, true);
            if (wfd >= 0)
                close(wfd);
            if (rc < 0) {
                seterr(sp, "%s: offset %" PRIu64 ": cutting off the torn last record: %s", path,
                       off, strerror(-rc));
                goto out;
            }
            rep->torn_bytes = r.limit - off;
            rep->torn_offset = off;
            snprintf(rep->torn_file, sizeof rep->torn_file, "%s", path);
            r.limit = off;
            break;
        }
        if (!sp->o.salvage) {
            char tail[96];
            if (next != NONE)
                snprintf(tail, sizeof tail, "a valid record follows at offset %" PRIu64, next);
            else
                snprintf(tail, sizeof tail, "%s", last ? "(not a torn tail)"
                                                       : "and later segments follow");
            seterr(sp, "%s: offset %" PRIu64 ": %s, %s: corruption in the middle of the spool "
                   "(open with salvage to skip it)", path, off, bad_name(why), tail);
            rc = -EBADMSG;
            goto out;
        }
        uint64_t end = next == NONE ? r.limit : next;
        rc = add_skip(sp, rep, s->no, off, end - off);
        if (rc < 0)
            goto out;
        off = end;
    }
    s->size = off;
    rc = 0;
    if (last && !rep->torn_bytes && s->size > SEG_HDR) {
        /* A process that crashed may have left its last records in the page cache only; they
         * reach the disk before anything is replayed and acked on their strength (spool_ack
         * keeps the watermark behind the records on disk; a cut tail was synced above). */
        rc = sync_fd(r.fd, true);
        if (rc < 0)
            seterr(sp, "%s: fdatasync: %s", path, strerror(-rc));
    }
out:
    rdr_close(&r);
    free(r.buf);
    return rc;
}

/* Quarantines a segment whose header is bad (salvage only): renamed to .bad, not deleted. */
static int quarantine(struct spool *sp, uint64_t no, struct spool_open_report *rep)
{
    char name[64], bad[64];
    seg_name(name, sizeof name, no, "");
    seg_name(bad, sizeof bad, no, ".bad");
    if (renameat(sp->dirfd, name, sp->dirfd, bad) < 0) {
        int e = -errno;
        seterr(sp, "%s/%s: rename to .bad: %s", sp->dir, name, strerror(-e));
        return e;
    }
    struct stat st;
    uint64_t size = fstatat(sp->dirfd, bad, &st, AT_SYMLINK_NOFOLLOW) == 0 ? (uint64_t)st.st_size
                                                                            : 0;
    if (rep->salvaged_ranges++ == 0) {
        snprintf(rep->salvage_file, sizeof rep->salvage_file, "%s/%s", sp->dir, bad);
        rep->salvage_offset = 0;
    }
    rep->salvaged_bytes += size;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Lists segment numbers, sorted; removes leftover .tmp files. */
static int list_dir(struct spool *sp, uint64_t **nos, size_t *n, struct spool_open_report *rep)
{
    *nos = NULL;
    *n = 0;
    size_t cap = 0;
    int dfd = dup(sp->dirfd);
    if (dfd < 0)
        return -errno;
    DIR *d = fdopendir(dfd);
    if (!d) {
        int e = -errno;
        close(dfd);
        return e;
    }
    rewinddir(d);
    int rc = 0;
    struct dirent *e;
    while ((errno = 0, e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        size_t len = strlen(nm);
        bool seg = len == SEG_DIGITS + 6 && all_digits(nm, SEG_DIGITS) &&
                   strcmp(nm + SEG_DIGITS, ".spool") == 0;
        bool tmp = (len == SEG_DIGITS + 10 && all_digits(nm, SEG_DIGITS) &&
                    strcmp(nm + SEG_DIGITS, ".spool.tmp") == 0) ||
                   strcmp(nm, ACK_TMP) == 0;
        if (tmp) {
            if (unlinkat(sp->dirfd, nm, 0) == 0)
                rep->tmp_removed++;
            continue;
        }
        if (!seg)
            continue;
        rc = grow((void **)nos, &cap, *n + 1, sizeof **nos);
        if (rc < 0)
            break;
        (*nos)[(*n)++] = strtoull(nm, NULL, 10);
    }
    if (rc == 0 && errno != 0)
        rc = -errno;
    closedir(d);
    if (rc < 0) {
        seterr(sp, "%s: reading the directory: %s", sp->dir, strerror(-rc));
        free(*nos);
        *nos = NULL;
        return rc;
    }
    if (*n > 1)
        qsort(*nos, *n, sizeof **nos, cmp_u64);
    return 0;
}

/* Creates the directory when missing (its parent synced so the creation is durable), opens,
 * checks and locks it. */
static int open_dir(struct spool *sp)
{
    bool created = false;
    if (mkdir(sp->dir, 0700) == 0)
        created = true;
    else if (errno != EEXIST) {
        int e = -errno;
        seterr(sp, "%s: mkdir: %s", sp->dir, strerror(-e));
        return e;
    }
    if (created) {
        char *parent = strdup(sp->dir);
        if (!parent)
            return -ENOMEM;
        char *slash = strrchr(parent, '/');
        const char *pd = !slash ? "." : slash == parent ? "/" : (*slash = 0, parent);
        int pfd = open(pd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd >= 0) {
            sync_fd(pfd, false); /* best effort: the first segment's own syncs follow */
            close(pfd);
        }
        free(parent);
    }
    sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->dirfd < 0) {
        int e = -errno;
        seterr(sp, "%s: open: %s", sp->dir, strerror(-e));
        return e;
    }
    struct stat st;
    if (fstat(sp->dirfd, &st) < 0) {
        int e = -errno;
        seterr(sp, "%s: stat: %s", sp->dir, strerror(-e));
        return e;
    }
    int rc = check_owner(sp, &st, true, sp->dir);
    if (rc < 0)
        return rc;
    while (flock(sp->dirfd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EINTR)
            continue;
        int e = errno == EWOULDBLOCK ? -EBUSY : -errno;
        seterr(sp, "%s: %s", sp->dir,
               e == -EBUSY ? "in use by another process (locked)" : strerror(-e));
        return e;
    }
    return 0;
}

/* Salvage set the watermark file aside (corrupt, missing or impossible): reported as a range. */
static void ack_salvaged(struct spool *sp, struct spool_open_report *rep)
{
    if (rep->salvaged_ranges++ == 0) {
        snprintf(rep->salvage_file, sizeof rep->salvage_file, "%s/" ACK_NAME, sp->dir);
        rep->salvage_offset = 0;
    }
}

static int open_all(struct spool *sp, struct spool_open_report *rep)
{
    int rc = open_dir(sp);
    if (rc < 0)
        return rc;
    bool have_ack;
    rc = read_ack_file(sp, &have_ack, &sp->acked);
    bool rewrite_ack = false;
    if (rc == -EBADMSG && sp->o.salvage) {
        have_ack = false; /* replay everything still there; PostgreSQL's unique keys absorb it */
        rewrite_ack = true;
        ack_salvaged(sp, rep);
        rc = 0;
    }
    if (rc < 0)
        return rc;
    uint64_t *nos;
    size_t n;
    rc = list_dir(sp, &nos, &n, rep);
    if (rc < 0)
        return rc;
    rep->segments = n;
    sp->next_segno = n ? nos[n - 1] + 1 : 1;
    rc = grow((void **)&sp->segs, &sp->capseg, n ? n : 1, sizeof *sp->segs);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct seg *s = &sp->segs[sp->nseg];
        *s = (struct seg){.no = nos[i]};
        rc = scan_seg(sp, s, i == n - 1, rep);
        if (rc == -EBADMSG && sp->o.salvage && s->first_seq == 0) {
            rc = quarantine(sp, nos[i], rep); /* the header itself is bad */
            if (rc < 0)
                goto out;
            continue;
        }
        if (rc < 0)
            goto out;
        /* Segments continue one another: a gap means a lost segment or lost records. */
        if (sp->nseg > 0) {
            const struct seg *p = &sp->segs[sp->nseg - 1];
            uint64_t want = p->last_seq + 1;
            if (s->first_seq != want && (!sp->o.salvage || s->first_seq < want)) {
                char path[SPOOL_PATH_MAX];
                seg_path(sp, path, sizeof path, s->no);
                seterr(sp, "%s: offset 0: starts at record %" PRIu64 " but the previous segment "
                       "ends at record %" PRIu64 ": records or a segment are missing (or overlap)",
                       path, s->first_seq, p->last_seq);
                rc = -EBADMSG;
                goto out;
            }
            if (s->first_seq > p->last_seq + 1)
                rep->salvaged_seqs += s->first_seq - (p->last_seq + 1);
        }
        sp->nseg++;
    }
    char path[SPOOL_PATH_MAX];
    /* spool_ack syncs the records before the watermark that covers them, so a watermark past the
     * newest sequence number the segments account for (an empty last segment's header counts)
     * is corrupt: trusting it would delete records that may never have reached PostgreSQL. */
    if (have_ack && sp->nseg && sp->acked > sp->segs[sp->nseg - 1].last_seq) {
        const struct seg *l = &sp->segs[sp->nseg - 1];
        if (!sp->o.salvage) {
            seg_path(sp, path, sizeof path, l->no);
            seterr(sp, "%s/" ACK_NAME ": watermark %" PRIu64 " is past the last record %" PRIu64
                   " (%s): the watermark or the segments are corrupt (open with salvage to "
                   "replay everything still there)", sp->dir, sp->acked, l->last_seq, path);
            rc = -EBADMSG;
            goto out;
        }
        have_ack = false; /* as for a corrupt watermark file */
        rewrite_ack = true;
        ack_salvaged(sp, rep);
    }
    if (sp->nseg && !have_ack && !rewrite_ack && sp->segs[0].first_seq > 1) {
        seg_path(sp, path, sizeof path, sp->segs[0].no);
        if (!sp->o.salvage) {
            seterr(sp, "%s/" ACK_NAME ": missing, but %s starts at record %" PRIu64, sp->dir,
                   path, sp->segs[0].first_seq);
            rc = -EBADMSG;
            goto out;
        }
        /* Salvage takes the oldest segment's start as the watermark: an operator's decision,
         * so it is written down below, or the next normal open would refuse the same files. */
        rewrite_ack = true;
        ack_salvaged(sp, rep);
    }
    if (!have_ack)
        sp->acked = sp->nseg ? sp->segs[0].first_seq - 1 : 0;
    sp->next_seq = sp->acked + 1;
    if (sp->nseg && sp->segs[sp->nseg - 1].last_seq + 1 > sp->next_seq)
        sp->next_seq = sp->segs[sp->nseg - 1].last_seq + 1;
    /* The first sequence number held after the watermark must follow it directly. Headers count
     * as well as records: a segment whose header says it starts at N claims N - 1 came before it,
     * even when it holds no record (a torn one cut off). */
    struct pos after;
    rc = locate(sp, sp->acked + 1, &after);
    if (rc < 0)
        goto out;
    uint64_t start = after.valid ? after.seq : sp->next_seq;
    if (start > sp->acked + 1) {
        if (!sp->o.salvage) {
            seg_path(sp, path, sizeof path, sp->segs[0].no);
            seterr(sp, "%s: offset 0: starts at record %" PRIu64 " but only records up to %" PRIu64
                   " are acked: records %" PRIu64 "..%" PRIu64 " are missing (open with salvage "
                   "to skip them)", path, start, sp->acked, sp->acked + 1, start - 1);
            rc = -EBADMSG;
            goto out;
        }
        /* Lost. Gaps from the oldest segment's start on were counted by the scan already. */
        uint64_t upto = sp->segs[0].first_seq < start ? sp->segs[0].first_seq : start;
        if (upto > sp->acked + 1)
            rep->salvaged_seqs += upto - (sp->acked + 1);
        /* Move the watermark over them (they can never be replayed) and write it down, so that
         * the next normal open finds the spool consistent. */
        sp->acked = start - 1;
        rewrite_ack = true;
    }
    /* Written before any segment is deleted on its strength. */
    if (rewrite_ack) {
        rc = ack_file_write(sp, sp->acked);
        if (rc < 0)
            goto out;
    }
    /* Empty segments hold nothing; fully acked ones are done. No segment is active yet. */
    size_t k = 0;
    for (size_t i = 0; i < sp->nseg; i++) {
        struct seg *s = &sp->segs[i];
        if (s->nrec == 0 || s->last_seq <= sp->acked) {
            char name[64], bad[64];
            seg_name(name, sizeof name, s->no, "");
            seg_name(bad, sizeof bad, s->no, ".bad");
            bool salvaged = false;
            for (size_t j = 0; j < sp->nskip; j++)
                salvaged |= sp->skips[j].segno == s->no;
            /* A segment that was salvaged down to nothing is kept aside, not deleted: its
             * bytes are what an operator would want to look at. */
            bool gone = salvaged && s->nrec == 0
                            ? renameat(sp->dirfd, name, sp->dirfd, bad) == 0
                            : (unlinkat(sp->dirfd, name, 0) == 0 || errno == ENOENT);
            if (gone) {
                rep->segments_deleted++;
                continue;
            }
        }
        sp->segs[k++] = *s;
    }
    sp->nseg = k;
    rc = locate(sp, sp->acked + 1, &sp->ackpos);
out:
    free(nos);
    return rc;
}

int spool_open(const char *dir, const struct spool_opts *o, struct spool **out,
               struct spool_open_report *rep, char *err, size_t errlen)
{
    struct spool_open_report dummy;
    if (!rep)
        rep = &dummy;
    memset(rep, 0, sizeof *rep);
    if (err && errlen)
        err[0] = 0;
    if (out)
        *out = NULL;
    struct spool_opts opts = o ? *o : (struct spool_opts){0};
    if (!opts.segment_bytes)
        opts.segment_bytes = DEF_SEGMENT_BYTES;
    if (!opts.max_payload)
        opts.max_payload = DEF_MAX_PAYLOAD;
    if (!dir || !*dir || !out || opts.segment_bytes < 4096 ||
        opts.max_payload > SPOOL_PAYLOAD_MAX ||
        (opts.durability != SPOOL_FSYNC && opts.durability != SPOOL_OS) ||
        strlen(dir) > SPOOL_PATH_MAX - 32) {
        if (err && errlen)
            snprintf(err, errlen, "spool_open: bad arguments (directory, options or path length)");
        return -EINVAL;
    }
    struct spool *sp = calloc(1, sizeof *sp);
    if (!sp || !(sp->dir = strdup(dir))) {
        free(sp);
        return -ENOMEM;
    }
    sp->o = opts;
    sp->dirfd = -1;
    sp->wfd = -1;
    sp->rd.fd = -1;
    int rc = open_all(sp, rep);
    if (rc < 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s", sp->err[0] ? sp->err : strerror(-rc));
        spool_close(sp);
        return rc;
    }
    sp->err[0] = 0;
    *out = sp;
    return 0;
}
