/* decimal: exact fixed-point decimals (see decimal.h).
 *
 * Every result is computed exactly in 128-bit intermediates and then normalized (trailing zeros
 * stripped from the mantissa). A result that still needs more than 18 fractional digits or a
 * mantissa beyond +-INT64_MAX fails with -ERANGE: nothing is rounded unless the function's name
 * says it rounds. INT64_MIN is kept out of the domain so that negation and abs never overflow. */
#include "decimal.h"

#include <errno.h>
#include <string.h>

__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;

static const uint64_t pow10_u64[20] = {
    1ULL,
    10ULL,
    100ULL,
    1000ULL,
    10000ULL,
    100000ULL,
    1000000ULL,
    10000000ULL,
    100000000ULL,
    1000000000ULL,
    10000000000ULL,
    100000000000ULL,
    1000000000000ULL,
    10000000000000ULL,
    100000000000000ULL,
    1000000000000000ULL,
    10000000000000000ULL,
    100000000000000000ULL,
    1000000000000000000ULL,
    10000000000000000000ULL,
};

/* 10^k for k <= 38 (10^38 < 2^128). */
static u128 pow10_u128(unsigned k)
{
    if (k <= 19)
        return pow10_u64[k];
    return (u128)pow10_u64[19] * pow10_u64[k - 19];
}

/* Mantissa of d expressed at a larger scale; exact because to_scale - d.scale <= 18 and
 * |m| < 2^63, so the product stays below 2^123. */
static i128 at_scale(dec_t d, unsigned to_scale)
{
    return (i128)d.m * (i128)pow10_u64[to_scale - d.scale];
}

static uint64_t u64_abs(int64_t v)
{
    return v < 0 ? -(uint64_t)v : (uint64_t)v;
}

/* The one place results are narrowed: strip trailing zeros, then require an exact fit. */
static int from_wide(i128 v, unsigned scale, dec_t *out)
{
    while (scale > 0 && v % 10 == 0) {
        v /= 10;
        scale--;
    }
    if (v == 0)
        scale = 0;
    if (scale > DEC_MAX_SCALE)
        return -ERANGE;
    if (v > (i128)INT64_MAX || v < -(i128)INT64_MAX)
        return -ERANGE;
    out->m = (int64_t)v;
    out->scale = (uint8_t)scale;
    return 0;
}

bool dec_valid(dec_t d)
{
    return d.scale <= DEC_MAX_SCALE && d.m != INT64_MIN;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* m = m * 10^(to-from) + digits s[from..to), failing once it passes INT64_MAX. */
static int accumulate(const char *s, size_t from, size_t to, uint64_t *m)
{
    for (size_t k = from; k < to; k++) {
        unsigned d = (unsigned)(s[k] - '0');
        if (*m > ((uint64_t)INT64_MAX - d) / 10)
            return -ERANGE;
        *m = *m * 10 + d;
    }
    return 0;
}

int dec_parse(const char *s, size_t len, dec_t *out)
{
    if (s == NULL || out == NULL)
        return -EINVAL;

    size_t i = 0;
    bool negative = false;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        negative = s[i] == '-';
        i++;
    }

    size_t int_start = i;
    while (i < len && is_digit(s[i]))
        i++;
    size_t int_end = i;
    /* Strict: at least one digit before the point (rejects "", "-", ".5"). */
    if (int_end == int_start)
        return -EINVAL;

    size_t frac_start = i, frac_end = i;
    if (i < len && s[i] == '.') {
        i++;
        frac_start = i;
        while (i < len && is_digit(s[i]))
            i++;
        frac_end = i;
        /* Strict: at least one digit after the point (rejects "1."). */
        if (frac_end == frac_start)
            return -EINVAL;
    }
    if (i != len)
        return -EINVAL; /* junk, whitespace, exponent, second point, embedded NUL */

    /* Leading integer zeros and trailing fractional zeros carry no value: drop them so that
     * long but representable strings ("000…1.5000…") still fit. */
    while (frac_end > frac_start && s[frac_end - 1] == '0')
        frac_end--;
    while (int_start < int_end && s[int_start] == '0')
        int_start++;

    size_t scale = frac_end - frac_start;
    if (scale > DEC_MAX_SCALE)
        return -ERANGE;

    uint64_t m = 0;
    if (accumulate(s, int_start, int_end, &m) < 0 || accumulate(s, frac_start, frac_end, &m) < 0)
        return -ERANGE;

    out->m = negative ? -(int64_t)m : (int64_t)m;
    out->scale = m == 0 ? 0 : (uint8_t)scale;
    return 0;
}

