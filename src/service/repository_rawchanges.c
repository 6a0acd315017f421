/*
 * GetRawChanges of RepositoryService: the changed blobs between two
 * revisions from `git diff --raw -z <from> <to>`, each resolved to its full
 * object id and size with `git cat-file --batch-check`, sent in messages
 * of up to 1 MiB of changes as upstream's chunker does. A zero object id as
 * `from` means the empty tree; as `to`, nothing is sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "git/command.h"
#include "git/repo_cache.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

#define ZERO_OID_SHA1 "0000000000000000000000000000000000000000"
#define ZERO_OID_SHA256 "0000000000000000000000000000000000000000000000000000000000000000"
#define EMPTY_TREE_SHA1 "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
#define EMPTY_TREE_SHA256 "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"

/* The zero id of the repository's object format (upstream's ZeroOID). */
static const char *zero_oid(const char *repo_path)
{
	return repo_cache_is_sha256(repo_path) ? ZERO_OID_SHA256 : ZERO_OID_SHA1;
}

/* The empty tree of the repository's object format. */
static const char *empty_tree_oid(const char *repo_path)
{
	return repo_cache_is_sha256(repo_path) ? EMPTY_TREE_SHA256 : EMPTY_TREE_SHA1;
}
/* Cap on git diff's raw output and on cat-file's answers. */
#define RAW_OUTPUT_CAP ((size_t)256 * 1024 * 1024)
/* Upstream's chunker flushes before a message would reach 1 MiB. */
#define RAW_CHUNK_BYTES ((size_t)1024 * 1024)
#define SUBMODULE_MODE "160000"

struct raw_change {
	char src_mode[8], dst_mode[8];
	char *src_sha, *dst_sha, *status, *src_path, *dst_path; /* into the diff output */
	char full_oid[65];
	int32_t old_mode, new_mode;
	int64_t size;
	int resolve; /* blob looked up (not a submodule) */
};

/* `git cat-file --batch-check` of newline-separated names; out gets one
 * answer line per name. */
static int batch_check(const char *repo_path, const struct service_git_env *genv,
		       const struct strbuf *names, struct strbuf *out, struct error *err)
{
	struct git_cmd *cmd = service_git_new(repo_path, genv, "cat-file");
	struct git_result res;

	git_cmd_flag(cmd, "--batch-check");
	if (git_cmd_run(cmd, names->buf, names->len, out, NULL, &res, err) < 0)
		return -1;
	if (res.exit_code != 0)
		return error_set(err, STATUS_INTERNAL, "cat-file: exit status %d", res.exit_code);
	return 0;
}

/* The next answer line of a batch-check output; NULL at the end. */
static char *next_line(struct strbuf *out, size_t *pos)
{
	char *line, *nl;

	if (*pos >= out->len)
		return NULL;
	line = out->buf + *pos;
	nl = memchr(line, '\n', out->len - *pos);
	if (nl) {
		*nl = '\0';
		*pos = (size_t)(nl - out->buf) + 1;
	} else {
		*pos = out->len;
	}
	return line;
}

/* Upstream's check: every non-zero revision must name an object. */
static int validate_revisions(const char *repo_path, const struct service_git_env *genv,
			      const char *from, const char *to, struct error *err)
{
	const char *revs[2] = { from, to }, *names[2] = { "from", "to" };
	struct strbuf in, out;
	size_t pos = 0;
	int ret = -1, asked[2] = { 0, 0 };

	strbuf_init(&in, 1024 * 1024);
	strbuf_init(&out, 64 * 1024);
	for (int i = 0; i < 2; i++) {
		if (!strcmp(revs[i], zero_oid(repo_path)) || strchr(revs[i], '\n'))
			continue;
		if (strbuf_adds(&in, revs[i]) < 0 || strbuf_addch(&in, '\n') < 0) {
			error_set(err, STATUS_INVALID_ARGUMENT, "revision too long");
			goto out;
		}
		asked[i] = 1;
	}
	if (in.len && batch_check(repo_path, genv, &in, &out, err) < 0)
		goto out;
	for (int i = 0; i < 2; i++) {
		const char *line;
		int ok;

		if (!strcmp(revs[i], zero_oid(repo_path)))
			continue;
		line = asked[i] ? next_line(&out, &pos) : NULL;
		ok = line && !strstr(line, " missing") && !strstr(line, " ambiguous") && *revs[i];
		if (!ok) {
			struct strbuf msg = STRBUF_INIT;

			strbuf_addf(&msg, "invalid '%s' revision: ", names[i]);
			service_go_quote(&msg, revs[i], strlen(revs[i]));
			error_set(err, STATUS_INVALID_ARGUMENT, "%s", msg.buf);
			strbuf_release(&msg);
			goto out;
		}
	}
	ret = 0;
out:
	strbuf_release(&in);
	strbuf_release(&out);
	return ret;
}

