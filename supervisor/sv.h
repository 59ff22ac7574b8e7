/* sv: the supervisor's state shared by its event loop (sv_loop.c) and its sessions
 * (sv_session.c). One process, one thread, one PostgreSQL connection. */
#ifndef SV_H
#define SV_H

#include "store_supervisor.h"
#include "sv_child.h"
#include "sv_config.h"
#include "sv_identity.h"

#include <apr_hash.h>
#include <apr_pools.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <sys/types.h>

/* What a REPL or a batch may see of the supervisor's environment (besides repl_env): never
 * database or supervisor settings. */
#define SV_CHILD_ENV_PASS "PATH LANG LANGUAGE LC_ALL LC_CTYPE LC_MESSAGES TZ JAVA_HOME " \
                          "HADOOP_CONF_DIR YARN_CONF_DIR SPARK_CONF_DIR"

typedef struct sv sv_t;
typedef struct sv_session sv_session_t;
typedef struct sv_batch sv_batch_t;
typedef struct sv_op sv_op_t;

/* Called once a request's answer has come (res: the expected answer, freed after the call), or
 * it failed (res NULL, op->err says why; op->lost when the connection went with it). */
typedef void (*sv_db_done_fn)(sv_t *sv, sv_op_t *op, PGresult *res);

/* A request in the connection's queue (sv_db.c). Lives in its own pool. */
struct sv_op {
    sv_op_t *next;
    apr_pool_t *pool;
    store_sv_req_t req;          /* parameters copied into pool */
    sv_db_done_fn done;          /* NULL: only log a failure */
    apr_int64_t session;         /* the session it is about, 0 for none */
    int ival;                    /* a statement id, a count: the caller's */
    void *data;                  /* the caller's, freed with free_data */
    void (*free_data)(void *);
    const char *err;
    const char *sqlstate;        /* of a failed answer, NULL when none */
    int lost;
    apr_int64_t sent_ms;
};

typedef enum {
    SV_DB_OK,         /* connected, prepared, listening */
    SV_DB_CONNECTING, /* an asynchronous connect is under way */
    SV_DB_DOWN,       /* waiting for db_retry_ms */
} sv_db_state_t;

struct sv {
    apr_pool_t *pool;
    apr_pool_t *iter;              /* cleared on every loop iteration */
    const sv_config_t *cfg;
    apr_int64_t id;                /* our supervisors row */
    PGconn *conn;
    sv_db_state_t db_state;
    apr_int64_t db_retry_ms;       /* when DOWN: next attempt (monotonic ms) */
    apr_int64_t db_backoff_ms;
    apr_int64_t db_deadline_ms;    /* when CONNECTING: give up then */
    int db_wants_write;            /* when CONNECTING: what PQconnectPoll waits for */
    apr_int64_t db_up_since_ms;    /* when OK: connected since (monotonic ms) */
    apr_int64_t db_query_bound_ms; /* a request unanswered this long abandons the connection */
    sv_op_t *db_head, *db_tail;    /* requests waiting to be sent */
    int db_queued;
    sv_op_t *db_inflight;          /* the request on the wire */
    PGresult *db_result;           /* its answer so far */
    int claim_inflight;
    int heartbeat_inflight;
    int tick_inflight;
    int lock_fd;                   /* run_dir/livy-supervisor.lock, flock()ed while we run */
    apr_hash_t *sessions;          /* apr_int64_t id -> sv_session_t * */
    apr_hash_t *batches;           /* apr_int64_t id -> sv_batch_t * */
    const char *spark_submit;      /* what runs batches (sv_batch.c) */
    int signal_fd;                 /* read end of the self-pipe the signal handlers write */
    int terminate;
    int need_claim;
    int warm_inflight;             /* a warm REPL's row is being inserted */
    apr_int64_t warm_retry_ms;     /* no warm REPL is started before (after failures) */
    apr_int64_t warm_backoff_ms;   /* ... and the wait after the next failure */
    apr_int64_t next_heartbeat_ms;
    apr_int64_t next_tick_ms;
    apr_int64_t next_purge_ms;
};

