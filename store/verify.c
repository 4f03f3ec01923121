// SPDX-License-Identifier: MIT
/*
 * Integrity of a whole store: every blob re-hashed, every hash the index
 * refers to present and intact, files and rows that do not match up, and
 * SQLite's own integrity check.
 */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const char not_a_blob_dir[] = "not a blob directory: remove it if you did not put it there";

/* How many referring change rows an issue names before "and more". */
#define VERIFY_REFS_NAMED 3

const char *store_verify_kind_name(enum store_verify_kind k)
{
	switch (k) {
	case STORE_VERIFY_CORRUPT:
		return "corrupt";
	case STORE_VERIFY_MISSING:
		return "missing";
	case STORE_VERIFY_DANGLING:
		return "dangling";
	case STORE_VERIFY_STRAY:
		return "stray";
	case STORE_VERIFY_INDEX:
		return "index";
	case STORE_VERIFY_ORPHAN:
		return "orphan";
	}
	return "unknown";
}

bool store_verify_is_defect(enum store_verify_kind k)
{
	return k != STORE_VERIFY_ORPHAN && k != STORE_VERIFY_DANGLING;
}

/* One row of the blob table, and whether objects/ has its file. */
struct known_blob {
	uint8_t hash[HASH_LEN];
	bool seen;
};

struct verify {
	struct store *s;
	struct store_verify_report *rep;
	struct known_blob *rows; /* sorted by hash */
	size_t nrows;
};

static int cmp_blob(const void *a, const void *b)
{
	return memcmp(a, b, HASH_LEN);
}

static struct known_blob *find_row(const struct verify *v, const uint8_t hash[HASH_LEN])
{
	if (!v->nrows)
		return NULL; /* v->rows may be NULL, which bsearch must not get */
	return bsearch(hash, v->rows, v->nrows, sizeof(*v->rows), cmp_blob);
}

/* Describe the rows that refer to hash: "new content of 'a.c' in transaction 3; ...". */
static int describe_refs(struct store *s, const uint8_t hash[HASH_LEN], char **ret)
{
	static const char q[] =
		"SELECT txn, path, what FROM ("
		" SELECT txn, path, CASE WHEN o_hash = ?1 THEN 'original' ELSE 'new content' END"
		"  AS what FROM change WHERE o_hash = ?1 OR n_hash = ?1"
		" UNION ALL SELECT txn, path, 'kept overwritten file' FROM kept WHERE hash = ?1)"
		" ORDER BY txn, path";
	struct strbuf sb = STRBUF_INIT;
	sqlite3_stmt *st;
	size_t n = 0;
	int r = 0, rc;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (!st)
		goto out;
	sqlite3_bind_blob(st, 1, hash, HASH_LEN, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && r == 0) {
		const unsigned char *path = sqlite3_column_text(st, 1);

		if (n++ >= VERIFY_REFS_NAMED)
			continue;
		r = strbuf_addf(&sb, "%s%s of '%s' in transaction %lld", n > 1 ? "; " : "",
				(const char *)sqlite3_column_text(st, 2),
				path ? (const char *)path : "?",
				(long long)sqlite3_column_int64(st, 0));
	}
	if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = db_errno(rc);
	sqlite3_reset(st);
	if (r == 0 && n > VERIFY_REFS_NAMED)
		r = strbuf_addf(&sb, "; and %zu more", n - VERIFY_REFS_NAMED);
out:
	store_unlock(s);
	if (r < 0) {
		strbuf_release(&sb);
		return r;
	}
	*ret = sb.len ? strbuf_detach(&sb) : NULL;
	strbuf_release(&sb);
	return 0;
}

/* Record an issue; path and detail are copied (either may be NULL). */
static int add_issue(struct verify *v, enum store_verify_kind kind, const uint8_t *hash,
		     const char *path, char *detail_owned)
{
	struct store_verify_report *rep = v->rep;
	struct store_verify_issue *ni = realloc(rep->issues, (rep->n + 1) * sizeof(*ni));
	struct store_verify_issue *is;
	char name[96];

	if (!ni) {
		free(detail_owned);
		return -ENOMEM;
	}
	rep->issues = ni;
	is = &ni[rep->n];
	memset(is, 0, sizeof(*is));
	is->kind = kind;
	is->detail = detail_owned;
	if (hash) {
		is->has_hash = true;
		memcpy(is->hash, hash, HASH_LEN);
		if (!path)
			path = store_blob_name(hash, name);
	}
	if (path) {
		is->path = strdup(path);
		if (!is->path) {
			free(detail_owned);
			return -ENOMEM;
		}
	}
	rep->n++;
	if (store_verify_is_defect(kind))
		rep->defects++;
	else
		rep->warnings++;
	return 0;
}

/* An issue about a blob, naming the change rows that refer to it. */
static int add_blob_issue(struct verify *v, enum store_verify_kind kind,
			  const uint8_t hash[HASH_LEN], const char *why)
{
	char *refs = NULL, *detail;
	int r = describe_refs(v->s, hash, &refs);

	if (r < 0)
		return r;
	if (why && refs)
		detail = util_xasprintf("%s; %s", why, refs);
	else
		detail = why ? strdup(why) : refs ? strdup(refs) : NULL;
	free(refs);
	if ((why || refs) && !detail)
		return -ENOMEM;
	return add_issue(v, kind, hash, NULL, detail);
}

