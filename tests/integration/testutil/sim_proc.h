/* sim_proc: the simulator (copytrader-exsim) as a child process of an integration test: found
 * next to the test's build directory (or $CT_EXSIM), started with a JSON config on random ports,
 * its "READY rest=... admin=..." line read, stopped with SIGTERM, and killed by the kernel if the
 * test process dies first (PR_SET_PDEATHSIG). Failures fail the test (cmocka fail_msg). */
#ifndef CT_SIM_PROC_H
#define CT_SIM_PROC_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

struct sim_proc {
    pid_t pid;      /* 0 when not running */
    int port;       /* REST and websocket port */
    int admin_port; /* /admin/... port */
    char cfg_path[PATH_MAX];
};

/* Writes config (JSON text) to a temporary file named after tag (in $CT_TEST_TMP, else /tmp),
 * starts the simulator on it with env (NULL, or a NULL-terminated list of "NAME=VALUE" set in
 * the child only) and waits up to 10 s for its READY line. */
void sim_proc_start(struct sim_proc *s, const char *tag, const char *config,
                    const char *const *env);
/* SIGTERM, wait, remove the config file; a stopped (pid 0) simulator is left alone. */
void sim_proc_stop(struct sim_proc *s);
/* A blocking call to the admin port: the HTTP status; the body (cut at 64 KiB) into out when out
 * is not NULL (64 KiB). Fails the test when the transfer fails. */
long sim_proc_admin(const struct sim_proc *s, const char *method, const char *path,
                    const char *body, char *out);

#endif
