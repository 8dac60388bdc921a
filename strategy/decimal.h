/* decimal: exact fixed-point decimals for prices and quantities (safety invariant 8).
 *
 * A value is m * 10^-scale with a signed 64-bit mantissa and 0 <= scale <= DEC_MAX_SCALE.
 * Parsed from and printed to the exchanges' decimal strings; never a double.
 * Every operation is exact or fails with -ERANGE; none rounds silently (only the dec_round_* and
 * dec_muldiv_round_down functions round, as their names say).
 * Domain: |m| <= INT64_MAX (INT64_MIN is never produced, so negation cannot overflow). Every
 * value a function here returns through an out-parameter is normalized (see dec_normalize).
 * int-returning functions reject invalid inputs (see dec_valid) with -EINVAL. */
#ifndef CT_DECIMAL_H
#define CT_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEC_MAX_SCALE 18
/* Longest formatted value: sign, 19 digits, point, leading "0." padding, NUL. */
#define DEC_STR_MAX 48

typedef struct dec {
    int64_t m;
    uint8_t scale;
} dec_t;

#define DEC_ZERO ((dec_t){0, 0})

/* Parse "123", "-0.001", "123456.78": plain decimal only (no exponent), optional leading '-' or '+',
 * digits, then optionally '.' and digits. Strict: at least one digit on each side of a point
 * ("1." and ".5" are -EINVAL; the exchanges always send "0.5"), no whitespace, exponent, hex,
 * "nan"/"inf" or trailing junk. Leading zeros and trailing fractional zeros never count against
 * the range ("0001.5000" is 1.5); "-0" is zero. The result is normalized.
 * Returns 0, -EINVAL (malformed, empty, junk) or -ERANGE (more than 18 significant fractional
 * digits or a mantissa beyond INT64_MAX). *out is untouched on error. */
int dec_parse(const char *s, size_t len, dec_t *out);
int dec_parse_cstr(const char *s, dec_t *out);

/* Canonical text: no exponent, no trailing fractional zeros, no trailing '.', "0" for zero,
 * leading '-' for negatives. Returns the length written (excluding NUL), -ENOSPC (buffer too
 * small; DEC_STR_MAX always suffices) or -EINVAL (invalid d). */
int dec_format(dec_t d, char *buf, size_t n);

/* v in [-INT64_MAX, INT64_MAX]; INT64_MIN (outside the domain) saturates to -INT64_MAX. */
dec_t dec_from_int(int64_t v);
/* scale <= DEC_MAX_SCALE and m != INT64_MIN. Everything here produces only valid values;
 * check values built by hand (struct literals, config) with it. The void/bool/dec_t-returning
 * functions below assume valid inputs. */
bool dec_valid(dec_t d);
/* Same value with trailing zeros removed from the mantissa (smallest scale). */
dec_t dec_normalize(dec_t d);

int dec_cmp(dec_t a, dec_t b); /* -1, 0, 1 */
bool dec_is_zero(dec_t d);
int dec_sign(dec_t d); /* -1, 0, 1 */
dec_t dec_neg(dec_t d);
dec_t dec_abs(dec_t d);
dec_t dec_min(dec_t a, dec_t b); /* a if equal */
dec_t dec_max(dec_t a, dec_t b);
/* Sign of a*b - c (-1, 0, 1), exact even when a*b needs more than 18 fractional digits or 19
 * significant digits (notional checks: qty * price >= min_notional). */
int dec_cmp_mul(dec_t a, dec_t b, dec_t c);

int dec_add(dec_t a, dec_t b, dec_t *out); /* 0 or -ERANGE */
int dec_sub(dec_t a, dec_t b, dec_t *out);
int dec_mul(dec_t a, dec_t b, dec_t *out); /* exact product, normalized */

/* Largest multiple of step with |result| <= |x|, same sign as x (rounds toward zero).
 * step must be > 0 (-EINVAL otherwise). */
int dec_round_down(dec_t x, dec_t step, dec_t *out);
/* Smallest multiple of step >= x for x >= 0 (used to round up to a minimum); -EINVAL if x < 0. */
int dec_round_up(dec_t x, dec_t step, dec_t *out);
/* x * num / den rounded toward zero to a multiple of step, exact in between
 * (ratio closes: follower_pos * leader_closed / leader_pos_before). den != 0, step > 0
 * (-EINVAL otherwise); -ERANGE only if the rounded result itself does not fit. */
int dec_muldiv_round_down(dec_t x, dec_t num, dec_t den, dec_t step, dec_t *out);
/* true if x is an exact multiple of step (false if step <= 0 or an input is invalid). */
bool dec_is_multiple(dec_t x, dec_t step);

#endif
