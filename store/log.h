/* SPDX-License-Identifier: MIT */
/*
 * Logging for every module: levels checked before arguments are evaluated,
 * stderr for the CLI and foreground daemon, syslog for the background daemon.
 */
#ifndef CJFS_STORE_LOG_H
#define CJFS_STORE_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN = 1,
	LOG_LEVEL_INFO = 2,
	LOG_LEVEL_DEBUG = 3,
};

/* Messages above this level are dropped without evaluating their arguments. */
extern int log_max_level;

/*
 * Route messages to syslog (ident "cjfs") instead of stderr; used by the
 * daemon once it has detached from its terminal.
 */
void log_use_syslog(void);

/* Prefix for stderr lines, "cjfs" by default; NULL for none. */
void log_set_prefix(const char *prefix);

/* Raise log_max_level from $CJFS_DEBUG (1 = info, 2 = debug). */
void log_init_from_env(void);

/* Print one line; err < 0 appends ": strerror(-err)". */
void log_internal(int level, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(...) log_level_(LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_warn(...) log_level_(LOG_LEVEL_WARN, 0, __VA_ARGS__)
#define log_info(...) log_level_(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_level_(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)

#define log_level_(level, err, ...)                                                                \
	do {                                                                                       \
		if ((level) <= log_max_level)                                                      \
			log_internal((level), (err), __VA_ARGS__);                                 \
	} while (0)

/*
 * Log at error level with strerror(-r) appended and return r, so callers can
 * write `return log_errno(r, "cannot open '%s'", path);`.
 */
int log_errno(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same at debug level, for helpers that leave the final word to their caller. */
int log_debug_errno(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