int dec_parse_cstr(const char *s, dec_t *out)
{
    if (s == NULL)
        return -EINVAL;
    return dec_parse(s, strlen(s), out);
}

int dec_format(dec_t d, char *buf, size_t n)
{
    if (!dec_valid(d))
        return -EINVAL;
    d = dec_normalize(d);

    char digits[20];
    int nd = 0;
    uint64_t u = u64_abs(d.m);
    do {
        digits[nd++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);

    char tmp[DEC_STR_MAX];
    size_t len = 0;
    if (d.m < 0)
        tmp[len++] = '-';
    int scale = d.scale;
    if (scale >= nd) {
        tmp[len++] = '0';
        tmp[len++] = '.';
        for (int k = 0; k < scale - nd; k++)
            tmp[len++] = '0';
        for (int k = nd - 1; k >= 0; k--)
            tmp[len++] = digits[k];
    } else {
        for (int k = nd - 1; k >= 0; k--) {
            tmp[len++] = digits[k];
            if (k == scale && k != 0)
                tmp[len++] = '.';
        }
    }
    if (buf == NULL || len + 1 > n)
        return -ENOSPC;
    memcpy(buf, tmp, len);
    buf[len] = '\0';
    return (int)len;
}

dec_t dec_from_int(int64_t v)
{
    /* INT64_MIN is outside the domain; it saturates instead of poisoning later negations. */
    if (v == INT64_MIN)
        v = -INT64_MAX;
    return (dec_t){v, 0};
}

dec_t dec_normalize(dec_t d)
{
    if (d.m == 0)
        return DEC_ZERO;
    while (d.scale > 0 && d.m % 10 == 0) {
        d.m /= 10;
        d.scale--;
    }
    return d;
}

int dec_cmp(dec_t a, dec_t b)
{
    unsigned s = a.scale > b.scale ? a.scale : b.scale;
    i128 x = at_scale(a, s), y = at_scale(b, s);
    return (x > y) - (x < y);
}

bool dec_is_zero(dec_t d)
{
    return d.m == 0;
}

int dec_sign(dec_t d)
{
    return (d.m > 0) - (d.m < 0);
}

dec_t dec_neg(dec_t d)
{
    d.m = d.m == INT64_MIN ? INT64_MAX : -d.m;
    return d;
}

dec_t dec_abs(dec_t d)
{
    return d.m < 0 ? dec_neg(d) : d;
}

dec_t dec_min(dec_t a, dec_t b)
{
    return dec_cmp(a, b) <= 0 ? a : b;
}

dec_t dec_max(dec_t a, dec_t b)
{
    return dec_cmp(a, b) >= 0 ? a : b;
}

int dec_add(dec_t a, dec_t b, dec_t *out)
{
    if (!dec_valid(a) || !dec_valid(b) || out == NULL)
        return -EINVAL;
    unsigned s = a.scale > b.scale ? a.scale : b.scale;
    return from_wide(at_scale(a, s) + at_scale(b, s), s, out);
}

int dec_sub(dec_t a, dec_t b, dec_t *out)
{
    if (!dec_valid(a) || !dec_valid(b) || out == NULL)
        return -EINVAL;
    unsigned s = a.scale > b.scale ? a.scale : b.scale;
    return from_wide(at_scale(a, s) - at_scale(b, s), s, out);
}

int dec_mul(dec_t a, dec_t b, dec_t *out)
{
    if (!dec_valid(a) || !dec_valid(b) || out == NULL)
        return -EINVAL;
    /* |a.m * b.m| < 2^126: exact in i128; the scale (<= 36) shrinks again in from_wide. */
    return from_wide((i128)a.m * b.m, (unsigned)a.scale + b.scale, out);
}

int dec_cmp_mul(dec_t a, dec_t b, dec_t c)
{
    /* Compare a*b (scale pa <= 36) with c (scale <= 18) without aligning c up to 36 digits,
     * which could overflow: instead split the side with the larger scale into quotient and
     * remainder by a power of ten. Work on signs first, then magnitudes. */
    int sp = dec_sign(a) * dec_sign(b), sc = dec_sign(c);
    if (sp != sc)
        return sp > sc ? 1 : -1;
    if (sp == 0)
        return 0;
    u128 p = (u128)u64_abs(a.m) * u64_abs(b.m);
    unsigned ps = (unsigned)a.scale + b.scale;
    u128 q = u64_abs(c.m);
    unsigned qs = c.scale;
    int mag; /* sign of |a*b| - |c| */
    if (ps >= qs) {
        u128 f = pow10_u128(ps - qs);
        u128 hi = p / f, lo = p % f;
        mag = hi > q ? 1 : hi < q ? -1 : (lo != 0);
    } else {
        u128 f = pow10_u128(qs - ps);
        u128 hi = q / f, lo = q % f;
        mag = p > hi ? 1 : p < hi ? -1 : -(lo != 0);
    }
    return sp > 0 ? mag : -mag;
}

/* Common scale of x and step, and both mantissas at it; validates step > 0. */
static int align_step(dec_t x, dec_t step, i128 *xs, i128 *ts, unsigned *s)
{
    if (!dec_valid(x) || !dec_valid(step))
        return -EINVAL;
    if (step.m <= 0)
        return -EINVAL;
    *s = x.scale > step.scale ? x.scale : step.scale;
    *xs = at_scale(x, *s);
    *ts = at_scale(step, *s);
    return 0;
}

int dec_round_down(dec_t x, dec_t step, dec_t *out)
{
    i128 xs, ts;
    unsigned s;
    int rc = align_step(x, step, &xs, &ts, &s);
    if (rc < 0 || out == NULL)
        return rc < 0 ? rc : -EINVAL;
    /* C division truncates toward zero, which is exactly "round toward zero". */
    return from_wide(xs / ts * ts, s, out);
}

int dec_round_up(dec_t x, dec_t step, dec_t *out)
{
    i128 xs, ts;
    unsigned s;
    int rc = align_step(x, step, &xs, &ts, &s);
    if (rc < 0 || out == NULL)
        return rc < 0 ? rc : -EINVAL;
    if (xs < 0)
        return -EINVAL;
    /* xs, ts < 2^123 each: the sum cannot overflow. */
    return from_wide((xs + ts - 1) / ts * ts, s, out);
}

bool dec_is_multiple(dec_t x, dec_t step)
{
    i128 xs, ts;
    unsigned s;
    if (align_step(x, step, &xs, &ts, &s) < 0)
        return false;
    return xs % ts == 0;
}

int dec_muldiv_round_down(dec_t x, dec_t num, dec_t den, dec_t step, dec_t *out)
{
    if (!dec_valid(x) || !dec_valid(num) || !dec_valid(den) || !dec_valid(step) || out == NULL)
        return -EINVAL;
    if (den.m == 0 || step.m <= 0)
        return -EINVAL;
    x = dec_normalize(x);
    num = dec_normalize(num);
    den = dec_normalize(den);
    step = dec_normalize(step);

    bool negative = (x.m < 0) ^ (num.m < 0) ^ (den.m < 0);
    /* The count of steps is q = trunc(P * 10^e / D) with
     *   P = |x.m * num.m|, D = |den.m * step.m| (each < 2^126),
     *   e = den.scale + step.scale - x.scale - num.scale in [-36, 36].
     * Long division keeps every intermediate below 2^127 so no input can overflow it. */
    u128 p = (u128)u64_abs(x.m) * u64_abs(num.m);
    u128 d = (u128)u64_abs(den.m) * (u128)step.m;
    int e = (int)den.scale + step.scale - x.scale - num.scale;

    /* The result is q*step.m at step.scale; stripping trailing zeros divides it by at most
     * 10^18 < 2^60, so q*step.m >= 2^123 can never fit an int64 mantissa. Bounding q there
     * also keeps q*10 and q*step.m below 2^127. */
    const u128 qmax = ((u128)1 << 123) / (u128)step.m;
    u128 q;
    if (e <= 0) {
        /* Divisor D * 10^-e; if it exceeds 2^128 it exceeds P too and the quotient is 0. */
        bool huge = false;
        for (int k = 0; k < -e && !huge; k++) {
            if (d > ~(u128)0 / 10)
                huge = true;
            else
                d *= 10;
        }
        q = huge ? 0 : p / d;
    } else {
        q = p / d;
        u128 r = p % d;
        for (int k = 0; k < e; k++) {
            /* Next digit of 10*r / d, computed by ten additions mod d: r < d < 2^126, so
             * r + r' < 2^127 never overflows, unlike 10*r. */
            unsigned digit = 0;
            u128 t = 0;
            for (int j = 0; j < 10; j++) {
                t += r;
                if (t >= d) {
                    t -= d;
                    digit++;
                }
            }
            r = t;
            if (q > qmax)
                return -ERANGE;
            q = q * 10 + digit;
        }
    }
    if (q > qmax)
        return -ERANGE;
    i128 v = (i128)(q * (u128)step.m);
    return from_wide(negative ? -v : v, step.scale, out);
}
