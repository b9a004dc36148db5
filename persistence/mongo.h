/* mongo.h - the MongoDB store backend ("mongodb://HOST:PORT/DB?..."), on
 * mongo-c-driver 1.23 (Debian's libmongoc).
 *
 * Reached through store_open(); mongo_open is the entry. The returned
 * store_t owns one mongoc_client_t, a one-thread object, so the store_t is
 * one-thread like every store_t (store.h): the persistence writer and reader
 * each open their own.
 *
 * Write concern (protocol.md §8, "confirmed means durable"), first match wins:
 *   1. the write_concern argument of mongo_open (store_open passes the
 *      environment variable RINGCAST_MONGO_WRITE_CONCERN, the environment
 *      name of --mongo-write-concern in src/cfg.c; a value given as a flag
 *      reaches the store once startup exports it under that name before
 *      opening the store, as store.h has no options argument);
 *   2. w / journal / wtimeoutMS in the URI's query string;
 *   3. the default, w:1 with j:true.
 * Spec syntax: comma-separated "majority" | "w:N" | "w:majority" |
 * "j:true" | "j:false" | "wtimeout:MS", e.g. "majority,j:false" or
 * "w:majority,wtimeout:5000".
 * j is true unless the spec says j:false. w:0 is refused: an unacknowledged
 * write can never be confirmed.
 *
 * Timeouts: unless the URI sets them, serverSelectionTimeoutMS=2000 and
 * connectTimeoutMS=2000 (an outage surfaces as ERR_STORE in about 2 s, and
 * the persistence actor retries), socketTimeoutMS=10000. The client is the
 * driver's single-threaded kind: after a failed server check it waits a 5 s
 * cooldown before trying that server again, so operations fail at once
 * during an outage and succeed again up to ~5 s after the server is back
 * (measured against FerretDB in mongo_test: 4.5 s).
 *
 * The driver's own log lines go to src/log.h (set up once, by mongo_open).
 */
#ifndef RC_MONGO_H
#define RC_MONGO_H

#include "persistence/store.h"

#include <stddef.h>

/* The environment variable store_open reads for mongo_open's write_concern. */
#define MONGO_WRITE_CONCERN_ENV "RINGCAST_MONGO_WRITE_CONCERN"

/* mongo_open connects to uri (the whole "mongodb://..." string), checks the
 * server answers ping, and creates the collections and indexes of
 * protocol.md §11 if missing (the TTL index on notifications.ts is best
 * effort: servers that refuse it are logged, and the broker's own sweep
 * expires notifications). write_concern may be NULL (see above).
 * Returns 0 and *out; ERR_CONFIG for a bad URI or write concern; ERR_STORE
 * when the server is unreachable or refuses the setup (the caller stops
 * startup or retries later). A one-line reason goes to err, the driver's
 * detail to the log. */
int mongo_open(const char *uri, const char *write_concern, store_t **out, char *err, size_t errlen);

/* mongo_uri_check parses uri with the driver, without connecting (config
 * parsing). Returns 0 or ERR_CONFIG with a reason in err. */
int mongo_uri_check(const char *uri, char *err, size_t errlen);

/* mongo_write_concern_check validates a write concern spec (syntax above).
 * Returns 0 or ERR_CONFIG with a reason in err. */
int mongo_write_concern_check(const char *spec, char *err, size_t errlen);

#endif
