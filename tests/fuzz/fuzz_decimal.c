/* fuzz_decimal: dec_parse on exchange and config decimal strings, then the arithmetic on what
 * parsed. The input is up to four strings separated by '\n' (a, b, c, d); each is parsed from an
 * exact-size copy. Beyond "no crash / no UB", the harness checks the laws decimal.h promises:
 *   - a parsed value is valid and normalized; dec_format then dec_parse gives it back exactly;
 *   - add/sub/mul are exact: (a + b) - b == a, (a - b) + b == a, cmp_mul(a, b, c) agrees with
 *     mul then cmp whenever mul fits;
 *   - round_down(x, step) is a multiple of step, |r| <= |x| and |x - r| < step; round_up is the
 *     smallest multiple >= x; muldiv_round_down is a multiple of step.
 * A broken law aborts with the values printed. */
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "fuzz_util.h"

static void die(const char *law, dec_t a, dec_t b, dec_t c)
{
    char sa[DEC_STR_MAX], sb[DEC_STR_MAX], sc[DEC_STR_MAX];
    dec_format(a, sa, sizeof sa);
    dec_format(b, sb, sizeof sb);
    dec_format(c, sc, sizeof sc);
    fprintf(stderr, "decimal law broken: %s: a=%s (m=%lld s=%u) b=%s (m=%lld s=%u) c=%s\n", law, sa,
            (long long)a.m, a.scale, sb, (long long)b.m, b.scale, sc);
    abort();
}

static int parse_one(const uint8_t *p, size_t n, dec_t *out)
{
    char *s = fz_dup(p, n);
    dec_t d = {.m = 12345, .scale = 7};
    int rc = dec_parse(s, n, &d);
    free(s);
    if (rc != 0 && rc != -EINVAL && rc != -ERANGE) die("dec_parse returned an undocumented code", d, d, d);
    if (rc != 0) {
        if (d.m != 12345 || d.scale != 7) die("dec_parse touched *out on error", d, d, d);
        return rc;
    }
    if (!dec_valid(d)) die("parsed value not valid", d, d, d);
    dec_t nd = dec_normalize(d);
    if (nd.m != d.m || nd.scale != d.scale) die("parsed value not normalized", d, nd, d);
    char buf[DEC_STR_MAX];
    int len = dec_format(d, buf, sizeof buf);
    if (len < 0 || (size_t)len >= sizeof buf || strlen(buf) != (size_t)len) die("format failed", d, d, d);
    dec_t back;
    if (dec_parse(buf, (size_t)len, &back) != 0 || back.m != d.m || back.scale != d.scale)
        die("format/parse round trip", d, back, d);
    *out = d;
    return 0;
}

static void check_arith(dec_t a, dec_t b, dec_t c)
{
    dec_t r, t;
    if (dec_cmp(a, b) != -dec_cmp(b, a)) die("cmp not antisymmetric", a, b, a);
    if (dec_add(a, b, &r) == 0) {
        if (!dec_valid(r)) die("add: invalid result", a, b, r);
        if (dec_sub(r, b, &t) == 0 && dec_cmp(t, a) != 0) die("(a + b) - b != a", a, b, t);
    }
    if (dec_sub(a, b, &r) == 0) {
        if (!dec_valid(r)) die("sub: invalid result", a, b, r);
        if (dec_add(r, b, &t) == 0 && dec_cmp(t, a) != 0) die("(a - b) + b != a", a, b, t);
    }
    int cm = dec_cmp_mul(a, b, c);
    if (dec_mul(a, b, &r) == 0) {
        if (!dec_valid(r)) die("mul: invalid result", a, b, r);
        if (dec_cmp(r, c) != cm) die("cmp_mul(a, b, c) disagrees with cmp(a*b, c)", a, b, c);
        if (dec_sign(r) != dec_sign(a) * dec_sign(b)) die("mul: sign", a, b, r);
    }
    if (dec_sign(b) > 0) {
        if (dec_round_down(a, b, &r) == 0) {
            if (!dec_is_multiple(r, b)) die("round_down: not a multiple of step", a, b, r);
            if (dec_cmp(dec_abs(r), dec_abs(a)) > 0) die("round_down: |r| > |x|", a, b, r);
            if (dec_sub(a, r, &t) == 0 && dec_cmp(dec_abs(t), b) >= 0) die("round_down: |x - r| >= step", a, b, r);
            if (dec_sign(r) != 0 && dec_sign(r) != dec_sign(a)) die("round_down: sign", a, b, r);
        }
        if (dec_sign(a) >= 0 && dec_round_up(a, b, &r) == 0) {
            if (!dec_is_multiple(r, b)) die("round_up: not a multiple of step", a, b, r);
            if (dec_cmp(r, a) < 0) die("round_up: r < x", a, b, r);
            if (dec_sub(r, a, &t) == 0 && dec_cmp(t, b) >= 0) die("round_up: r - x >= step", a, b, r);
        }
        if (!dec_is_zero(c) && dec_muldiv_round_down(a, c, c, b, &r) == 0) {
            /* x * c / c rounded down == round_down(x) */
            if (dec_round_down(a, b, &t) == 0 && dec_cmp(r, t) != 0) die("muldiv(x, c, c) != round_down(x)", a, c, r);
            if (!dec_is_multiple(r, b)) die("muldiv: not a multiple of step", a, b, r);
        }
        if (dec_muldiv_round_down(a, c, b, b, &r) == 0 && !dec_valid(r)) die("muldiv: invalid", a, c, r);
    }
    dec_t mn = dec_min(a, b), mx = dec_max(a, b);
    if (dec_cmp(mn, mx) > 0) die("min > max", a, b, mn);
    dec_t na = dec_neg(a);
    if (dec_cmp(dec_neg(na), a) != 0 || dec_cmp(dec_abs(a), dec_abs(na)) != 0) die("neg/abs", a, na, a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dec_t v[4];
    int ok[4] = {0};
    size_t nv = 0, start = 0;
    for (size_t i = 0; i <= size && nv < 4; i++) {
        if (i == size || data[i] == '\n') {
            ok[nv] = parse_one(data + start, i - start, &v[nv]) == 0;
            nv++;
            start = i + 1;
        }
    }
    /* also the whole input as one string (newlines are junk to the parser) */
    dec_t whole;
    (void)parse_one(data, size, &whole);
    if (nv >= 2 && ok[0] && ok[1]) {
        dec_t c = nv >= 3 && ok[2] ? v[2] : dec_from_int(1);
        check_arith(v[0], v[1], c);
        check_arith(v[1], v[0], c);
    }
    if (nv >= 4 && ok[0] && ok[1] && ok[2] && ok[3]) {
        dec_t r;
        if (dec_sign(v[3]) > 0 && !dec_is_zero(v[2]) &&
            dec_muldiv_round_down(v[0], v[1], v[2], v[3], &r) == 0 && !dec_is_multiple(r, v[3]))
            die("muldiv(x, num, den, step): not a multiple of step", v[0], v[3], r);
    }
    return 0;
}
