/*
 * gitaly.GitCommit from commits read in-process. The raw object bytes are
 * parsed the way upstream's cat-file parser reads them (so odd commits —
 * missing dates, overflowing timestamps, non-UTF-8 messages, unknown
 * headers — come out identical), revisions resolve through libgit2's
 * revparse like "<rev>^{commit}" in cat-file, and trailers come from git
 * itself. This is a private encoder: the shared one (gitcommit.h, branch
 * refs) should replace it once it lands.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "git/command.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "service/commit_internal.h"

/* Upstream's bounds on commit dates and its fallback for bad ones. */
#define MAX_UNIX_COMMIT_DATE ((int64_t)1 << 53)
#define FALLBACK_DATE ((int64_t)9223371974719179006LL)

/* Trailer limits of upstream's trailer parser. */
#define MAX_TRAILERS 64
#define MAX_TRAILER_KEY 128
#define MAX_TRAILER_VALUE 512

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		abort();
	return p;
}

static void bin_set(ProtobufCBinaryData *b, const char *s, size_t len)
{
	b->data = xcalloc(len + 1, 1);
	memcpy(b->data, s, len);
	b->len = len;
}

static char *xstrndup(const char *s, size_t len)
{
	char *p = xcalloc(len + 1, 1);

	memcpy(p, s, len);
	return p;
}

/* Go's strconv.ParseInt(s, 10, 64) acceptance. */
static int parse_i64(const char *s, size_t len, int64_t *out)
{
	char buf[32];
	char *end;
	long long v;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (buf[0] == ' ' || buf[0] == '\t')
		return -1;
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || *end || end == buf)
		return -1;
	*out = v;
	return 0;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* "Name <email> 1234 +0100" with upstream's tolerance for broken lines. */
static Gitaly__CommitAuthor *parse_author(const char *s, size_t len)
{
	Gitaly__CommitAuthor *a = xcalloc(1, sizeof(*a));
	const char *lt = memchr(s, '<', len), *gt, *p, *end = s + len;
	const char *fields[3];
	size_t flen[3], nf = 0;
	size_t nlen;
	int64_t sec;

	gitaly__commit_author__init(a);
	nlen = lt ? (size_t)(lt - s) : len;
	if (nlen && s[nlen - 1] == ' ')
		nlen--;
	bin_set(&a->name, s, nlen);
	if (!lt)
		return a;
	gt = memchr(lt + 1, '>', (size_t)(end - lt - 1));
	if (!gt)
		return a;
	bin_set(&a->email, lt + 1, (size_t)(gt - lt - 1));
	for (p = gt + 1; p < end;) {
		const char *q;

		while (p < end && is_space(*p))
			p++;
		if (p == end)
			break;
		for (q = p; q < end && !is_space(*q); q++)
			;
		if (nf < 3) {
			fields[nf] = p;
			flen[nf] = (size_t)(q - p);
		}
		nf++;
		p = q;
	}
	if (nf < 1)
		return a;
	if (parse_i64(fields[0], flen[0], &sec) < 0 || sec > MAX_UNIX_COMMIT_DATE || sec < 0)
		sec = FALLBACK_DATE;
	a->date = xcalloc(1, sizeof(*a->date));
	google__protobuf__timestamp__init(a->date);
	a->date->seconds = sec;
	if (nf == 2)
		bin_set(&a->timezone, fields[1], flen[1]);
	return a;
}

static Gitaly__SignatureType signature_type(const char *v, size_t len)
{
	static const struct {
		const char *line;
		Gitaly__SignatureType type;
	} kinds[] = {
		{ "-----BEGIN SIGNED MESSAGE-----", GITALY__SIGNATURE_TYPE__X509 },
		{ "-----BEGIN PGP MESSAGE-----", GITALY__SIGNATURE_TYPE__PGP },
		{ "-----BEGIN PGP SIGNATURE-----", GITALY__SIGNATURE_TYPE__PGP },
		{ "-----BEGIN SSH SIGNATURE-----", GITALY__SIGNATURE_TYPE__SSH },
	};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i].line) == len && !memcmp(kinds[i].line, v, len))
			return kinds[i].type;
	return GITALY__SIGNATURE_TYPE__NONE;
}

