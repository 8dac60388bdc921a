#include "sim_proc.h"

#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#define ADMIN_BODY_MAX 65536

static void sim_binary(char *out, size_t cap) {
    const char *env = getenv("CT_EXSIM");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) fail_msg("cannot find myself; set CT_EXSIM");
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    /* <build>/tests/test_x -> <build>/exchange/sim/copytrader-exsim */
    if (snprintf(out, cap, "%s/../exchange/sim/copytrader-exsim", self) >= (int)cap)
        fail_msg("the simulator's path is too long; set CT_EXSIM");
}

void sim_proc_start(struct sim_proc *s, const char *tag, const char *config,
                    const char *const *env) {
    char bin[PATH_MAX];
    int out[2];
    memset(s, 0, sizeof *s);
    sim_binary(bin, sizeof bin);
    if (access(bin, X_OK) != 0)
        fail_msg("simulator %s not found (build copytrader-exsim or set CT_EXSIM)", bin);
    const char *tmp = getenv("CT_TEST_TMP");
    snprintf(s->cfg_path, sizeof s->cfg_path, "%s/%s-sim-XXXXXX", tmp && *tmp ? tmp : "/tmp",
             tag);
    int fd = mkstemp(s->cfg_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, config, strlen(config)), (ssize_t)strlen(config));
    close(fd);
    assert_int_equal(pipe(out), 0);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        /* a test that aborts (a failed assertion under ASan) must not leave the simulator */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        for (const char *const *e = env; e && *e; e++) putenv((char *)*e);
        execl(bin, bin, "--config", s->cfg_path, "--log-level", "error", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[256];
    size_t len = 0;
    struct pollfd p = {.fd = out[0], .events = POLLIN};
    while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
        if (poll(&p, 1, 10000) <= 0) fail_msg("simulator did not say READY within 10 s");
        ssize_t n = read(out[0], line + len, sizeof line - 1 - len);
        if (n <= 0) fail_msg("simulator exited before READY");
        len += (size_t)n;
    }
    line[len] = '\0';
    close(out[0]);
    if (sscanf(line, "READY rest=127.0.0.1:%d admin=127.0.0.1:%d", &s->port, &s->admin_port) != 2)
        fail_msg("unexpected simulator line: %s", line);
}

void sim_proc_stop(struct sim_proc *s) {
    if (s->pid > 0) {
        int st = 0;
        kill(s->pid, SIGTERM);
        waitpid(s->pid, &st, 0);
        s->pid = 0;
    }
    if (s->cfg_path[0]) unlink(s->cfg_path);
    s->cfg_path[0] = '\0';
}

static size_t admin_write(char *p, size_t sz, size_t n, void *ud) {
    char *o = ud;
    size_t have = strlen(o), add = sz * n;
    if (have + add >= ADMIN_BODY_MAX) add = ADMIN_BODY_MAX - 1 - have;
    memcpy(o + have, p, add);
    o[have + add] = '\0';
    return sz * n;
}

long sim_proc_admin(const struct sim_proc *s, const char *method, const char *path,
                    const char *body, char *out) {
    static char sink[ADMIN_BODY_MAX];
    char url[256];
    long code = 0;
    if (!out) out = sink;
    out[0] = '\0';
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->admin_port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, admin_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    if (curl_easy_perform(c) != CURLE_OK) fail_msg("admin %s %s failed", method, path);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}
