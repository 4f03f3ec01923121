// SPDX-License-Identifier: MIT
/* Logging backend: formats one line and sends it to stderr or syslog. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

int log_max_level = LOG_LEVEL_WARN;
static int log_syslog;
static const char *log_prefix = "cjfs";

void log_use_syslog(void)
{
	openlog("cjfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = 1;
}

void log_set_prefix(const char *prefix)
{
	log_prefix = prefix;
}

void log_init_from_env(void)
{
	const char *e = getenv("CJFS_DEBUG");

	if (!e || !*e)
		return;
	if (atoi(e) >= 2)
		log_max_level = LOG_LEVEL_DEBUG;
	else
		log_max_level = LOG_LEVEL_INFO;
}

static void log_vemit(int level, int err, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[2048];
	int saved = errno;
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);

	if (n < 0)
		msg[0] = '\0';
	if (err < 0) {
		size_t len = strlen(msg);

		snprintf(msg + len, sizeof(msg) - len, ": %s", strerror(-err));
	}
	if (log_syslog) {
		syslog(prio[level], "%s", msg);
	} else if (log_prefix) {
		fprintf(stderr, "%s: %s%s\n", log_prefix,
			level == LOG_LEVEL_WARN ? "warning: " : "", msg);
	} else {
		fprintf(stderr, "%s\n", msg);
	}
	errno = saved;
}

void log_internal(int level, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(level, err, fmt, ap);
	va_end(ap);
}

int log_errno(int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_ERROR, r, fmt, ap);
	va_end(ap);
	return r;
}

int log_debug_errno(int r, const char *fmt, ...)
{
	va_list ap;

	if (log_max_level < LOG_LEVEL_DEBUG)
		return r;
	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_DEBUG, r, fmt, ap);
	va_end(ap);
	return r;
}
