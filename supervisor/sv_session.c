/* sv_session: one session's REPL child as the supervisor sees it: spawn or reattach, the
 * socket protocol (docs/repl-protocol.md), statements in id order, stop, and death. */
#include "sv.h"
#include "sv_auth.h"
#include "sv_log.h"
#include "sv_spark_conf.h"

#include <apr_strings.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOTE_PREFIX "livy-supervisor: "
/* How long a child may take to open its socket, and to go away after SIGKILL. */
#define CONNECT_LIMIT_MS 60000
#define KILL_LIMIT_MS 5000
/* Liveness checks of a process we did not fork (no SIGCHLD for it). */
#define ALIVE_CHECK_MS 100
/* Bounds on what a child may send. */
#define MAX_LINE_BYTES (256 * 1024 * 1024)
#define MAX_LOG_LINE_BYTES (16 * 1024)
#define READ_CHUNK (64 * 1024)
#define READ_BUDGET (4 * 1024 * 1024)
/* Replacements of a REPL that became unusable, per session. */
#define MAX_REPLACEMENTS 3

static apr_status_t session_cleanup(void *data);
static void send_msg(sv_session_t *s, json_t *msg);
static void socket_lost(sv_session_t *s);
static int read_socket(sv_session_t *s);
static void send_hello(sv_session_t *s);
static int replace_child(sv_session_t *s, const char *how);

sv_session_t *sv_session_create(sv_t *sv, apr_int64_t id, const char *kind)
{
    apr_pool_t *pool;
    apr_pool_create(&pool, sv->pool);
    sv_session_t *s = apr_pcalloc(pool, sizeof *s);
    s->sv = sv;
    s->pool = pool;
    s->id = id;
    s->kind = apr_pstrdup(pool, kind ? kind : "shared");
    s->fd = -1;
    s->last_sent = -1;
    s->inflight = apr_array_make(pool, 4, sizeof(sv_inflight_t));
    s->log_batch = json_array();
    const char *dir = sv->cfg->run_dir;
    s->dir = sv_config_session_dir(sv->cfg, id, pool);
    s->sock_path = apr_pstrcat(pool, s->dir, "/repl.sock", NULL);
    s->key_path = apr_psprintf(pool, "%s/session-%" APR_INT64_T_FMT ".key", dir, id);
    s->conf_path = apr_psprintf(pool, "%s/session-%" APR_INT64_T_FMT ".conf.json", dir, id);
    s->log_path = apr_psprintf(pool, "%s/session-%" APR_INT64_T_FMT ".log", dir, id);
    s->pid_path = apr_psprintf(pool, "%s/session-%" APR_INT64_T_FMT ".pid", dir, id);
    apr_pool_cleanup_register(pool, s, session_cleanup, apr_pool_cleanup_null);
    apr_int64_t *key = apr_palloc(pool, sizeof *key);
    *key = id;
    apr_hash_set(sv->sessions, key, sizeof *key, s);
    return s;
}

static apr_status_t session_cleanup(void *data)
{
    sv_session_t *s = data;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    sv_buf_free(&s->in);
    sv_buf_free(&s->out);
    explicit_bzero(s->key, sizeof s->key);
    json_decref(s->log_batch);
    s->log_batch = NULL;
    return APR_SUCCESS;
}

void sv_session_destroy(sv_session_t *s)
{
    apr_hash_set(s->sv->sessions, &s->id, sizeof s->id, NULL);
    apr_pool_destroy(s->pool);
}

/* ---- the session log ---- */

/* PostgreSQL text cannot hold NUL; keep the rest of the string. */
static json_t *clean_string(const char *v, size_t n)
{
    char *copy = malloc(n * 3 + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '\0') {
            memcpy(copy + j, "\xEF\xBF\xBD", 3); /* U+FFFD */
            j += 3;
        }
        else {
            copy[j++] = v[i];
        }
    }
    json_t *r = json_stringn(copy, j);
    free(copy);
    return r;
}

/* Replaces strings carrying NUL characters (jsonb rejects \u0000) throughout a value. */
static void sanitize_json(json_t *v)
{
    if (json_is_object(v)) {
        const char *key;
        json_t *item;
        json_object_foreach(v, key, item) {
            if (json_is_string(item) && strlen(json_string_value(item)) != json_string_length(item))
                json_object_set_new(v, key, clean_string(json_string_value(item),
                                                         json_string_length(item)));
            else
                sanitize_json(item);
        }
    }
    else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *item = json_array_get(v, i);
            if (json_is_string(item) && strlen(json_string_value(item)) != json_string_length(item))
                json_array_set_new(v, i, clean_string(json_string_value(item),
                                                      json_string_length(item)));
            else
                sanitize_json(item);
        }
    }
}

json_t *sv_log_line(const char *line, size_t n)
{
    if (n > MAX_LOG_LINE_BYTES) {
        n = MAX_LOG_LINE_BYTES;
        while (n > 0 && ((unsigned char)line[n] & 0xC0) == 0x80) /* a whole UTF-8 character */
            n--;
    }
    while (n > 0 && line[n - 1] == '\r')
        n--;
    json_t *str = clean_string(line, n);
    if (!str) /* not UTF-8: keep what we can say about it */
        str = json_string("(a log line that is not valid UTF-8 was dropped)");
    return str;
}

void sv_log_append(json_t **batch, json_t *line, int max_lines)
{
    json_array_append_new(*batch, line);
    /* Lines beyond the bound would be trimmed anyway. */
    size_t max = (size_t)max_lines;
    if (json_array_size(*batch) > 2 * max) {
        json_t *keep = json_array();
        for (size_t i = json_array_size(*batch) - max; i < json_array_size(*batch); i++)
            json_array_append(keep, json_array_get(*batch, i));
        json_decref(*batch);
        *batch = keep;
    }
}

static void add_one_line(sv_session_t *s, const char *line, size_t n)
{
    sv_log_append(&s->log_batch, sv_log_line(line, n), s->sv->cfg->log_lines_max);
}

/* The session log is a list of lines: a message carrying newlines (a traceback, a multi-line
 * fatal) becomes several. */
static void add_log_line(sv_session_t *s, const char *text, size_t n)
{
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    for (;;) {
        const char *nl = memchr(text, '\n', n);
        size_t len = nl ? (size_t)(nl - text) : n;
        add_one_line(s, text, len);
        if (!nl)
            return;
        n -= len + 1;
        text = nl + 1;
    }
}

void sv_session_note(sv_session_t *s, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n >= (int)sizeof msg)
        n = (int)sizeof msg - 1;
    char *line = apr_pstrcat(s->sv->iter, NOTE_PREFIX, msg, NULL);
    add_log_line(s, line, strlen(line));
}

static void free_json(void *v)
{
    json_decref((json_t *)v);
}

/* A failed write of log lines: lost with the connection, they go back in front of the lines
 * that came since, for after the reconnect. */
static void log_written(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv_session_t *s = sv_find_session(sv, op->session);
    if (s)
        s->log_inflight = 0;
    if (res)
        return;
    if (!op->lost) {
        sv_error("session %" APR_INT64_T_FMT ": its log lines could not be stored: %s",
                 op->session, op->err);
        return;
    }
    if (!s || !s->log_batch)
        return;
    json_t *merged = json_array();
    json_array_extend(merged, (json_t *)op->data);
    json_array_extend(merged, s->log_batch);
    json_decref(s->log_batch);
    s->log_batch = merged;
}

void sv_session_flush_log(sv_session_t *s)
{
    size_t n = json_array_size(s->log_batch);
    if (n == 0 || !sv_db_ok(s->sv) || s->log_inflight)
        return; /* kept (bounded) until the database is back, or the last write answered */
    size_t max = (size_t)s->sv->cfg->log_lines_max;
    json_t *lines = json_array();
    for (size_t i = n > max ? n - max : 0; i < n; i++)
        json_array_append(lines, json_array_get(s->log_batch, i));
    char *text = json_dumps(lines, JSON_COMPACT);
    if (!text) {
        json_decref(lines);
        return;
    }
    store_sv_req_t r;
    store_sv_req_append_log(&r, s->id, text, (int)max, s->sv->iter);
    int rc = sv_db_send(s->sv, &r, log_written, s->id, 0, lines, free_json);
    free(text);
    if (rc == 0) {
        json_array_clear(s->log_batch);
        s->log_inflight = 1;
    }
}

/* ---- files and the child's configuration ---- */

/* Sessions of ours, s aside, that still use s's REPL process (a shared driver's). */
static int process_mates(sv_session_t *s)
{
    if (!s->shared || s->pid <= 0)
        return 0;
    int n = 0;
    for (apr_hash_index_t *hi = apr_hash_first(s->sv->iter, s->sv->sessions); hi;
         hi = apr_hash_next(hi)) {
        sv_session_t *t = apr_hash_this_val(hi);
        if (t != s && t->shared && t->pid == s->pid && !t->done && !t->end_pending)
            n++;
    }
    return n;
}

