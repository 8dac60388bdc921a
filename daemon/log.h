/* log: leveled, one line per event, to stderr (journald under systemd).
 * Only top-level code logs; library-ish modules return error codes. */
#ifndef CT_LOG_H
#define CT_LOG_H

#include <stdarg.h>
#include <stdlib.h>

enum log_level { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

extern enum log_level log_min_level;

void log_set_level(enum log_level lvl);
/* "debug", "info", "warn", "error" -> 0; else -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
void log_emit(enum log_level lvl, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The level check happens before any argument is formatted. */
#define log_at(lvl, tag, ...)                                   \
    do {                                                        \
        if ((lvl) >= log_min_level) log_emit((lvl), (tag), __VA_ARGS__); \
    } while (0)
#define log_debug(tag, ...) log_at(LOG_LVL_DEBUG, tag, __VA_ARGS__)
#define log_info(tag, ...)  log_at(LOG_LVL_INFO, tag, __VA_ARGS__)
#define log_warn(tag, ...)  log_at(LOG_LVL_WARN, tag, __VA_ARGS__)
#define log_error(tag, ...) log_at(LOG_LVL_ERROR, tag, __VA_ARGS__)

/* Impossible states: log file:line and abort. */
#define ct_assert(cond)                                                        \
    do {                                                                       \
        if (!(cond)) {                                                         \
            log_emit(LOG_LVL_ERROR, "assert", "%s:%d: assertion failed: %s",  \
                     __FILE__, __LINE__, #cond);                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif
