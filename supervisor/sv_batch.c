/* sv_batch: batches (POST /batches): spark-submit runs of a file, each a child in its own
 * process group with the REPLs' isolation (account, private directory, namespaces).
 *
 * spark-submit runs under a small shell wrapper that records its exit status in the batch's
 * directory, and writes its output to a file in run_dir, never to a pipe of ours: a batch
 * outlives a supervisor restart, and the next supervisor reads on from the offset stored with
 * the last log lines, then learns from the file how it ended. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sv.h"
#include "sv_log.h"
#include "sv_spark_conf.h"
#include "livy_ui.h"

#include <apr_strings.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOTE_PREFIX "livy-supervisor: "
/* How often a running batch's output file is read, and a process not ours looked at. */
#define TAIL_INTERVAL_MS 250
#define ALIVE_CHECK_MS 1000
/* At most this much output is read per pass; a longer line is cut there. */
#define READ_CHUNK (256 * 1024)
/* Output stored in batch_log is freed on disk (a hole punched) once this much has piled up. */
#define PUNCH_MIN (1024 * 1024)

/* The wrapper: runs spark-submit ("$@"), then records its exit status where the supervisor (the
 * directory's group) can read it. TERM is caught, not ignored, so that spark-submit still gets
 * the default action and the wrapper lives to record how it ended. $0 is the batch's directory,
 * which names the process for a supervisor that reattaches. */
static const char wrapper_sh[] =
    "trap : TERM HUP INT; \"$@\"; rc=$?; "
    "(umask 027; printf '%s\\n' \"$rc\" > exit-status.tmp) && mv -f exit-status.tmp exit-status; "
    "exit $rc";

static apr_status_t batch_cleanup(void *data)
{
    sv_batch_t *b = data;
    json_decref(b->log_batch);
    b->log_batch = NULL;
    return APR_SUCCESS;
}

sv_batch_t *sv_batch_create(sv_t *sv, apr_int64_t id)
{
    apr_pool_t *pool;
    apr_pool_create(&pool, sv->pool);
    sv_batch_t *b = apr_pcalloc(pool, sizeof *b);
    b->sv = sv;
    b->pool = pool;
    b->id = id;
    b->exit_status = -1;
    b->log_batch = json_array();
    const char *run = sv->cfg->run_dir;
    b->dir = apr_psprintf(pool, "%s/sessions/batch-%" APR_INT64_T_FMT, run, id);
    b->out_path = apr_psprintf(pool, "%s/batch-%" APR_INT64_T_FMT ".out", run, id);
    b->pid_path = apr_psprintf(pool, "%s/batch-%" APR_INT64_T_FMT ".pid", run, id);
    b->status_path = apr_pstrcat(pool, b->dir, "/exit-status", NULL);
    apr_pool_cleanup_register(pool, b, batch_cleanup, apr_pool_cleanup_null);
    apr_int64_t *key = apr_palloc(pool, sizeof *key);
    *key = id;
    apr_hash_set(sv->batches, key, sizeof *key, b);
    return b;
}

sv_batch_t *sv_find_batch(sv_t *sv, apr_int64_t id)
{
    return apr_hash_get(sv->batches, &id, sizeof id);
}

void sv_batch_destroy(sv_batch_t *b)
{
    apr_hash_set(b->sv->batches, &b->id, sizeof b->id, NULL);
    apr_pool_destroy(b->pool);
}

const char *sv_batch_spark_submit(const sv_config_t *cfg, apr_pool_t *p)
{
    if (cfg->spark_submit)
        return cfg->spark_submit;
    if (cfg->spark_home)
        return apr_pstrcat(p, cfg->spark_home, "/bin/spark-submit", NULL);
    /* pip's pyspark puts spark-submit next to the interpreter of its environment. */
    const char *slash = strrchr(cfg->python, '/');
    if (slash) {
        const char *path = apr_pstrcat(p, apr_pstrmemdup(p, cfg->python,
                                                        (apr_size_t)(slash - cfg->python)),
                                       "/spark-submit", NULL);
        if (access(path, X_OK) == 0)
            return path;
    }
    return "spark-submit";
}