/* Whether another session of ours still uses dir (a shared driver's directory). */
static int dir_in_use(sv_session_t *s)
{
    for (apr_hash_index_t *hi = apr_hash_first(s->sv->iter, s->sv->sessions); hi;
         hi = apr_hash_next(hi)) {
        sv_session_t *t = apr_hash_this_val(hi);
        if (t != s && !t->done && t->dir && strcmp(t->dir, s->dir) == 0)
            return 1;
    }
    return 0;
}

static void remove_files(sv_session_t *s)
{
    unlink(s->conf_path);
    unlink(s->pid_path);
    unlink(s->key_path);
    if (s->guest)
        unlink(s->sock_path);
    if (!dir_in_use(s))
        sv_identity_remove_session_dir(s->dir, s->have_account ? &s->account : NULL);
}

/* ---- ending ---- */

/* The end is stored: the session is done (its files go, its room is free). */
static void ended(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv_session_t *s = sv_find_session(sv, op->session);
    if (!s)
        return;
    s->end_inflight = 0;
    if (!res && op->lost)
        return; /* again after the reconnect */
    if (!res)
        sv_error("session %" APR_INT64_T_FMT ": storing its end: %s", s->id, op->err);
    if (s->orphan)
        sv_info("session %" APR_INT64_T_FMT ": its leftover REPL process is gone", s->id);
    else if (s->stopping && !s->failed)
        sv_info("session %" APR_INT64_T_FMT " stopped (%s)", s->id, s->stop_reason);
    else
        sv_warn("session %" APR_INT64_T_FMT " is dead: %s", s->id, s->end_pending);
    if (s->warm)
        sv_warm_ended(s);
    remove_files(s);
    s->done = 1;
    sv->need_claim = 1;
}

/* Writes the end of the session (or defers it while the database is away). */
static void finish(sv_session_t *s)
{
    if (!s->end_pending || s->done || s->end_inflight || !sv_db_ok(s->sv))
        return;
    if (s->log_inflight)
        return; /* lines written before: the end goes in right behind the next write */
    apr_pool_t *p = s->sv->iter;
    store_sv_req_t r;
    if (s->orphan) {
        store_sv_req_clear_child(&r, s->id, p);
    }
    else {
        if (!s->end_noted)
            sv_session_note(s, "%s", s->end_pending);
        s->end_noted = 1;
        sv_session_flush_log(s); /* queued first: the log is written before the end */
        const char *why = s->stopping && !s->failed ? NULL : s->end_pending;
        store_sv_req_end(&r, s->id, "dead", sv_epoch_ms(), why, p);
    }
    if (sv_db_send(s->sv, &r, ended, s->id, 0, NULL, NULL) == 0)
        s->end_inflight = 1;
}

/* The process is gone (or was never there): record why, once. */
static void process_gone(sv_session_t *s, const char *how)
{
    if (s->end_pending)
        return;
    if (s->replace && !s->shared && replace_child(s, how) == 0)
        return;
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    /* Whatever the child left in its process group (the JVM) goes with it. */
    if (s->pid > 0)
        sv_child_signal_group(s->pid, SIGKILL);
    const char *why;
    if (s->orphan)
        why = "";
    else if (s->stopping && !s->failed)
        why = apr_psprintf(s->pool, "session stopped (%s); the REPL process %s",
                           s->stop_reason, how);
    else if (s->failed && s->failure)
        /* Its first line: a fatal message can carry the JVM's whole output. */
        why = apr_psprintf(s->pool, "the REPL failed (%.*s) and %s; the session is dead",
                           (int)(strcspn(s->failure, "\n") < 200 ? strcspn(s->failure, "\n") : 200),
                           s->failure, how);
    else if (s->failed)
        why = apr_psprintf(s->pool, "the REPL failed and %s; the session is dead", how);
    else
        why = apr_psprintf(s->pool, "the REPL process%s %s unexpectedly; the session is dead",
                           s->pid > 0 ? apr_psprintf(s->pool, " (pid %d)", (int)s->pid) : "", how);
    /* A child that died before it could speak left its reasons in its log file only. */
    if (!s->ever_spoke && !s->orphan && s->pid > 0) {
        apr_array_header_t *tail = sv_child_file_tail(s->log_path, 30, 16384, s->sv->iter);
        if (tail->nelts > 0)
            sv_session_note(s, "the last lines of %s:", s->log_path);
        for (int i = 0; i < tail->nelts; i++) {
            const char *line = APR_ARRAY_IDX(tail, i, const char *);
            add_log_line(s, line, strlen(line));
        }
    }
    s->end_pending = why;
    finish(s);
}

/* The REPL closed the session (or it would not close in time) while its process runs on for
 * the other sessions sharing it: the session ends, the process is left alone. */
static void session_left(sv_session_t *s, const char *how)
{
    if (s->end_pending)
        return;
    s->left = 1;
    s->share_wait = 0;
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    s->in.len = s->out.len = 0;
    const char *why;
    if (s->orphan)
        why = "";
    else if (s->stopping && !s->failed)
        why = apr_psprintf(s->pool, "session stopped (%s); it %s the shared driver (pid %d), "
                           "which runs on for its other sessions", s->stop_reason, how,
                           (int)s->pid);
    else
        why = apr_psprintf(s->pool, "the session %s the shared driver (pid %d)%s%.*s; the "
                           "session is dead", how, (int)s->pid, s->failure ? " after: " : "",
                           (int)(s->failure ? (strcspn(s->failure, "\n") < 200
                                                   ? strcspn(s->failure, "\n") : 200) : 0),
                           s->failure ? s->failure : "");
    s->end_pending = why;
    finish(s);
}

void sv_session_reaped(sv_session_t *s, int status)
{
    s->reaped = 1;
    s->wait_status = status;
}

/* ---- stopping ---- */

void sv_session_begin_stop(sv_session_t *s, const char *reason)
{
    if (s->stopping || s->end_pending)
        return;
    s->stopping = 1;
    s->stop_reason = apr_pstrdup(s->pool, reason);
    s->stop_since_ms = sv_now_ms();
    if (!s->orphan) {
        sv_info("session %" APR_INT64_T_FMT ": stopping (%s)", s->id, reason);
        sv_session_note(s, "stopping the session: %s", reason);
        store_sv_req_t r;
        store_sv_req_shutting_down(&r, s->id, s->sv->iter);
        sv_db_send(s->sv, &r, NULL, s->id, 0, NULL, NULL);
    }
    if (s->pid <= 0) {
        s->share_wait = 0;
        process_gone(s, "was never started");
        return;
    }
    if (s->fd >= 0) {
        json_t *msg = json_pack("{s:s}", "op", "shutdown");
        send_msg(s, msg);
        json_decref(msg);
    }
}

/* A child that cannot go on: no graceful shutdown, signals at once. */
static void fail_child(sv_session_t *s, const char *why)
{
    if (s->failed)
        return;
    s->failed = 1;
    s->failure = apr_pstrdup(s->pool, why);
    if (!s->stopping) {
        s->stopping = 1;
        s->stop_reason = s->failure;
        s->stop_since_ms = sv_now_ms();
    }
}

/* ---- talking to the child ---- */

static void flush_out(sv_session_t *s)
{
    while (s->fd >= 0 && s->out.len > 0) {
        ssize_t n = send(s->fd, s->out.data, s->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sv_buf_consume(&s->out, (size_t)n);
        }
        else if (n < 0 && errno == EINTR) {
            continue;
        }
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        else {
            sv_debug("session %" APR_INT64_T_FMT ": send: %s", s->id, strerror(errno));
            socket_lost(s);
            return;
        }
    }
}

static void send_msg(sv_session_t *s, json_t *msg)
{
    if (s->fd < 0)
        return;
    char *text = json_dumps(msg, JSON_COMPACT);
    if (!text)
        return;
    sv_buf_append(&s->out, text, strlen(text));
    sv_buf_append(&s->out, "\n", 1);
    free(text);
    flush_out(s);
}

static void send_hello(sv_session_t *s)
{
    json_t *msg = json_pack("{s:s}", "op", "hello");
    send_msg(s, msg);
    json_decref(msg);
}

static void send_ack(sv_session_t *s, int id)
{
    json_t *msg = json_pack("{s:s,s:i}", "op", "ack", "id", id);
    send_msg(s, msg);
    json_decref(msg);
}

/* The socket closed or failed: the child may be dying, or only the connection went. */
static void socket_lost(sv_session_t *s)
{
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    s->in.len = 0;
    s->out.len = 0;
    if (s->end_pending)
        return;
    apr_int64_t now = sv_now_ms();
    s->phase = SV_PHASE_CONNECTING;
    s->connect_since_ms = now;
    s->connect_delay_ms = 50;
    s->next_connect_ms = now + s->connect_delay_ms;
}

void sv_session_resync(sv_session_t *s)
{
    if (s->fd < 0 || s->end_pending || s->done)
        return;
    /* Lines read while the database was away wait in the buffer: handle them now, rather
     * than when the child next writes (a challenge, say, would wait for its timeout). */
    if (s->in.len > 0 && read_socket(s) != 0 && s->fd >= 0) {
        socket_lost(s);
        return;
    }
    /* Before hello (connecting, proving the secret) the usual hello comes anyway. */
    if (s->fd < 0 || s->phase < SV_PHASE_HELLO)
        return;
    sv_debug("session %" APR_INT64_T_FMT ": hello again, for what was not stored while the "
             "database was away", s->id);
    send_hello(s);
}