/* Parses one `:<mode> <mode> <sha> <sha> <status>\0<path>\0[<path>\0]` record. */
static int parse_record(char *buf, size_t len, size_t *pos, struct raw_change *c, struct error *err)
{
	char *end = buf + len, *p = buf + *pos, *nul, *f[5];
	int n = 0;

	if (*p != ':')
		return error_set(err, STATUS_INTERNAL, "read diff: expected leading colon");
	nul = memchr(p, '\0', (size_t)(end - p));
	if (!nul)
		return error_set(err, STATUS_INTERNAL, "read diff: unexpected EOF");
	p++;
	while (p < nul && n < 5) {
		char *sp = memchr(p, ' ', (size_t)(nul - p));

		f[n++] = p;
		if (!sp)
			break;
		*sp = '\0';
		p = sp + 1;
	}
	if (n != 5 || strlen(f[0]) >= sizeof(c->src_mode) || strlen(f[1]) >= sizeof(c->dst_mode))
		return error_set(err, STATUS_INTERNAL, "read diff: malformed record");
	memcpy(c->src_mode, f[0], strlen(f[0]) + 1);
	memcpy(c->dst_mode, f[1], strlen(f[1]) + 1);
	c->src_sha = f[2];
	c->dst_sha = f[3];
	c->status = f[4];
	p = nul + 1;
	if (p >= end || !(nul = memchr(p, '\0', (size_t)(end - p))))
		return error_set(err, STATUS_INTERNAL, "read diff: unexpected EOF");
	c->src_path = p;
	c->dst_path = NULL;
	p = nul + 1;
	if (c->status[0] == 'R' || c->status[0] == 'C') {
		if (p >= end || !(nul = memchr(p, '\0', (size_t)(end - p))))
			return error_set(err, STATUS_INTERNAL, "read diff: unexpected EOF");
		c->dst_path = p;
		p = nul + 1;
	}
	*pos = (size_t)(p - buf);
	return 0;
}

static int all_zero(const char *s)
{
	return *s && strspn(s, "0") == strlen(s);
}

static int parse_mode(const char *s, int32_t *out)
{
	char *end = NULL;
	long v = strtol(s, &end, 8);

	if (!*s || *end || v < 0 || v > INT32_MAX)
		return -1;
	*out = (int32_t)v;
	return 0;
}

static void fill_change(const struct raw_change *c, Gitaly__GetRawChangesResponse__RawChange *m)
{
	const char *src = c->src_path, *dst = c->dst_path;

	gitaly__get_raw_changes_response__raw_change__init(m);
	m->old_mode = c->old_mode;
	m->new_mode = c->new_mode;
	m->new_path_bytes.data = (uint8_t *)src;
	m->new_path_bytes.len = strlen(src);
	m->old_path_bytes = m->new_path_bytes;
	switch (c->status[0]) {
	case 'A':
		m->operation = GITALY__GET_RAW_CHANGES_RESPONSE__RAW_CHANGE__OPERATION__ADDED;
		m->old_path_bytes.data = NULL;
		m->old_path_bytes.len = 0;
		break;
	case 'C':
		m->operation = GITALY__GET_RAW_CHANGES_RESPONSE__RAW_CHANGE__OPERATION__COPIED;
		m->new_path_bytes.data = (uint8_t *)dst;
		m->new_path_bytes.len = strlen(dst);
		break;
	case 'D':
		m->operation = GITALY__GET_RAW_CHANGES_RESPONSE__RAW_CHANGE__OPERATION__DELETED;
		m->new_path_bytes.data = NULL;
		m->new_path_bytes.len = 0;
		break;
	case 'M':
		m->operation = GITALY__GET_RAW_CHANGES_RESPONSE__RAW_CHANGE__OPERATION__MODIFIED;
		break;
	case 'R':
		m->operation = GITALY__GET_RAW_CHANGES_RESPONSE__RAW_CHANGE__OPERATION__RENAMED;
		m->new_path_bytes.data = (uint8_t *)dst;
		m->new_path_bytes.len = strlen(dst);
		break;
	case 'T':
		m->operation = GITALY__GET_RAW_CHANGES_RESPONSE__RAW_CHANGE__OPERATION__TYPE_CHANGED;
		break;
	default:
		m->operation = GITALY__GET_RAW_CHANGES_RESPONSE__RAW_CHANGE__OPERATION__UNKNOWN;
	}
	if (c->resolve) {
		m->blob_id = (char *)c->full_oid;
		m->size = c->size;
	}
}

/* Sends changes[0..n) in messages of below RAW_CHUNK_BYTES, as upstream. */
static int send_changes(struct rpc_call *call, const struct raw_change *changes, size_t n,
			struct error *err)
{
	Gitaly__GetRawChangesResponse__RawChange *msgs = calloc(n + 1, sizeof(*msgs));
	Gitaly__GetRawChangesResponse__RawChange **ptrs = calloc(n + 1, sizeof(*ptrs));
	size_t first = 0, size = 0;
	int ret = -1;