static void lower(apr_int64_t *deadline, apr_int64_t t)
{
    if (t < *deadline)
        *deadline = t;
}

/* ---- the log ---- */

static void add_lines(sv_batch_t *b, const char *text, size_t n);

static void note(sv_batch_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(sv_batch_t *b, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char *line = apr_pstrcat(b->sv->iter, NOTE_PREFIX, msg, NULL);
    add_lines(b, line, strlen(line));
}

/* Spark's application ids: YARN's application_<cluster>_<n>, a standalone master's
 * app-<yyyyMMddHHmmss>-<n>, local-<epoch ms>. YARN's wins over the others. */
static const char *find_app_id(const char *line, size_t n, apr_pool_t *p)
{
    static const struct { const char *prefix; int groups; } forms[] = {
        {"application_", 2}, {"app-", 2}, {"local-", 1},
    };
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        size_t plen = strlen(forms[f].prefix);
        for (const char *c = line; c + plen < line + n; c++) {
            if (memcmp(c, forms[f].prefix, plen) != 0)
                continue;
            if (c > line && (isalnum((unsigned char)c[-1]) || c[-1] == '_' || c[-1] == '-'))
                continue;
            const char *e = c + plen;
            int groups = 0;
            for (;;) {
                const char *d = e;
                while (d < line + n && *d >= '0' && *d <= '9')
                    d++;
                if (d - e < 1)
                    break;
                groups++;
                e = d;
                if (groups == forms[f].groups || e >= line + n || (*e != '_' && *e != '-'))
                    break;
                e++;
            }
            if (groups == forms[f].groups && (e >= line + n || !isalnum((unsigned char)*e)))
                return apr_pstrmemdup(p, c, (apr_size_t)(e - c));
        }
    }
    return NULL;
}

static void add_one_line(sv_batch_t *b, const char *line, size_t n)
{
    const char *app = b->app_id && !strncmp(b->app_id, "application_", 12)
                          ? NULL : find_app_id(line, n, b->sv->iter);
    if (app && (!b->app_id || strcmp(app, b->app_id) != 0)) {
        b->app_id = apr_pstrdup(b->pool, app);
        b->app_id_sent = 0;
    }
    sv_log_append(&b->log_batch, sv_log_line(line, n), b->sv->cfg->log_lines_max);
}

static void add_lines(sv_batch_t *b, const char *text, size_t n)
{
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    for (;;) {
        const char *nl = memchr(text, '\n', n);
        size_t len = nl ? (size_t)(nl - text) : n;
        add_one_line(b, text, len);
        if (!nl)
            return;
        n -= len + 1;
        text = nl + 1;
    }
}

/* Reads what spark-submit wrote since the last pass, whole lines only unless `all` (it has
 * ended: a last line without a newline counts too). */
static void read_output(sv_batch_t *b, int all)
{
    int fd = open(b->out_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char *buf = malloc(READ_CHUNK);
    if (!buf) {
        close(fd);
        return;
    }
    for (;;) {
        ssize_t n = pread(fd, buf, READ_CHUNK, (off_t)b->read_off);
        if (n <= 0)
            break;
        /* Lines up to the last newline; a chunk without any is one cut line. */
        ssize_t upto = n;
        while (upto > 0 && buf[upto - 1] != '\n')
            upto--;
        if (upto == 0 && (n == READ_CHUNK || all))
            upto = n;
        if (upto == 0)
            break;
        add_lines(b, buf, (size_t)upto);
        b->read_off += upto;
        b->log_off = b->read_off;
        if (n < READ_CHUNK)
            break;
    }
    free(buf);
    close(fd);
}

/* Output already in batch_log leaves the disk (the file keeps its size and offsets). */
static void punch(sv_batch_t *b)
{
    apr_int64_t upto = b->stored_off & ~(apr_int64_t)4095;
    if (upto - b->punched < PUNCH_MIN)
        return;
    int fd = open(b->out_path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)upto) == 0)
        b->punched = upto;
    close(fd);
}

