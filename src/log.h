/* log.h - leveled logs, text or JSON lines, safe from any thread.
 *
 * Each record is formatted into a stack buffer and written with one write(2)
 * to stderr, so lines from different threads never interleave. Shards call
 * it only off the hot path (connects, errors, startup).
 */
#ifndef RC_LOG_H
#define RC_LOG_H

enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

void log_init(int level, int format);
/* log_level_parse: "debug"|"info"|"warn"|"error" → LOG_*, or -1. */
int log_level_parse(const char *s);
/* log_set_thread names the calling thread in its records ("shard-0", "pers-w"). */
void log_set_thread(const char *name);
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
extern int log__level;

#define LOG_DBG(...) do { if (log__level <= LOG_DEBUG) log_write(LOG_DEBUG, __VA_ARGS__); } while (0)
#define LOG_INF(...) do { if (log__level <= LOG_INFO) log_write(LOG_INFO, __VA_ARGS__); } while (0)
#define LOG_WRN(...) do { if (log__level <= LOG_WARN) log_write(LOG_WARN, __VA_ARGS__); } while (0)
#define LOG_ERR(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
