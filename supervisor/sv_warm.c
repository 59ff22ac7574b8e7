/* sv_warm: REPLs started ahead of demand (warm_sessions), so that a session whose settings a
 * fresh REPL serves is idle as soon as it is created.
 *
 * A warm REPL is a session row of ours marked warm (and deleted, which hides it from clients),
 * started like any claimed session: its own id, directory, secret, account (repl_user) and
 * Spark. POST /sessions takes a ready one in the statement that would otherwise insert a fresh
 * row (engine/livy_store.c) and notifies us; the row's flags then say it is no longer warm, and
 * from there on it is that session's REPL, never reused after it. Warm REPLs do not count
 * against max_sessions when claiming; where sessions need the room, a warm REPL is stopped. A
 * new one is started only while no other REPL is starting (a cold start that waits is never
 * slowed by a warm one), one at a time, and after failures on a growing backoff. */
#include "sv.h"
#include "sv_log.h"

#include <apr_strings.h>
#include <string.h>

#define WARM_BACKOFF_FIRST_MS 30000
#define WARM_BACKOFF_MAX_MS (10 * 60 * 1000)

typedef struct {
    int warm;          /* warm REPLs that will stay (not being stopped) */
    int starting;      /* REPLs of any kind not ready yet */
    int stopping_warm; /* warm REPLs on their way out (they hold memory until gone) */
    sv_session_t *newest_warm;
} warm_counts_t;

static void count(sv_t *sv, warm_counts_t *c)
{
    memset(c, 0, sizeof *c);
    for (apr_hash_index_t *hi = apr_hash_first(sv->iter, sv->sessions); hi; hi = apr_hash_next(hi)) {
        sv_session_t *s = apr_hash_this_val(hi);
        if (s->orphan || s->done)
            continue;
        if (!s->stopping && s->phase != SV_PHASE_READY)
            c->starting++;
        if (!s->warm)
            continue;
        if (s->stopping || s->warm_stop_inflight) {
            c->stopping_warm++;
            continue;
        }
        c->warm++;
        /* the one to give up first: the least far along, then the newest */
        if (!c->newest_warm || (c->newest_warm->phase == SV_PHASE_READY) > (s->phase == SV_PHASE_READY)
            || ((c->newest_warm->phase == SV_PHASE_READY) == (s->phase == SV_PHASE_READY)
                && s->id > c->newest_warm->id))
            c->newest_warm = s;
    }
}

static void warm_inserted(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv->warm_inflight = 0;
    if (!res) {
        /* Lost: a row that did commit is ours and is found again after the reconnect. */
        if (!op->lost) {
            sv_error("database: starting a warm REPL: %s", op->err);
            sv->warm_retry_ms = sv_now_ms() + WARM_BACKOFF_FIRST_MS;
        }
        return;
    }
    apr_array_header_t *rows = store_sv_parse_sessions(res, sv->iter);
    for (int i = 0; i < rows->nelts; i++) {
        store_sv_session_t *row = &APR_ARRAY_IDX(rows, i, store_sv_session_t);
        if (sv->terminate) {
            sv_info("warm REPL %" APR_INT64_T_FMT " is left to the next supervisor", row->id);
            continue;
        }
        sv_info("starting a warm REPL (session row %" APR_INT64_T_FMT ")", row->id);
        sv_session_t *s = sv_session_create(sv, row->id, row->kind);
        s->warm = 1;
        sv_session_spawn(s, row);
    }
}

static void warm_stopped(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv_session_t *s = sv_find_session(sv, op->session);
    if (!s)
        return;
    s->warm_stop_inflight = 0;
    if (!res) {
        if (!op->lost)
            sv_error("session %" APR_INT64_T_FMT ": %s", s->id, op->err);
        return; /* the next turn decides again */
    }
    if (PQntuples(res) == 0) {
        s->need_flags = 1; /* a session took it meanwhile: its flags say so */
        return;
    }
    if (s->warm)
        sv_session_begin_stop(s, "a warm REPL gives its room to a session that starts cold");
}

void sv_warm_work(sv_t *sv, apr_int64_t now, apr_int64_t *deadline_ms)
{
    const sv_config_t *cfg = sv->cfg;
    if (cfg->warm_sessions <= 0 || sv->terminate || !sv_db_ok(sv))
        return;
    warm_counts_t c;
    count(sv, &c);
    int held = sv_live_sessions(sv);
    /* Sessions and batches need the room: the warm REPL least far along goes first. */
    if (held + c.warm + c.stopping_warm > cfg->max_sessions && c.newest_warm) {
        store_sv_req_t r;
        store_sv_req_warm_stop(&r, c.newest_warm->id, sv->iter);
        if (sv_db_send(sv, &r, warm_stopped, c.newest_warm->id, 0, NULL, NULL) == 0)
            c.newest_warm->warm_stop_inflight = 1;
        return;
    }
    int target = cfg->warm_sessions;
    if (target > cfg->max_sessions - held - c.stopping_warm)
        target = cfg->max_sessions - held - c.stopping_warm;
    if (c.warm >= target || sv->warm_inflight || c.starting > 0 || sv->claim_inflight)
        return;
    if (now < sv->warm_retry_ms) {
        if (sv->warm_retry_ms < *deadline_ms)
            *deadline_ms = sv->warm_retry_ms;
        return;
    }
    store_sv_req_t r;
    store_sv_req_warm_insert(&r, sv->id, sv->iter);
    if (sv_db_send(sv, &r, warm_inserted, 0, 0, NULL, NULL) == 0)
        sv->warm_inflight = 1;
}

void sv_warm_taken(sv_session_t *s, const char *kind)
{
    s->warm = 0;
    if (kind)
        s->kind = apr_pstrdup(s->pool, kind);
    sv_info("session %" APR_INT64_T_FMT " (kind %s) took a warm REPL (pid %d)", s->id, s->kind,
            (int)s->pid);
    sv_session_note(s, "a new session (kind %s) takes this warm REPL", s->kind);
}

void sv_warm_ready(sv_session_t *s)
{
    s->sv->warm_backoff_ms = 0;
    s->sv->warm_retry_ms = 0;
}

void sv_warm_ended(sv_session_t *s)
{
    sv_t *sv = s->sv;
    if (!s->failed && s->stopping)
        return; /* stopped on purpose: room was needed */
    apr_int64_t wait = sv->warm_backoff_ms ? sv->warm_backoff_ms * 2 : WARM_BACKOFF_FIRST_MS;
    if (wait > WARM_BACKOFF_MAX_MS)
        wait = WARM_BACKOFF_MAX_MS;
    sv->warm_backoff_ms = wait;
    sv->warm_retry_ms = sv_now_ms() + wait;
    sv_warn("a warm REPL (session row %" APR_INT64_T_FMT ") ended before a session took it; the "
            "next one starts in %s", s->id, sv_format_duration(wait, sv->iter));
}