static const char *execute_kind(const char *stmt_kind, const char *session_kind)
{
    const char *k = stmt_kind ? stmt_kind : session_kind;
    if (!k || strcmp(k, "shared") == 0 || strcmp(k, "python") == 0)
        return "pyspark";
    if (strcmp(k, "scala") == 0)
        return "spark";
    if (strcmp(k, "r") == 0)
        return "sparkr";
    return k;
}

static sv_inflight_t *find_inflight(sv_session_t *s, int id, int *index)
{
    for (int i = 0; i < s->inflight->nelts; i++) {
        sv_inflight_t *f = &APR_ARRAY_IDX(s->inflight, i, sv_inflight_t);
        if (f->id == id) {
            if (index)
                *index = i;
            return f;
        }
    }
    return NULL;
}

static void drop_inflight(sv_session_t *s, int id)
{
    int i;
    if (!find_inflight(s, id, &i))
        return;
    sv_inflight_t *elts = (sv_inflight_t *)s->inflight->elts;
    memmove(elts + i, elts + i + 1, (size_t)(s->inflight->nelts - i - 1) * sizeof *elts);
    s->inflight->nelts--;
}

/* The answer to sync_statements: sends every waiting statement not yet sent, in id order, and
 * every cancel not yet sent. */
static void send_execute(sv_session_t *s, int id, const char *code, const char *kind)
{
    json_t *msg = json_pack("{s:s,s:i,s:s,s:s}", "op", "execute", "id", id, "code",
                            code ? code : "", "kind", execute_kind(kind, s->kind));
    if (!msg) {
        /* code that is not UTF-8 cannot come from the module; say so rather than drop it */
        msg = json_pack("{s:s,s:i,s:s,s:s}", "op", "execute", "id", id, "code",
                        "raise ValueError('statement code is not valid UTF-8')", "kind",
                        "pyspark");
    }
    send_msg(s, msg);
    json_decref(msg);
    if (!find_inflight(s, id, NULL)) {
        sv_inflight_t *f = apr_array_push(s->inflight);
        f->id = id;
        f->cancel_sent = 0;
    }
    sv_debug("session %" APR_INT64_T_FMT ": sent statement %d", s->id, id);
}

int sv_session_dispatch(sv_session_t *s, const char *payload)
{
    /* "id:kind:code", the statement right after the last one sent, to a REPL that waits for
     * nothing else from the database: anything else is read back as usual */
    if (!sv_db_ok(s->sv) || s->fd < 0 || s->phase != SV_PHASE_READY || s->stopping
        || s->statements_inflight || s->need_statements || s->done || s->end_pending)
        return 0;
    char *end;
    long id = strtol(payload, &end, 10);
    if (end == payload || *end != ':' || id != s->last_sent + 1)
        return 0;
    const char *kind = end + 1;
    const char *colon = strchr(kind, ':');
    if (!colon || colon == kind)
        return 0;
    s->last_sent = (int)id;
    send_execute(s, (int)id, colon + 1, apr_pstrmemdup(s->sv->iter, kind,
                                                       (apr_size_t)(colon - kind)));
    return 1;
}

static void pending_read(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv_session_t *s = sv_find_session(sv, op->session);
    if (!s)
        return;
    s->statements_inflight = 0;
    if (!res) {
        if (op->lost)
            s->need_statements = 1;
        else
            sv_error("session %" APR_INT64_T_FMT ": %s", s->id, op->err);
        return;
    }
    if (s->done || s->fd < 0 || s->phase != SV_PHASE_READY || s->stopping)
        return; /* a new hello asks again */
    apr_array_header_t *rows = store_sv_parse_pending(res, sv->iter);
    store_sv_req_t r;
    for (int i = 0; i < rows->nelts && s->fd >= 0; i++) {
        store_sv_statement_t *st = &APR_ARRAY_IDX(rows, i, store_sv_statement_t);
        int pending = strcmp(st->state, "waiting") == 0 || strcmp(st->state, "running") == 0
                      || strcmp(st->state, "cancelling") == 0;
        if (st->id > s->last_sent) {
            s->last_sent = st->id;
            if (!pending)
                continue; /* settled before it was ever sent */
            if (st->cancel_requested && strcmp(st->state, "waiting") == 0) {
                /* Cancelled before it was sent: it ends here (the module usually does this). */
                store_sv_req_result(&r, s->id, st->id, "cancelled", NULL, 0, sv_epoch_ms(),
                                    sv->iter);
                sv_db_send(sv, &r, NULL, s->id, st->id, NULL, NULL);
                continue;
            }
            send_execute(s, st->id, st->code, st->kind);
        }
        sv_inflight_t *f = find_inflight(s, st->id, NULL);
        if (f && st->cancel_requested && !f->cancel_sent) {
            json_t *msg = json_pack("{s:s,s:i}", "op", "cancel", "id", st->id);
            send_msg(s, msg);
            json_decref(msg);
            f->cancel_sent = 1;
            sv_info("session %" APR_INT64_T_FMT ": cancelling statement %d", s->id, st->id);
            if (strcmp(st->state, "running") == 0) {
                store_sv_req_cancelling(&r, s->id, st->id, sv->iter);
                sv_db_send(sv, &r, NULL, s->id, st->id, NULL, NULL);
            }
        }
    }
}

static void sync_statements(sv_session_t *s)
{
    if (!sv_db_ok(s->sv) || s->fd < 0 || s->phase != SV_PHASE_READY || s->stopping
        || s->statements_inflight)
        return;
    s->need_statements = 0;
    int from = s->last_sent + 1;
    for (int i = 0; i < s->inflight->nelts; i++) {
        int id = APR_ARRAY_IDX(s->inflight, i, sv_inflight_t).id;
        if (id < from)
            from = id;
    }
    store_sv_req_t r;
    store_sv_req_pending(&r, s->id, from, s->sv->iter);
    if (sv_db_send(s->sv, &r, pending_read, s->id, 0, NULL, NULL) == 0)
        s->statements_inflight = 1;
    else
        s->need_statements = 1;
}

/* The answer to sync_completions: asks the child for each completion request not yet sent. A
 * completion runs beside a statement in the child; the module waits for the answer a bounded
 * time and drops the request then, so one sent late is merely not waited for. */
static void completions_read(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv_session_t *s = sv_find_session(sv, op->session);
    if (!s)
        return;
    s->completions_inflight = 0;
    if (!res) {
        if (op->lost)
            s->need_completions = 1;
        else
            sv_error("session %" APR_INT64_T_FMT ": %s", s->id, op->err);
        return;
    }
    if (s->done || s->fd < 0 || s->phase != SV_PHASE_READY || s->stopping)
        return;
    apr_array_header_t *rows = store_sv_parse_completions(res, sv->iter);
    for (int i = 0; i < rows->nelts && s->fd >= 0; i++) {
        store_sv_completion_t *c = &APR_ARRAY_IDX(rows, i, store_sv_completion_t);
        if (c->id <= s->last_completion)
            continue;
        s->last_completion = c->id;
        json_t *msg = json_pack("{s:s,s:I,s:s,s:s}", "op", "complete", "id", (json_int_t)c->id,
                                "code", c->code ? c->code : "", "kind",
                                execute_kind(c->kind, s->kind));
        if (c->cursor >= 0)
            json_object_set_new(msg, "cursor", json_integer(c->cursor));
        send_msg(s, msg);
        json_decref(msg);
    }
}

static void sync_completions(sv_session_t *s)
{
    if (!sv_db_ok(s->sv) || s->fd < 0 || s->phase != SV_PHASE_READY || s->stopping
        || s->completions_inflight)
        return;
    s->need_completions = 0;
    store_sv_req_t r;
    store_sv_req_completions(&r, s->id, s->last_completion, s->sv->iter);
    if (sv_db_send(s->sv, &r, completions_read, s->id, 0, NULL, NULL) == 0)
        s->completions_inflight = 1;
    else
        s->need_completions = 1;
}

/* The child's candidates: an array of at most 1000 strings is stored, nothing else. */
static void on_completion(sv_session_t *s, json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    json_t *list = json_object_get(msg, "candidates");
    if (!json_is_integer(id))
        return;
    json_t *clean = json_array();
    size_t i;
    json_t *v;
    if (json_is_array(list)) {
        json_array_foreach(list, i, v) {
            if (json_array_size(clean) >= 1000)
                break;
            if (json_is_string(v))
                json_array_append(clean, v);
        }
    }
    char *text = json_dumps(clean, JSON_COMPACT);
    json_decref(clean);
    if (!text)
        return;
    store_sv_req_t r;
    store_sv_req_completion_answer(&r, s->id, json_integer_value(id),
                                   apr_pstrdup(s->sv->iter, text), s->sv->iter);
    free(text);
    sv_db_send(s->sv, &r, NULL, s->id, 0, NULL, NULL);
}