static void log_written(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv_batch_t *b = sv_find_batch(sv, op->session);
    if (b)
        b->log_inflight = 0;
    if (res)
        return;
    if (!op->lost) {
        sv_error("batch %" APR_INT64_T_FMT ": its log lines could not be stored: %s",
                 op->session, op->err);
        return;
    }
    if (!b || !b->log_batch)
        return;
    /* Lost with the connection: back in front of the lines that came since. */
    json_t *merged = json_array();
    json_array_extend(merged, (json_t *)op->data);
    json_array_extend(merged, b->log_batch);
    json_decref(b->log_batch);
    b->log_batch = merged;
}

typedef struct {
    json_t *lines;
    apr_int64_t offset;
} log_write_t;

static void free_log_write(void *v)
{
    log_write_t *w = v;
    json_decref(w->lines);
    free(w);
}

static void log_stored(sv_t *sv, sv_op_t *op, PGresult *res)
{
    log_write_t *w = op->data;
    sv_batch_t *b = sv_find_batch(sv, op->session);
    if (b && res && w->offset > b->stored_off) {
        b->stored_off = w->offset;
        punch(b);
    }
    /* The rest as for any log write, with the lines as data. */
    sv_op_t plain = *op;
    plain.data = w->lines;
    log_written(sv, &plain, res);
}

void sv_batch_flush_log(sv_batch_t *b)
{
    size_t n = json_array_size(b->log_batch);
    int moved = b->log_off > b->stored_off;
    if ((n == 0 && !moved) || !sv_db_ok(b->sv) || b->log_inflight)
        return;
    size_t max = (size_t)b->sv->cfg->log_lines_max;
    log_write_t *w = malloc(sizeof *w);
    if (!w)
        return;
    w->lines = json_array();
    w->offset = b->log_off;
    for (size_t i = n > max ? n - max : 0; i < n; i++)
        json_array_append(w->lines, json_array_get(b->log_batch, i));
    char *text = json_dumps(w->lines, JSON_COMPACT);
    if (!text) {
        free_log_write(w);
        return;
    }
    store_sv_req_t r;
    store_sv_req_batch_append_log(&r, b->id, text, (int)max, w->offset, b->sv->iter);
    int rc = sv_db_send(b->sv, &r, log_stored, b->id, 0, w, free_log_write);
    free(text);
    if (rc == 0) {
        json_array_clear(b->log_batch);
        b->log_inflight = 1;
    }
}

/* ---- ending ---- */

static void remove_files(sv_batch_t *b)
{
    unlink(b->out_path);
    unlink(b->pid_path);
    sv_identity_remove_session_dir(b->dir, b->have_account ? &b->account : NULL);
}

static void ended(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv_batch_t *b = sv_find_batch(sv, op->session);
    if (!b)
        return;
    b->end_inflight = 0;
    if (!res && op->lost)
        return; /* again after the reconnect */
    if (!res)
        sv_error("batch %" APR_INT64_T_FMT ": storing its end: %s", b->id, op->err);
    if (b->orphan)
        sv_info("batch %" APR_INT64_T_FMT ": its leftover spark-submit is gone", b->id);
    else
        sv_info("batch %" APR_INT64_T_FMT " ended %s", b->id, b->end_state);
    remove_files(b);
    b->done = 1;
    sv->need_claim = 1;
}

/* Writes the end (behind the last log lines), or waits for the database. */
static void finish(sv_batch_t *b)
{
    if (!b->end_state || b->done || b->end_inflight || !sv_db_ok(b->sv) || b->log_inflight)
        return;
    sv_batch_flush_log(b); /* queued first: the log is written before the end */
    store_sv_req_t r;
    store_sv_req_batch_end(&r, b->id, b->end_state, b->exit_status, b->sv->iter);
    if (sv_db_send(b->sv, &r, ended, b->id, 0, NULL, NULL) == 0)
        b->end_inflight = 1;
}

