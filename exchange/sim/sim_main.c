/* copytrader-exsim: exchange simulator (Binance USD-M futures on loopback).
 *
 *   copytrader-exsim --config FILE [--port N] [--admin-port M] [--log-level debug|info|warn|error]
 *
 * Once both ports listen it prints exactly one line to stdout and flushes it:
 *   READY rest=127.0.0.1:<port> admin=127.0.0.1:<admin_port>
 * SIGTERM/SIGINT shut it down cleanly (a second signal kills it at once). Exit codes: 0 after a
 * clean shutdown, 2 for bad arguments or configuration, 1 for start-up failures. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "log.h"
#include "sim.h"
#include "sim_config.h"

struct app {
    struct sim *sim;
    uv_signal_t sigterm, sigint;
    bool stopping;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: copytrader-exsim --config FILE [--port N] [--admin-port M] "
               "[--log-level debug|info|warn|error]\n");
}

static bool parse_port(const char *s, int *out)
{
    char *end;
    long v;
    if (!s || !*s)
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 65535)
        return false;
    *out = (int)v;
    return true;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct app *app = h->data;
    if (app->stopping)
        return;
    app->stopping = true;
    log_info("sim", "signal %d: shutting down", signum);
    /* Closing our signal handles restores the default action: a second signal kills. */
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    sim_stop(app->sim);
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    int port = -1, admin_port = -1;
    char err[512];
    struct scfg *cfg = NULL;
    struct app app = {0};
    uv_loop_t loop;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--config") && v) {
            config = v;
            i++;
        } else if (!strcmp(a, "--port") && v) {
            if (!parse_port(v, &port)) {
                fprintf(stderr, "copytrader-exsim: --port: '%s' is not a port number (0..65535)\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--admin-port") && v) {
            if (!parse_port(v, &admin_port)) {
                fprintf(stderr, "copytrader-exsim: --admin-port: '%s' is not a port number (0..65535)\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--log-level") && v) {
            enum log_level lvl;
            if (log_level_parse(v, &lvl) < 0) {
                fprintf(stderr, "copytrader-exsim: --log-level: '%s' is not debug, info, warn or error\n", v);
                return 2;
            }
            log_set_level(lvl);
            i++;
        } else {
            fprintf(stderr, "copytrader-exsim: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!config) {
        fprintf(stderr, "copytrader-exsim: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    if (scfg_load(config, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "copytrader-exsim: %s\n", err);
        return 2;
    }
    if (port >= 0)
        cfg->port = port;
    if (admin_port >= 0)
        cfg->admin_port = admin_port;

    signal(SIGPIPE, SIG_IGN);
    /* one connection per simulated client order in flight, and a stream per account: take the
     * hard open-files limit (libuv polls with epoll, so descriptors past 1024 are fine) */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if ((rc = uv_loop_init(&loop)) < 0) {
        fprintf(stderr, "copytrader-exsim: uv_loop_init: %s\n", uv_strerror(rc));
        scfg_free(cfg);
        return 1;
    }
    app.sim = sim_new(&loop, cfg, err, sizeof(err));
    if (!app.sim) {
        log_error("sim", "start-up failed: %s", err);
        uv_loop_close(&loop);
        scfg_free(cfg);
        return 1;
    }
    if (sim_listen(app.sim, cfg->port, cfg->admin_port, err, sizeof(err)) < 0) {
        log_error("sim", "start-up failed: %s", err);
        sim_stop(app.sim);
        uv_run(&loop, UV_RUN_DEFAULT);
        sim_free(app.sim);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        scfg_free(cfg);
        return 1;
    }
    uv_signal_init(&loop, &app.sigterm);
    uv_signal_init(&loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);

    log_info("sim", "listening: rest 127.0.0.1:%d admin 127.0.0.1:%d, %zu accounts, %zu symbols",
             sim_rest_port(app.sim), sim_admin_port(app.sim), cfg->naccounts, cfg->nsymbols);
    printf("READY rest=127.0.0.1:%d admin=127.0.0.1:%d\n", sim_rest_port(app.sim), sim_admin_port(app.sim));
    fflush(stdout);

    uv_run(&loop, UV_RUN_DEFAULT);
    /* lws' teardown step 3: finish destroying the context, then let its handles drain. */
    app.sim = sim_free(app.sim);
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop);
    if (rc < 0)
        log_warn("sim", "uv_loop_close: %s (handles left open), ignoring", uv_strerror(rc));
    scfg_free(cfg);
    log_info("sim", "stopped");
    return 0;
}