static void flags_read(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv_session_t *s = sv_find_session(sv, op->session);
    if (!s)
        return;
    s->flags_inflight = 0;
    if (!res) {
        if (op->lost)
            s->need_flags = 1;
        else
            sv_error("session %" APR_INT64_T_FMT ": %s", s->id, op->err);
        return;
    }
    if (s->done)
        return;
    store_sv_flags_t flags;
    store_sv_parse_flags(res, &flags, sv->iter);
    if (s->warm && flags.found && !flags.warm)
        sv_warm_taken(s, flags.kind);
    if (!flags.found)
        sv_session_begin_stop(s, "its database row is gone");
    else if (flags.stop_requested && strcmp(flags.stop_requested, "delete") == 0)
        sv_session_begin_stop(s, "deleted by a client request");
    else if (flags.stop_requested)
        sv_session_begin_stop(s, "stopped by a client request");
    else if (flags.ended)
        sv_session_begin_stop(s, apr_psprintf(s->pool, "the session was marked %s elsewhere",
                                              flags.state));
}

static void check_flags(sv_session_t *s)
{
    if (!sv_db_ok(s->sv) || s->flags_inflight)
        return;
    s->need_flags = 0;
    store_sv_req_t r;
    store_sv_req_flags(&r, s->id, s->sv->iter);
    if (sv_db_send(s->sv, &r, flags_read, s->id, 0, NULL, NULL) == 0)
        s->flags_inflight = 1;
    else
        s->need_flags = 1;
}