/* The exit status the wrapper recorded, -1 when none. */
static int recorded_status(sv_batch_t *b)
{
    FILE *f = fopen(b->status_path, "r");
    if (!f)
        return -1;
    int rc = -1;
    if (fscanf(f, "%d", &rc) != 1 || rc < 0 || rc > 255)
        rc = -1;
    fclose(f);
    return rc;
}

/* spark-submit is gone: read the rest of its output, decide how it ended, record it once. */
static void process_gone(sv_batch_t *b)
{
    if (b->end_state)
        return;
    apr_pool_t *p = b->sv->iter;
    /* Whatever it left in its process group goes with it. */
    if (b->pid > 0)
        sv_child_signal_group(b->pid, SIGKILL);
    read_output(b, 1);
    int rc = recorded_status(b);
    const char *how;
    if (rc < 0 && b->own_child && b->reaped && WIFEXITED(b->wait_status))
        rc = WEXITSTATUS(b->wait_status);
    if (rc >= 0)
        how = rc > 128 && rc < 128 + NSIG
                  ? apr_psprintf(p, "exited with status %d (killed by signal %d, %s)", rc,
                                 rc - 128, strsignal(rc - 128))
                  : apr_psprintf(p, "exited with status %d", rc);
    else if (b->own_child && b->reaped)
        how = sv_child_describe_status(b->wait_status, p);
    else
        how = apr_psprintf(p, "(pid %d) ended while no supervisor was watching it, without "
                              "recording its exit status", (int)b->pid);
    b->exit_status = rc;
    if (b->orphan)
        b->end_state = "dead"; /* already ended in the database: the state stays as it is */
    else if (b->stopping)
        b->end_state = "killed";
    else
        b->end_state = rc == 0 ? "success" : "dead";
    if (!b->orphan)
        note(b, "spark-submit %s; %s", how,
             b->stopping ? "the batch was deleted: killed"
             : rc == 0   ? "the batch succeeded"
                         : "the batch is dead");
    b->pid = 0;
    finish(b);
}

void sv_batch_reaped(sv_batch_t *b, int status)
{
    b->reaped = 1;
    b->wait_status = status;
    process_gone(b);
}

/* Stops spark-submit: TERM to its process group now, KILL after stop_grace. */
static void begin_stop(sv_batch_t *b, const char *why)
{
    if (b->stopping || b->end_state)
        return;
    b->stopping = 1;
    b->stop_since_ms = sv_now_ms();
    if (b->pid <= 0) {
        /* Never started: nothing to stop. */
        if (!b->orphan)
            note(b, "%s before spark-submit started", why);
        b->end_state = b->orphan ? "dead" : "killed";
        finish(b);
        return;
    }
    sv_info("batch %" APR_INT64_T_FMT ": %s: SIGTERM to spark-submit (process group %d)", b->id,
            why, (int)b->pid);
    if (!b->orphan)
        note(b, "%s: stopping spark-submit (SIGTERM, then SIGKILL after %s)", why,
             sv_format_duration(b->sv->cfg->stop_grace_ms, b->sv->iter));
    sv_child_signal_group(b->pid, SIGTERM);
    b->term_sent = 1;
}

static void flags_read(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv_batch_t *b = sv_find_batch(sv, op->session);
    if (!b)
        return;
    b->flags_inflight = 0;
    if (!res) {
        if (op->lost)
            b->need_flags = 1;
        else
            sv_error("database: %s", op->err);
        return;
    }
    store_sv_flags_t f;
    store_sv_parse_batch_flags(res, &f, sv->iter);
    if (!f.found || (f.ended && !b->end_state)) {
        /* Purged, or ended by someone else (a supervisor that presumed us dead). */
        b->orphan = 1;
        begin_stop(b, "the batch has ended in the database");
    }
    else if (f.stop_requested || f.deleted) {
        begin_stop(b, "the batch was deleted");
    }
}

/* ---- starting ---- */

