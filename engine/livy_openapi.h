/* livy_openapi: the OpenAPI document of the API (docs/openapi.yaml), compiled in as JSON at
 * build time (scripts/openapi-json writes livy_openapi_json.c), served at <mount>/openapi.json. */
#ifndef LIVY_OPENAPI_H
#define LIVY_OPENAPI_H

#include <stddef.h>

extern const char livy_openapi_json[];
extern const size_t livy_openapi_json_len;
extern const char livy_openapi_etag[]; /* a strong ETag, quotes included */

/* Clients may reuse the document this long (seconds) before revalidating with its ETag. */
#define LIVY_OPENAPI_MAX_AGE 3600

#endif
