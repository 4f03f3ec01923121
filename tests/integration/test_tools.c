// SPDX-License-Identifier: MIT
/*
 * Real tools through the overlay: each runs once on a plain copy of a tree
 * and once through `cjfs run` on PKG; PKG after the commit must equal the
 * plain copy byte for byte. And git used inside a mount, as a developer
 * would: status of a clean tree, diff after a formatter, commit.
 *
 * A test skips only when its tool is missing; `tools/setup.sh --tests`
 * installs them all (prettier through npm, into the test cache).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

static struct h_env env;
static char ctrl[PATH_MAX];

/* Fixed identities and dates: git writes the same bytes in both trees. */
#define GIT_ENV                                                                                    \
	"export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t "            \
	"GIT_COMMITTER_EMAIL=t@example.org GIT_AUTHOR_DATE='2021-01-01T00:00:00Z' "                \
	"GIT_COMMITTER_DATE='2021-01-01T00:00:00Z' GIT_CONFIG_NOSYSTEM=1 HOME=/nonexistent "       \
	"GIT_CONFIG_GLOBAL=/dev/null; "

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup(&env);
	snprintf(ctrl, sizeof(ctrl), "%s/ctrl", env.root);
}

static void teardown(void)
{
	h_teardown(&env);
}

TestSuite(tools, .init = setup, .fini = teardown, .timeout = 180);

static void need(const char *tool)
{
	if (h_sh("/", "command -v %s >/dev/null 2>&1", tool) != 0) {
		h_teardown(&env); /* no .fini after a skip in the body */
		cr_skip_test("%s is not installed (tools/setup.sh --tests installs it)", tool);
	}
}

/* Drop the lines of a snapshot whose path starts with prefix. */
static void drop_lines(char *s, const char *prefix)
{
	char *out = s, *line = s;
	size_t n = strlen(prefix);

	while (*line) {
		char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) + 1 : strlen(line);

		if (strncmp(line, prefix, n) != 0) {
			memmove(out, line, len);
			out += len;
		}
		line += len;
	}
	*out = '\0';
}

/*
 * Copy PKG to the control, run cmd there and through `cjfs run` on PKG
 * (both with cwd at the tree root); both must succeed and leave the same
 * tree. ignore (may be NULL) is a path prefix left out of the comparison.
 */
static void same_as_plain(const char *cmd, bool with_mtime, const char *ignore)
{
	char *want, *got, *before = h_snapshot(env.pkg, with_mtime);
	int r;

	h_copy_tree(env.pkg, ctrl);
	r = h_sh(ctrl, "%s", cmd);
	cr_assert_eq(r, 0, "'%s' failed on the plain copy (%d)", cmd, r);
	r = h_cjfs(&env, "run", env.pkg, "--", "sh", "-c", cmd, NULL);
	cr_assert_eq(r, 0, "'%s' through cjfs run failed (%d): %s", cmd, r, env.err);
	want = h_snapshot(ctrl, with_mtime);
	got = h_snapshot(env.pkg, with_mtime);
	if (ignore) {
		drop_lines(want, ignore);
		drop_lines(got, ignore);
	}
	cr_assert_str_eq(got, want, "'%s': PKG after cjfs run differs from the plain run", cmd);
	cr_assert_str_neq(got, before, "'%s' changed nothing: the test proves nothing", cmd);
	cr_assert_eq(h_count_names(env.pkg, ".cjfs"), 0, "cjfs files in PKG");
	free(before);
	free(want);
	free(got);
}

static void sources(void)
{
	cr_assert_eq(h_sh(env.pkg,
			  "set -e; mkdir -p src/pkg docs scripts web; "
			  "printf 'import os\\ndef f( a,b ):\\n  return {\"a\":a,\"b\":b}\\n' > "
			  "src/pkg/m.py; "
			  "printf 'x = 1\\n' > src/pkg/ok.py; touch src/pkg/__init__.py; "
			  "printf 'int main( ){int x=1;return x;}\\n' > src/main.c; "
			  "printf '#include <stdio.h>\\nvoid f(void) {\\n    printf(\"hi\");\\n}\\n' > "
			  "src/f.c; "
			  "printf '#!/bin/sh\\nif [ -n \"$1\" ];then\\n      echo   foo;fi\\n' > "
			  "scripts/a.sh; "
			  "chmod 755 scripts/a.sh; "
			  "printf 'foo bar\\nfoo\\n' > docs/a.txt; printf 'no match\\n' > docs/b.txt; "
			  "printf 'const a = {b:1,\\n  c:[1,2,3]}\\nfunction  f(){return a}\\n' > "
			  "web/a.js; "
			  "printf '# Title\\n*  item\\n' > web/README.md; "
			  "touch -d '2020-01-01' src/pkg/m.py src/main.c docs/a.txt"),
		     0);
}