static void running_stored(sv_t *sv, sv_op_t *op, PGresult *res)
{
    if (!res && !op->lost)
        sv_error("batch %" APR_INT64_T_FMT ": recording spark-submit's pid: %s", op->session,
                 op->err);
}

static void app_id_stored(sv_t *sv, sv_op_t *op, PGresult *res)
{
    sv_batch_t *b = sv_find_batch(sv, op->session);
    if (!res && b && op->lost)
        b->app_id_sent = 0;
    else if (!res)
        sv_error("batch %" APR_INT64_T_FMT ": recording its application id: %s", op->session,
                 op->err);
}

/* The comma-joined strings of a JSON list, NULL when empty. */
static const char *joined(const char *json_text, apr_pool_t *p)
{
    json_t *list = json_text ? json_loads(json_text, 0, NULL) : NULL;
    const char *out = NULL;
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
        if (json_is_string(item))
            out = out ? apr_pstrcat(p, out, ",", json_string_value(item), NULL)
                      : apr_pstrdup(p, json_string_value(item));
    }
    json_decref(list);
    return out;
}

/* A local path of the request (a bare path or a file: URI) that lies under /tmp. */
static int under_tmp(const char *uri)
{
    if (!uri)
        return 0;
    if (!strncmp(uri, "file://", 7))
        uri += 7;
    else if (!strncmp(uri, "file:", 5) || !strncmp(uri, "local:", 6))
        uri = strchr(uri, ':') + 1;
    while (uri[0] == '/' && uri[1] == '/')
        uri++;
    return !strncmp(uri, "/tmp/", 5);
}

static int list_under_tmp(const char *json_text, apr_pool_t *p)
{
    const char *all = joined(json_text, p);
    if (!all)
        return 0;
    char *copy = apr_pstrdup(p, all), *save = NULL;
    for (char *u = apr_strtok(copy, ",", &save); u; u = apr_strtok(NULL, ",", &save))
        if (under_tmp(u))
            return 1;
    return 0;
}

/* Settings that become spark-submit's own options; the rest go as --conf. */
static const struct { const char *key; const char *option; } options[] = {
    {"spark.app.name", "--name"},
    {"spark.jars", "--jars"},
    {"spark.submit.pyFiles", "--py-files"},
    {"spark.files", "--files"},
    {"spark.archives", "--archives"},
    {"spark.driver.memory", "--driver-memory"},
    {"spark.driver.cores", "--driver-cores"},
    {"spark.executor.memory", "--executor-memory"},
    {"spark.executor.cores", "--executor-cores"},
    {"spark.executor.instances", "--num-executors"},
    {"spark.yarn.queue", "--queue"},
};

/* spark-submit's command line: the request mapped as for a session (sv_spark_conf.c: the
 * request's conf over its fields, the server's master and the driver's doors over both), in
 * client deploy mode, then the file and its arguments. */