static const char *str_member(json_t *msg, const char *key)
{
    json_t *v = json_object_get(msg, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* `ready`, or a `hello` from a REPL that is up. The Spark UI address is the proxy's target
 * (mod_livy_ui.c): it is taken only from the `ready` of a REPL that has not run any user code
 * yet, which could otherwise point the session's UI at another local port. */
static void on_ready(sv_session_t *s, json_t *msg)
{
    const char *app_id = str_member(msg, "app_id");
    const char *type = str_member(msg, "type");
    const char *ui = s->phase == SV_PHASE_STARTING && type && strcmp(type, "ready") == 0
                         ? str_member(msg, "spark_ui_url")
                         : NULL;
    if (!s->stopping) {
        store_sv_req_t r;
        store_sv_req_set_ready(&r, s->id, app_id, ui, s->sv->iter);
        sv_db_send(s->sv, &r, NULL, s->id, 0, NULL, NULL);
    }
    if (s->phase != SV_PHASE_READY)
        sv_info("session %" APR_INT64_T_FMT " is ready (%s)", s->id, app_id ? app_id : "no app id");
    if (s->warm && s->phase != SV_PHASE_READY)
        sv_warm_ready(s);
    s->phase = SV_PHASE_READY;
    s->start_deadline_ms = 0;
    s->need_statements = 1;
    s->need_completions = 1;
}

static void on_hello(sv_session_t *s, json_t *msg)
{
    s->ever_spoke = 1;
    json_t *protocol = json_object_get(msg, "protocol");
    if (json_is_integer(protocol) && json_integer_value(protocol) != SV_AUTH_PROTOCOL)
        sv_warn("session %" APR_INT64_T_FMT ": the REPL speaks protocol %" JSON_INTEGER_FORMAT
                ", this supervisor protocol %d", s->id, json_integer_value(protocol),
                SV_AUTH_PROTOCOL);
    /* What the child holds is all that is in flight; anything else pending is sent again
     * (the child ignores an execute for a statement it knows). */
    s->inflight->nelts = 0;
    s->last_sent = -1;
    json_t *running = json_object_get(msg, "running");
    if (json_is_integer(running)) {
        sv_inflight_t *f = apr_array_push(s->inflight);
        f->id = (int)json_integer_value(running);
        f->cancel_sent = 0;
    }
    size_t i;
    json_t *q;
    /* What it queued, and the results it holds for us: statements sent by an earlier
     * connection (or supervisor), which are the only results it may send. */
    json_t *held = json_array();
    json_array_extend(held, json_object_get(msg, "queued"));
    json_array_extend(held, json_object_get(msg, "unacked"));
    json_array_foreach(held, i, q) {
        if (json_is_integer(q) && !find_inflight(s, (int)json_integer_value(q), NULL)) {
            sv_inflight_t *f = apr_array_push(s->inflight);
            f->id = (int)json_integer_value(q);
            f->cancel_sent = 0;
        }
    }
    json_decref(held);
    const char *state = str_member(msg, "state");
    if (state && (strcmp(state, "idle") == 0 || strcmp(state, "busy") == 0))
        on_ready(s, msg);
    else
        s->phase = SV_PHASE_STARTING;
    s->need_flags = 1;
    if (s->stopping) {
        json_t *stop = json_pack("{s:s}", "op", "shutdown");
        send_msg(s, stop);
        json_decref(stop);
    }
}

/* What storing a result needs again when its output is refused. */
typedef struct {
    apr_int64_t started_ms;
    apr_int64_t completed_ms;
    const char *state;           /* a literal */
    int replacement;             /* this is the error stored in place of a refused output */
} result_info_t;

/* A result is stored: acknowledge it, so that the child forgets it. Lost with the connection:
 * not acknowledged, the child sends it again after the next hello. */
static void result_stored(sv_t *sv, sv_op_t *op, PGresult *res)
{
    result_info_t *info = op->data;
    int id = op->ival;
    if (!res && op->lost)
        return;
    if (!res && op->sqlstate && (!strcmp(op->sqlstate, "57014") || !strncmp(op->sqlstate, "40", 2)
                                 || !strcmp(op->sqlstate, "55P03"))) {
        /* Cancelled by statement_timeout, a deadlock, a lock not available: nothing wrong with
         * the output. Not acknowledged; a hello has the child send it again. */
        sv_warn("session %" APR_INT64_T_FMT ": statement %d: storing its result failed (%s); "
                "asking the REPL to send it again", op->session, id, op->err);
        sv_session_t *s = sv_find_session(sv, op->session);
        if (s && s->fd >= 0 && s->phase >= SV_PHASE_HELLO)
            send_hello(s);
        return;
    }
    if (!res && !info->replacement) {
        /* The database refused this output (too large, say): store an error in its place so
         * the statement still ends, and say why. */
        sv_warn("session %" APR_INT64_T_FMT ": the output of statement %d was refused: %s",
                op->session, id, op->err);
        json_t *replacement = json_pack(
            "{s:s,s:i,s:s,s:s,s:[s]}", "status", "error", "execution_count", id, "ename",
            "OutputNotStored", "evalue", "the statement's output could not be stored",
            "traceback", op->err);
        char *text = json_dumps(replacement, JSON_COMPACT);
        json_decref(replacement);
        result_info_t *again = calloc(1, sizeof *again);
        if (again) {
            *again = *info;
            again->state = "available";
            again->replacement = 1;
            store_sv_req_t r;
            store_sv_req_result(&r, op->session, id, "available", text, info->started_ms,
                                info->completed_ms, sv->iter);
            sv_db_send(sv, &r, result_stored, op->session, id, again, free);
        }
        free(text);
        return;
    }
    if (!res)
        sv_error("session %" APR_INT64_T_FMT ": statement %d: %s", op->session, id, op->err);
    sv_session_t *s = sv_find_session(sv, op->session);
    if (!s)
        return;
    drop_inflight(s, id);
    send_ack(s, id);
    sv_debug("session %" APR_INT64_T_FMT ": statement %d %s", s->id, id, info->state);
}

static void on_result(sv_session_t *s, json_t *msg)
{
    json_t *idv = json_object_get(msg, "id");
    const char *state = str_member(msg, "state");
    if (!json_is_integer(idv) || !state
        || (strcmp(state, "available") != 0 && strcmp(state, "cancelled") != 0)) {
        sv_warn("session %" APR_INT64_T_FMT ": a result message without a valid id or state",
                s->id);
        return;
    }
    int id = (int)json_integer_value(idv);
    if (!find_inflight(s, id, NULL)) {
        /* Only code running in the REPL could send it: nothing is stored. */
        sv_warn("session %" APR_INT64_T_FMT ": dropped a result for statement %d, which this "
                "supervisor did not send to the REPL", s->id, id);
        return;
    }
    if (!sv_db_ok(s->sv))
        return; /* not acknowledged: the child sends it again after the next hello */
    json_t *output = json_object_get(msg, "output");
    json_t *started = json_object_get(msg, "started");
    json_t *completed = json_object_get(msg, "completed");
    result_info_t *info = calloc(1, sizeof *info);
    if (!info)
        return;
    info->started_ms = json_is_integer(started) ? (apr_int64_t)json_integer_value(started) : 0;
    info->completed_ms = json_is_integer(completed) ? (apr_int64_t)json_integer_value(completed)
                                                    : sv_epoch_ms();
    info->state = strcmp(state, "available") == 0 ? "available" : "cancelled";
    char *text = NULL;
    if (json_is_object(output)) {
        sanitize_json(output);
        text = json_dumps(output, JSON_COMPACT);
    }
    store_sv_req_t r;
    store_sv_req_result(&r, s->id, id, info->state, text, info->started_ms, info->completed_ms,
                        s->sv->iter);
    sv_db_send(s->sv, &r, result_stored, s->id, id, info, free);
    free(text);
}

/* Too many failed handshakes: whatever listens on the socket is not this session's REPL. */
#define MAX_AUTH_FAILURES 3

static void auth_failed(sv_session_t *s, const char *why)
{
    sv_warn("session %" APR_INT64_T_FMT ": closing the connection to %s: %s", s->id, s->sock_path,
            why);
    socket_lost(s);
    if (++s->auth_failures >= MAX_AUTH_FAILURES && !s->failed) {
        sv_session_note(s, "the process listening on %s could not prove the session's secret "
                        "(%d attempts): %s", s->sock_path, s->auth_failures, why);
        fail_child(s, "its REPL could not be authenticated");
    }
}

/* The handshake (docs/repl-protocol.md): the REPL's challenge, our proof and nonce, its proof. */
static void on_auth_message(sv_session_t *s, json_t *msg)
{
    const char *type = str_member(msg, "type");
    char id[32];
    snprintf(id, sizeof id, "%" APR_INT64_T_FMT, s->id);
    if (!s->have_key) {
        auth_failed(s, "this supervisor does not hold the session's secret");
        return;
    }
    if (!s->auth_sent && type && strcmp(type, "challenge") == 0) {
        json_t *protocol = json_object_get(msg, "protocol");
        const char *nonce = str_member(msg, "nonce");
        if (!json_is_integer(protocol) || json_integer_value(protocol) != SV_AUTH_PROTOCOL) {
            auth_failed(s, apr_psprintf(s->sv->iter, "the REPL speaks protocol %" JSON_INTEGER_FORMAT
                                        ", this supervisor %d",
                                        json_is_integer(protocol) ? json_integer_value(protocol) : 0,
                                        SV_AUTH_PROTOCOL));
            return;
        }
        if (!nonce || strlen(nonce) != 2 * SV_AUTH_NONCE_BYTES
            || strspn(nonce, "0123456789abcdef") != strlen(nonce)) {
            auth_failed(s, "a malformed challenge");
            return;
        }
        unsigned char raw[SV_AUTH_NONCE_BYTES];
        if (sv_auth_random(raw, sizeof raw) != 0) {
            auth_failed(s, "no random bytes from the kernel");
            return;
        }
        strcpy(s->repl_nonce, nonce);
        sv_auth_hex(raw, sizeof raw, s->sv_nonce);
        char proof[65];
        sv_auth_proof(s->key, "supervisor", id, s->repl_nonce, s->sv_nonce, proof);
        json_t *reply = json_pack("{s:s,s:i,s:s,s:s}", "op", "auth", "protocol", SV_AUTH_PROTOCOL,
                                  "nonce", s->sv_nonce, "proof", proof);
        send_msg(s, reply);
        json_decref(reply);
        s->auth_sent = 1;
        return;
    }
    if (s->auth_sent && type && strcmp(type, "auth") == 0) {
        char expected[65];
        sv_auth_proof(s->key, "repl", id, s->repl_nonce, s->sv_nonce, expected);
        if (!sv_auth_proof_matches(expected, str_member(msg, "proof"))) {
            auth_failed(s, "the REPL's proof of the session's secret is wrong");
            return;
        }
        s->auth_failures = 0;
        s->phase = SV_PHASE_HELLO;
        send_hello(s);
        return;
    }
    auth_failed(s, apr_psprintf(s->sv->iter, "an unexpected message during the handshake (%s)",
                                type ? type : "no type"));
}

static void handle_message(sv_session_t *s, json_t *msg)
{
    const char *type = str_member(msg, "type");
    if (s->phase == SV_PHASE_AUTH) {
        on_auth_message(s, msg);
        return;
    }
    if (!type) {
        sv_warn("session %" APR_INT64_T_FMT ": a message without a type from the REPL", s->id);
    }
    else if (strcmp(type, "log") == 0) {
        json_t *line = json_object_get(msg, "line");
        if (json_is_string(line))
            add_log_line(s, json_string_value(line), json_string_length(line));
    }
    else if (strcmp(type, "hello") == 0) {
        on_hello(s, msg);
    }
    else if (strcmp(type, "ready") == 0) {
        on_ready(s, msg);
    }
    else if (strcmp(type, "fatal") == 0) {
        const char *why = str_member(msg, "msg");
        why = why ? why : "no reason given";
        sv_warn("session %" APR_INT64_T_FMT ": the REPL reports a fatal error: %s", s->id, why);
        sv_session_note(s, "fatal: %s", why);
        s->said_fatal = 1;
        /* Before ready, Spark could not start: the session dies. After, a new REPL can serve. */
        if (s->phase == SV_PHASE_READY && !s->stopping && !s->shared)
            s->replace = 1;
        fail_child(s, why);
    }
    else if (strcmp(type, "started") == 0) {
        json_t *id = json_object_get(msg, "id");
        json_t *started = json_object_get(msg, "started");
        if (json_is_integer(id)) {
            store_sv_req_t r;
            store_sv_req_started(&r, s->id, (int)json_integer_value(id),
                                 json_is_integer(started) ? json_integer_value(started)
                                                          : sv_epoch_ms(),
                                 s->sv->iter);
            sv_db_send(s->sv, &r, NULL, s->id, 0, NULL, NULL);
        }
    }
    else if (strcmp(type, "progress") == 0) {
        json_t *id = json_object_get(msg, "id");
        json_t *progress = json_object_get(msg, "progress");
        if (json_is_integer(id) && json_is_number(progress)) {
            store_sv_req_t r;
            store_sv_req_progress(&r, s->id, (int)json_integer_value(id),
                                  json_number_value(progress), s->sv->iter);
            sv_db_send(s->sv, &r, NULL, s->id, 0, NULL, NULL);
        }
    }
    else if (strcmp(type, "result") == 0) {
        on_result(s, msg);
    }
    else if (strcmp(type, "closed") == 0) {
        /* a shared driver's session, closed by its REPL: the process serves others */
        sv_info("session %" APR_INT64_T_FMT ": closed in the shared driver (pid %d)", s->id,
                (int)s->pid);
        session_left(s, s->stopping && !s->failed ? "left" : "was closed in");
    }
    else if (strcmp(type, "completion") == 0) {
        on_completion(s, msg);
    }
    else {
        sv_warn("session %" APR_INT64_T_FMT ": unknown message type \"%s\" from the REPL", s->id,
                type);
    }
}

/* Reads what the socket has; handles each complete line. Returns -1 at EOF or error. */
static int read_socket(sv_session_t *s)
{
    char chunk[READ_CHUNK];
    size_t budget = READ_BUDGET;
    int eof = 0;
    while (s->fd >= 0 && budget > 0) {
        ssize_t n = recv(s->fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n > 0) {
            sv_buf_append(&s->in, chunk, (size_t)n);
            budget -= (size_t)n < budget ? (size_t)n : budget;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        eof = 1;
        break;
    }
    size_t start = 0;
    while (!s->done && s->fd >= 0 && sv_db_ok(s->sv)) {
        char *nl = memchr(s->in.data + start, '\n', s->in.len - start);
        if (!nl)
            break;
        size_t len = (size_t)(nl - (s->in.data + start));
        json_error_t jerr;
        json_t *msg = json_loadb(s->in.data + start, len, JSON_ALLOW_NUL, &jerr);
        start += len + 1;
        if (!msg) {
            sv_warn("session %" APR_INT64_T_FMT ": an unreadable message from the REPL: %s",
                    s->id, jerr.text);
            continue;
        }
        handle_message(s, msg);
        json_decref(msg);
    }
    if (s->fd >= 0)
        sv_buf_consume(&s->in, start);
    if (s->in.len > MAX_LINE_BYTES) {
        sv_error("session %" APR_INT64_T_FMT ": the REPL sent a line longer than %d bytes",
                 s->id, MAX_LINE_BYTES);
        eof = 1;
    }
    return eof ? -1 : 0;
}

int sv_session_has_work(sv_session_t *s)
{
    if (s->done || s->end_pending)
        return 0; /* finishing: the end's answer wakes the loop */
    return (s->need_flags && !s->flags_inflight)
           || (s->need_statements && !s->statements_inflight && s->phase == SV_PHASE_READY
               && s->fd >= 0 && !s->stopping)
           || (s->need_completions && !s->completions_inflight && s->phase == SV_PHASE_READY
               && s->fd >= 0 && !s->stopping);
}

short sv_session_poll_events(sv_session_t *s)
{
    if (s->fd < 0 || s->done)
        return 0;
    short ev = 0;
    /* While the database is away (or behind), the child's messages wait in the socket. */
    if (sv_db_ok(s->sv) && s->sv->db_queued < SV_DB_QUEUE_HIGH)
        ev |= POLLIN;
    if (s->out.len > 0)
        ev |= POLLOUT;
    return ev;
}

void sv_session_on_poll(sv_session_t *s, short revents)
{
    if (s->fd < 0 || s->done)
        return;
    if (revents & POLLOUT)
        flush_out(s);
    if (s->fd >= 0 && (revents & (POLLIN | POLLHUP | POLLERR))) {
        if (read_socket(s) != 0 && s->fd >= 0 && sv_db_ok(s->sv)) {
            sv_debug("session %" APR_INT64_T_FMT ": the REPL closed its socket", s->id);
            socket_lost(s);
        }
    }
}

/* ---- starting, adopting ---- */

/* Starts the child from the conf file already in run_dir, with a fresh secret handed over on an
 * inherited pipe. 0, or -1 with *err. */
static int start_process(sv_session_t *s, const char **err)
{
    const sv_config_t *cfg = s->sv->cfg;
    apr_pool_t *p = s->sv->iter;
    if (sv_identity_make_session_dir(s->dir, s->have_account ? &s->account : NULL, p, err) != 0)
        return -1;
    if (sv_auth_random(s->key, sizeof s->key) != 0) {
        *err = "no random bytes from the kernel for the session's secret";
        return -1;
    }
    if (sv_auth_write_key(s->key_path, s->key, p, err) != 0)
        return -1;
    s->have_key = 1;
    int secret[2] = {-1, -1};
    int conf_fd = open(s->conf_path, O_RDONLY | O_CLOEXEC);
    if (conf_fd < 0 || pipe2(secret, O_CLOEXEC) != 0) {
        *err = apr_psprintf(p, "cannot hand the REPL its settings: %s", strerror(errno));
        if (conf_fd >= 0)
            close(conf_fd);
        return -1;
    }
    char hex[2 * SV_AUTH_KEY_BYTES + 2];
    sv_auth_hex(s->key, sizeof s->key, hex);
    strcat(hex, "\n");
    /* 65 bytes always fit in a pipe's buffer: this never blocks. */
    ssize_t w = write(secret[1], hex, strlen(hex));
    explicit_bzero(hex, sizeof hex);
    close(secret[1]);
    if (w <= 0) {
        close(secret[0]);
        close(conf_fd);
        *err = "cannot hand the REPL its secret";
        return -1;
    }
    const char *id = apr_psprintf(p, "%" APR_INT64_T_FMT, s->id);
    const char *argv[] = {cfg->python, cfg->repl_driver, "--session-id", id,
                          "--socket", s->sock_path, "--secret-fd", "3", "--conf-fd", "4",
                          "--kind", s->kind, NULL};
    const char *account = s->have_account ? s->account.name : NULL;
    const char *set[9 + SV_CONFIG_SPARK_ENV_MAX];
    int n = sv_config_spark_env(cfg, set, p);
    set[n++] = apr_pstrcat(p, "HOME=", s->dir, "/home", NULL);
    set[n++] = apr_pstrcat(p, "TMPDIR=", s->dir, "/tmp", NULL);
    set[n++] = apr_pstrcat(p, "SPARK_LOCAL_DIRS=", s->dir, "/tmp", NULL);
    if (account) {
        set[n++] = apr_pstrcat(p, "USER=", account, NULL);
        set[n++] = apr_pstrcat(p, "LOGNAME=", account, NULL);
    }
    /* Spark's Python workers should run the interpreter the driver runs. */
    set[n++] = apr_pstrcat(p, "PYSPARK_PYTHON=", cfg->python, NULL);
    set[n++] = "PYTHONUNBUFFERED=1";
    if (!getenv("PATH"))
        set[n++] = "PATH=/usr/local/bin:/usr/bin:/bin";
    set[n] = NULL;
    int fds[] = {secret[0], conf_fd};
    sv_spawn_t sp = {
        .argv = argv,
        .envp = sv_child_env(apr_pstrcat(p, SV_CHILD_ENV_PASS, " ", cfg->repl_env, NULL), set, p),
        .dir = s->dir,
        .log_path = s->log_path,
        .fds = fds,
        .nfds = 2,
        .account = s->have_account ? &s->account : NULL,
        .namespaces = cfg->repl_isolation,
        .hide_dir = cfg->run_dir,
        .private_tmp = sv_config_private_tmp(cfg),
    };
    pid_t pid;
    int rc = sv_child_spawn(&sp, &pid, p, err);
    close(secret[0]);
    close(conf_fd);
    if (rc != 0)
        return -1;
    s->pid = pid;
    s->own_child = 1;
    s->reaped = 0;
    if (sv_child_write_pid_file(s->pid_path, s->pid, s->sv->iter) != 0)
        sv_warn("session %" APR_INT64_T_FMT ": cannot write %s: %s", s->id, s->pid_path,
                strerror(errno));
    sv_info("session %" APR_INT64_T_FMT ": started the REPL (pid %d, kind %s%s%s)", s->id,
            (int)s->pid, s->kind, account ? ", as " : "", account ? account : "");
    sv_session_note(s, "starting the REPL (pid %d%s%s): %s %s", (int)s->pid,
                    account ? ", as " : "", account ? account : "", cfg->python, cfg->repl_driver);
    store_sv_req_t r;
    store_sv_req_set_child(&r, s->id, (int)s->pid, s->sock_path, p);
    sv_db_send(s->sv, &r, NULL, s->id, 0, NULL, NULL);
    apr_int64_t now = sv_now_ms();
    s->phase = SV_PHASE_CONNECTING;
    s->connect_since_ms = now;
    s->connect_delay_ms = 10;
    s->next_connect_ms = now + s->connect_delay_ms;
    s->start_deadline_ms = cfg->start_timeout_ms ? now + cfg->start_timeout_ms : 0;
    return 0;
}

int sv_account_for(const sv_config_t *cfg, const char *owner, const char *proxy_user,
                   const char *what, sv_account_t *account, apr_pool_t *p, const char **err)
{
    if (!cfg->repl_isolation)
        return 0;
    const char *name = cfg->repl_user;
    const char *from = NULL;
    if (cfg->repl_user_from == SV_REPL_USER_OWNER) {
        name = owner;
        from = "owner";
    }
    else if (cfg->repl_user_from == SV_REPL_USER_PROXY_USER) {
        name = proxy_user ? proxy_user : owner;
        from = proxy_user ? "proxy user" : "owner";
    }
    if (!name) {
        *err = apr_psprintf(p, "the %s has no owner (an anonymous request), so there is no OS "
                            "account for it to run as (repl_user_from)", what);
        return -1;
    }
    const char *why;
    if (sv_identity_repl_account(name, cfg->repl_min_uid, account, p, &why) != 0) {
        *err = from ? apr_psprintf(p, "the %s cannot run as its %s: %s (repl_user_from needs an "
                                   "OS account for every user)", what, from, why)
                    : apr_psprintf(p, "repl_user: %s", why);
        return -1;
    }
    return 1;
}

int sv_check_python(const sv_config_t *cfg, apr_pool_t *p, const char **err)
{
    sv_account_t account;
    int have = 0;
    if (cfg->repl_isolation && cfg->repl_user_from == SV_REPL_USER_FIXED) {
        have = sv_account_for(cfg, NULL, NULL, "REPL", &account, p, err);
        if (have < 0)
            return -1;
    }
    const char *log = apr_pstrcat(p, cfg->run_dir, "/python-check.log", NULL);
    unlink(log);
    const char *argv[] = {cfg->python, "-c", "import pyspark", NULL};
    const char *set[3 + SV_CONFIG_SPARK_ENV_MAX];
    int n = sv_config_spark_env(cfg, set, p);
    set[n++] = "HOME=/";
    if (!getenv("PATH"))
        set[n++] = "PATH=/usr/local/bin:/usr/bin:/bin";
    set[n] = NULL;
    sv_spawn_t sp = {
        .argv = argv,
        .envp = sv_child_env(apr_pstrcat(p, SV_CHILD_ENV_PASS, " ", cfg->repl_env, NULL), set, p),
        .dir = "/",
        .log_path = log,
        .account = have ? &account : NULL,
    };
    pid_t pid;
    if (sv_child_spawn(&sp, &pid, p, err) != 0) {
        *err = apr_psprintf(p, "python = %s: %s", cfg->python, *err);
        return -1;
    }
    int status = 0;
    apr_int64_t give_up = sv_now_ms() + 60000;
    pid_t w;
    while ((w = waitpid(pid, &status, WNOHANG)) == 0 && sv_now_ms() < give_up)
        usleep(20000);
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        *err = apr_psprintf(p, "python = %s did not import pyspark within 60 s", cfg->python);
        return -1;
    }
    if (w == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        unlink(log);
        return 0;
    }
    apr_array_header_t *tail = sv_child_file_tail(log, 1, 4096, p);
    unlink(log);
    *err = apr_psprintf(p, "python = %s cannot import pyspark%s%s (%s%s%s): set `python` to an "
                        "interpreter with pyspark installed (pip install pyspark), or spark_home "
                        "to a Spark distribution", cfg->python, have ? " as " : "",
                        have ? account.name : "", sv_child_describe_status(status, p),
                        tail->nelts ? ": " : "",
                        tail->nelts ? APR_ARRAY_IDX(tail, 0, const char *) : "");
    return -1;
}

/* The OS account the session's REPL runs as (repl_user, or the session's own). 0, or -1 with
 * *err saying why there is none. */
static int resolve_account(sv_session_t *s, const store_sv_session_t *row, const char **err)
{
    int rc = sv_account_for(s->sv->cfg, row->owner, row->proxy_user, "session's REPL",
                            &s->account, s->pool, err);
    if (rc < 0)
        return -1;
    s->have_account = rc;
    return 0;
}

/* ---- shared drivers ---- */

/* Who may share a process: the same owner, proxy user and Spark settings, field by field (the
 * conf and lists as stored). The kind does not matter: every shareable kind runs there. */
static const char *share_key(const store_sv_session_t *row, apr_pool_t *p)
{
    const char *fields[] = {row->owner, row->proxy_user, row->driver_memory,
                            row->executor_memory, row->queue, row->conf, row->jars,
                            row->py_files, row->files, row->archives};
    const char *key = apr_psprintf(p, "%d/%d/%d", row->driver_cores, row->executor_cores,
                                   row->num_executors);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        key = apr_pstrcat(p, key, "\x1f", fields[i] ? "=" : "-", fields[i] ? fields[i] : "",
                          NULL);
    return key;
}

/* The process s may join: a ready one of its key with room (*ready set), else one of its key
 * still starting (*ready clear), else NULL. */
static sv_session_t *find_driver(sv_session_t *s, int *ready)
{
    sv_session_t *starting = NULL;
    *ready = 0;
    for (apr_hash_index_t *hi = apr_hash_first(s->sv->iter, s->sv->sessions); hi;
         hi = apr_hash_next(hi)) {
        sv_session_t *h = apr_hash_this_val(hi);
        if (h == s || !h->shared || h->pid <= 0 || h->done || h->end_pending || h->stopping
            || h->failed || h->orphan || h->warm || !h->share_key
            || strcmp(h->share_key, s->share_key) != 0)
            continue;
        if (process_mates(h) + 1 >= s->sv->cfg->shared_driver_max_sessions)
            continue;
        if (h->phase == SV_PHASE_READY && h->fd >= 0) {
            *ready = 1;
            return h;
        }
        if (h->phase != SV_PHASE_READY && !h->guest)
            starting = h;
    }
    return starting;
}

/* Opens session s in h's process: a secret and a socket of its own, handed over on h's
 * authenticated channel; s then connects like to any REPL. 0, or -1 with *err. */
static int join_driver(sv_session_t *s, sv_session_t *h, const char **err)
{
    apr_pool_t *p = s->sv->iter;
    if (sv_auth_random(s->key, sizeof s->key) != 0) {
        *err = "no random bytes from the kernel for the session's secret";
        return -1;
    }
    if (sv_auth_write_key(s->key_path, s->key, p, err) != 0)
        return -1;
    s->have_key = 1;
    s->guest = 1;
    s->share_wait = 0;
    s->pid = h->pid;
    s->own_child = 0;
    /* (its account is h's: the same owner and proxy user resolved it) */
    s->dir = apr_pstrdup(s->pool, h->dir);
    s->sock_path = apr_psprintf(s->pool, "%s/repl-%" APR_INT64_T_FMT ".sock", s->dir, s->id);
    char hex[2 * SV_AUTH_KEY_BYTES + 1];
    sv_auth_hex(s->key, sizeof s->key, hex);
    json_t *open = json_pack("{s:s, s:s, s:s, s:s, s:s}", "op", "open", "session",
                             apr_psprintf(p, "%" APR_INT64_T_FMT, s->id), "socket", s->sock_path,
                             "secret", hex, "kind", s->kind);
    explicit_bzero(hex, sizeof hex);
    send_msg(h, open);
    json_decref(open);
    if (sv_child_write_pid_file(s->pid_path, s->pid, p) != 0)
        sv_warn("session %" APR_INT64_T_FMT ": cannot write %s: %s", s->id, s->pid_path,
                strerror(errno));
    sv_info("session %" APR_INT64_T_FMT ": joining the shared driver of session %" APR_INT64_T_FMT
            " (pid %d)", s->id, h->id, (int)s->pid);
    sv_session_note(s, "joining the shared driver of session %" APR_INT64_T_FMT " (pid %d)",
                    h->id, (int)s->pid);
    store_sv_req_t r;
    store_sv_req_set_child(&r, s->id, (int)s->pid, s->sock_path, p);
    sv_db_send(s->sv, &r, NULL, s->id, 0, NULL, NULL);
    apr_int64_t now = sv_now_ms();
    s->phase = SV_PHASE_CONNECTING;
    s->connect_since_ms = now;
    s->connect_delay_ms = 10;
    s->next_connect_ms = now + s->connect_delay_ms;
    s->start_deadline_ms = s->sv->cfg->start_timeout_ms ? now + s->sv->cfg->start_timeout_ms : 0;
    return 0;
}

/* A shared session without a process: joins a ready driver of its key, waits for one that is
 * starting (so that sessions created together share it), or starts its own. */
static void place_shared(sv_session_t *s)
{
    int ready;
    const char *err;
    sv_session_t *h = find_driver(s, &ready);
    apr_int64_t now = sv_now_ms();
    apr_int64_t wait_limit = s->sv->cfg->start_timeout_ms ? s->sv->cfg->start_timeout_ms
                                                          : 5 * 60 * 1000;
    int rc;
    if (h && ready) {
        rc = join_driver(s, h, &err);
    }
    else if (h && (!s->share_wait || now - s->share_wait_since_ms < wait_limit)) {
        if (!s->share_wait) {
            sv_session_note(s, "waiting for the shared driver that session %" APR_INT64_T_FMT
                            " is starting", h->id);
            s->share_wait_since_ms = now;
        }
        s->share_wait = 1;
        return;
    }
    else {
        s->share_wait = 0;
        rc = start_process(s, &err);
    }
    if (rc != 0) {
        s->share_wait = 0;
        sv_error("session %" APR_INT64_T_FMT ": %s", s->id, err);
        sv_session_note(s, "%s", err);
        s->failed = 1;
        s->failure = apr_pstrdup(s->pool, err);
        process_gone(s, "could not be started");
    }
}

void sv_session_spawn(sv_session_t *s, const store_sv_session_t *row)
{
    apr_pool_t *p = s->sv->iter;
    const char *err;
    s->shared = row->shared_driver;
    s->share_key = s->shared ? share_key(row, s->pool) : NULL;
    int rc = resolve_account(s, row, &err);
    if (rc == 0) {
        json_t *conf = sv_spark_conf_build(s->sv->cfg, s->id, row, p);
        if (s->shared)
            json_object_set_new(conf, "shared_driver", json_true());
        /* The driver's temporary files go to the session's directory too (last -D wins). */
        json_t *spark = json_object_get(conf, "spark");
        json_t *opts = json_object_get(spark, "spark.driver.extraJavaOptions");
        const char *tmpdir = apr_pstrcat(p, "\"-Djava.io.tmpdir=", s->dir, "/tmp\"", NULL);
        json_object_set_new(spark, "spark.driver.extraJavaOptions",
                            json_string(json_is_string(opts)
                                            ? apr_pstrcat(p, json_string_value(opts), " ", tmpdir,
                                                          NULL)
                                            : tmpdir));
        rc = sv_spark_conf_write(s->conf_path, conf, p, &err);
        json_decref(conf);
    }
    if (rc == 0) {
        int fd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        if (fd >= 0)
            close(fd);
        if (s->shared) {
            place_shared(s);
            return;
        }
        rc = start_process(s, &err);
    }
    if (rc != 0) {
        sv_error("session %" APR_INT64_T_FMT ": %s", s->id, err);
        sv_session_note(s, "%s", err);
        s->failed = 1;
        s->failure = apr_pstrdup(s->pool, err);
        process_gone(s, "could not be started");
    }
}

/* A REPL that declared itself unusable after it was ready (a statement that would not stop):
 * a fresh child takes its place; the session lives on without its variables. */
static int replace_child(sv_session_t *s, const char *how)
{
    if (s->replacements >= MAX_REPLACEMENTS || access(s->conf_path, R_OK) != 0)
        return -1;
    s->replacements++;
    sv_warn("session %" APR_INT64_T_FMT ": the REPL (pid %d) %s after a fatal error; starting a "
            "new one", s->id, (int)s->pid, how);
    sv_session_note(s, "the REPL (pid %d) %s after the fatal error above; a new REPL replaces it "
                    "and the session's variables are lost", (int)s->pid, how);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->in.len = s->out.len = 0;
    sv_child_signal_group(s->pid, SIGKILL);
    s->pid = 0;
    s->ever_spoke = 0;
    s->failed = 0;
    s->failure = NULL;
    s->replace = 0;
    s->stopping = 0;
    s->stop_reason = NULL;
    s->term_sent = s->kill_sent = 0;
    s->inflight->nelts = 0;
    s->last_sent = -1;
    const char *err;
    if (start_process(s, &err) != 0) {
        sv_error("session %" APR_INT64_T_FMT ": %s", s->id, err);
        s->failed = 1;
        s->failure = apr_pstrdup(s->pool, err);
        return -1;
    }
    return 0;
}


void sv_session_adopt(sv_session_t *s, const store_sv_session_t *row)
{
    /* What talking to the REPL, and removing its directory later, take. */
    const char *why;
    s->warm = row->warm;
    s->shared = row->shared_driver;
    s->share_key = s->shared ? share_key(row, s->pool) : NULL;
    if (resolve_account(s, row, &why) != 0)
        sv_warn("session %" APR_INT64_T_FMT ": %s", s->id, why);
    s->have_key = sv_auth_read_key(s->key_path, s->key) == 0;
    if (row->repl_socket) {
        s->sock_path = apr_pstrdup(s->pool, row->repl_socket);
        /* A session that joined a shared driver has its socket in that driver's directory. */
        const char *slash = strrchr(s->sock_path, '/');
        if (slash && strcmp(slash, "/repl.sock") != 0 && s->shared) {
            s->guest = 1;
            s->dir = apr_pstrmemdup(s->pool, s->sock_path, (apr_size_t)(slash - s->sock_path));
        }
    }
    pid_t pid = row->repl_pid;
    if (pid <= 0)
        pid = sv_child_read_pid_file(s->pid_path);
    /* A pid can be reused: the process must be a REPL for this very directory (the first
     * session's socket, on its command line). */
    int ours = pid > 0 && sv_child_alive(pid)
               && sv_child_cmdline_contains(pid, apr_pstrcat(s->sv->iter, s->dir, "/repl.sock",
                                                             NULL));
    if (row->ended) {
        s->orphan = 1;
        s->pid = ours ? pid : 0;
        if (ours)
            sv_warn("session %" APR_INT64_T_FMT " has ended but its REPL (pid %d) still runs: "
                    "stopping it", s->id, (int)pid);
        sv_session_begin_stop(s, "the session ended while no supervisor was watching it");
    }
    else if (ours) {
        sv_info("session %" APR_INT64_T_FMT ": reattaching to its REPL (pid %d)", s->id, (int)pid);
        s->pid = pid;
        s->own_child = 0;
        apr_int64_t now = sv_now_ms();
        s->phase = SV_PHASE_CONNECTING;
        s->connect_since_ms = now;
        s->connect_delay_ms = 10;
        s->next_connect_ms = now;
        s->need_flags = 1;
        /* Still starting when its supervisor went: the limit counts from now. */
        if (strcmp(row->state, "starting") == 0 && s->sv->cfg->start_timeout_ms)
            s->start_deadline_ms = now + s->sv->cfg->start_timeout_ms;
    }
    else if (pid <= 0 && strcmp(row->state, "starting") == 0) {
        /* Claimed by a supervisor that died before it started the child: start it now. */
        sv_session_spawn(s, row);
        s->need_flags = 1;
    }
    else {
        s->pid = 0;
        s->failed = 1;
        s->ever_spoke = 1; /* its log file tail may be stale; do not copy it */
        process_gone(s, pid > 0 ? apr_psprintf(s->pool, "(pid %d) ended while no supervisor was "
                                                        "watching it", (int)pid)
                                : "was not found after a supervisor restart");
    }
}

void sv_session_detach(sv_session_t *s)
{
    sv_session_flush_log(s);
    flush_out(s);
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

/* ---- the timer side ---- */

static void lower(apr_int64_t *deadline, apr_int64_t t)
{
    if (t < *deadline)
        *deadline = t;
}

static void try_connect(sv_session_t *s, apr_int64_t now, apr_int64_t *deadline)
{
    if (now < s->next_connect_ms) {
        lower(deadline, s->next_connect_ms);
        return;
    }
    int fd = -1;
    int rc = sv_child_connect(s->sock_path, &fd);
    if (rc == 0) {
        sv_debug("session %" APR_INT64_T_FMT ": connected to %s", s->id, s->sock_path);
        s->fd = fd;
        s->phase = SV_PHASE_AUTH; /* the REPL speaks first: its challenge */
        s->auth_sent = 0;
        return;
    }
    if (rc < 0)
        sv_debug("session %" APR_INT64_T_FMT ": connect %s: %s", s->id, s->sock_path,
                 strerror(errno));
    if (now - s->connect_since_ms > CONNECT_LIMIT_MS && !s->failed) {
        sv_session_note(s, "the REPL did not open its socket %s within %ds", s->sock_path,
                        CONNECT_LIMIT_MS / 1000);
        fail_child(s, "its socket could not be reached");
    }
    s->connect_delay_ms = s->connect_delay_ms * 2 > 250 ? 250 : s->connect_delay_ms * 2;
    s->next_connect_ms = now + s->connect_delay_ms;
    lower(deadline, s->next_connect_ms);
}

/* Signals after the grace period; SIGTERM half-way, SIGKILL at its end. A failed child gets
 * them at once. */
static void escalate(sv_session_t *s, apr_int64_t now, apr_int64_t *deadline)
{
    if (process_mates(s) > 0) {
        /* A shared driver that serves other sessions gets no signal: its REPL closes this
         * session (it says closed); one that does not within the grace is left behind. */
        apr_int64_t limit = s->stop_since_ms + (s->failed ? 10000 : s->sv->cfg->stop_grace_ms);
        if (now >= limit)
            session_left(s, "did not close in time in");
        else
            lower(deadline, limit);
        return;
    }
    apr_int64_t grace = s->failed ? 0 : s->sv->cfg->stop_grace_ms;
    apr_int64_t term_at = s->stop_since_ms + grace / 2;
    apr_int64_t kill_at = s->stop_since_ms + grace;
    if (s->failed && (s->fd >= 0 || s->said_fatal) && !s->term_sent) {
        /* A child that said fatal exits by itself (the first process of its PID namespace:
         * its exit waits for the JVM's teardown), closing its socket on the way; give it a
         * while to do so. */
        term_at = kill_at = s->stop_since_ms + 10000;
    }
    if (!s->term_sent) {
        if (now >= term_at) {
            sv_debug("session %" APR_INT64_T_FMT ": SIGTERM to process group %d", s->id,
                     (int)s->pid);
            sv_child_signal_group(s->pid, SIGTERM);
            s->term_sent = 1;
        }
        else {
            lower(deadline, term_at);
        }
    }
    if (!s->kill_sent) {
        if (now >= kill_at) {
            sv_debug("session %" APR_INT64_T_FMT ": SIGKILL to process group %d", s->id,
                     (int)s->pid);
            sv_child_signal_group(s->pid, SIGKILL);
            s->kill_sent = 1;
            s->kill_since_ms = now;
        }
        else {
            lower(deadline, kill_at);
            return;
        }
    }
    if (now - s->kill_since_ms > KILL_LIMIT_MS) {
        /* Ours: SIGCHLD will tell, whenever the kernel lets it go. Adopted: give up on it. */
        if (!s->own_child)
            process_gone(s, "did not go away after SIGKILL");
        return;
    }
    lower(deadline, s->kill_since_ms + KILL_LIMIT_MS + 1);
}

void sv_session_work(sv_session_t *s, apr_int64_t now, apr_int64_t *deadline)
{
    if (s->done)
        return;
    if (s->end_pending) {
        finish(s);
        return;
    }
    if (s->share_wait) {
        if (!s->stopping)
            place_shared(s);
        if (s->share_wait) {
            lower(deadline, now + 100);
            return;
        }
    }
    /* Has the process ended? Ours: waitpid said so. Adopted: it no longer runs. */
    int gone;
    if (s->own_child)
        gone = s->reaped;
    else if (s->pid > 0 && (s->fd < 0 || s->stopping))
        gone = !sv_child_alive(s->pid);
    else
        gone = s->pid <= 0;
    if (gone) {
        if (!sv_db_ok(s->sv))
            return; /* its last words and its end wait for the database */
        if (s->fd >= 0)
            read_socket(s); /* the results and log lines it sent before it died */
        process_gone(s, s->own_child ? sv_child_describe_status(s->wait_status, s->pool)
                                     : "ended");
        return;
    }
    if (!s->own_child && s->pid > 0 && (s->fd < 0 || s->stopping))
        lower(deadline, now + ALIVE_CHECK_MS);
    if (s->start_deadline_ms && s->phase != SV_PHASE_READY && !s->stopping) {
        if (now >= s->start_deadline_ms) {
            const char *limit = sv_format_duration(s->sv->cfg->start_timeout_ms, s->sv->iter);
            sv_warn("session %" APR_INT64_T_FMT ": Spark did not start within %s (start_timeout)",
                    s->id, limit);
            sv_session_note(s, "Spark did not start within %s (start_timeout): stopping the REPL",
                            limit);
            fail_child(s, apr_psprintf(s->sv->iter, "Spark did not start within %s", limit));
        }
        else {
            lower(deadline, s->start_deadline_ms);
        }
    }
    if (s->phase == SV_PHASE_CONNECTING && s->fd < 0)
        try_connect(s, now, deadline);
    if (s->stopping)
        escalate(s, now, deadline);
    if (s->done || s->end_pending)
        return;
    if (s->need_flags)
        check_flags(s);
    if (s->need_statements)
        sync_statements(s);
    if (s->need_completions)
        sync_completions(s);
}