typedef enum {
    SV_PHASE_NEW,        /* claimed, no process yet */
    SV_PHASE_CONNECTING, /* the process runs; its socket is not connected (yet, or again) */
    SV_PHASE_AUTH,       /* connected, proving the session's secret both ways */
    SV_PHASE_HELLO,      /* connected, waiting for the answer to hello */
    SV_PHASE_STARTING,   /* Spark is starting */
    SV_PHASE_READY,      /* idle or busy: statements may be sent */
} sv_phase_t;

/* A statement sent to the child whose result has not arrived. */
typedef struct sv_inflight {
    int id;
    int cancel_sent;
} sv_inflight_t;

struct sv_session {
    sv_t *sv;
    apr_pool_t *pool;
    apr_int64_t id;
    const char *kind;
    sv_phase_t phase;
    pid_t pid;
    int own_child;               /* forked by this process: waitpid tells how it ended */
    int reaped;
    int wait_status;
    const char *sock_path;
    const char *conf_path;
    const char *log_path;
    const char *pid_path;
    const char *key_path;        /* the channel's secret, for a supervisor that reattaches */
    const char *dir;             /* the session's private directory (the REPL's cwd) */
    unsigned char key[32];
    int have_key;
    char repl_nonce[33];         /* the handshake under way */
    char sv_nonce[33];
    int auth_sent;
    int auth_failures;
    sv_account_t account;        /* the account the REPL runs as */
    int have_account;
    int fd;                      /* the child's socket, -1 when not connected */
    sv_buf_t in;
    sv_buf_t out;
    apr_int64_t connect_since_ms;
    apr_int64_t start_deadline_ms; /* Spark must be up by then (start_timeout); 0: no limit */
    apr_int64_t next_connect_ms;
    apr_int64_t connect_delay_ms;
    int ever_spoke;              /* the child answered a hello */
    int last_sent;               /* highest statement id sent to the child, -1 for none */
    apr_array_header_t *inflight; /* of sv_inflight_t */
    json_t *log_batch;           /* lines not yet written to session_log */
    int need_statements;
    int need_flags;
    int need_completions;
    int statements_inflight;     /* a request for pending statements awaits its answer */
    int completions_inflight;    /* ... for completion requests */
    apr_int64_t last_completion; /* highest completion request id sent to the child */
    int flags_inflight;
    int end_inflight;
    int log_inflight;            /* one write of log lines at a time, so that order holds */
    int stopping;
    const char *stop_reason;
    apr_int64_t stop_since_ms;
    int term_sent;
    int kill_sent;
    apr_int64_t kill_since_ms;
    int failed;                  /* the child said fatal, or could not be reached */
    int said_fatal;              /* ... it said fatal: it exits by itself */
    const char *failure;
    int replace;                 /* a new child should take over when this one is gone */
    int replacements;
    int orphan;                  /* ended in the database: only make sure its process is gone */
    const char *end_pending;     /* the process is gone; the database has to hear why */
    int end_noted;               /* ... and the session log already says so */
    int done;                    /* finished: the loop forgets it */
    int warm;                    /* a warm REPL (sv_warm.c) no session has taken yet */
    int warm_stop_inflight;      /* ... being stopped to make room, unless taken meanwhile */
    /* Shared drivers (sql/006_shared_drivers.sql): a shared session runs in a REPL process
     * that other shared sessions with the same share_key may join; each has its own socket
     * there (repl-<id>.sock beside the first one's repl.sock). */
    int shared;                  /* its row asks for a shared driver */
    const char *share_key;       /* owner, proxy user and Spark settings: who may share */
    int guest;                   /* joined a process another session started */
    int share_wait;              /* no process yet: waits for one of its key to be ready */
    apr_int64_t share_wait_since_ms;
    int left;                    /* its REPL closed it; the process runs on for the others */
};

/* A batch: spark-submit, run in its own process group with the REPLs' isolation; its output
 * goes to a file that the supervisor reads into batch_log (so that it outlives a restart). */