static apr_array_header_t *submit_args(sv_batch_t *b, const store_sv_batch_t *row, apr_pool_t *p)
{
    const sv_config_t *cfg = b->sv->cfg;
    store_sv_session_t as_session;
    memset(&as_session, 0, sizeof as_session);
    as_session.id = row->id;
    as_session.name = row->name ? row->name
                                : apr_psprintf(p, "livy-batch-%" APR_INT64_T_FMT, row->id);
    as_session.proxy_user = row->proxy_user;
    as_session.owner = row->owner;
    as_session.driver_memory = row->driver_memory;
    as_session.driver_cores = row->driver_cores;
    as_session.executor_memory = row->executor_memory;
    as_session.executor_cores = row->executor_cores;
    as_session.num_executors = row->num_executors;
    as_session.queue = row->queue;
    as_session.conf = row->conf;
    as_session.jars = row->jars;
    as_session.py_files = row->py_files;
    as_session.files = row->files;
    as_session.archives = row->archives;
    json_t *conf = sv_spark_conf_build(cfg, row->id, &as_session, p);
    json_t *spark = json_object_get(conf, "spark");
    /* Nothing serves a batch's web UI (sessions' go through httpd), and Spark binds it to every
     * interface: off unless the request asks for it. */
    if (!json_object_get(spark, "spark.ui.enabled"))
        json_object_set_new(spark, "spark.ui.enabled", json_string("false"));

    apr_array_header_t *a = apr_array_make(p, 32, sizeof(const char *));
#define ARG(x) (APR_ARRAY_PUSH(a, const char *) = (x))
    ARG("--master");
    ARG(cfg->spark_master);
    json_object_del(spark, "spark.master");
    ARG("--deploy-mode");
    ARG("client");
    json_object_del(spark, "spark.submit.deployMode");
    if (row->class_name) {
        ARG("--class");
        ARG(row->class_name);
    }
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        json_t *v = json_object_get(spark, options[i].key);
        if (!json_is_string(v))
            continue;
        ARG(options[i].option);
        ARG(apr_pstrdup(p, json_string_value(v)));
        json_object_del(spark, options[i].key);
    }
    /* The rest in a stable order; the doors come from the server, never the request. */
    const char **keys = apr_palloc(p, (json_object_size(spark) + 1) * sizeof *keys);
    size_t nkeys = 0;
    const char *key;
    json_t *value;
    json_object_foreach(spark, key, value)
        keys[nkeys++] = apr_pstrdup(p, key);
    for (size_t i = 1; i < nkeys; i++)
        for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
        }
    for (size_t i = 0; i < nkeys; i++) {
        json_t *v = json_object_get(spark, keys[i]);
        if (!json_is_string(v))
            continue;
        ARG("--conf");
        ARG(apr_pstrcat(p, keys[i], "=", json_string_value(v), NULL));
    }
    if (row->proxy_user) {
        ARG("--proxy-user");
        ARG(row->proxy_user);
    }
    json_decref(conf);
    ARG(row->file);
    json_t *args = row->args ? json_loads(row->args, 0, NULL) : NULL;
    size_t i;
    json_array_foreach(args, i, value) {
        if (json_is_string(value))
            ARG(apr_pstrdup(p, json_string_value(value)));
    }
    json_decref(args);
#undef ARG
    return a;
}

