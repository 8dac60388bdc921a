/* fuzz_config: the YAML configuration loader (cfg_load, and cfg_load_files with one trader file).
 * The input is the main file; if it holds a NUL byte, what follows the first NUL is a trader file
 * (traders.d/NAME.yaml) and cfg_load_files loads both. Files are written to a private directory
 * that is also $CREDENTIALS_DIRECTORY, holding valid secret files (mode 0600) for the account
 * names of the example and test configurations, so fuzzed configs get past the secret check.
 * Checked: every error message is a terminated string, a config comes back only with no errors,
 * and no error message contains a secret's text (config.h: "no error message ever contains
 * them"). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "fuzz_util.h"

#define SECRET_MARK "Zq8vK2wsecretMARK" /* in every api_key / api_secret written below */

static const char *const g_names[] = {"alice", "bob", "carol", "dave", "leader-main",
                                      "follower-1", "follower-2", "follower-3", "follower-4",
                                      "follower-5", "alice.key", "example"};
static char g_main[600], g_trader[600];

static void setup(void)
{
    const char *dir = fz_tmpdir("config");
    char p[600], text[256];
    for (size_t i = 0; i < sizeof g_names / sizeof g_names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s%s", dir, g_names[i], strchr(g_names[i], '.') ? "" : ".yaml");
        snprintf(text, sizeof text, "api_key: K%s%zu\napi_secret: S%s%zu\n", SECRET_MARK, i,
                 SECRET_MARK, i);
        fz_write_file(p, text, strlen(text));
        chmod(p, 0600);
    }
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    unsetenv("STATE_DIRECTORY");
    snprintf(g_main, sizeof g_main, "%s/main.fuzz", dir);
    snprintf(g_trader, sizeof g_trader, "%s/trader.fuzz", dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t mlen = nul ? (size_t)(nul - data) : size;
    fz_write_file(g_main, data, mlen);
    struct cfg_errors errs = {0};
    struct cfg *c;
    if (nul) {
        fz_write_file(g_trader, nul + 1, size - mlen - 1);
        const char *const tf[] = {g_trader};
        c = cfg_load_files(g_main, tf, 1, &errs);
    } else {
        c = cfg_load(g_main, &errs);
    }
    if (c && errs.n) abort();                  /* fully valid or not returned at all */
    if (!c && !errs.n && !errs.dropped) abort(); /* a refusal says why */
    if (errs.n > CFG_ERRORS_MAX) abort();
    for (size_t i = 0; i < errs.n; i++) {
        if (!errs.msg[i]) abort();
        fz_touch(errs.msg[i]);
        /* (unless the fuzzed text itself holds the mark, which messages may quote) */
        if (strstr(errs.msg[i], SECRET_MARK) && !memmem(data, size, SECRET_MARK, strlen(SECRET_MARK))) {
            fprintf(stderr, "secret in an error message: %s\n", errs.msg[i]);
            abort();
        }
    }
    if (c) {
        for (size_t i = 0; i < c->n_rules; i++) {
            if (c->rules[i].leader >= c->n_accounts || c->rules[i].follower >= c->n_accounts) abort();
            fz_touch(c->rules[i].id);
            for (size_t k = 0; k < c->rules[i].symbols.n; k++)
                (void)cfg_rule_symbol_allowed(&c->rules[i], c->rules[i].symbols.items[k]);
        }
        for (size_t i = 0; i < c->n_accounts; i++) fz_touch(c->accounts[i].name);
    }
    cfg_free(c);
    cfg_errors_reset(&errs);
    cfg_errors_reset(&errs);
    return 0;
}
