// SPDX-License-Identifier: MIT
/*
 * The store's config file, <store>/config: one "key = value" per line, '#'
 * starts a comment, blank lines are ignored, the last line for a key wins.
 * A plain file so that the defaults (gc.* today) can be read and changed
 * with any editor, and travel with the store.
 */
#include "store_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONFIG_MAX (64 * 1024)

typedef int (*config_fn)(void *ctx, const char *key, const char *value, char **ret_msg);

static char *trim(char *p)
{
	char *end;

	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	return p;
}

static bool key_is_valid(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++) {
		if (!islower((unsigned char)*k) && !isdigit((unsigned char)*k) && *k != '.' &&
		    *k != '-' && *k != '_')
			return false;
	}
	return true;
}

/* Call fn for every setting; -EINVAL with *ret_where for a malformed line. */
static int config_parse(struct store *s, config_fn fn, void *ctx, char **ret_where)
{
	struct strbuf sb = STRBUF_INIT;
	char *line, *next;
	int fd, r, lineno = 0;

	fd = util_openat(s->dirfd, "config", O_RDONLY | O_NOFOLLOW, 0);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	r = strbuf_read_fd(&sb, fd, CONFIG_MAX);
	util_close(fd);
	if (r < 0)
		goto out;
	for (line = sb.buf; line && *line; line = next) {
		char *eq, *key, *value, *msg = NULL, *hash;

		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		line = trim(line);
		if (!*line)
			continue;
		eq = strchr(line, '=');
		if (!eq) {
			msg = strdup("expected 'key = value'");
		} else {
			*eq = '\0';
			key = trim(line);
			value = trim(eq + 1);
			if (!key_is_valid(key))
				msg = util_xasprintf("'%s' is not a valid key", key);
			else
				r = fn(ctx, key, value, &msg);
		}
		if (r < 0 && !msg)
			goto out;
		if (msg) {
			if (ret_where)
				*ret_where = util_xasprintf("%s/config:%d: %s", s->path, lineno,
							    msg ? msg : "invalid");
			free(msg);
			r = -EINVAL;
			goto out;
		}
	}
	r = 0;
out:
	strbuf_release(&sb);
	return r;
}

struct config_get {
	const char *key;
	char *value;
};

static int config_get_one(void *ctx, const char *key, const char *value, char **ret_msg)
{
	struct config_get *g = ctx;

	(void)ret_msg;
	if (strcmp(key, g->key) != 0)
		return 0;
	free(g->value);
	g->value = strdup(value);
	return g->value ? 0 : -ENOMEM;
}

int store_config_get(struct store *s, const char *key, char **ret, char **ret_where)
{
	struct config_get g = { key, NULL };
	int r = config_parse(s, config_get_one, &g, ret_where);

	if (r < 0) {
		free(g.value);
		return r;
	}
	*ret = g.value;
	return 0;
}

static int gc_key(void *ctx, const char *key, const char *value, char **ret_msg)
{
	struct store_gc_policy *p = ctx;
	int64_t v;

	if (strncmp(key, "gc.", 3) != 0)
		return 0; /* not ours */
	if (strcmp(key, "gc.keep-last") == 0) {
		if (strcmp(value, "none") == 0)
			v = -1;
		else if (util_parse_i64(value, &v) < 0 || v < 0)
			goto bad_number;
		p->keep_last = v;
	} else if (strcmp(key, "gc.older-than") == 0) {
		if (strcmp(value, "none") == 0)
			v = -1;
		else if (util_parse_duration(value, &v) < 0)
			goto bad_duration;
		p->older_than_ns = v;
	} else if (strcmp(key, "gc.max-size") == 0) {
		if (strcmp(value, "none") == 0)
			v = -1;
		else if (util_parse_size(value, &v) < 0)
			goto bad_size;
		p->max_size = v;
	} else if (strcmp(key, "gc.grace") == 0) {
		if (util_parse_duration(value, &v) < 0)
			goto bad_duration;
		p->grace_ns = v;
	} else {
		*ret_msg =
			util_xasprintf("unknown key '%s' (gc.keep-last, gc.older-than, gc.max-size and gc.grace are known)",
				       key);
	}
	return 0;

bad_number:
	*ret_msg = util_xasprintf("%s: '%s' is not a count (or 'none')", key, value);
	return 0;
bad_duration:
	*ret_msg = util_xasprintf("%s: '%s' is not a duration like 30d, 12h or 90m%s", key, value,
				  strcmp(key, "gc.grace") ? " (or 'none')" : "");
	return 0;
bad_size:
	*ret_msg =
		util_xasprintf("%s: '%s' is not a size like 500M or 10G (or 'none')", key, value);
	return 0;
}

int store_gc_policy_load(struct store *s, struct store_gc_policy *p, char **ret_where)
{
	struct store_gc_policy tmp = *p;
	int r = config_parse(s, gc_key, &tmp, ret_where);

	if (r == 0)
		*p = tmp;
	return r;
}