	if (!msgs || !ptrs) {
		error_set(err, STATUS_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i <= n; i++) {
		size_t it = 0;

		if (i < n) {
			fill_change(&changes[i], &msgs[i]);
			ptrs[i] = &msgs[i];
			it = protobuf_c_message_get_packed_size(&msgs[i].base);
		}
		if ((i == n && size > 0) || (i < n && size > 0 && it + size >= RAW_CHUNK_BYTES)) {
			Gitaly__GetRawChangesResponse resp = GITALY__GET_RAW_CHANGES_RESPONSE__INIT;

			resp.raw_changes = ptrs + first;
			resp.n_raw_changes = i - first;
			if (rpc_call_send(call, &resp.base, err) < 0) {
				error_prefix(err, "send response");
				goto out;
			}
			first = i;
			size = 0;
		}
		size += it;
	}
	ret = 0;
out:
	free(msgs);
	free(ptrs);
	return ret;
}

int repo_raw_changes(struct rpc_call *call, const char *repo_path,
		     const struct service_git_env *genv, const char *from, const char *to,
		     struct error *err)
{
	struct strbuf diff, names, answers;
	struct raw_change *changes = NULL;
	size_t n = 0, alloc = 0, pos = 0, apos = 0;
	struct git_cmd *cmd;
	struct git_result res;
	int ret = -1;

	strbuf_init(&diff, RAW_OUTPUT_CAP);
	strbuf_init(&names, RAW_OUTPUT_CAP);
	strbuf_init(&answers, RAW_OUTPUT_CAP);
	if (!strcmp(to, zero_oid(repo_path))) {
		ret = 0;
		goto out;
	}
	if (!strcmp(from, zero_oid(repo_path)))
		from = empty_tree_oid(repo_path);
	cmd = service_git_new(repo_path, genv, "diff");
	git_cmd_flag(cmd, "--raw");
	git_cmd_flag(cmd, "-z");
	git_cmd_arg(cmd, from);
	git_cmd_arg(cmd, to);
	if (git_cmd_run(cmd, NULL, 0, &diff, NULL, &res, err) < 0) {
		error_prefix(err, "start git diff");
		goto out;
	}
	if (res.exit_code != 0) {
		error_set(err, STATUS_INTERNAL, "wait git diff: exit status %d", res.exit_code);
		goto out;
	}
	while (pos < diff.len) {
		struct raw_change *c;

		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 64;
			struct raw_change *nc = realloc(changes, na * sizeof(*nc));

			if (!nc) {
				error_set(err, STATUS_INTERNAL, "out of memory");
				goto out;
			}
			changes = nc;
			alloc = na;
		}
		c = &changes[n];
		memset(c, 0, sizeof(*c));
		if (parse_record(diff.buf, diff.len, &pos, c, err) < 0)
			goto out;
		n++;
		if (!c->status[0]) {
			error_set(err, STATUS_INTERNAL, "build change from diff line: empty diff status");
			goto out;
		}
		{
			const char *sha = all_zero(c->dst_sha) ? c->src_sha : c->dst_sha;
			const char *mode = all_zero(c->dst_sha) ? c->src_mode : c->dst_mode;
			if (parse_mode(c->dst_mode, &c->new_mode) < 0 ||
			    parse_mode(c->src_mode, &c->old_mode) < 0) {
				error_set(err, STATUS_INTERNAL,
					  "build change from diff line: invalid mode");
				goto out;
			}
			c->resolve = strcmp(mode, SUBMODULE_MODE) != 0;
			if (c->resolve &&
			    (strbuf_adds(&names, sha) < 0 || strbuf_addch(&names, '\n') < 0)) {
				error_set(err, STATUS_RESOURCE_EXHAUSTED, "too many changes");
				goto out;
			}
		}
	}
	if (names.len && batch_check(repo_path, genv, &names, &answers, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct raw_change *c = &changes[i];
		const char *sha = all_zero(c->dst_sha) ? c->src_sha : c->dst_sha;
		char *line, oid[65], type[16];
		long long size;

		if (!c->resolve)
			continue;
		line = next_line(&answers, &apos);
		if (!line || sscanf(line, "%64s %15s %lld", oid, type, &size) != 3) {
			struct strbuf msg = STRBUF_INIT;

			strbuf_adds(&msg, "build change from diff line: find ");
			service_go_quote(&msg, sha, strlen(sha));
			strbuf_adds(&msg, ": object not found");
			error_set(err, STATUS_INTERNAL, "%s", msg.buf);
			strbuf_release(&msg);
			goto out;
		}
		memcpy(c->full_oid, oid, strlen(oid) + 1);
		c->size = size;
	}
	ret = send_changes(call, changes, n, err);
out:
	free(changes);
	strbuf_release(&diff);
	strbuf_release(&names);
	strbuf_release(&answers);
	return ret;
}

int repository_get_raw_changes_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__GetRawChangesRequest *req =
		(const Gitaly__GetRawChangesRequest *)rpc_call_request(call);
	struct service_git_env genv = { 0 };
	char *path = NULL;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	if (validate_revisions(path, &genv, req->from_revision, req->to_revision, err) < 0)
		goto out;
	if (repo_raw_changes(call, path, &genv, req->from_revision, req->to_revision, err) < 0) {
		err->code = STATUS_INTERNAL;
		goto out;
	}
	ret = 0;
out:
	service_git_env_release(&genv);
	free(path);
	return ret;
}