Test(tools, black)
{
	need("black");
	sources();
	same_as_plain("black -q .", false, NULL);
}

Test(tools, clang_format_in_place)
{
	need("clang-format");
	sources();
	same_as_plain("clang-format -i src/main.c src/f.c", false, NULL);
}

/*
 * The project's style lives above PKG (PKG is a subdirectory of the
 * project, as the control is): the tool must find it through cjfs run as
 * it does in the plain copy, or it formats with its defaults.
 */
Test(tools, formatters_use_the_projects_configuration_above_pkg)
{
	need("clang-format");
	need("black");
	sources();
	h_write(env.root, ".clang-format", "BasedOnStyle: LLVM\nIndentWidth: 8\nUseTab: Always\n");
	h_write(env.root, "pyproject.toml", "[tool.black]\nline-length = 30\n");
	same_as_plain("clang-format -i src/main.c src/f.c && black -q .", false, NULL);
}

Test(tools, sed_in_place)
{
	need("sed");
	sources();
	same_as_plain("sed -i 's/foo/bar/g' docs/a.txt docs/b.txt scripts/a.sh", false, NULL);
}

Test(tools, perl_in_place)
{
	need("perl");
	sources();
	same_as_plain("perl -pi -e 's/foo/baz/' docs/*.txt && perl -pi.bak -e 's/if/IF/' scripts/a.sh",
		      false, NULL);
}

Test(tools, shfmt)
{
	need("shfmt");
	sources();
	same_as_plain("shfmt -w scripts/a.sh", false, NULL);
}

/* prettier from npm, installed once into the test cache. */
static char *prettier_path(void)
{
	const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *dir = cache && *cache ? util_xasprintf("%s/cjfs-tests", cache)
				    : util_xasprintf("%s/.cache/cjfs-tests", home ? home : "/tmp");
	char *bin = util_xasprintf("%s/node_modules/.bin/prettier", dir);

	if (access(bin, X_OK) != 0 && h_sh("/", "command -v npm >/dev/null 2>&1") == 0)
		(void)h_sh("/",
			   "mkdir -p '%s' && timeout 300 npm install --prefix '%s' --no-audit "
			   "--no-fund --loglevel=error prettier@3.3.3 >/dev/null 2>&1",
			   dir, dir);
	free(dir);
	if (access(bin, X_OK) != 0) {
		free(bin);
		return NULL;
	}
	return bin;
}

Test(tools, prettier)
{
	char *bin = prettier_path(), cmd[PATH_MAX + 64];

	if (!bin) {
		h_teardown(&env); /* no .fini after a skip in the body */
		cr_skip_test("prettier could not be installed with npm (tools/setup.sh --tests)");
	}
	sources();
	snprintf(cmd, sizeof(cmd), "'%s' --log-level warn --write web", bin);
	same_as_plain(cmd, false, NULL);
	free(bin);
}

Test(tools, python_compileall)
{
	need("python3");
	sources();
	/* Timestamp-based .pyc files record the source mtime: cp -a kept it. */
	same_as_plain("python3 -m compileall -q src", false, NULL);
	cr_assert_eq(h_sh(env.pkg, "test -f src/pkg/__pycache__/m.cpython-*.pyc"), 0);
}

/* A tree with every kind of entry, archived outside PKG. */
static char *archive(void)
{
	char *tar = util_xasprintf("%s/in.tar", env.root);

	cr_assert_eq(h_sh(env.root,
			  "set -e; mkdir -p src/t/sub/deep src/t/empty; "
			  "printf 'one\\n' > src/t/one; printf 'two\\n' > src/t/sub/two; "
			  "chmod 640 src/t/sub/two; chmod 700 src/t/sub/deep; "
			  "printf '#!/bin/sh\\n' > src/t/x; chmod 755 src/t/x; "
			  "ln -s one src/t/link; ln -s ../one src/t/sub/uplink; "
			  "ln src/t/one src/t/hard; "
			  "dd if=/dev/zero of=src/t/sparse bs=1 count=1 seek=100000 status=none; "
			  "touch -h -d '2019-05-06 07:08:09' src/t/one src/t/sub/two src/t/x "
			  "src/t/link; "
			  "tar -C src -cf '%s' t",
			  tar),
		     0);
	return tar;
}

Test(tools, tar_extract_into_the_mount)
{
	char *tar = archive(), cmd[PATH_MAX + 64];

	need("tar");
	h_write(env.pkg, "existing", "e\n");
	snprintf(cmd, sizeof(cmd), "tar -xf '%s' && tar -xf '%s' -C t/sub --strip-components=1",
		 tar, tar);
	same_as_plain(cmd, true, NULL);
	free(tar);
}

