/* lite.h - the embedded SQLite store backend (the default, "sqlite:PATH").
 *
 * Reached through store_open(); the only public entry is lite_open. The
 * returned store_t is a one-thread object like every store_t (store.h): the
 * persistence writer and reader each open their own, and SQLite's WAL mode
 * lets the reader run while the writer commits.
 */
#ifndef RC_LITE_H
#define RC_LITE_H

#include "persistence/store.h"

#include <stddef.h>

/* lite_open opens (creating if missing, with its parent directories) the
 * database at path and its schema (protocol.md §11). Returns 0 and *out, or
 * ERR_STORE with a one-line reason in err (the caller stops startup or
 * retries later; the SQLite detail is also logged). */
int lite_open(const char *path, store_t **out, char *err, size_t errlen);

#endif
