#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum log_level log_min_level = LOG_LVL_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level lvl) { log_min_level = lvl; }

int log_level_parse(const char *s, enum log_level *out) {
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_emit(enum log_level lvl, const char *tag, const char *fmt, ...) {
    struct timespec ts;
    char line[2048];
    va_list ap;
    int n;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    n = snprintf(line, sizeof(line), "%lld.%03ld %-5s [%s] ", (long long)ts.tv_sec,
                 ts.tv_nsec / 1000000L, level_names[lvl], tag);
    if (n < 0) return;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line so concurrent writers do not interleave mid-line. */
    fprintf(stderr, "%s\n", line);
}