struct sv_batch {
    sv_t *sv;
    apr_pool_t *pool;
    apr_int64_t id;
    pid_t pid;                   /* the wrapper's: spark-submit's process group */
    int own_child;               /* forked by this process: waitpid tells how it ended */
    int reaped;
    int wait_status;
    const char *dir;             /* its private directory (the working directory) */
    const char *out_path;        /* spark-submit's stdout and stderr */
    const char *pid_path;
    const char *status_path;     /* the exit status, written by the wrapper when it ends */
    sv_account_t account;        /* the account it runs as */
    int have_account;
    apr_int64_t read_off;        /* bytes of out_path read (whole lines) */
    apr_int64_t stored_off;      /* ... of which stored in batch_log */
    apr_int64_t punched;         /* ... of which freed on disk */
    apr_int64_t log_off;         /* the offset the lines in log_batch reach */
    json_t *log_batch;           /* lines not yet written to batch_log */
    int log_inflight;
    const char *app_id;          /* the application id seen in its output */
    int app_id_sent;
    int need_flags;
    int flags_inflight;
    int stopping;                /* DELETE: TERM, then KILL after stop_grace */
    apr_int64_t stop_since_ms;
    int term_sent;
    int kill_sent;
    int orphan;                  /* ended in the database: only make sure its process is gone */
    apr_int64_t next_check_ms;   /* a process not ours: when to look whether it still runs */
    apr_int64_t next_read_ms;    /* when to read its output file again */
    const char *end_state;       /* success, dead or killed: the process is gone */
    int exit_status;             /* -1 when unknown */
    int end_inflight;
    int done;
};

/* --- sv_loop.c --- */
apr_int64_t sv_now_ms(void);   /* monotonic */
apr_int64_t sv_epoch_ms(void); /* wall clock, for statements' started/completed */
/* The connection is lost or unusable: says so, closes it, fails every request; the loop
 * reconnects at once, then on a short backoff. */
void sv_db_lost(sv_t *sv, const char *why);
/* Connection parameters (our defaults, then the configured conninfo) for a new connection. */
void sv_db_params(sv_t *sv, const char *const **keys, const char *const **values,
                  apr_pool_t *p);
/* The statement_timeout sent to the server: db_statement_timeout, at most a second below the
 * time after which the supervisor abandons a query (so the server always gives up first). */
apr_int64_t sv_statement_timeout_ms(const sv_config_t *cfg);
/* Sessions and batches held (what counts against max_sessions), warm REPLs aside. */
int sv_live_sessions(sv_t *sv);
sv_session_t *sv_find_session(sv_t *sv, apr_int64_t id);
/* Connects, checks the schema, registers, takes over same-host sessions. 0 or -1. */
int sv_start(sv_t *sv, const char **errmsg);
/* The event loop, until SIGTERM/SIGINT; then detaches from the children and returns 0. */
int sv_run(sv_t *sv);

/* --- sv_db.c --- */
/* Requests queued beyond this: the children's sockets are not read until the queue drains. */
#define SV_DB_QUEUE_HIGH 2000
/* The database is connected and ready for requests. */
int sv_db_ok(sv_t *sv);
/* Queues a request (0), or -1 when the database is not usable (data freed, nothing called). */
int sv_db_send(sv_t *sv, const store_sv_req_t *r, sv_db_done_fn done, apr_int64_t session,
               int ival, void *data, void (*free_data)(void *));
/* The same, at the head of the queue (the heartbeat). */
int sv_db_send_first(sv_t *sv, const store_sv_req_t *r, sv_db_done_fn done,
                     apr_int64_t session, int ival, void *data, void (*free_data)(void *));
/* Sends the next request when none is on the wire. */
void sv_db_pump(sv_t *sv);
short sv_db_poll_events(sv_t *sv);
void sv_db_on_poll(sv_t *sv, short revents);
/* Fails every request (the connection went): callbacks see lost. */
void sv_db_fail_all(sv_t *sv, const char *why);
/* Waits up to ms for every queued request to be answered (on the way out). */
void sv_db_drain(sv_t *sv, apr_int64_t ms);
/* A request on the wire for longer than db_query_bound_ms loses the connection. */
void sv_db_check_timeout(sv_t *sv, apr_int64_t now, apr_int64_t *deadline);

/* --- sv_session.c --- */
/* The account a REPL or a batch runs as: 1 with *account, 0 when isolation is off, -1 with
 * *err (`what` names it: "session's REPL", "batch"). */
int sv_account_for(const sv_config_t *cfg, const char *owner, const char *proxy_user,
                   const char *what, sv_account_t *account, apr_pool_t *p, const char **err);
