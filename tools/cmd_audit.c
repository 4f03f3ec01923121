// SPDX-License-Identifier: MIT
/* cjfs audit: list the audit log. */
#include "cli.h"

#include <stdlib.h>

#include "log.h"

static const char usage[] = "cjfs audit [--since TIME] [--txn TXN] [--json]";
static const char help[] =
	"usage: cjfs audit [--since TIME] [--txn TXN] [--json]\n"
	"\n"
	"List the audit log, oldest first, one event per line:\n"
	"\n"
	"  TIME  uid=UID pid=PID txn=TXN  EVENT  DETAIL\n"
	"\n"
	"Each event is written in the same SQLite transaction as the change it\n"
	"records, so the log and the store never disagree. No cjfs command edits or\n"
	"deletes events (the index refuses it). The events:\n"
	"\n"
	"  TXN_BEGIN        a transaction began (mount, run, undo, restore); detail: PKG\n"
	"  BACKUP_CREATED   at a commit point: the originals it replaces are durable in\n"
	"                   the store (count, bytes, time to store them); also each file\n"
	"                   a forced commit, undo or restore overwrote and kept\n"
	"  TXN_COMMIT       a transaction was applied to PKG; detail: counts\n"
	"  TXN_CONFLICT     a commit, undo or restore refused: PKG changed behind it\n"
	"  TXN_ROLLBACK     a transaction was discarded, or a failed apply was undone\n"
	"  TXN_RECOVERED    recovery finished or discarded an interrupted commit\n"
	"  BACKUP_RESTORED  originals were written back (undo, restore into PKG or DIR)\n"
	"  BACKUP_DELETED   gc dropped a transaction's history (txn=ID), or deleted\n"
	"                   blobs no transaction referred to (txn=-)\n"
	"  VERIFY_FAILED    'cjfs verify' found damage\n"
	"\n"
	"Options:\n"
	"  --since TIME  only events at or after TIME: 2024-05-01, '2024-05-01 13:00',\n"
	"                @SECONDS since the epoch, or a duration back from now (2h, 7d)\n"
	"  --txn TXN     only the events of transaction TXN\n"
	"  --json        a JSON array; each object has id, time (RFC 3339, UTC),\n"
	"                time_ns, uid, pid, txn (null when none), event and detail\n"
	"  --store DIR   the store to read\n"
	"\n"
	"Exit status: 0, 1 if the store cannot be read, 2 for a usage error.\n";

int cmd_audit(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "since", required_argument, NULL, 'S' + 256 },
		{ "txn", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct store_audit_event *v = NULL;
	bool json = false, done = false;
	int64_t since = 0, txn = 0;
	size_t n = 0;
	int opt, r;

	while ((opt = cli_getopt_any(argc, argv, "h", longopts)) != -1) {
		switch (opt) {
		case 'S' + 256:
			if (util_parse_time(optarg, util_now_ns(), &since) < 0)
				return cli_usage_error("audit", usage,
						       "--since wants a time like 2024-05-01, '2024-05-01 13:00', @1714567890 or 2h, not '%s'",
						       optarg);
			break;
		case 'T':
			r = cli_parse_txn("audit", usage, optarg, &txn);
			if (r)
				return r;
			break;
		case 'j':
			json = true;
			break;
		default:
			r = cli_common_opt(cli, opt, "audit", help, &done);
			if (done)
				return r;
		}
	}
	if (argc != optind)
		return cli_usage_error("audit", usage, "unexpected argument '%s'", argv[optind]);
	r = store_audit_list(cjfs_store(cli_store(cli)), since, txn, &v, &n);
	if (r < 0) {
		log_errno(r, "cannot read the audit log");
		return EXIT_FAIL;
	}
	if (json)
		fputc('[', stdout);
	for (size_t i = 0; i < n; i++) {
		const struct store_audit_event *e = &v[i];
		char when[32], id[24];

		if (json) {
			printf("%s{\"id\":%lld,\"time\":", i ? "," : "", (long long)e->id);
			json_time(stdout, e->time_ns);
			printf(",\"time_ns\":%lld,\"uid\":%lld,\"pid\":%lld,\"txn\":",
			       (long long)e->time_ns, (long long)e->uid, (long long)e->pid);
			if (e->txn)
				printf("%lld", (long long)e->txn);
			else
				fputs("null", stdout);
			fputs(",\"event\":", stdout);
			json_str(stdout, e->event);
			fputs(",\"detail\":", stdout);
			json_str_or_null(stdout, e->detail);
			fputc('}', stdout);
			continue;
		}
		if (e->txn)
			snprintf(id, sizeof(id), "%lld", (long long)e->txn);
		else
			snprintf(id, sizeof(id), "-");
		printf("%s uid=%lld pid=%lld txn=%s %s%s%s\n", util_fmt_time(e->time_ns, when),
		       (long long)e->uid, (long long)e->pid, id, e->event, e->detail ? " " : "",
		       e->detail ? e->detail : "");
	}
	if (json)
		fputs("]\n", stdout);
	store_audit_free(v, n);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