static int start_process(sv_batch_t *b, const store_sv_batch_t *row, const char **err)
{
    const sv_config_t *cfg = b->sv->cfg;
    apr_pool_t *p = b->sv->iter;
    int rc = sv_account_for(cfg, row->owner, row->proxy_user, "batch", &b->account, b->pool, err);
    if (rc < 0)
        return -1;
    b->have_account = rc;
    if (sv_identity_make_session_dir(b->dir, b->have_account ? &b->account : NULL, p, err) != 0)
        return -1;
    unlink(b->status_path);
    int fd = open(b->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd >= 0)
        close(fd);
    b->read_off = b->stored_off = b->log_off = b->punched = 0;

    apr_array_header_t *submit = submit_args(b, row, p);
    apr_array_header_t *argv = apr_array_make(p, submit->nelts + 6, sizeof(const char *));
    APR_ARRAY_PUSH(argv, const char *) = "/bin/sh";
    APR_ARRAY_PUSH(argv, const char *) = "-c";
    APR_ARRAY_PUSH(argv, const char *) = wrapper_sh;
    APR_ARRAY_PUSH(argv, const char *) = b->dir; /* $0 */
    APR_ARRAY_PUSH(argv, const char *) = b->sv->spark_submit;
    apr_array_cat(argv, submit);
    APR_ARRAY_PUSH(argv, const char *) = NULL;

    const char *account = b->have_account ? b->account.name : NULL;
    const char *set[9 + SV_CONFIG_SPARK_ENV_MAX];
    int n = sv_config_spark_env(cfg, set, p);
    set[n++] = apr_pstrcat(p, "HOME=", b->dir, "/home", NULL);
    set[n++] = apr_pstrcat(p, "TMPDIR=", b->dir, "/tmp", NULL);
    set[n++] = apr_pstrcat(p, "SPARK_LOCAL_DIRS=", b->dir, "/tmp", NULL);
    if (account) {
        set[n++] = apr_pstrcat(p, "USER=", account, NULL);
        set[n++] = apr_pstrcat(p, "LOGNAME=", account, NULL);
    }
    /* A Python batch runs on the interpreter the REPLs run (pip's spark-submit also finds its
     * SPARK_HOME through it). */
    set[n++] = apr_pstrcat(p, "PYSPARK_PYTHON=", cfg->python, NULL);
    set[n++] = "PYTHONUNBUFFERED=1";
    if (!getenv("PATH"))
        set[n++] = "PATH=/usr/local/bin:/usr/bin:/bin";
    set[n] = NULL;
    /* A file the request names under /tmp must stay visible: no /tmp of its own then. */
    int private_tmp = sv_config_private_tmp(cfg) && !under_tmp(row->file)
                      && !list_under_tmp(row->jars, p) && !list_under_tmp(row->py_files, p)
                      && !list_under_tmp(row->files, p) && !list_under_tmp(row->archives, p)
                      && !under_tmp(b->sv->spark_submit);
    sv_spawn_t sp = {
        .argv = (const char *const *)argv->elts,
        .envp = sv_child_env(apr_pstrcat(p, SV_CHILD_ENV_PASS, " ", cfg->repl_env, NULL), set, p),
        .dir = b->dir,
        .log_path = b->out_path,
        .account = b->have_account ? &b->account : NULL,
        .namespaces = cfg->repl_isolation,
        .hide_dir = cfg->run_dir,
        .private_tmp = private_tmp,
    };
    pid_t pid;
    if (sv_child_spawn(&sp, &pid, p, err) != 0)
        return -1;
    b->pid = pid;
    b->own_child = 1;
    b->reaped = 0;
    if (sv_child_write_pid_file(b->pid_path, b->pid, b->sv->iter) != 0)
        sv_warn("batch %" APR_INT64_T_FMT ": cannot write %s: %s", b->id, b->pid_path,
                strerror(errno));
    sv_info("batch %" APR_INT64_T_FMT ": started spark-submit (pid %d%s%s): %s", b->id, (int)pid,
            account ? ", as " : "", account ? account : "", row->file);
    note(b, "running spark-submit (pid %d%s%s): %s %s", (int)pid, account ? ", as " : "",
         account ? account : "", b->sv->spark_submit, row->file);
    store_sv_req_t r;
    store_sv_req_batch_running(&r, b->id, (int)pid, p);
    sv_db_send(b->sv, &r, running_stored, b->id, 0, NULL, NULL);
    return 0;
}

void sv_batch_spawn(sv_batch_t *b, const store_sv_batch_t *row)
{
    const char *err;
    if (start_process(b, row, &err) != 0) {
        sv_error("batch %" APR_INT64_T_FMT ": %s", b->id, err);
        note(b, "%s", err);
        b->end_state = "dead";
        finish(b);
    }
}

