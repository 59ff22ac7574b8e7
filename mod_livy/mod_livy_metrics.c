/* mod_livy_metrics: this httpd's counters for GET <mount>/metrics (requests by route family and
 * status, their durations, the database connection pools), in anonymous shared memory made by
 * the parent at each (re)start and shared by every child of that generation. Updates are
 * relaxed atomic adds; a scrape reads each counter atomically (the snapshot as a whole is not
 * one instant, which Prometheus does not need). Counters start from zero when httpd restarts. */
#include "mod_livy.h"

#include "http_core.h"
#include "http_log.h"

#include <apr_shm.h>

APLOG_USE_MODULE(livy);

static livy_metrics_http_t *counters; /* NULL: none (the shared memory could not be made) */

int livy_metrics_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                             server_rec *s)
{
    counters = NULL;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK;
    apr_shm_t *shm;
    apr_status_t rv = apr_shm_create(&shm, sizeof(livy_metrics_http_t), NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, "livy: no shared memory for the request "
                     "and pool counters of GET /metrics; they are left out of it");
        return OK;
    }
    counters = apr_shm_baseaddr_get(shm);
    memset(counters, 0, sizeof *counters);
    return OK;
}

static void add_u64(uint64_t *c, uint64_t v)
{
    __atomic_add_fetch(c, v, __ATOMIC_RELAXED);
}

static void add_i64(int64_t *c, int64_t v)
{
    __atomic_add_fetch(c, v, __ATOMIC_RELAXED);
}

void livy_metrics_count_request(request_rec *r, int family)
{
    if (!counters)
        return;
    if (family < 0 || family >= LIVY_MF__COUNT)
        family = LIVY_MF_OTHER;
    apr_interval_time_t took = apr_time_now() - r->request_time;
    if (took < 0)
        took = 0;
    add_u64(&counters->requests[family][livy_metrics_status_slot(r->status)], 1);
    int b = 0;
    while (b < LIVY_METRICS_REQUEST_BUCKETS
           && (double)took > livy_metrics_request_bounds[b] * 1e6)
        b++;
    if (b < LIVY_METRICS_REQUEST_BUCKETS)
        add_u64(&counters->duration_bucket[family][b], 1);
    add_u64(&counters->duration_count[family], 1);
    add_u64(&counters->duration_sum_us[family], (uint64_t)took);
}

void livy_metrics_pool(livy_pool_event_e event, int n)
{
    if (!counters)
        return;
    switch (event) {
    case LIVY_POOL_OPENED: add_i64(&counters->pool_open, n); add_u64(&counters->pool_connects, 1); break;
    case LIVY_POOL_CLOSED: add_i64(&counters->pool_open, -n); break;
    case LIVY_POOL_BORROWED: add_i64(&counters->pool_in_use, 1); break;
    case LIVY_POOL_RETURNED: add_i64(&counters->pool_in_use, -1); break;
    case LIVY_POOL_WAITED: add_u64(&counters->pool_waits, 1); break;
    case LIVY_POOL_TIMED_OUT: add_u64(&counters->pool_timeouts, 1); break;
    case LIVY_POOL_CONNECT_FAILED: add_u64(&counters->pool_connect_failures, 1); break;
    }
}

void livy_metrics_snapshot(livy_metrics_http_t *out)
{
    memset(out, 0, sizeof *out);
    if (!counters)
        return;
    /* Every field is a 64-bit word. */
    const uint64_t *from = (const uint64_t *)counters;
    uint64_t *to = (uint64_t *)out;
    for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
        to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
}
