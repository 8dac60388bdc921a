/* fuzz_util: small helpers shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c).
 *
 * Every harness hands the parser an exact-size heap copy of the input (no NUL, no slack), so a
 * read one byte past `len` is an AddressSanitizer report, not a silent success. Harnesses that
 * need files work in a private directory made once per process and emptied after every input, so
 * no state carries from one input to the next. */
#ifndef CT_FUZZ_UTIL_H
#define CT_FUZZ_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An exact-size copy of data[0..n) (malloc(0) is avoided: 1 byte, still only n readable). */
static inline char *fz_dup(const uint8_t *data, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (!p) abort();
    if (n) memcpy(p, data, n);
    return p;
}

/* The same, NUL-terminated (for APIs whose contract promises a C string). */
static inline char *fz_dupz(const uint8_t *data, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) abort();
    if (n) memcpy(p, data, n);
    p[n] = '\0';
    return p;
}

/* A private directory under $TMPDIR (or /tmp), made once; aborts if it cannot be made. */
static inline const char *fz_tmpdir(const char *tag)
{
    static char dir[512];
    if (dir[0]) return dir;
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ct-fuzz-%s-XXXXXX", t && *t ? t : "/tmp", tag);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    return dir;
}

/* Removes every entry of dir (one level; subdirectories are removed if empty). */
static inline void fz_empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) != 0) rmdir(p);
    }
    closedir(d);
}

/* Writes data[0..n) to path (created 0600, truncated); aborts on failure. */
static inline void fz_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* Every byte of a NUL-terminated string produced by the code under test is read, so a missing
 * terminator or a string in freed memory is an ASan report here. */
static inline size_t fz_touch(const char *s)
{
    return s ? strlen(s) : 0;
}

/* A cursor over the input for structured harnesses: bytes run out -> zeros. */
struct fz_in {
    const uint8_t *p;
    size_t n;
};
static inline uint8_t fz_u8(struct fz_in *in)
{
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}
static inline uint16_t fz_u16(struct fz_in *in)
{
    uint16_t a = fz_u8(in);
    return (uint16_t)(a | (uint16_t)fz_u8(in) << 8);
}
static inline uint32_t fz_u32(struct fz_in *in)
{
    uint32_t a = fz_u16(in);
    return a | (uint32_t)fz_u16(in) << 16;
}
static inline uint64_t fz_u64(struct fz_in *in)
{
    uint64_t a = fz_u32(in);
    return a | (uint64_t)fz_u32(in) << 32;
}

#endif