static int load_rows(struct verify *v)
{
	static const char q[] = "SELECT hash FROM blob";
	size_t cap = 0;
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(v->s);
	st = db_stmt(v->s->db, q, &r);
	if (!st)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *h = sqlite3_column_blob(st, 0);

		if (!h || sqlite3_column_bytes(st, 0) != HASH_LEN)
			continue; /* a malformed row: integrity of the index, not of a blob */
		if (v->nrows == cap) {
			struct known_blob *nr =
				realloc(v->rows, (cap = cap ? cap * 2 : 256) * sizeof(*nr));

			if (!nr) {
				r = -ENOMEM;
				break;
			}
			v->rows = nr;
		}
		memcpy(v->rows[v->nrows].hash, h, HASH_LEN);
		v->rows[v->nrows].seen = false;
		v->nrows++;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_errno(rc);
	sqlite3_reset(st);
out:
	store_unlock(v->s);
	if (r == 0 && v->nrows)
		qsort(v->rows, v->nrows, sizeof(*v->rows), cmp_blob);
	v->rep->rows = v->nrows;
	return r;
}

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return s[n] == '\0';
}

/* Check one entry of objects/<dir>/. */
static int check_file(struct verify *v, int dfd, const char *dir, const char *name)
{
	char path[2 * NAME_MAX + 16];
	uint8_t hash[HASH_LEN];
	struct known_blob *row;
	struct stat st;
	int r;

	snprintf(path, sizeof(path), "objects/%s/%s", dir, name);
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	/* A blob is named by its hash, raw or with the compressed suffix. */
	if (!S_ISREG(st.st_mode) || store_blob_parse_name(name, hash, NULL) < 0 ||
	    memcmp(name, dir, 2) != 0)
		return add_issue(v, STORE_VERIFY_STRAY, NULL, path,
				 strdup("not a blob: remove it if you did not put it there"));
	v->rep->blobs++;
	r = store_blob_verify(v->s, hash);
	if (r == -ENOENT)
		return 0; /* removed while we looked */
	if (r == -EBADMSG)
		return add_blob_issue(v, STORE_VERIFY_CORRUPT, hash,
				      "its content does not match its SHA-256");
	if (r < 0) {
		char *why = util_xasprintf("cannot read it: %s", strerror(-r));

		r = add_blob_issue(v, STORE_VERIFY_CORRUPT, hash, why ? why : "cannot read it");
		free(why);
		return r;
	}
	row = find_row(v, hash);
	if (row) {
		row->seen = true;
		return 0;
	}
	return add_issue(v, STORE_VERIFY_ORPHAN, hash, NULL,
			 strdup("intact, not in the index (left by an interrupted write)"));
}

static int check_objects(struct verify *v)
{
	int fd = util_openat(v->s->objfd, ".", O_RDONLY | O_DIRECTORY, 0);
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		util_close(fd);
		return -errno;
	}
	while (r == 0 && (de = readdir(d))) {
		struct dirent *fe;
		char path[NAME_MAX + 16];
		DIR *sd;
		int sfd;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "objects/%s", de->d_name);
		if (!is_hex(de->d_name, 2)) {
			r = add_issue(v, STORE_VERIFY_STRAY, NULL, path, strdup(not_a_blob_dir));
			continue;
		}
		sfd = util_openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (sfd == -ENOTDIR || sfd == -ELOOP) {
			r = add_issue(v, STORE_VERIFY_STRAY, NULL, path, strdup(not_a_blob_dir));
			continue;
		}
		if (sfd < 0) {
			r = log_debug_errno(sfd, "cannot open '%s'", path);
			break;
		}
		sd = fdopendir(sfd);
		if (!sd) {
			r = -errno;
			util_close(sfd);
			break;
		}
		while (r == 0 && (fe = readdir(sd))) {
			if (strcmp(fe->d_name, ".") && strcmp(fe->d_name, ".."))
				r = check_file(v, dirfd(sd), de->d_name, fe->d_name);
		}
		closedir(sd);
	}
	closedir(d);
	return r;
}

/* Blob rows whose file objects/ does not have. */
static int check_rows(struct verify *v)
{
	int r = 0;

	for (size_t i = 0; i < v->nrows && r == 0; i++) {
		int has;

		if (v->rows[i].seen)
			continue;
		/* Published after we walked its directory? Then it is there now. */
		has = store_has(v->s, v->rows[i].hash);
		if (has == 1)
			continue;
		r = add_blob_issue(v, STORE_VERIFY_MISSING, v->rows[i].hash,
				   "listed in the blob table, no such file");
	}
	return r;
}