/* Whether `python` imports pyspark as the REPLs' account (repl_user; ours when isolation is
 * off or accounts are per user): 0, or -1 with *err naming the setting and Python's answer. */
int sv_check_python(const sv_config_t *cfg, apr_pool_t *p, const char **err);
/* A log line as stored: at most 16 KiB, NUL made U+FFFD, NULL-safe for invalid UTF-8. */
json_t *sv_log_line(const char *line, size_t n);
/* Appends line (a reference taken) to *batch, keeping at most about 2 * max_lines. */
void sv_log_append(json_t **batch, json_t *line, int max_lines);
sv_session_t *sv_session_create(sv_t *sv, apr_int64_t id, const char *kind);
/* Starts a REPL child for a freshly claimed session. */
void sv_session_spawn(sv_session_t *s, const store_sv_session_t *row);
/* Picks up a session from a previous supervisor: reattach, respawn, or declare it dead. */
void sv_session_adopt(sv_session_t *s, const store_sv_session_t *row);
/* Asks the child to stop, then escalates to signals after stop_grace. */
void sv_session_begin_stop(sv_session_t *s, const char *reason);
/* Everything time- or flag-driven; lowers *deadline_ms to when it wants to run next. */
void sv_session_work(sv_session_t *s, apr_int64_t now, apr_int64_t *deadline_ms);
/* Whether flag-driven work waits that the database allows now. */
int sv_session_has_work(sv_session_t *s);
/* Socket readiness from poll(). */
short sv_session_poll_events(sv_session_t *s);
void sv_session_on_poll(sv_session_t *s, short revents);
/* The process was reaped with this wait status. */
void sv_session_reaped(sv_session_t *s, int status);
/* A new statement's NOTIFY payload after the session id ("id:kind:code"): sends it to the
 * REPL when it is the next one and nothing else is pending (1), else 0 (read it back). */
int sv_session_dispatch(sv_session_t *s, const char *payload);
/* After a database outage: a new hello on the live connection makes the child re-send every
 * result not acknowledged (lines already read wait in the buffer and are kept). */
void sv_session_resync(sv_session_t *s);
void sv_session_flush_log(sv_session_t *s);
/* Appends a line the supervisor writes about the session (prefixed "livy-supervisor: "). */
void sv_session_note(sv_session_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* On supervisor exit: flush, close the socket; the child lives on. */
void sv_session_detach(sv_session_t *s);
void sv_session_destroy(sv_session_t *s);

/* --- sv_warm.c --- */
/* Keeps warm_sessions REPLs started ahead of demand: starts one when there is room and no
 * other REPL is starting, stops one when sessions need its room. Called once per loop turn. */
void sv_warm_work(sv_t *sv, apr_int64_t now, apr_int64_t *deadline_ms);
/* A session took the warm REPL s (its row is no longer warm). */
void sv_warm_taken(sv_session_t *s, const char *kind);
/* The warm REPL s is ready, or ended (failed: no new one for a while). */
void sv_warm_ready(sv_session_t *s);
void sv_warm_ended(sv_session_t *s);

/* --- sv_batch.c --- */
/* What runs batches: spark_submit, else SPARK_HOME's, else the one next to python, else PATH's. */
const char *sv_batch_spark_submit(const sv_config_t *cfg, apr_pool_t *p);
sv_batch_t *sv_batch_create(sv_t *sv, apr_int64_t id);
sv_batch_t *sv_find_batch(sv_t *sv, apr_int64_t id);
/* Starts spark-submit for a freshly claimed batch. */
void sv_batch_spawn(sv_batch_t *b, const store_sv_batch_t *row);
/* Picks up a batch from a previous supervisor: reattach (reading its output on from where the
 * log stopped), start it, or record how it ended. */
void sv_batch_adopt(sv_batch_t *b, const store_sv_batch_t *row);
void sv_batch_work(sv_batch_t *b, apr_int64_t now, apr_int64_t *deadline_ms);
int sv_batch_has_work(sv_batch_t *b);
void sv_batch_reaped(sv_batch_t *b, int status);
void sv_batch_flush_log(sv_batch_t *b);
/* On supervisor exit: store what was read; spark-submit runs on. */
void sv_batch_detach(sv_batch_t *b);
void sv_batch_destroy(sv_batch_t *b);

#endif