static void add_parent(Gitaly__GitCommit *c, const char *v, size_t len)
{
	char **ids = realloc(c->parent_ids, (c->n_parent_ids + 1) * sizeof(*ids));

	if (!ids)
		abort();
	c->parent_ids = ids;
	ids[c->n_parent_ids++] = xstrndup(v, len);
}

int commit_gitcommit_parse(const char *oid_hex, const char *data, size_t len,
			   Gitaly__GitCommit **out, struct error *err)
{
	Gitaly__GitCommit *c = xcalloc(1, sizeof(*c));
	const char *p = data, *end = data + len;
	int body_started = 0;

	(void)err;
	gitaly__git_commit__init(c);
	c->id = xstrndup(oid_hex, strlen(oid_hex));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *lend = nl ? nl : end, *sp;
		size_t llen = (size_t)(lend - p);
		const char *line = p;

		p = nl ? nl + 1 : end;
		if (llen == 0 && nl) {
			body_started = 1;
			break;
		}
		if (llen == 0 || line[0] == ' ')
			continue;
		sp = memchr(line, ' ', llen);
		if (!sp)
			continue;
		{
			size_t klen = (size_t)(sp - line);
			const char *v = sp + 1;
			size_t vlen = (size_t)(lend - v);

#define KEY(k) (klen == sizeof(k) - 1 && !memcmp(line, k, klen))
			if (KEY("parent")) {
				add_parent(c, v, vlen);
			} else if (KEY("author")) {
				if (c->author)
					gitaly__commit_author__free_unpacked(c->author, NULL);
				c->author = parse_author(v, vlen);
			} else if (KEY("committer")) {
				if (c->committer)
					gitaly__commit_author__free_unpacked(c->committer, NULL);
				c->committer = parse_author(v, vlen);
			} else if (KEY("gpgsig") || KEY("gpgsig-sha256")) {
				c->signature_type = signature_type(v, vlen);
			} else if (KEY("tree")) {
				if (c->tree_id != protobuf_c_empty_string)
					free(c->tree_id);
				c->tree_id = xstrndup(v, vlen);
			} else if (KEY("encoding")) {
				if (c->encoding != protobuf_c_empty_string)
					free(c->encoding);
				c->encoding = xstrndup(v, vlen);
			}
#undef KEY
		}
	}
	if (body_started && p < end) {
		size_t blen = (size_t)(end - p), slen;
		const char *snl = memchr(p, '\n', blen);

		slen = snl ? (size_t)(snl - p) : blen;
		while (slen && (p[slen - 1] == '\r' || p[slen - 1] == '\n'))
			slen--;
		bin_set(&c->subject, p, slen);
		c->body_size = (int64_t)blen;
		bin_set(&c->body, p, blen > COMMIT_MAX_BODY ? COMMIT_MAX_BODY : blen);
	}
	*out = c;
	return 0;
}

/* Frees what commit_gitcommit_parse and commit_add_trailers allocated: the
 * layout is exactly what protobuf-c's free_unpacked walks with the default
 * (malloc) allocator, except default-valued strings, which we never leave
 * pointing at protobuf-c's static empty string. */
void commit_gitcommit_free(Gitaly__GitCommit *c)
{
	if (!c)
		return;
	gitaly__git_commit__free_unpacked(c, NULL);
}

int commit_read_oid(git_repository *repo, const git_oid *oid, Gitaly__GitCommit **out,
		    struct error *err)
{
	git_odb *odb = NULL;
	git_odb_object *obj = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	int rc, ret = -1;

	if (git_repository_odb(&odb, repo) < 0) {
		error_set(err, STATUS_INTERNAL, "opening object database: %s", git_error_last()->message);
		goto out;
	}
	rc = git_odb_read(&obj, odb, oid);
	if (rc == GIT_ENOTFOUND) {
		ret = 0;
		goto out;
	}
	if (rc < 0) {
		error_set(err, STATUS_INTERNAL, "reading object: %s", git_error_last()->message);
		goto out;
	}
	if (git_odb_object_type(obj) != GIT_OBJECT_COMMIT) {
		ret = 0;
		goto out;
	}
	git_oid_tostr(hex, sizeof(hex), oid);
	if (commit_gitcommit_parse(hex, git_odb_object_data(obj), git_odb_object_size(obj), out, err) < 0)
		goto out;
	ret = 1;
out:
	git_odb_object_free(obj);
	git_odb_free(odb);
	return ret;
}

