/* sv_spark_conf: a session's settings file for its REPL child (docs/repl-protocol.md). */
#ifndef SV_SPARK_CONF_H
#define SV_SPARK_CONF_H

#include "sv_config.h"
#include "store_supervisor.h"

#include <apr_pools.h>
#include <jansson.h>

/* {"spark": {...}, "output_max_bytes", "sql_row_cap", "proxy_user"} for session id. New ref. */
json_t *sv_spark_conf_build(const sv_config_t *cfg, apr_int64_t id,
                            const store_sv_session_t *row, apr_pool_t *p);

/* Writes conf to path, mode 0600 (it may carry credentials). 0, or -1 with *errmsg set. */
int sv_spark_conf_write(const char *path, json_t *conf, apr_pool_t *p, const char **errmsg);

#endif
