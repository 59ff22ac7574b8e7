/* sv_log: one line per event on stderr, with a timestamp and a level (systemd or httpd keeps it). */
#ifndef SV_LOG_H
#define SV_LOG_H

#include <apr.h>

typedef enum { SV_DEBUG, SV_INFO, SV_WARN, SV_ERROR } sv_log_level_t;

/* Lines below this level are dropped; LIVY_SUPERVISOR_DEBUG=1 in the environment lowers it. */
void sv_log_init(void);

void sv_log(sv_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define sv_debug(...) sv_log(SV_DEBUG, __VA_ARGS__)
#define sv_info(...) sv_log(SV_INFO, __VA_ARGS__)
#define sv_warn(...) sv_log(SV_WARN, __VA_ARGS__)
#define sv_error(...) sv_log(SV_ERROR, __VA_ARGS__)

#endif
