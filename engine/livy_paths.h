/* livy_paths: where a batch's files may come from. A local path (no scheme, or a file: or local:
 * URI) must lie inside a directory the operator allows (LivyBatchAllowedPaths); a URI of a file
 * system Spark reads remotely passes untouched; any other scheme is refused. Pure code with no
 * I/O (the files live on the Spark hosts, not here), so it can be fuzzed. */
#ifndef LIVY_PATHS_H
#define LIVY_PATHS_H

#include <apr_pools.h>
#include <apr_tables.h>

/* Checks a directory for LivyBatchAllowedPaths: absolute, without '.' or '..' components or
 * control characters. Returns 0 with *canonical set (in p; repeated and trailing slashes
 * dropped, "/" for the root), or -1 with *errmsg saying what is wrong. */
int livy_paths_dir_check(const char *dir, apr_pool_t *p, const char **canonical,
                         const char **errmsg);

/* Checks one entry of a batch's file, jars, pyFiles, files or archives (or of the Spark settings
 * that carry the same lists). allowed: canonical directories (const char *) as
 * livy_paths_dir_check gives them; NULL or empty allows no local path at all. Returns 0 when
 * the entry may be used, or -1 with *why (in p): a sentence saying why not, naming
 * LivyBatchAllowedPaths where that is the reason. */
int livy_paths_entry_check(const char *entry, const apr_array_header_t *allowed, apr_pool_t *p,
                           const char **why);

#endif