/* Every hash a change row refers to: in the blob table and in objects/. */
static int check_refs(struct verify *v)
{
	/*
	 * A rolled-back transaction replaced nothing: its rows stay as
	 * history, but its originals and new contents need not be kept (its
	 * staged originals went with it).
	 */
	static const char q[] = "SELECT o_hash FROM change WHERE o_hash IS NOT NULL"
				" AND txn NOT IN (SELECT id FROM txn WHERE state = 5)"
				" UNION SELECT n_hash FROM change WHERE n_hash IS NOT NULL"
				" AND txn NOT IN (SELECT id FROM txn WHERE state = 5)"
				" UNION SELECT hash FROM kept";
	uint8_t(*refs)[HASH_LEN] = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(v->s);
	st = db_stmt(v->s->db, q, &r);
	if (!st) {
		store_unlock(v->s);
		return r;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *h = sqlite3_column_blob(st, 0);

		if (!h || sqlite3_column_bytes(st, 0) != HASH_LEN)
			continue;
		if (n == cap) {
			uint8_t(*nr)[HASH_LEN] =
				realloc(refs, (cap = cap ? cap * 2 : 256) * HASH_LEN);

			if (!nr) {
				r = -ENOMEM;
				break;
			}
			refs = nr;
		}
		memcpy(refs[n++], h, HASH_LEN);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_errno(rc);
	sqlite3_reset(st);
	store_unlock(v->s);
	v->rep->refs = n;
	for (size_t i = 0; i < n && r == 0; i++) {
		struct known_blob *row = find_row(v, refs[i]);
		int has;

		if (row && row->seen)
			continue;
		has = store_has(v->s, refs[i]);
		if (has < 0) {
			r = has;
			break;
		}
		if (!has && row)
			continue; /* reported by check_rows with its references */
		if (!has) {
			/* An open transaction's original may still be staged, not a blob. */
			int64_t sr = store_stage_read(v->s, refs[i], NULL, NULL);

			if (sr >= 0)
				continue;
			if (sr == -EBADMSG)
				r = add_blob_issue(v, STORE_VERIFY_CORRUPT, refs[i],
						   "its staged copy does not match its SHA-256");
			else if (sr == -ENOENT)
				r = add_blob_issue(v, STORE_VERIFY_MISSING, refs[i],
						   "referred to by the index, no such file");
			else
				r = (int)sr;
			continue;
		} else if (!row)
			r = add_blob_issue(v, STORE_VERIFY_DANGLING, refs[i],
					   "intact and referred to by the index, not yet in the blob table (a writer was killed in between): the next commit or gc indexes it");
	}
	free(refs);
	return r;
}

static int check_index(struct verify *v)
{
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(v->s);
	rc = sqlite3_prepare_v2(db_handle(v->s->db), "PRAGMA integrity_check", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		store_unlock(v->s);
		return add_issue(v, STORE_VERIFY_INDEX, NULL, "index.db",
				 strdup(sqlite3_errstr(rc)));
	}
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *msg = sqlite3_column_text(st, 0);

		if (msg && strcmp((const char *)msg, "ok") != 0)
			r = add_issue(v, STORE_VERIFY_INDEX, NULL, "index.db",
				      strdup((const char *)msg));
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = add_issue(v, STORE_VERIFY_INDEX, NULL, "index.db", strdup(sqlite3_errstr(rc)));
	sqlite3_finalize(st);
	store_unlock(v->s);
	return r;
}

/* One line for the audit log: counts per kind and the first defect. */
static char *audit_detail(const struct store_verify_report *rep)
{
	size_t count[STORE_VERIFY_DANGLING + 1] = { 0 };
	const struct store_verify_issue *first = NULL;

	for (size_t i = 0; i < rep->n; i++) {
		enum store_verify_kind k = rep->issues[i].kind;

		count[k]++;
		if (!first && store_verify_is_defect(k))
			first = &rep->issues[i];
	}
	return util_xasprintf("%zu defect(s): %zu corrupt, %zu missing, %zu stray, %zu index;"
			      " first: %s %s",
			      rep->defects, count[STORE_VERIFY_CORRUPT],
			      count[STORE_VERIFY_MISSING], count[STORE_VERIFY_STRAY],
			      count[STORE_VERIFY_INDEX],
			      first ? store_verify_kind_name(first->kind) : "-",
			      first && first->path ? first->path : "-");
}

int store_verify(struct store *s, struct store_verify_report *ret)
{
	struct store_verify_report rep = { 0 };
	struct verify v = { .s = s, .rep = &rep };
	int r;

	r = store_changelog_fold_open(s);
	if (r == 0)
		r = load_rows(&v);
	if (r == 0)
		r = check_objects(&v);
	if (r == 0)
		r = check_rows(&v);
	if (r == 0)
		r = check_refs(&v);
	if (r == 0)
		r = check_index(&v);
	free(v.rows);
	if (r < 0) {
		store_verify_release(&rep);
		return r;
	}
	if (rep.defects) {
		char *detail = audit_detail(&rep);

		/* Best effort: a damaged index may refuse it, and the report stands anyway. */
		(void)store_audit(s, 0, "VERIFY_FAILED", detail);
		free(detail);
	}
	*ret = rep;
	return 0;
}

void store_verify_release(struct store_verify_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->issues[i].path);
		free(r->issues[i].detail);
	}
	free(r->issues);
	memset(r, 0, sizeof(*r));
}
