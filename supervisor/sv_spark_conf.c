/* sv_spark_conf: a session's settings file for its REPL child: the create request mapped onto
 * Spark settings as Livy maps them, the request's conf on top, the server's master and the
 * driver's network doors last. */
#include "sv_spark_conf.h"
#include "livy_ui.h"

#include <apr_strings.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A JSON list of strings, comma-joined (Spark's list settings), or NULL when empty. */
static const char *join_list(const char *json_text, apr_pool_t *p)
{
    if (!json_text)
        return NULL;
    json_t *list = json_loads(json_text, 0, NULL);
    const char *out = NULL;
    if (json_is_array(list)) {
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item) {
            if (!json_is_string(item))
                continue;
            out = out ? apr_pstrcat(p, out, ",", json_string_value(item), NULL)
                      : apr_pstrdup(p, json_string_value(item));
        }
    }
    json_decref(list);
    return out;
}

static void set_str(json_t *obj, const char *key, const char *value)
{
    if (value && *value)
        json_object_set_new(obj, key, json_string(value));
}

static void set_count(json_t *obj, const char *key, int value, apr_pool_t *p)
{
    if (value > 0)
        json_object_set_new(obj, key, json_string(apr_psprintf(p, "%d", value)));
}

/* What no session's conf may change: where the driver listens and who may talk to it.
 * Local masters keep every door of the driver (RPC, block manager, UI) on loopback and
 * authenticate RPC with a per-session secret that the REPL makes after the JVM has started
 * (never on its command line, which every local user can read). Cluster masters need the
 * driver's RPC and block manager on the network; its UI stays on loopback (standalone,
 * Kubernetes) or behind YARN's proxy filter. On YARN and Kubernetes Spark hands out a
 * per-application secret itself. A standalone cluster's
 * secret is the operator's (spark-defaults.conf), since the master and workers must know it
 * too: authentication is on all the same, so a cluster without that secret refuses the
 * session rather than run it with an open driver, and a session may not bring a secret of its
 * own. */
static void set_doors(json_t *root, json_t *spark, const char *master)
{
    switch (livy_spark_master_kind(master)) {
    case LIVY_MASTER_LOCAL:
        json_object_set_new(spark, "spark.driver.bindAddress", json_string("127.0.0.1"));
        json_object_set_new(spark, "spark.driver.host", json_string("127.0.0.1"));
        json_object_set_new(spark, "spark.authenticate", json_string("true"));
        json_object_del(spark, "spark.authenticate.secret");
        json_object_set_new(root, "spark_local_ip", json_string("127.0.0.1"));
        json_object_set_new(root, "generate_auth_secret", json_true());
        break;
    case LIVY_MASTER_STANDALONE:
        json_object_del(spark, "spark.authenticate.secret");
        /* fall through */
    case LIVY_MASTER_K8S:
        json_object_set_new(spark, "spark.authenticate", json_string("true"));
        /* Executors elsewhere must reach the driver's RPC and block manager, not its UI: the
         * REPL keeps the UI on loopback (for httpd's proxy) and advertises the host's address. */
        json_object_set_new(root, "spark_local_ip", json_string("127.0.0.1"));
        json_object_set_new(root, "cluster_driver", json_true());
        break;
    case LIVY_MASTER_YARN:
        /* YARN's proxy filter guards the UI (Spark adds it): reachable through the
         * ResourceManager's proxy only, which must reach the driver's address. */
        json_object_set_new(spark, "spark.authenticate", json_string("true"));
        break;
    default:
        break;
    }
}

/* The child's conf file: the session's Spark settings mapped from the create request, the
 * request's conf on top, the server's master and the driver's doors last (users may not
 * choose them). */
json_t *sv_spark_conf_build(const sv_config_t *cfg, apr_int64_t id,
                            const store_sv_session_t *row, apr_pool_t *p)
{
    json_t *spark = json_object();
    /* The UI's kill links: off unless the session asks, since any local process can reach a
     * loopback port; through httpd they need modify access (mod_livy_ui.c). */
    if (livy_spark_master_kind(cfg->spark_master) == LIVY_MASTER_LOCAL)
        set_str(spark, "spark.ui.killEnabled", "false");
    set_str(spark, "spark.driver.memory", row->driver_memory);
    set_count(spark, "spark.driver.cores", row->driver_cores, p);
    set_str(spark, "spark.executor.memory", row->executor_memory);
    set_count(spark, "spark.executor.cores", row->executor_cores, p);
    set_count(spark, "spark.executor.instances", row->num_executors, p);
    set_str(spark, "spark.yarn.queue", row->queue);
    set_str(spark, "spark.app.name",
            row->name ? row->name : apr_psprintf(p, "livy-session-%" APR_INT64_T_FMT, id));
    set_str(spark, "spark.jars", join_list(row->jars, p));
    set_str(spark, "spark.submit.pyFiles", join_list(row->py_files, p));
    set_str(spark, "spark.files", join_list(row->files, p));
    set_str(spark, "spark.archives", join_list(row->archives, p));
    json_t *conf = row->conf ? json_loads(row->conf, 0, NULL) : NULL;
    if (json_is_object(conf)) {
        const char *key;
        json_t *value;
        json_object_foreach(conf, key, value) {
            if (json_is_string(value)) {
                json_object_set(spark, key, value);
            }
            else if (!json_is_null(value)) { /* the module coerces; be tolerant anyway */
                char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
                if (text)
                    json_object_set_new(spark, key, json_string(text));
                free(text);
            }
        }
    }
    json_decref(conf);
    json_object_set_new(spark, "spark.master", json_string(cfg->spark_master));

    json_t *root = json_object();
    set_doors(root, spark, cfg->spark_master);
    json_object_set_new(root, "spark", spark);
    json_object_set_new(root, "output_max_bytes", json_integer(cfg->output_max_bytes));
    json_object_set_new(root, "sql_row_cap", json_integer(cfg->sql_row_cap));
    if (row->proxy_user)
        json_object_set_new(root, "proxy_user", json_string(row->proxy_user));
    return root;
}

int sv_spark_conf_write(const char *path, json_t *conf, apr_pool_t *p, const char **errmsg)
{
    /* 0600: the conf may carry credentials. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        *errmsg = apr_psprintf(p, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = json_dumpfd(conf, fd, JSON_INDENT(1) | JSON_SORT_KEYS);
    if (rc == 0 && write(fd, "\n", 1) != 1)
        rc = -1;
    if (close(fd) != 0)
        rc = -1;
    if (rc != 0) {
        *errmsg = apr_psprintf(p, "cannot write %s", path);
        return -1;
    }
    return 0;
}

