/* spool: the journal's local append-only spool, for when PostgreSQL is down or slow.
 *
 * The journal serialises its own records (a leader fill with its intents as ONE record, results,
 * rule state changes); the spool only frames them, makes them durable, and hands them back in order
 * for replay into PostgreSQL exactly once. It knows nothing of libpq, logs nothing (errors come
 * back as a negative errno, and spool_last_error / the err buffer of spool_open name the file and
 * offset), and is not thread-safe: one spool belongs to one thread at a time. Appends block on
 * fdatasync in SPOOL_FSYNC mode (about one disk flush); run them where blocking is acceptable.
 *
 * On disk, in one directory (mode 0700, owned by the service user; refused when writable by group
 * or others), locked with flock so two processes never share it:
 *   NNNNNNNNNNNN.spool  segments, 12-digit decimal segment number, files 0600. A 40-byte header
 *                       (magic, version, segment number, first sequence number, CRC32C), then
 *                       records. A new segment is written as .tmp, fsync'd and renamed, so a
 *                       segment never exists with a partial header.
 *   record              32-byte header: marker u32, payload length u32, type u16, flags u16,
 *                       seq u64, append time u64 (µs since the epoch, CLOCK_REALTIME), CRC32C u32
 *                       over the 28 header bytes before it and the payload; then the payload. All
 *                       integers little-endian. One record = one write(2) on an O_APPEND fd.
 *   acked               the replay watermark (every seq <= it is applied to PostgreSQL), replaced
 *                       atomically: acked.tmp, fsync, rename, fsync of the directory.
 * Sequence numbers start at 1 and are gap-free and increasing across segments and restarts, up
 * to 2^63-1 (a PostgreSQL bigint); a watermark, header or record beyond that is corruption.
 * After open, appends always go to a NEW segment: existing segments are only read and deleted.
 *
 * Crash safety. A record is visible to replay only once complete and CRC-valid. spool_open checks
 * every record of every segment: a torn or corrupt tail of the LAST segment (a crash mid-write:
 * short write, bad CRC, garbage after the last good record, and no valid record after it) is cut
 * off with ftruncate and reported in struct spool_open_report; nothing before it is lost. A bad
 * record followed by a valid one, a bad segment header, a sequence gap or a missing segment is
 * corruption: spool_open fails with -EBADMSG and names file and offset, unless opts.salvage is
 * set, in which case the bad bytes are skipped and reported (their records are lost: the operator
 * decides). So is a watermark that does not fit the segments: missing while the oldest segment
 * starts after record 1, past the last record, or followed by a gap (a segment header counts even
 * when its segment holds no record). Salvage then replays everything still there (a bad
 * watermark) or moves the watermark over the lost records, and writes the watermark it decided
 * on, so the next open without salvage accepts the same files. A failed write is cut back off
 * the file before spool_append returns, so a later append never lands behind a half record; if
 * that cut or an fdatasync fails, the spool is broken
 * (sticky -EIO, fsync errors cannot be retried safely) and refuses appends until reopened.
 * A record whose append did not return 0 (a crash, or a failed fdatasync after the write) may
 * still be on disk and be replayed after a restart: the journal must treat such an intent as
 * unsent (start-up reconcile finds no order for it), never as sent.
 *
 * The journal's policy (not enforced here): when spool_append fails (-ENOSPC: the disk is full,
 * -EIO, -EDQUOT, ...) the record is NOT durable and the journal must refuse new leader fills (send
 * none of their intents, invariant 2) until an append succeeds again; an ENOSPC append leaves the
 * spool usable, so appends may be retried once space is freed.
 *
 * Replay: spool_replay_begin, then spool_replay_next until it returns 0; write the records to
 * PostgreSQL, then spool_ack(seq of the last committed one). Ack costs ~3 fsyncs: ack per batch,
 * not per record (in SPOOL_OS mode it first syncs the active segment when the acked records are
 * in it: a watermark is never ahead of the records on disk; spool_open likewise syncs the last
 * segment). Records appended meanwhile are returned too. The spool does not rely on PostgreSQL
 * being idempotent: a record <= the persisted watermark is never returned again, even
 * after a crash; records after it may be returned again if the crash came between the PostgreSQL
 * commit and spool_ack (the journal's unique keys absorb that; or store the last applied seq in
 * PostgreSQL in the same transaction and spool_ack up to it before replaying at start-up). Fully
 * acked segments are deleted (the one appends go to stays until it is full). */
