/*
 * DiffService handlers driven through a fake call context against a
 * repository generated here (renames, binary files, mode and type changes,
 * a submodule entry, symlinks, quoted and non-UTF-8 paths, files without a
 * trailing newline, a large file, many files, a merge), each answer
 * compared with what the git CLI says for the same question: diff --raw,
 * per-path diff -p, diff --numstat, format-patch, diff-tree, patch-id.
 * Plus upstream's limits, chunking and validation codes and messages.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "diff.pb-c.h"
#include "service/diff.h"
#include "service/service.h"
#include "service/util.h"

/* --- a fake call that keeps every response --------------------------------- */

struct rpc_call {
	const ProtobufCMessage *request;
	void *data;
	size_t n_sent, alloc;
	ProtobufCMessage **sent;
};

const ProtobufCMessage *rpc_call_request(struct rpc_call *call)
{
	return call->request;
}

void *rpc_call_service_data(struct rpc_call *call)
{
	return call->data;
}

int rpc_call_send(struct rpc_call *call, const ProtobufCMessage *msg, struct error *err)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(len + 1);

	(void)err;
	if (call->n_sent == call->alloc) {
		call->alloc = call->alloc ? call->alloc * 2 : 16;
		call->sent = realloc(call->sent, call->alloc * sizeof(*call->sent));
	}
	protobuf_c_message_pack(msg, buf);
	call->sent[call->n_sent++] = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
	free(buf);
	return 0;
}

int64_t rpc_call_deadline_ms(struct rpc_call *call)
{
	(void)call;
	return INT64_MAX;
}

int rpc_call_cancelled(struct rpc_call *call)
{
	(void)call;
	return 0;
}

static void call_reset(struct rpc_call *call)
{
	for (size_t i = 0; i < call->n_sent; i++)
		protobuf_c_message_free_unpacked(call->sent[i], NULL);
	free(call->sent);
	memset(call, 0, sizeof(*call));
}

/* --- fixtures ----------------------------------------------------------------- */

static char tmp[] = "/tmp/svc-diff-XXXXXX";
static char storage_path[128], repo_path[160];
static struct locator_storage storages[1];
static struct locator loc;
static struct config cfg;
static struct config_storage cfg_storages[1];
static struct service_deps deps;
static const struct rpc_service *svc;
static Gitaly__Repository repo = GITALY__REPOSITORY__INIT;

struct buf {
	char *data;
	size_t len;
};