Test(tools, cp_archive_into_the_mount)
{
	char *tar = archive(), cmd[PATH_MAX + 64];

	snprintf(cmd, sizeof(cmd), "cp -a '%s/src/t' copy && cp -a '%s/src/t/.' copy/sub", env.root,
		 env.root);
	h_write(env.pkg, "existing", "e\n");
	same_as_plain(cmd, true, NULL);
	free(tar);
}

/* A git work tree in PKG with two commits and a branch, its index not racy. */
static void git_repo(void)
{
	need("git");
	sources();
	cr_assert_eq(h_sh(env.pkg, GIT_ENV
			  "set -e; git init -q -b main . ; "
			  "git add -A; git commit -qm one; "
			  "git checkout -q -b topic; printf 'topic\\n' > docs/topic.txt; "
			  "git add docs/topic.txt; git commit -qm topic; "
			  "git checkout -q main; "
			  /* Files older than the index: git trusts its stat data. */
			  "find . -path ./.git -prune -o -type f -exec touch -d '2020-06-01' {} +; "
			  "git update-index --really-refresh -q >/dev/null; "
			  "git status --porcelain"),
		     0);
}

Test(tools, git_status_add_commit_stash_checkout)
{
	git_repo();
	same_as_plain(GIT_ENV
		      "set -e; test -z \"$(git status --porcelain)\"; "
		      "printf 'change\\n' >> docs/a.txt; printf 'new\\n' > new.txt; "
		      "git add -A; git commit -qm two; "
		      "printf 'wip\\n' >> docs/b.txt; git stash -q; "
		      "git checkout -q topic; git checkout -q main; git stash pop -q; "
		      /* A branch where a file becomes a directory and a directory a file. */
		      "git stash -q; git checkout -q -b types; git rm -q docs/a.txt; "
		      "mkdir docs/a.txt; printf 'in\n' > docs/a.txt/in; git rm -rq src/pkg; "
		      "printf 'now a file\n' > src/pkg; git add -A; git commit -qm types; "
		      "git checkout -q main; git checkout -q types; git checkout -q main; "
		      "git stash pop -q; "
		      "git status --porcelain > status.out; git log --format=%H > log.out",
		      false, ".git/index\t");
	/* The index itself holds stat data of each tree; what it says must agree. */
	cr_assert_eq(h_sh(env.root,
			  "cd pkg && git ls-files -s > ../a && git status --porcelain >> ../a; "
			  "cd ../ctrl && git ls-files -s > ../b && git status --porcelain >> ../b; "
			  "cmp ../a ../b"),
		     0);
}

Test(tools, git_inside_a_mount)
{
	char *want, *got;

	git_repo();
	need("black");
	h_copy_tree(env.pkg, ctrl);
	h_mount_fg(&env);
	/* A clean work tree is clean through the mount, and looking changes nothing. */
	cr_assert_eq(h_sh(env.mnt, GIT_ENV "test -z \"$(git status --porcelain)\""), 0,
		     "git status in the mount of a clean tree is not empty");
	cr_assert_eq(h_cjfs(&env, "status", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_str_eq(env.out, "", "git status changed the tree");
	/* After a formatter, git diff shows exactly its changes. */
	cr_assert_eq(h_sh(ctrl, "black -q . && git diff > ../want.diff"), 0);
	cr_assert_eq(h_sh(env.mnt, "black -q . && git diff > '%s/got.diff'", env.root), 0);
	want = h_read(env.root, "want.diff");
	got = h_read(env.root, "got.diff");
	cr_assert_not_null(want);
	cr_assert_not_null(got);
	cr_assert_str_eq(got, want, "git diff in the mount differs from the plain tree");
	cr_assert_neq(want[0], '\0', "black changed nothing");
	free(want);
	free(got);
	/* And a commit made inside the mount is the same commit; cjfs commit then promotes it. */
	cr_assert_eq(h_sh(ctrl,
			  GIT_ENV "git commit -qam fmt && git log --format=%%H > ../want.log"),
		     0);
	cr_assert_eq(h_sh(env.mnt,
			  GIT_ENV "git commit -qam fmt && git log --format=%%H > '%s/got.log'",
			  env.root),
		     0);
	want = h_read(env.root, "want.log");
	got = h_read(env.root, "got.log");
	cr_assert_str_eq(got, want);
	free(want);
	free(got);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_wait_daemon(&env), 0, "the daemon did not exit cleanly: %s", env.err);
	cr_assert_eq(h_sh(env.pkg, GIT_ENV
			  "git fsck --no-progress 2>&1 && test -z \"$(git status --porcelain)\""),
		     0, "PKG's repository after commit is not clean");
}