#ifndef CT_SPOOL_H
#define CT_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOOL_PAYLOAD_MAX (64u << 20) /* hard cap on a record's payload, bytes */
#define SPOOL_PATH_MAX 512            /* longest file path in reports */

enum spool_durability {
    SPOOL_FSYNC = 0, /* spool_append returns after fdatasync: the record survives power loss */
    SPOOL_OS = 1,    /* write only: survives a process crash (kill -9), not a power loss, until
                      * spool_sync. Starting a new segment syncs the old one (so a power loss
                      * tears only the very end): one append per segment pays for flushing
                      * up to segment_bytes, unless spool_sync runs now and then (a timer) */
};

struct spool_opts {
    enum spool_durability durability;
    uint64_t segment_bytes; /* start a new segment when a record would take a non-empty one
                             * past this; 0 = 64 MiB; at least 4096 */
    uint32_t max_payload;   /* spool_append refuses longer payloads (-EMSGSIZE); 0 = 16 MiB;
                             * at most SPOOL_PAYLOAD_MAX */
    bool salvage;           /* open skips corrupt ranges in the middle instead of failing */
};

/* What spool_open found and repaired (all zero on a clean open). */
struct spool_open_report {
    uint64_t segments;          /* segment files found */
    uint64_t records;           /* valid records found, acked or not */
    uint64_t segments_deleted;  /* fully acked or empty segments removed at open */
    uint64_t tmp_removed;       /* leftover .tmp files removed */
    /* A torn tail cut off the last segment: the bytes after the last valid record. */
    uint64_t torn_bytes;        /* 0 = none */
    uint64_t torn_offset;       /* where the last segment now ends */
    char torn_file[SPOOL_PATH_MAX];
    /* Salvage (opts.salvage only): bad ranges skipped in the middle, and sequence numbers lost. */
    uint64_t salvaged_ranges;
    uint64_t salvaged_bytes;
    uint64_t salvaged_seqs;     /* sequence numbers missing around the skipped ranges */
    uint64_t salvage_offset;    /* the first skipped range */
    char salvage_file[SPOOL_PATH_MAX];
};

struct spool;

/* Opens (creating the directory, mode 0700, when missing; its parent must exist) and checks the
 * spool as described above. 0 with *out set, or a negative errno with *out NULL and err naming
 * file and offset: -EPERM (directory or file not owned by us, writable by group or others, not a
 * directory or regular file), -EBUSY (another process has it open), -EBADMSG (corruption; see
 * opts.salvage), -EINVAL (bad arguments), -ENOMEM, or the errno of a failed system call. `o` and
 * `rep` may be NULL. */
int spool_open(const char *dir, const struct spool_opts *o, struct spool **out,
               struct spool_open_report *rep, char *err, size_t errlen);
/* Closes the files and releases the lock. Does not sync: in SPOOL_OS mode call spool_sync first.
 * Takes NULL; returns NULL. */
struct spool *spool_close(struct spool *sp);

/* Appends one record (type is the caller's; payload may be NULL when len is 0) and, in
 * SPOOL_FSYNC mode, fdatasyncs. *seq (may be NULL) gets its sequence number. 0, or -EMSGSIZE
 * (len > max_payload), -ENOSPC / -EDQUOT / -EFBIG (nothing was appended; the spool stays usable),
 * -EOVERFLOW (sequence numbers exhausted),
 * -EIO (a failed fdatasync or cut-back: not durable, the spool is broken, see above), -ENOMEM. */
int spool_append(struct spool *sp, uint16_t type, const void *payload, size_t len, uint64_t *seq);

struct spool_rec_in {
    uint16_t type;
    const void *payload;
    size_t len;
};
/* Group commit: n records in one write and at most one fdatasync, in one segment. *first_seq
 * gets the first one's number; the others follow. Same errors as spool_append; on an error none
 * of them was appended (a crash mid-call may leave a prefix of them, never a gap). */