/* Runs argv (NULL-terminated) and returns its stdout and exit code. */
static int run(struct buf *out, const char *stdin_data, const char *const *argv)
{
	int opipe[2], ipipe[2], status = -1;
	pid_t pid;

	assert_int_equal(pipe(opipe), 0);
	assert_int_equal(pipe(ipipe), 0);
	pid = fork();
	if (pid == 0) {
		dup2(opipe[1], 1);
		dup2(ipipe[0], 0);
		close(opipe[0]);
		close(ipipe[1]);
		if (!out) {
			int devnull = open("/dev/null", O_WRONLY);

			dup2(devnull, 2);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(opipe[1]);
	close(ipipe[0]);
	if (stdin_data)
		assert_true(write(ipipe[1], stdin_data, strlen(stdin_data)) >= 0);
	close(ipipe[1]);
	if (out) {
		out->data = NULL;
		out->len = 0;
	}
	for (;;) {
		char b[65536];
		ssize_t n = read(opipe[0], b, sizeof(b));

		if (n <= 0)
			break;
		if (out) {
			out->data = realloc(out->data, out->len + (size_t)n + 1);
			memcpy(out->data + out->len, b, (size_t)n);
			out->len += (size_t)n;
			out->data[out->len] = '\0';
		}
	}
	close(opipe[0]);
	waitpid(pid, &status, 0);
	if (out && !out->data)
		out->data = calloc(1, 1);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* git --git-dir=<repo> args... */
static int git(struct buf *out, const char *first, ...)
{
	const char *argv[32];
	char gitdir[200];
	size_t n = 0;
	va_list ap;

	snprintf(gitdir, sizeof(gitdir), "--git-dir=%s", repo_path);
	argv[n++] = "git";
	argv[n++] = gitdir;
	argv[n++] = first;
	va_start(ap, first);
	while ((argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	return run(out, NULL, argv);
}

static const char setup_script[] =
	"set -e; w=$1/work; G='git -c user.name=T -c user.email=t@example.com -c init.defaultBranch=main';"
	"export GIT_AUTHOR_DATE='2020-01-01T00:00:00Z' GIT_COMMITTER_DATE='2020-01-01T00:00:00Z';"
	"$G init -q $w; cd $w;"
	"seq 1 20 > a.txt; printf 'a b\\n c\\n' > ws.txt; printf '#!/bin/sh\\n' > mode.sh;"
	"seq 1 50 > old.txt; printf 'keep\\n' > gone.txt; printf '\\000\\001\\002bin' > bin.dat;"
	"ln -s a.txt link; printf 'plain\\n' > type.txt; mkdir -p 'dir/sp ace b';"
	"echo x > 'dir/sp ace b/x.txt'; printf 'caf\\n' > \"$(printf 'caf\\351.txt')\";"
	"printf 'tab\\n' > \"$(printf 'tab\\there')\"; printf 'no eol' > noeol.txt;"
	"printf 'q\\n' > 'q\"uo\\te';"
	"printf -- '-dash\\n' > ./-dash.txt;"
	"$G add -A; $G commit -qm one; $G tag c1;"
	"seq 1 20 | sed 's/^5$/five/' > a.txt; echo 21 >> a.txt; printf 'a  b\\n c\\n' > ws.txt;"
	"chmod +x mode.sh; seq 1 50 | sed 's/^10$/ten/' > new.txt; rm old.txt gone.txt;"
	"printf '\\000\\001\\003bin2' > bin.dat; rm type.txt; ln -s a.txt type.txt;"
	"echo y >> 'dir/sp ace b/x.txt'; printf 'caf2\\n' > \"$(printf 'caf\\351.txt')\";"
	"printf 'no eol changed' > noeol.txt; printf -- '-dash2\\n' > ./-dash.txt;"
	"printf 'tab2\\n' > \"$(printf 'tab\\there')\"; printf 'q2\\n' > 'q\"uo\\te';"
	"seq 1 20000 | sed 's/^/line /' > large.txt; ln -sf new.txt link;"
	"$G add -A; $G update-index --add --cacheinfo 160000,1111111111111111111111111111111111111111,sub;"
	"$G commit -qm two; $G tag c2;"
	"for i in $(seq 1 30); do seq 1 100 > many-files-with-rather-long-names-$i.txt; done; $G add -A; $G commit -qm three; $G tag c3;"
	"$G checkout -q -b side c2; echo side > side.txt; echo side >> a.txt; $G add -A; $G commit -qm side;"
	"$G checkout -q main; $G merge -q --no-ff --no-commit side; echo merged >> a.txt; $G add a.txt;"
	"$G commit -qm merge; $G tag merge;"
	"git clone -q --bare $w $2";

static int group_setup(void **state)
{
	const char *argv[] = { "sh", "-c", setup_script, "sh", tmp, repo_path, NULL };

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	/* git's answers in these tests come without user or system config, as
	 * the server's git runs. */
	setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
	setenv("GIT_CONFIG_SYSTEM", "/dev/null", 1);
	if (!mkdtemp(tmp))
		return -1;
	snprintf(storage_path, sizeof(storage_path), "%s/storage", tmp);
	snprintf(repo_path, sizeof(repo_path), "%s/diff.git", storage_path);
	if (mkdir(storage_path, 0755) < 0)
		return -1;
	if (run(NULL, NULL, argv) != 0)
		return -1;
	storages[0].name = "default";
	storages[0].path = storage_path;
	loc.storages = storages;
	loc.n_storages = 1;
	cfg_storages[0].name = "default";
	cfg_storages[0].path = storage_path;
	cfg.storages = cfg_storages;
	cfg.n_storages = 1;
	deps.cfg = &cfg;
	deps.locator = &loc;
	svc = diff_service(&deps);
	repo.storage_name = "default";
	repo.relative_path = "diff.git";
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return service_remove_all(tmp);
}

static int invoke(const char *name, const ProtobufCMessage *req, struct rpc_call *call,
		  struct error *err)
{
	memset(call, 0, sizeof(*call));
	call->request = req;
	call->data = svc->data;
	for (size_t i = 0; i < svc->n_methods; i++)
		if (!strcmp(svc->methods[i].name, name))
			return svc->methods[i].handler(call, err);
	fail_msg("no method %s", name);
	return -1;
}

static void expect_error(int ret, struct error *err, int code, const char *msg)
{
	assert_int_equal(ret, -1);
	assert_int_equal(err->code, code);
	assert_string_equal(err->message, msg);
	error_release(err);
}

/* --- CommitDiff ------------------------------------------------------------------ */

struct file {
	Gitaly__CommitDiffResponse *head; /* first message: the metadata */
	struct buf patch;
	size_t pieces;
};

/* Reassembles the streamed files: a file ends with end_of_patch. */
static size_t collect(struct rpc_call *call, struct file *files, size_t max)
{
	size_t n = 0;
	int open_file = 0;

	for (size_t i = 0; i < call->n_sent; i++) {
		Gitaly__CommitDiffResponse *r = (Gitaly__CommitDiffResponse *)call->sent[i];
		struct file *f;

		if (!open_file) {
			assert_true(n < max);
			f = &files[n++];
			memset(f, 0, sizeof(*f));
			f->head = r;
			open_file = 1;
		} else {
			f = &files[n - 1];
			/* Later pieces carry nothing but patch bytes. */
			assert_int_equal(r->from_path.len, 0);
			assert_string_equal(r->from_id, "");
			assert_int_equal(r->old_mode, 0);
		}
		f->patch.data = realloc(f->patch.data, f->patch.len + r->raw_patch_data.len + 1);
		if (r->raw_patch_data.len)
			memcpy(f->patch.data + f->patch.len, r->raw_patch_data.data, r->raw_patch_data.len);
		f->patch.len += r->raw_patch_data.len;
		f->patch.data[f->patch.len] = '\0';
		f->pieces++;
		assert_true(r->raw_patch_data.len <= 5120);
		if (r->end_of_patch)
			open_file = 0;
	}
	assert_false(open_file);
	return n;
}

static void free_files(struct file *files, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(files[i].patch.data);
}

/* One record of `git diff --raw -z`. */
struct raw {
	int32_t old_mode, new_mode;
	char from_id[65], to_id[65], status;
	const char *from, *to;
};

static size_t parse_raw_z(char *s, size_t len, struct raw *out, size_t max)
{
	char *p = s, *end = s + len;
	size_t n = 0;

	while (p < end && *p == ':') {
		struct raw *r = &out[n++];
		char *nul = memchr(p, '\0', (size_t)(end - p));

		assert_true(n <= max);
		assert_int_equal(sscanf(p, ":%o %o %64s %64s %c", (unsigned *)&r->old_mode,
					(unsigned *)&r->new_mode, r->from_id, r->to_id, &r->status),
				 5);
		p = nul + 1;
		r->from = p;
		r->to = p;
		p += strlen(p) + 1;
		if (r->status == 'R' || r->status == 'C') {
			r->to = p;
			p += strlen(p) + 1;
		}
	}
	return n;
}

/* The patch sections of `git diff` output: from the first "@@" or "Binary"
 * line of each "diff --git" section to its end. */
static size_t sections(const char *s, struct buf *out, size_t max)
{
	size_t n = 0;
	const char *p = s;

	while ((p = strstr(p, "diff --git ")) && (p == s || p[-1] == '\n')) {
		const char *next = strstr(p + 1, "\ndiff --git ");
		const char *end = next ? next + 1 : p + strlen(p);
		const char *q = p, *start = NULL;

		while (q < end) {
			if (!strncmp(q, "@@", 2) || !strncmp(q, "Binary", 6)) {
				start = q;
				break;
			}
			q = memchr(q, '\n', (size_t)(end - q));
			if (!q)
				break;
			q++;
		}
		assert_true(n < max);
		out[n].data = (char *)(start ? start : end);
		out[n].len = (size_t)(end - out[n].data);
		n++;
		p = end;
	}
	return n;
}

static void commit_diff_against_git(const char *left, const char *right)
{
	Gitaly__CommitDiffRequest req = GITALY__COMMIT_DIFF_REQUEST__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	struct buf raw;
	struct raw recs[128];
	struct file files[160];
	size_t n_recs, n_files, fi = 0;

	req.repository = &repo;
	req.left_commit_id = (char *)left;
	req.right_commit_id = (char *)right;
	assert_int_equal(invoke("CommitDiff", &req.base, &call, &err), 0);
	n_files = collect(&call, files, 160);

	assert_int_equal(git(&raw, "diff", "--raw", "-z", "--no-abbrev", "--find-renames=30%", left,
			     right, NULL),
			 0);
	n_recs = parse_raw_z(raw.data, raw.len, recs, 128);
	assert_true(n_recs > 0);
	for (size_t i = 0; i < n_recs; i++) {
		struct raw *r = &recs[i];
		struct buf one, secs[4];
		char spec1[600], spec2[600];
		size_t n_secs, parts = r->status == 'T' ? 2 : 1;

		snprintf(spec1, sizeof(spec1), ":(literal)%s", r->from);
		snprintf(spec2, sizeof(spec2), ":(literal)%s", r->to);
		assert_int_equal(git(&one, "diff", "--full-index", "--find-renames=30%", left, right,
				     "--", spec1, spec2, NULL),
				 0);
		n_secs = sections(one.data, secs, 4);
		assert_int_equal(n_secs, parts);
		for (size_t k = 0; k < parts; k++) {
			struct file *f = &files[fi++];
			Gitaly__CommitDiffResponse *h = f->head;

			assert_true(fi <= n_files);
			assert_int_equal(h->from_path.len, strlen(r->from));
			assert_memory_equal(h->from_path.data, r->from, strlen(r->from));
			assert_int_equal(h->to_path.len, strlen(r->to));
			assert_memory_equal(h->to_path.data, r->to, strlen(r->to));
			if (r->status == 'T' && k == 0) {
				/* The deletion half of a type change. */
				assert_string_equal(h->from_id, r->from_id);
				assert_int_equal(h->old_mode, r->old_mode);
				assert_int_equal(h->new_mode, 0);
				assert_string_equal(h->to_id, "0000000000000000000000000000000000000000");
			} else if (r->status == 'T') {
				assert_int_equal(h->old_mode, 0);
				assert_string_equal(h->to_id, r->to_id);
				assert_int_equal(h->new_mode, r->new_mode);
			} else {
				assert_string_equal(h->from_id, r->from_id);
				assert_string_equal(h->to_id, r->to_id);
				assert_int_equal(h->old_mode, r->old_mode);
				assert_int_equal(h->new_mode, r->new_mode);
			}
			assert_int_equal(h->binary, !strncmp(secs[k].data, "Binary", 6));
			assert_false(h->overflow_marker || h->collapsed || h->too_large);
			if (f->patch.len != secs[k].len || memcmp(f->patch.data, secs[k].data, secs[k].len))
				fail_msg("patch of %s differs:\n%s\n--- git:\n%.*s", r->from,
					 f->patch.data, (int)secs[k].len, secs[k].data);
		}
		free(one.data);
	}
	assert_int_equal(fi, n_files);
	free(raw.data);
	free_files(files, n_files);
	call_reset(&call);
}

static void test_commit_diff_matches_git(void **state)
{
	(void)state;
	commit_diff_against_git("c1", "c2");
	commit_diff_against_git("c2", "c1");
	commit_diff_against_git("c2", "c3");
	commit_diff_against_git("c1", "merge");
}

static void test_commit_diff_chunks_and_paths(void **state)
{
	Gitaly__CommitDiffRequest req = GITALY__COMMIT_DIFF_REQUEST__INIT;
	ProtobufCBinaryData paths[1] = { { 9, (uint8_t *)"large.txt" } };
	struct rpc_call call;
	struct error err = ERROR_INIT;
	struct file files[4];
	Gitaly__CommitDiffResponse *first, *last;
	size_t n;

	(void)state;
	req.repository = &repo;
	req.left_commit_id = "c1";
	req.right_commit_id = "c2";
	req.n_paths = 1;
	req.paths = paths;
	assert_int_equal(invoke("CommitDiff", &req.base, &call, &err), 0);
	n = collect(&call, files, 4);
	assert_int_equal(n, 1);
	assert_true(call.n_sent > 2);
	first = (Gitaly__CommitDiffResponse *)call.sent[0];
	last = (Gitaly__CommitDiffResponse *)call.sent[call.n_sent - 1];
	assert_int_equal(first->raw_patch_data.len, 5120);
	assert_false(first->end_of_patch);
	assert_memory_equal(first->to_path.data, "large.txt", 9);
	assert_true(last->end_of_patch);
	assert_int_equal(files[0].pieces, call.n_sent);
	assert_int_equal(files[0].patch.len, 5120 * (call.n_sent - 1) + last->raw_patch_data.len);
	free_files(files, n);
	call_reset(&call);
}

static void test_commit_diff_limits(void **state)
{
	Gitaly__CommitDiffRequest req = GITALY__COMMIT_DIFF_REQUEST__INIT;
	Gitaly__CommitDiffRequest__MaxPatchBytesForFileExtensionEntry e1 =
		GITALY__COMMIT_DIFF_REQUEST__MAX_PATCH_BYTES_FOR_FILE_EXTENSION_ENTRY__INIT;
	Gitaly__CommitDiffRequest__MaxPatchBytesForFileExtensionEntry *ents[1] = { &e1 };
	struct rpc_call call;
	struct error err = ERROR_INIT;
	struct file files[64];
	size_t n;

	(void)state;
	/* c2..c3 adds 30 files of 100 lines each, and drops "sub". */
	req.repository = &repo;
	req.left_commit_id = "c2";
	req.right_commit_id = "c3";
	req.enforce_limits = 1;
	req.max_files = 10;
	req.max_lines = 100000;
	req.max_bytes = 10000000;
	req.max_patch_bytes = 100000;
	assert_int_equal(invoke("CommitDiff", &req.base, &call, &err), 0);
	n = collect(&call, files, 64);
	assert_int_equal(n, 11);
	assert_false(files[9].head->overflow_marker);
	assert_true(files[10].head->overflow_marker);
	assert_int_equal(files[10].head->from_path.len, 0);
	free_files(files, n);
	call_reset(&call);

	/* Lines: 100 added lines per file; the file reaching 250 is the marker. */
	req.max_files = 100;
	req.max_lines = 250;
	assert_int_equal(invoke("CommitDiff", &req.base, &call, &err), 0);
	n = collect(&call, files, 64);
	assert_int_equal(n, 3);
	assert_true(files[2].head->overflow_marker);
	free_files(files, n);
	call_reset(&call);

	/* collect_all_paths: all 30 files, the ones after the limit without patch. */
	req.collect_all_paths = 1;
	assert_int_equal(invoke("CommitDiff", &req.base, &call, &err), 0);
	n = collect(&call, files, 64);
	assert_int_equal(n, 31); /* the 30 added files and the removed submodule */
	assert_true(files[1].patch.len > 0);
	assert_true(files[2].head->overflow_marker);
	assert_int_equal(files[29].patch.len, 0);
	assert_true(files[30].head->overflow_marker);
	free_files(files, n);
	call_reset(&call);
	req.collect_all_paths = 0;

	/* too_large through max_patch_bytes and the per-extension override. */
	req.max_lines = 100000;
	req.max_patch_bytes = 100;
	assert_int_equal(invoke("CommitDiff", &req.base, &call, &err), 0);
	n = collect(&call, files, 64);
	assert_int_equal(n, 31);
	assert_true(files[0].head->too_large);
	assert_int_equal(files[0].patch.len, 0);
	free_files(files, n);
	call_reset(&call);
	e1.key = ".txt";
	e1.value = 100000;
	req.n_max_patch_bytes_for_file_extension = 1;
	req.max_patch_bytes_for_file_extension = ents;
	assert_int_equal(invoke("CommitDiff", &req.base, &call, &err), 0);
	n = collect(&call, files, 64);
	assert_false(files[0].head->too_large);
	assert_true(files[0].patch.len > 0);
	free_files(files, n);
	call_reset(&call);
	req.n_max_patch_bytes_for_file_extension = 0;

	/* Collapsing after safe_max_files, without enforce_limits. */
	req.enforce_limits = 0;
	req.collapse_diffs = 1;
	req.safe_max_files = 4;
	req.safe_max_lines = 100000;
	req.safe_max_bytes = 10000000;
	assert_int_equal(invoke("CommitDiff", &req.base, &call, &err), 0);
	n = collect(&call, files, 64);
	assert_int_equal(n, 31);
	assert_false(files[3].head->collapsed);
	assert_true(files[3].patch.len > 0);
	assert_true(files[4].head->collapsed);
	assert_int_equal(files[4].patch.len, 0);
	assert_true(files[29].head->collapsed);
	assert_memory_equal(files[30].head->from_path.data, "sub", 3);
	free_files(files, n);
	call_reset(&call);
}

static void test_commit_diff_modes(void **state)
{
	Gitaly__CommitDiffRequest req = GITALY__COMMIT_DIFF_REQUEST__INIT;
	ProtobufCBinaryData paths[1] = { { 6, (uint8_t *)"ws.txt" } };
	struct rpc_call call;
	struct error err = ERROR_INIT;
	struct file files[4];
	struct buf want, secs[2];
	size_t n;

	(void)state;
	req.repository = &repo;
	req.left_commit_id = "c1";
	req.right_commit_id = "c2";
	req.n_paths = 1;
	req.paths = paths;
	/* A whitespace-only change: listed, without patch. */
	req.whitespace_changes = GITALY__COMMIT_DIFF_REQUEST__WHITESPACE_CHANGES__WHITESPACE_CHANGES_IGNORE;
	assert_int_equal(invoke("CommitDiff", &req.base, &call, &err), 0);
	n = collect(&call, files, 4);
	assert_int_equal(n, 1);
	assert_int_equal(files[0].patch.len, 0);
	assert_memory_equal(files[0].head->from_path.data, "ws.txt", 6);
	free_files(files, n);
	call_reset(&call);

	/* Word diff: git's porcelain word diff from the hunk header on. */
	req.whitespace_changes = 0;
	req.diff_mode = GITALY__COMMIT_DIFF_REQUEST__DIFF_MODE__WORDDIFF;
	paths[0].data = (uint8_t *)"a.txt";
	paths[0].len = 5;
	assert_int_equal(invoke("CommitDiff", &req.base, &call, &err), 0);
	n = collect(&call, files, 4);
	assert_int_equal(n, 1);
	assert_int_equal(git(&want, "diff", "--word-diff=porcelain", "c1", "c2", "--", "a.txt", NULL), 0);
	assert_int_equal(sections(want.data, secs, 2), 1);
	assert_int_equal(files[0].patch.len, secs[0].len);
	assert_memory_equal(files[0].patch.data, secs[0].data, secs[0].len);
	assert_non_null(strstr(files[0].patch.data, "\n~\n"));
	free(want.data);
	free_files(files, n);
	call_reset(&call);
}

static void test_validation(void **state)
{
	Gitaly__CommitDiffRequest req = GITALY__COMMIT_DIFF_REQUEST__INIT;
	Gitaly__CommitDeltaRequest dreq = GITALY__COMMIT_DELTA_REQUEST__INIT;
	Gitaly__RawDiffRequest rreq = GITALY__RAW_DIFF_REQUEST__INIT;
	Gitaly__RawPatchRequest preq = GITALY__RAW_PATCH_REQUEST__INIT;
	Gitaly__DiffStatsRequest sreq = GITALY__DIFF_STATS_REQUEST__INIT;
	Gitaly__Repository missing = GITALY__REPOSITORY__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;

	(void)state;
	expect_error(invoke("CommitDiff", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "repository not set");
	req.repository = &repo;
	expect_error(invoke("CommitDiff", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "empty LeftCommitId");
	req.left_commit_id = "c1";
	expect_error(invoke("CommitDiff", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "empty RightCommitId");
	req.right_commit_id = "-c2";
	expect_error(invoke("CommitDiff", &req.base, &call, &err), &err, STATUS_INTERNAL,
		     "cmd: positional arg \"-c2\" cannot start with dash '-': invalid argument");
	req.right_commit_id = "nonexistent";
	expect_error(invoke("CommitDiff", &req.base, &call, &err), &err, STATUS_FAILED_PRECONDITION,
		     "exit status 128");
	call_reset(&call);
	missing.storage_name = "default";
	missing.relative_path = "missing.git";
	req.repository = &missing;
	assert_int_equal(invoke("CommitDiff", &req.base, &call, &err), -1);
	assert_int_equal(err.code, STATUS_NOT_FOUND);
	error_release(&err);

	dreq.repository = &repo;
	dreq.left_commit_id = "c1";
	expect_error(invoke("CommitDelta", &dreq.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "empty RightCommitId");
	dreq.right_commit_id = "nonexistent";
	expect_error(invoke("CommitDelta", &dreq.base, &call, &err), &err, STATUS_FAILED_PRECONDITION,
		     "exit status 128");

	rreq.repository = &repo;
	rreq.right_commit_id = "c1";
	expect_error(invoke("RawDiff", &rreq.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "empty LeftCommitId");
	rreq.left_commit_id = "nonexistent";
	expect_error(invoke("RawDiff", &rreq.base, &call, &err), &err, STATUS_INTERNAL,
		     "exit status 128");
	rreq.left_commit_id = "--output=/tmp/x";
	expect_error(invoke("RawDiff", &rreq.base, &call, &err), &err, STATUS_INTERNAL,
		     "cmd: positional arg \"--output=/tmp/x\" cannot start with dash '-': invalid argument");

	preq.repository = &repo;
	preq.left_commit_id = "c1";
	expect_error(invoke("RawPatch", &preq.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "empty RightCommitId");
	preq.right_commit_id = "nonexistent";
	expect_error(invoke("RawPatch", &preq.base, &call, &err), &err, STATUS_INTERNAL,
		     "exit status 128");

	sreq.repository = &repo;
	sreq.left_commit_id = "c1";
	sreq.right_commit_id = "nonexistent";
	expect_error(invoke("DiffStats", &sreq.base, &call, &err), &err, STATUS_FAILED_PRECONDITION,
		     "exit status 128");
	sreq.left_commit_id = "";
	expect_error(invoke("DiffStats", &sreq.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "empty LeftCommitId");
	call_reset(&call);
}

/* --- CommitDelta ----------------------------------------------------------------- */

static void test_commit_delta(void **state)
{
	Gitaly__CommitDeltaRequest req = GITALY__COMMIT_DELTA_REQUEST__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	struct buf raw;
	struct raw recs[128];
	size_t n_recs, k = 0, n_msgs;

	(void)state;
	req.repository = &repo;
	req.left_commit_id = "c1";
	req.right_commit_id = "c3";
	assert_int_equal(invoke("CommitDelta", &req.base, &call, &err), 0);
	assert_int_equal(git(&raw, "diff", "--raw", "-z", "--no-abbrev", "--find-renames", "c1", "c3",
			     NULL),
			 0);
	n_recs = parse_raw_z(raw.data, raw.len, recs, 128);
	n_msgs = call.n_sent;
	assert_true(n_msgs >= 2);
	/* Batches close once upstream's size estimate passes 5 KiB. */
	for (size_t m = 0; m < n_msgs; m++) {
		Gitaly__CommitDeltaResponse *r = (Gitaly__CommitDeltaResponse *)call.sent[m];
		size_t size = 0, last = 0;

		for (size_t i = 0; i < r->n_deltas; i++) {
			Gitaly__CommitDelta *d = r->deltas[i];

			last = strlen(d->from_id) + strlen(d->to_id) + 8 + d->from_path.len + d->to_path.len;
			size += last;
		}
		if (m + 1 < n_msgs) {
			assert_true(size > 5120);
			assert_true(size - last <= 5120);
		} else {
			assert_true(size <= 5120);
		}
	}
	for (size_t m = 0; m < n_msgs; m++) {
		Gitaly__CommitDeltaResponse *r = (Gitaly__CommitDeltaResponse *)call.sent[m];

		for (size_t i = 0; i < r->n_deltas; i++) {
			Gitaly__CommitDelta *d = r->deltas[i];
			struct raw *w = &recs[k];

			if (w->status == 'T' && d->new_mode == 0) {
				/* deletion half; the addition follows */
				assert_memory_equal(d->from_path.data, w->from, strlen(w->from));
				continue;
			}
			assert_true(k < n_recs);
			assert_int_equal(d->from_path.len, strlen(w->from));
			assert_memory_equal(d->from_path.data, w->from, strlen(w->from));
			assert_memory_equal(d->to_path.data, w->to, strlen(w->to));
			assert_string_equal(d->to_id, w->to_id);
			assert_int_equal(d->new_mode, w->new_mode);
			if (w->status != 'T') {
				assert_string_equal(d->from_id, w->from_id);
				assert_int_equal(d->old_mode, w->old_mode);
			}
			k++;
		}
	}
	assert_int_equal(k, n_recs);
	free(raw.data);
	call_reset(&call);
}

/* --- RawDiff / RawPatch ------------------------------------------------------------ */

static void check_raw(const char *method, struct buf *want)
{
	Gitaly__RawDiffRequest req = GITALY__RAW_DIFF_REQUEST__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	struct buf got = { NULL, 0 };

	req.repository = &repo;
	req.left_commit_id = "c1";
	req.right_commit_id = "c3";
	/* RawPatchRequest has the same fields and numbers. */
	assert_int_equal(invoke(method, &req.base, &call, &err), 0);
	for (size_t i = 0; i < call.n_sent; i++) {
		Gitaly__RawDiffResponse *r = (Gitaly__RawDiffResponse *)call.sent[i];

		if (i + 1 < call.n_sent)
			assert_int_equal(r->data.len, 128 * 1024);
		got.data = realloc(got.data, got.len + r->data.len + 1);
		memcpy(got.data + got.len, r->data.data, r->data.len);
		got.len += r->data.len;
	}
	assert_true(call.n_sent > 1);
	assert_int_equal(got.len, want->len);
	assert_memory_equal(got.data, want->data, want->len);
	free(got.data);
	call_reset(&call);
}

static void test_raw_diff_and_patch(void **state)
{
	Gitaly__RawPatchRequest preq = GITALY__RAW_PATCH_REQUEST__INIT;
	struct buf want;
	struct rpc_call call;
	struct error err = ERROR_INIT;

	(void)state;
	assert_int_equal(git(&want, "diff", "--full-index", "c1", "c3", NULL), 0);
	check_raw("RawDiff", &want);
	free(want.data);
	assert_int_equal(git(&want, "format-patch", "--stdout", "--signature", "GitLab", "c1..c3", NULL), 0);
	assert_non_null(strstr(want.data, "Subject: [PATCH 1/2] two"));
	check_raw("RawPatch", &want);
	free(want.data);

	/* No commits in the range: an empty stream. */
	preq.repository = &repo;
	preq.left_commit_id = "c2";
	preq.right_commit_id = "c2";
	assert_int_equal(invoke("RawPatch", &preq.base, &call, &err), 0);
	assert_int_equal(call.n_sent, 0);
	call_reset(&call);
}

/* --- DiffStats -------------------------------------------------------------------- */

static void test_diff_stats(void **state)
{
	Gitaly__DiffStatsRequest req = GITALY__DIFF_STATS_REQUEST__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	struct buf want;
	char *p, *end;
	size_t k = 0;
	Gitaly__DiffStatsResponse *r;

	(void)state;
	req.repository = &repo;
	req.left_commit_id = "c1";
	req.right_commit_id = "c3";
	assert_int_equal(invoke("DiffStats", &req.base, &call, &err), 0);
	assert_int_equal(call.n_sent, 1);
	r = (Gitaly__DiffStatsResponse *)call.sent[0];
	assert_int_equal(git(&want, "diff", "--numstat", "-z", "c1", "c3", NULL), 0);
	p = want.data;
	end = want.data + want.len;
	while (p < end) {
		Gitaly__DiffStats *s = r->stats[k++];
		int add = 0, del = 0;
		char *t1 = strchr(p, '\t'), *t2 = strchr(t1 + 1, '\t');

		if (*p != '-')
			add = atoi(p);
		if (t1[1] != '-')
			del = atoi(t1 + 1);
		assert_int_equal(s->additions, add);
		assert_int_equal(s->deletions, del);
		p = t2 + 1;
		if (!*p) {
			/* rename: old NUL new NUL */
			p++;
			assert_int_equal(s->old_path.len, strlen(p));
			assert_memory_equal(s->old_path.data, p, strlen(p));
			p += strlen(p) + 1;
		} else {
			assert_int_equal(s->old_path.len, 0);
		}
		assert_int_equal(s->path.len, strlen(p));
		assert_memory_equal(s->path.data, p, strlen(p));
		p += strlen(p) + 1;
	}
	assert_int_equal(k, r->n_stats);
	assert_true(k > 40);
	free(want.data);
	call_reset(&call);
}

/* --- FindChangedPaths ------------------------------------------------------------------ */

/* Compares the response paths with `git diff-tree` records (-z, no commit id). */
static void check_changed(struct rpc_call *call, struct buf *want)
{
	char *p = want->data, *end = want->data + want->len;
	size_t m = 0, i = 0, total = 0;

	while (p < end) {
		char *colon = memchr(p, ':', (size_t)(end - p));
		Gitaly__FindChangedPathsResponse *r;
		Gitaly__ChangedPaths *c;
		unsigned om, nm;
		char st;
		int colons = 0;

		if (!colon)
			break;
		p = colon;
		while (*p == ':') {
			p++;
			colons++;
		}
		for (int src = 0; src < colons; src++) {
			char *q = p;
			const char *statuses;
			char *path;

			for (int f = 0; f < src; f++)
				q = strchr(q, ' ') + 1;
			assert_int_equal(sscanf(q, "%o", &om), 1);
			q = p;
			for (int f = 0; f < colons; f++)
				q = strchr(q, ' ') + 1;
			assert_int_equal(sscanf(q, "%o", &nm), 1);
			statuses = strrchr(p, ' ') + 1;
			st = statuses[src];
			path = p + strlen(p) + 1;
			assert_true(m < call->n_sent);
			r = (Gitaly__FindChangedPathsResponse *)call->sent[m];
			c = r->paths[i];
			assert_int_equal(c->path.len, strlen(path));
			assert_memory_equal(c->path.data, path, strlen(path));
			assert_int_equal(c->old_mode, (int)om);
			assert_int_equal(c->new_mode, (int)nm);
			assert_int_equal(c->status, st == 'A'   ? GITALY__CHANGED_PATHS__STATUS__ADDED
						    : st == 'M' ? GITALY__CHANGED_PATHS__STATUS__MODIFIED
						    : st == 'D' ? GITALY__CHANGED_PATHS__STATUS__DELETED
						    : st == 'T' ? GITALY__CHANGED_PATHS__STATUS__TYPE_CHANGE
								: GITALY__CHANGED_PATHS__STATUS__COPIED);
			total++;
			if (++i == r->n_paths) {
				m++;
				i = 0;
			}
		}
		p = p + strlen(p) + 1;
		p += strlen(p) + 1;
	}
	assert_int_equal(m, call->n_sent);
	if (!total)
		fail_msg("no changes: git said %zu bytes, we sent %zu", want->len, call->n_sent);
}

static void test_find_changed_paths(void **state)
{
	Gitaly__FindChangedPathsRequest req = GITALY__FIND_CHANGED_PATHS_REQUEST__INIT;
	Gitaly__FindChangedPathsRequest__Request r1 = GITALY__FIND_CHANGED_PATHS_REQUEST__REQUEST__INIT;
	Gitaly__FindChangedPathsRequest__Request r2 = GITALY__FIND_CHANGED_PATHS_REQUEST__REQUEST__INIT;
	Gitaly__FindChangedPathsRequest__Request__CommitRequest cr =
		GITALY__FIND_CHANGED_PATHS_REQUEST__REQUEST__COMMIT_REQUEST__INIT;
	Gitaly__FindChangedPathsRequest__Request__TreeRequest tr =
		GITALY__FIND_CHANGED_PATHS_REQUEST__REQUEST__TREE_REQUEST__INIT;
	Gitaly__FindChangedPathsRequest__Request *reqs[2] = { &r1, &r2 };
	char *parents[1] = { "c1" };
	struct rpc_call call;
	struct error err = ERROR_INIT;
	struct buf want;

	(void)state;
	req.repository = &repo;
	r1.type_case = GITALY__FIND_CHANGED_PATHS_REQUEST__REQUEST__TYPE_COMMIT_REQUEST;
	r1.commit_request = &cr;
	cr.commit_revision = "c2";
	r2.type_case = GITALY__FIND_CHANGED_PATHS_REQUEST__REQUEST__TYPE_TREE_REQUEST;
	r2.tree_request = &tr;
	tr.left_tree_revision = "c2^{tree}";
	tr.right_tree_revision = "c3";
	req.n_requests = 2;
	req.requests = reqs;
	assert_int_equal(invoke("FindChangedPaths", &req.base, &call, &err), 0);
	{
		/* diff-tree --stdin wants object ids. */
		struct buf ids;
		char in[300];
		char *a, *b, *c;

		assert_int_equal(git(&ids, "rev-parse", "c2", "c2^{tree}", "c3^{tree}", NULL), 0);
		a = strtok_r(ids.data, "\n", &c);
		b = strtok_r(NULL, "\n", &c);
		c = strtok_r(NULL, "\n", &c);
		snprintf(in, sizeof(in), "%s\n%s %s\n", a, b, c);
		assert_int_equal(run(&want, in,
				     (const char *[]){ "git", "--git-dir", repo_path, "diff-tree", "-z",
						       "--stdin", "-r", "--no-renames", "--no-commit-id",
						       "--diff-filter=AMDTC", "-m", NULL }),
				 0);
		free(ids.data);
	}
	check_changed(&call, &want);
	free(want.data);
	call_reset(&call);

	/* Explicit parents, and a merge commit with -m and with -c. */
	cr.n_parent_commit_revisions = 1;
	cr.parent_commit_revisions = parents;
	req.n_requests = 1;
	assert_int_equal(invoke("FindChangedPaths", &req.base, &call, &err), 0);
	assert_int_equal(git(&want, "diff-tree", "-z", "-r", "--no-renames", "--no-commit-id",
			     "--diff-filter=AMDTC", "c1", "c2", NULL),
			 0);
	check_changed(&call, &want);
	free(want.data);
	call_reset(&call);
	cr.n_parent_commit_revisions = 0;
	cr.commit_revision = "merge";
	for (int mode = 1; mode <= 2; mode++) {
		req.merge_commit_diff_mode = mode;
		assert_int_equal(invoke("FindChangedPaths", &req.base, &call, &err), 0);
		assert_int_equal(git(&want, "diff-tree", "-z", "-r", "--no-renames", "--no-commit-id",
				     "--diff-filter=AMDTC", mode == 1 ? "-m" : "-c", "merge", NULL),
				 0);
		check_changed(&call, &want);
		free(want.data);
		call_reset(&call);
	}

	/* Errors, as upstream words them. */
	cr.commit_revision = "";
	expect_error(invoke("FindChangedPaths", &req.base, &call, &err), &err,
		     STATUS_INVALID_ARGUMENT, "resolving commit: revision cannot be empty");
	cr.commit_revision = "notfound";
	expect_error(invoke("FindChangedPaths", &req.base, &call, &err), &err, STATUS_NOT_FOUND,
		     "resolving commit: revision can not be found: \"notfound\"");
	cr.commit_revision = "c2^{tree}";
	expect_error(invoke("FindChangedPaths", &req.base, &call, &err), &err, STATUS_NOT_FOUND,
		     "resolving commit: revision can not be found: \"c2^{tree}\"");
	cr.commit_revision = "c2";
	cr.n_parent_commit_revisions = 1;
	parents[0] = "nope";
	expect_error(invoke("FindChangedPaths", &req.base, &call, &err), &err, STATUS_NOT_FOUND,
		     "resolving commit parent: revision can not be found: \"nope\"");
	req.requests = &reqs[1];
	tr.right_tree_revision = "c3:a.txt";
	expect_error(invoke("FindChangedPaths", &req.base, &call, &err), &err, STATUS_NOT_FOUND,
		     "resolving right tree: revision can not be found: \"c3:a.txt\"");
	{
		char *commits[1] = { "c2" };
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
		req.n_commits = 1;
		req.commits = commits;
		expect_error(invoke("FindChangedPaths", &req.base, &call, &err), &err,
			     STATUS_INVALID_ARGUMENT, "cannot specify both commits and requests");
		/* The deprecated commits field alone. */
		req.n_requests = 0;
		assert_int_equal(invoke("FindChangedPaths", &req.base, &call, &err), 0);
		req.n_commits = 0;
#pragma GCC diagnostic pop
		assert_int_equal(git(&want, "diff-tree", "-z", "-r", "--no-renames", "--no-commit-id",
				     "--diff-filter=AMDTC", "-m", "c2", NULL),
				 0);
		check_changed(&call, &want);
		free(want.data);
		call_reset(&call);
	}
	req.repository = NULL;
	expect_error(invoke("FindChangedPaths", &req.base, &call, &err), &err,
		     STATUS_INVALID_ARGUMENT, "repository not set");
}

/* --- GetPatchID ------------------------------------------------------------------------ */

static void test_patch_id(void **state)
{
	Gitaly__GetPatchIDRequest req = GITALY__GET_PATCH_IDREQUEST__INIT;
	struct rpc_call call;
	struct error err = ERROR_INIT;
	struct buf diff, want;
	char *sp;

	(void)state;
	req.repository = &repo;
	req.old_revision.data = (uint8_t *)"c1";
	req.old_revision.len = 2;
	req.new_revision.data = (uint8_t *)"c3";
	req.new_revision.len = 2;
	if (invoke("GetPatchID", &req.base, &call, &err) < 0)
		fail_msg("GetPatchID: %s", err.message);
	assert_int_equal(git(&diff, "diff", "--full-index", "c1", "c3", NULL), 0);
	assert_int_equal(run(&want, diff.data, (const char *[]){ "git", "patch-id", "--stable", NULL }), 0);
	sp = strchr(want.data, ' ');
	assert_non_null(sp);
	*sp = '\0';
	assert_string_equal(((Gitaly__GetPatchIDResponse *)call.sent[0])->patch_id, want.data);
	free(diff.data);
	free(want.data);
	call_reset(&call);

	req.new_revision.data = (uint8_t *)"c1";
	expect_error(invoke("GetPatchID", &req.base, &call, &err), &err, STATUS_FAILED_PRECONDITION,
		     "no difference between old and new revision");
	req.new_revision.data = (uint8_t *)"zz";
	expect_error(invoke("GetPatchID", &req.base, &call, &err), &err, STATUS_INTERNAL,
		     "waiting for git-diff: exit status 128");
	req.new_revision.data = (uint8_t *)"-p";
	expect_error(invoke("GetPatchID", &req.base, &call, &err), &err, STATUS_INTERNAL,
		     "spawning diff: positional arg \"-p\" cannot start with dash '-': invalid argument");
	req.new_revision.len = 0;
	expect_error(invoke("GetPatchID", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "empty NewRevision");
	req.old_revision.len = 0;
	expect_error(invoke("GetPatchID", &req.base, &call, &err), &err, STATUS_INVALID_ARGUMENT,
		     "empty OldRevision");
	call_reset(&call);
}

static void test_table(void **state)
{
	const ProtobufCServiceDescriptor *d = &gitaly__diff_service__descriptor;

	(void)state;
	assert_string_equal(svc->name, "gitaly.DiffService");
	assert_int_equal(svc->n_methods, d->n_methods);
	for (unsigned i = 0; i < d->n_methods; i++) {
		assert_string_equal(svc->methods[i].name, d->methods[i].name);
		assert_ptr_equal(svc->methods[i].request, d->methods[i].input);
		assert_ptr_equal(svc->methods[i].response, d->methods[i].output);
		assert_non_null(svc->methods[i].handler);
		assert_int_equal(svc->methods[i].op, RPC_OP_ACCESSOR);
		assert_int_equal(svc->methods[i].type,
				 strcmp(d->methods[i].name, "GetPatchID") ? RPC_SERVER_STREAM : RPC_UNARY);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_commit_diff_matches_git),
		cmocka_unit_test(test_commit_diff_chunks_and_paths),
		cmocka_unit_test(test_commit_diff_limits),
		cmocka_unit_test(test_commit_diff_modes),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_commit_delta),
		cmocka_unit_test(test_raw_diff_and_patch),
		cmocka_unit_test(test_diff_stats),
		cmocka_unit_test(test_find_changed_paths),
		cmocka_unit_test(test_patch_id),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