void sv_batch_adopt(sv_batch_t *b, const store_sv_batch_t *row)
{
    const char *why;
    int rc = sv_account_for(b->sv->cfg, row->owner, row->proxy_user, "batch", &b->account,
                            b->pool, &why);
    if (rc < 0)
        sv_warn("batch %" APR_INT64_T_FMT ": %s", b->id, why);
    b->have_account = rc > 0;
    b->read_off = b->stored_off = b->log_off = row->log_offset;
    if (row->app_id) {
        b->app_id = apr_pstrdup(b->pool, row->app_id);
        b->app_id_sent = 1;
    }
    pid_t pid = row->pid > 0 ? row->pid : sv_child_read_pid_file(b->pid_path);
    /* A pid can be reused: the process must be this batch's wrapper ($0 is its directory). */
    int ours = pid > 0 && sv_child_alive(pid) && sv_child_cmdline_contains(pid, b->dir);
    b->pid = ours ? pid : 0;
    b->own_child = 0;
    if (row->ended) {
        b->orphan = 1;
        if (ours)
            sv_warn("batch %" APR_INT64_T_FMT " has ended but its spark-submit (pid %d) still "
                    "runs: stopping it", b->id, (int)pid);
        begin_stop(b, "the batch ended while no supervisor was watching it");
    }
    else if (ours) {
        sv_info("batch %" APR_INT64_T_FMT ": reattaching to spark-submit (pid %d)", b->id,
                (int)pid);
        note(b, "a restarted supervisor reattached to spark-submit (pid %d)", (int)pid);
        b->next_check_ms = 0;
        b->need_flags = 1;
        if (row->pid <= 0) {
            store_sv_req_t r;
            store_sv_req_batch_running(&r, b->id, (int)pid, b->sv->iter);
            sv_db_send(b->sv, &r, running_stored, b->id, 0, NULL, NULL);
        }
        if (row->stop_requested)
            begin_stop(b, "the batch was deleted");
    }
    else if (pid <= 0 && !strcmp(row->state, "starting")) {
        /* Claimed by a supervisor that went before it started spark-submit. */
        if (row->stop_requested) {
            note(b, "the batch was deleted before spark-submit started");
            b->end_state = "killed";
            finish(b);
        }
        else {
            sv_batch_spawn(b, row);
        }
    }
    else {
        b->pid = pid; /* for the message */
        process_gone(b);
    }
}

void sv_batch_detach(sv_batch_t *b)
{
    if (b->pid > 0 && !b->end_state)
        read_output(b, 0);
    sv_batch_flush_log(b);
}

/* ---- the timer side ---- */

int sv_batch_has_work(sv_batch_t *b)
{
    if (b->done)
        return 0;
    return (b->need_flags && !b->flags_inflight)
           || (b->end_state && !b->end_inflight && !b->log_inflight)
           || (b->app_id && !b->app_id_sent);
}

void sv_batch_work(sv_batch_t *b, apr_int64_t now, apr_int64_t *deadline)
{
    if (b->done)
        return;
    sv_t *sv = b->sv;
    store_sv_req_t r;
    if (b->need_flags && !b->flags_inflight && sv_db_ok(sv)) {
        store_sv_req_batch_flags(&r, b->id, sv->iter);
        if (sv_db_send(sv, &r, flags_read, b->id, 0, NULL, NULL) == 0) {
            b->need_flags = 0;
            b->flags_inflight = 1;
        }
    }
    if (b->pid > 0 && !b->end_state) {
        if (now >= b->next_read_ms) { /* the loop may turn far more often than that */
            read_output(b, 0);
            b->next_read_ms = now + TAIL_INTERVAL_MS;
        }
        if (!b->own_child && now >= b->next_check_ms) {
            if (!sv_child_alive(b->pid)) {
                process_gone(b);
                return;
            }
            b->next_check_ms = now + ALIVE_CHECK_MS;
        }
        if (!b->own_child)
            lower(deadline, b->next_check_ms);
        lower(deadline, b->next_read_ms);
        if (b->stopping && !b->kill_sent) {
            apr_int64_t kill_at = b->stop_since_ms + sv->cfg->stop_grace_ms;
            if (now >= kill_at) {
                sv_warn("batch %" APR_INT64_T_FMT ": spark-submit did not stop within %s: "
                        "SIGKILL to process group %d", b->id,
                        sv_format_duration(sv->cfg->stop_grace_ms, sv->iter), (int)b->pid);
                sv_child_signal_group(b->pid, SIGKILL);
                b->kill_sent = 1;
            }
            else {
                lower(deadline, kill_at);
            }
        }
    }
    if (b->app_id && !b->app_id_sent && sv_db_ok(sv) && !b->orphan) {
        store_sv_req_batch_app_id(&r, b->id, b->app_id, sv->iter);
        if (sv_db_send(sv, &r, app_id_stored, b->id, 0, NULL, NULL) == 0)
            b->app_id_sent = 1;
    }
    finish(b);
}