int spool_append_many(struct spool *sp, const struct spool_rec_in *recs, size_t n,
                      uint64_t *first_seq);
/* fdatasync of everything appended so far (a no-op when nothing is pending). 0 or -EIO (broken). */
int spool_sync(struct spool *sp);

struct spool_record {
    uint64_t seq;
    uint16_t type;
    const void *payload; /* valid until the next spool_* call on this spool */
    size_t len;
    int64_t append_us;   /* when it was appended, µs since the epoch */
};
/* Puts the replay cursor on the oldest unacknowledged record. 0. */
int spool_replay_begin(struct spool *sp);
/* 1 with *rec filled and the cursor moved past it, 0 when no record is left (for now: later
 * appends are returned by later calls), or -EBADMSG / -EIO (a record changed on disk since it was
 * checked; spool_last_error names file and offset). Without spool_replay_begin, starts there. */
int spool_replay_next(struct spool *sp, struct spool_record *rec);
/* Marks every record with seq <= `seq` as applied, durably (see above), and deletes segments that
 * are fully acked. Acking less than the watermark is a no-op (0); acking past the last appended
 * record is -EINVAL. After a salvage, sequence numbers lost right after `seq` are covered too
 * (the watermark goes up to the next record held): nothing could replay them, and a gap after the
 * watermark would make the next open without salvage refuse the files. A replay cursor behind the watermark moves up to it. 0; a system call's
 * negative errno (the old watermark still holds); or -EBADMSG / -EIO when the watermark moved but
 * the record after it could not be read back (changed on disk); -EIO when the records had to be
 * synced first and the spool is broken. */
int spool_ack(struct spool *sp, uint64_t seq);

/* The same durability work (spool_sync, then spool_ack up to ack_seq) with the disk's part off
 * the loop thread (SPOOL_OS: an fdatasync or a few fsyncs can take a busy disk seconds):
 * spool_bg_prepare (loop thread) returns 1 with bg filled when there is work, 0 when there is
 * none, or a negative errno (-EBUSY: one is out already); spool_bg_run does the disk work on any
 * thread, touching only bg; spool_bg_finish (loop thread) applies the outcome like spool_sync /
 * spool_ack would and closes bg's descriptors. sp may be NULL there (the spool was closed
 * meanwhile: only the descriptors are closed). While one is out, spool_ack answers -EBUSY. */
struct spool_bg {
    int fd, dirfd;        /* duplicates: the active segment (-1 = no sync), the directory (-1 = no ack) */
    uint64_t wgen, ack_seq;
    int sync_rc, ack_rc;
    char err[200];
};
int spool_bg_prepare(struct spool *sp, uint64_t ack_seq, struct spool_bg *bg);
void spool_bg_run(struct spool_bg *bg);
int spool_bg_finish(struct spool *sp, struct spool_bg *bg);

/* Gauges and counters for /metrics. */
struct spool_stats {
    uint64_t next_seq;          /* the next append's sequence number */
    uint64_t acked_seq;         /* the watermark */
    uint64_t records_unacked;   /* spool depth, records (sequence numbers after the watermark) */
    uint64_t bytes_unacked;     /* spool depth, bytes on disk incl. framing */
    int64_t oldest_unacked_us;  /* append time of the oldest unacked record, µs since the epoch;
                                 * 0 when none. Journal lag = now - this. */
    uint64_t segments;          /* segment files */
    uint64_t bytes_on_disk;     /* all segments */
    bool broken;                /* a sync or cut-back failed: appends refused until reopened */
    uint64_t appends;           /* records appended since open */
    uint64_t append_bytes;      /* payload bytes appended since open */
    uint64_t append_errors;     /* failed spool_append / spool_append_many calls */
    uint64_t syncs;             /* fdatasync calls on segments */
    uint64_t acks;              /* watermark writes */
    uint64_t replayed;          /* records returned by spool_replay_next */
};
void spool_get_stats(const struct spool *sp, struct spool_stats *out);
/* The last error, naming file and offset when there is one; "" if none. Valid until the next
 * spool_* call. */
const char *spool_last_error(const struct spool *sp);

#endif