int commit_resolve(git_repository *repo, const char *rev, git_object **out, struct error *err)
{
	int rc = git_revparse_single(out, repo, rev);

	if (rc == 0)
		return 1;
	*out = NULL;
	switch (rc) {
	case GIT_ENOTFOUND:
	case GIT_EAMBIGUOUS:
	case GIT_EINVALIDSPEC:
	case GIT_EPEEL:
	case GIT_EUNBORNBRANCH:
		return 0;
	default:
		/* libgit2 reports some unparsable specs as generic errors. */
		if (git_error_last() && git_error_last()->klass == GIT_ERROR_INVALID)
			return 0;
		return error_set(err, STATUS_INTERNAL, "resolving revision: %s",
				 git_error_last() ? git_error_last()->message : "unknown error");
	}
}

int commit_read_rev(git_repository *repo, const char *rev, Gitaly__GitCommit **out,
		    struct error *err)
{
	git_object *obj = NULL, *peeled = NULL;
	int ret;

	ret = commit_resolve(repo, rev, &obj, err);
	if (ret <= 0)
		goto out;
	if (git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) < 0) {
		ret = 0;
		goto out;
	}
	ret = commit_read_oid(repo, git_object_id(peeled), out, err);
out:
	git_object_free(peeled);
	git_object_free(obj);
	return ret;
}

int commit_add_trailers(struct commit_repo *r, Gitaly__GitCommit *c, struct error *err)
{
	struct git_cmd *cmd = commit_repo_git(r, "show");
	struct strbuf buf;
	struct git_result res;
	const char *s, *end;
	int ret = -1;

	strbuf_init(&buf, 1 << 20);
	git_cmd_flag(cmd, "--format=%(trailers:unfold,separator=%x00)");
	git_cmd_flag(cmd, "--no-patch");
	git_cmd_arg(cmd, c->id);
	if (git_cmd_run(cmd, NULL, 0, &buf, NULL, &res, err) < 0)
		goto out;
	if (res.exit_code != 0) {
		error_set(err, STATUS_INTERNAL, "git show: exit status %d", res.exit_code);
		goto out;
	}
	/* One line of output: the NUL-separated trailers. */
	s = buf.buf ? buf.buf : "";
	end = memchr(s, '\n', buf.len);
	if (!end)
		end = s + buf.len;
	while (s < end && c->n_trailers < MAX_TRAILERS) {
		const char *e = memchr(s, '\0', (size_t)(end - s)), *colon;

		if (!e)
			e = end;
		colon = memchr(s, ':', (size_t)(e - s));
		if (colon && colon > s) {
			const char *v = colon + 1, *ve = e;
			Gitaly__CommitTrailer *t, **arr;

			while (v < ve && is_space(*v))
				v++;
			while (ve > v && is_space(ve[-1]))
				ve--;
			if ((size_t)(colon - s) > MAX_TRAILER_KEY || (size_t)(ve - v) > MAX_TRAILER_VALUE)
				break;
			t = xcalloc(1, sizeof(*t));
			gitaly__commit_trailer__init(t);
			bin_set(&t->key, s, (size_t)(colon - s));
			bin_set(&t->value, v, (size_t)(ve - v));
			arr = realloc(c->trailers, (c->n_trailers + 1) * sizeof(*arr));
			if (!arr)
				abort();
			c->trailers = arr;
			arr[c->n_trailers++] = t;
		}
		s = e + 1;
	}
	ret = 0;
out:
	strbuf_release(&buf);
	return ret;
}

int commit_send_commits(struct commit_chunker *ch, void **items, size_t n, struct error *err)
{
	/* Every "repeated GitCommit commits = 1" response has this layout. */
	Gitaly__ListCommitsResponse resp;
	const ProtobufCMessageDescriptor *desc = ch->ctx;

	if (desc->sizeof_message != sizeof(resp))
		return error_set(err, STATUS_INTERNAL, "unexpected response type");
	protobuf_c_message_init(desc, &resp);
	resp.n_commits = n;
	resp.commits = (Gitaly__GitCommit **)items;
	return rpc_call_send(ch->call, &resp.base, err);
}
