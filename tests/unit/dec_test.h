/* dec_test: exact-decimal helpers shared by the unit tests. Include after <cmocka.h>. */
#ifndef CT_DEC_TEST_H
#define CT_DEC_TEST_H

#include "decimal.h"

/* The decimal a test writes as text; a typo in a test table fails the test, not the code. */
static inline dec_t D(const char *s)
{
    dec_t d = DEC_ZERO;
    if (s == NULL || dec_parse_cstr(s, &d) != 0)
        fail_msg("test setup: cannot parse \"%s\"", s ? s : "(null)");
    return d;
}

/* D(s), or D(dflt) where a table row leaves s out. */
static inline dec_t Dor(const char *s, const char *dflt)
{
    return D(s != NULL ? s : dflt);
}

static inline const char *F(dec_t d, char buf[DEC_STR_MAX])
{
    if (dec_format(d, buf, DEC_STR_MAX) < 0)
        fail_msg("cannot format");
    return buf;
}

/* got printed canonically equals want ("0.1", never "0.100"). */
static inline void assert_dec(dec_t got, const char *want)
{
    char buf[DEC_STR_MAX];
    assert_true(dec_format(got, buf, sizeof buf) > 0);
    assert_string_equal(buf, want);
}

#endif
