/* sv_log: one line per event on stderr, with a timestamp and a level (systemd or httpd keeps it). */
#include "sv_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static sv_log_level_t min_level = SV_INFO;

void sv_log_init(void)
{
    const char *d = getenv("LIVY_SUPERVISOR_DEBUG");
    if (d && *d && strcmp(d, "0") != 0)
        min_level = SV_DEBUG;
}

void sv_log(sv_log_level_t level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < min_level)
        return;
    struct timeval tv;
    struct tm tm;
    char stamp[32], msg[4096];
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One event, one line: fold any newline a message carries (a libpq error, say). */
    for (char *c = msg; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    /* One write per line, so lines from concurrent writers to the same file do not interleave. */
    char line[4200];
    int n = snprintf(line, sizeof line, "%s.%03d [%s] livy-supervisor[%d]: %s\n", stamp,
                     (int)(tv.tv_usec / 1000), names[level], (int)getpid(), msg);
    if (n > (int)sizeof line - 1) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
