/*
 * Raw commit and tag objects to gitaly.GitCommit / gitaly.Tag. The parser
 * walks the header line by line like upstream's catfile parser (keys split
 * at the first space, continuation lines skipped, the first blank line
 * starts the message), so the result matches what GitLab gets from upstream
 * for the same bytes. Objects come from libgit2's object database, which
 * serves loose, packed and quarantined objects alike.
 */
#include "service/gitcommit.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/banned.h"
#include "base/strbuf.h"
#include "git/catfile.h"
#include "git/command.h"

#define MAX_PEEL_DEPTH 64

/* Allocation failures abort, like the call arena does. */
static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		abort();
	return p;
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static void set_bytes(ProtobufCBinaryData *b, const char *s, size_t n)
{
	b->data = (uint8_t *)xstrndup(s, n);
	b->len = n;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

Gitaly__SignatureType gitcommit_signature_type(const char *line, size_t len)
{
	static const struct {
		const char *text;
		Gitaly__SignatureType type;
	} kinds[] = {
		{ "-----BEGIN SIGNED MESSAGE-----", GITALY__SIGNATURE_TYPE__X509 },
		{ "-----BEGIN PGP MESSAGE-----", GITALY__SIGNATURE_TYPE__PGP },
		{ "-----BEGIN PGP SIGNATURE-----", GITALY__SIGNATURE_TYPE__PGP },
		{ "-----BEGIN SSH SIGNATURE-----", GITALY__SIGNATURE_TYPE__SSH },
	};

	if (len && line[len - 1] == '\n')
		len--;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i].text) == len && memcmp(kinds[i].text, line, len) == 0)
			return kinds[i].type;
	return GITALY__SIGNATURE_TYPE__NONE;
}

/* Go's strconv.ParseInt(s, 10, 64): optional sign, digits only, no overflow. */
static int parse_int64(const char *s, size_t n, long long *out)
{
	int neg = 0;
	unsigned long long v = 0;
	size_t i = 0;

	if (n && (s[0] == '+' || s[0] == '-')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == n)
		return -1;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
		if (v > (unsigned long long)INT64_MAX + (unsigned)neg)
			return -1;
	}
	*out = neg ? (long long)(0 - v) : (long long)v;
	return 0;
}

/* "Name <email> 1234567890 +0100" as upstream's parseCommitAuthor. */
static Gitaly__CommitAuthor *parse_author(const char *s, size_t n)
{
	Gitaly__CommitAuthor *a = xmalloc(sizeof(*a));
	const char *lt = memchr(s, '<', n), *gt, *p, *end = s + n;
	const char *fields[3];
	size_t flen[3], nf = 0;
	long long sec;

	gitaly__commit_author__init(a);
	if (!lt) {
		size_t nl = n;

		if (nl && s[nl - 1] == ' ')
			nl--;
		set_bytes(&a->name, s, nl);
		return a;
	}
	{
		size_t nl = (size_t)(lt - s);

		if (nl && s[nl - 1] == ' ')
			nl--;
		set_bytes(&a->name, s, nl);
	}
	gt = memchr(lt + 1, '>', (size_t)(end - lt - 1));
	if (!gt)
		return a;
	set_bytes(&a->email, lt + 1, (size_t)(gt - lt - 1));

	/* strings.Fields on the rest; only the first two fields matter, and
	 * the timezone only when there are exactly two. */
	p = gt + 1;
	while (p < end) {
		const char *q;

		while (p < end && is_space(*p))
			p++;
		if (p == end)
			break;
		q = p;
		while (q < end && !is_space(*q))
			q++;
		if (nf < 3) {
			fields[nf] = p;
			flen[nf] = (size_t)(q - p);
		}
		nf++;
		p = q;
	}
	if (nf < 1)
		return a;
	if (parse_int64(fields[0], flen[0], &sec) < 0 || sec > (1LL << 53) || sec < 0)
		sec = GITCOMMIT_FALLBACK_SECONDS;
	a->date = xmalloc(sizeof(*a->date));
	google__protobuf__timestamp__init(a->date);
	a->date->seconds = sec;
	if (nf == 2)
		set_bytes(&a->timezone, fields[1], flen[1]);
	return a;
}

/* Walks header lines; calls fn(key, value) for each "key value" line and
 * returns the offset of the message (len when the header runs to EOF,
 * *has_body = 0). */
typedef void (*header_fn)(void *ctx, const char *key, size_t klen, const char *val, size_t vlen);

static size_t walk_header(const char *raw, size_t len, header_fn fn, void *ctx, int *has_body)
{
	size_t pos = 0;

	*has_body = 0;
	while (pos < len) {
		const char *line = raw + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		const char *sp;

		pos += n + (nl ? 1 : 0);
		if (!nl && n == 0)
			break;
		if (nl && n == 0) {
			*has_body = 1;
			return pos;
		}
		if (line[0] == ' ')
			continue;
		sp = memchr(line, ' ', n);
		if (!sp)
			continue;
		fn(ctx, line, (size_t)(sp - line), sp + 1, n - (size_t)(sp - line) - 1);
	}
	return len;
}

static int key_is(const char *key, size_t klen, const char *want)
{
	return strlen(want) == klen && memcmp(key, want, klen) == 0;
}

static void commit_header(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
	Gitaly__GitCommit *c = ctx;

	if (key_is(key, klen, "parent")) {
		c->parent_ids = realloc(c->parent_ids, (c->n_parent_ids + 1) * sizeof(char *));
		if (!c->parent_ids)
			abort();
		c->parent_ids[c->n_parent_ids++] = xstrndup(val, vlen);
	} else if (key_is(key, klen, "author")) {
		if (c->author)
			gitaly__commit_author__free_unpacked(c->author, NULL);
		c->author = parse_author(val, vlen);
	} else if (key_is(key, klen, "committer")) {
		if (c->committer)
			gitaly__commit_author__free_unpacked(c->committer, NULL);
		c->committer = parse_author(val, vlen);
	} else if (key_is(key, klen, "gpgsig") || key_is(key, klen, "gpgsig-sha256")) {
		c->signature_type = gitcommit_signature_type(val, vlen);
	} else if (key_is(key, klen, "tree")) {
		if (c->tree_id != protobuf_c_empty_string)
			free(c->tree_id);
		c->tree_id = xstrndup(val, vlen);
	} else if (key_is(key, klen, "encoding")) {
		if (c->encoding != protobuf_c_empty_string)
			free(c->encoding);
		c->encoding = xstrndup(val, vlen);
	}
}

int gitcommit_parse(const char *oid_hex, const char *raw, size_t len, Gitaly__GitCommit **out,
		    struct error *err)
{
	Gitaly__GitCommit *c = xmalloc(sizeof(*c));
	size_t body_off;
	int has_body;

	(void)err;
	gitaly__git_commit__init(c);
	c->id = xstrndup(oid_hex, strlen(oid_hex));
	body_off = walk_header(raw, len, commit_header, c, &has_body);
	if (has_body && body_off < len) {
		const char *body = raw + body_off;
		size_t blen = len - body_off, slen;
		const char *nl = memchr(body, '\n', blen);

		slen = nl ? (size_t)(nl - body) : blen;
		while (slen && (body[slen - 1] == '\r' || body[slen - 1] == '\n'))
			slen--;
		set_bytes(&c->subject, body, slen);
		c->body_size = (int64_t)blen;
		set_bytes(&c->body, body, blen > GITCOMMIT_MAX_MESSAGE ? GITCOMMIT_MAX_MESSAGE : blen);
	}
	*out = c;
	return 0;
}

static const char *type_name(git_object_t t)
{
	const char *s = git_object_type2string(t);

	return s && *s ? s : "unknown";
}

int gitcommit_read_raw(git_repository *repo, const git_oid *oid, git_object_t *type, char **data,
		       size_t *len, struct error *err)
{
	git_odb *odb = NULL;
	git_odb_object *obj = NULL;
	int rc, ret = -1;

	*data = NULL;
	if (git_repository_odb(&odb, repo) < 0) {
		const git_error *e = git_error_last();

		error_set(err, STATUS_INTERNAL, "opening object database: %s", e ? e->message : "");
		goto out;
	}
	rc = git_odb_read(&obj, odb, oid);
	if (rc == GIT_ENOTFOUND) {
		error_set(err, STATUS_NOT_FOUND, "object not found");
		goto out;
	}
	if (rc < 0) {
		const git_error *e = git_error_last();

		error_set(err, STATUS_INTERNAL, "reading object: %s", e ? e->message : "");
		goto out;
	}
	*type = git_odb_object_type(obj);
	*len = git_odb_object_size(obj);
	*data = xmalloc(*len + 1);
	memcpy(*data, git_odb_object_data(obj), *len);
	(*data)[*len] = '\0';
	ret = 0;
out:
	git_odb_object_free(obj);
	git_odb_free(odb);
	return ret;
}

/* Raw object bytes through either kind of handle; hex is a full id. */
int gitcommit_read_raw_h(const struct repo_handle *h, const char *hex, git_object_t *type,
			 char **data, size_t *len, struct error *err)
{
	char oid[CATFILE_OID_MAX];
	git_oid bin;
	int rc;

	*data = NULL;
	if (!h->cf) {
		/* git_oid_fromstr would read the first 40 digits of a longer id. */
		if (strlen(hex) != GIT_OID_HEXSZ || git_oid_fromstr(&bin, hex) < 0)
			return error_set(err, STATUS_NOT_FOUND, "object not found");
		return gitcommit_read_raw(h->repo, &bin, type, data, len, err);
	}
	rc = catfile_contents(h->cf, hex, oid, type, data, len, 0, err);
	if (rc < 0) {
		error_prefix(err, "reading object");
		return -1;
	}
	if (rc == 0)
		return error_set(err, STATUS_NOT_FOUND, "object not found");
	return 0;
}

/* The "object <hex>" header of a raw tag, copied into out (65 bytes). */
static int tag_target(const char *raw, size_t len, char *out)
{
	const char *nl;
	size_t n;

	if (len < 7 || memcmp(raw, "object ", 7) != 0)
		return -1;
	nl = memchr(raw, '\n', len);
	n = (nl ? (size_t)(nl - raw) : len) - 7;
	if ((n != 40 && n != 64) || strspn(raw + 7, "0123456789abcdef") < n)
		return -1;
	memcpy(out, raw + 7, n);
	out[n] = '\0';
	return 0;
}

/* Peels hex through tags. Returns 0 with the final object's id and bytes. */
static int peel(const struct repo_handle *h, const char *hex, char *final, git_object_t *type,
		char **data, size_t *len, struct error *err)
{
	char cur[CATFILE_OID_MAX];

	if (strlen(hex) >= sizeof(cur))
		return error_set(err, STATUS_NOT_FOUND, "object not found");
	memcpy(cur, hex, strlen(hex) + 1);
	for (int depth = 0; depth < MAX_PEEL_DEPTH; depth++) {
		char next[CATFILE_OID_MAX];

		if (gitcommit_read_raw_h(h, cur, type, data, len, err) < 0)
			return -1;
		if (*type != GIT_OBJECT_TAG) {
			memcpy(final, cur, strlen(cur) + 1);
			return 0;
		}
		if (tag_target(*data, *len, next) < 0) {
			free(*data);
			*data = NULL;
			return error_set(err, STATUS_INTERNAL, "malformed tag object");
		}
		free(*data);
		*data = NULL;
		memcpy(cur, next, sizeof(next));
	}
	return error_set(err, STATUS_INTERNAL, "tag chain too deep");
}

int gitcommit_read_h(const struct repo_handle *h, const char *hex, Gitaly__GitCommit **out,
		     struct error *err)
{
	char *data = NULL, final[CATFILE_OID_MAX];
	size_t len;
	git_object_t type;
	int ret = -1;

	*out = NULL;
	if (peel(h, hex, final, &type, &data, &len, err) < 0)
		goto out;
	if (type != GIT_OBJECT_COMMIT) {
		error_set(err, STATUS_INVALID_ARGUMENT, "expected commit, got %s", type_name(type));
		goto out;
	}
	ret = gitcommit_parse(final, data, len, out, err);
out:
	free(data);
	return ret;
}

int gitcommit_read(git_repository *repo, const git_oid *oid, Gitaly__GitCommit **out,
		   struct error *err)
{
	struct repo_handle h = { repo, NULL };
	char hex[GIT_OID_HEXSZ + 1];

	git_oid_tostr(hex, sizeof(hex), oid);
	return gitcommit_read_h(&h, hex, out, err);
}

struct tag_ctx {
	Gitaly__Tag *tag;
	int have_name;
	char *object, *type;
};

static void tag_header(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct tag_ctx *t = ctx;

	if (key_is(key, klen, "object")) {
		free(t->object);
		t->object = xstrndup(val, vlen);
	} else if (key_is(key, klen, "type")) {
		free(t->type);
		t->type = xstrndup(val, vlen);
	} else if (key_is(key, klen, "tag")) {
		if (!t->have_name && t->tag->name.len == 0) {
			free(t->tag->name.data);
			set_bytes(&t->tag->name, val, vlen);
		}
	} else if (key_is(key, klen, "tagger")) {
		if (t->tag->tagger)
			gitaly__commit_author__free_unpacked(t->tag->tagger, NULL);
		t->tag->tagger = parse_author(val, vlen);
	}
}

int gitcommit_tag_signature(const char *content, size_t len, size_t *sig_off, size_t *sig_len)
{
	static const char marker[] = "-----BEGIN";
	const size_t mlen = sizeof(marker) - 1;

	*sig_off = len;
	*sig_len = 0;
	for (size_t i = 0; i + mlen <= len; i++) {
		if (memcmp(content + i, marker, mlen) != 0)
			continue;
		if (i == 0)
			return 0; /* upstream requires the block after some text */
		*sig_off = i;
		*sig_len = len - i;
		if (*sig_len && content[len - 1] == '\n')
			(*sig_len)--;
		return 1;
	}
	return 0;
}

int gitcommit_parse_tag(const char *oid_hex, const char *raw, size_t len, const void *name,
			size_t name_len, Gitaly__Tag **out, char **tagged_oid, char **tagged_type,
			struct error *err)
{
	struct tag_ctx t = { 0 };
	size_t msg_off;
	int has_body;

	(void)err;
	t.tag = xmalloc(sizeof(*t.tag));
	gitaly__tag__init(t.tag);
	t.tag->id = xstrndup(oid_hex, strlen(oid_hex));
	if (name_len) {
		set_bytes(&t.tag->name, name, name_len);
		t.have_name = 1;
	}
	msg_off = walk_header(raw, len, tag_header, &t, &has_body);
	if (has_body) {
		const char *msg = raw + msg_off;
		size_t mlen = len - msg_off, off, slen;

		set_bytes(&t.tag->message, msg, mlen);
		t.tag->message_size = (int64_t)mlen;
		if (gitcommit_tag_signature(msg, mlen, &off, &slen)) {
			const char *nl = memchr(msg + off, '\n', slen);

			if (nl && nl > msg + off)
				t.tag->signature_type =
					gitcommit_signature_type(msg + off, (size_t)(nl - msg - off));
		}
	}
	*out = t.tag;
	if (tagged_oid)
		*tagged_oid = t.object;
	else
		free(t.object);
	if (tagged_type)
		*tagged_type = t.type;
	else
		free(t.type);
	return 0;
}

int gitcommit_read_tag(git_repository *repo, const git_oid *oid, const void *name, size_t name_len,
		       Gitaly__Tag **out, struct error *err)
{
	struct repo_handle h = { repo, NULL };
	char hex[GIT_OID_HEXSZ + 1];

	git_oid_tostr(hex, sizeof(hex), oid);
	return gitcommit_read_tag_h(&h, hex, name, name_len, out, err);
}

int gitcommit_read_tag_h(const struct repo_handle *h, const char *oid, const void *name,
			 size_t name_len, Gitaly__Tag **out, struct error *err)
{
	char *data = NULL, *tobj = NULL, *ttype = NULL;
	size_t len;
	git_object_t type;
	Gitaly__Tag *tag = NULL;
	int ret = -1;

	*out = NULL;
	if (gitcommit_read_raw_h(h, oid, &type, &data, &len, err) < 0)
		goto out;
	if (type != GIT_OBJECT_TAG) {
		error_set(err, STATUS_INVALID_ARGUMENT, "expected tag, got %s", type_name(type));
		goto out;
	}
	if (gitcommit_parse_tag(oid, data, len, name, name_len, &tag, &tobj, &ttype, err) < 0)
		goto out;
	if (ttype && tobj && (strcmp(ttype, "commit") == 0 || strcmp(ttype, "tag") == 0)) {
		size_t tlen = strlen(tobj);

		if ((tlen != 40 && tlen != 64) || strspn(tobj, "0123456789abcdef") != tlen) {
			error_set(err, STATUS_INTERNAL, "invalid tagged object id");
			goto out;
		}
		if (strcmp(ttype, "commit") == 0) {
			if (gitcommit_read_h(h, tobj, &tag->target_commit, err) < 0)
				goto out;
		} else {
			char *pdata = NULL, final[CATFILE_OID_MAX];
			size_t plen;
			git_object_t ptype;

			if (peel(h, tobj, final, &ptype, &pdata, &plen, err) < 0)
				goto out;
			if (ptype == GIT_OBJECT_COMMIT)
				gitcommit_parse(final, pdata, plen, &tag->target_commit, err);
			free(pdata);
		}
	}
	*out = tag;
	tag = NULL;
	ret = 0;
out:
	gitcommit_tag_free(tag);
	free(data);
	free(tobj);
	free(ttype);
	return ret;
}

void gitcommit_trim_tag_message(Gitaly__Tag *tag)
{
	size_t n = tag->message.len;

	while (n && tag->message.data[n - 1] == '\n')
		n--;
	tag->message_size = (int64_t)n;
	if (n > GITCOMMIT_MAX_MESSAGE)
		n = GITCOMMIT_MAX_MESSAGE;
	tag->message.len = n;
}

void gitcommit_parse_trailers(const char *text, size_t len, Gitaly__GitCommit *c)
{
	size_t pos = 0;

	while (pos < len && c->n_trailers < 64) {
		const char *start = text + pos;
		const char *nul = memchr(start, '\0', len - pos);
		size_t item = nul ? (size_t)(nul - start) : len - pos;
		const char *colon = memchr(start, ':', item);

		if (colon && colon > start) {
			const char *v = colon + 1, *ve = start + item;
			size_t klen = (size_t)(colon - start);
			Gitaly__CommitTrailer *t;

			while (v < ve && is_space(*v))
				v++;
			while (ve > v && is_space(ve[-1]))
				ve--;
			if (klen > 128 || (size_t)(ve - v) > 512)
				break;
			t = xmalloc(sizeof(*t));
			gitaly__commit_trailer__init(t);
			set_bytes(&t->key, start, klen);
			set_bytes(&t->value, v, (size_t)(ve - v));
			c->trailers = realloc(c->trailers, (c->n_trailers + 1) * sizeof(*c->trailers));
			if (!c->trailers)
				abort();
			c->trailers[c->n_trailers++] = t;
		}
		pos += item + 1;
	}
}

int gitcommit_add_trailers(const char *repo_path, const char *object_dir, const char *alternates,
			   Gitaly__GitCommit *c, struct error *err)
{
	struct git_cmd *cmd = git_cmd_new(repo_path, "show");
	struct strbuf out;
	struct git_result res;
	char *nl;
	int ret = -1;

	strbuf_init(&out, (size_t)1 << 20);
	if (object_dir)
		git_cmd_setenv(cmd, "GIT_OBJECT_DIRECTORY", object_dir);
	if (alternates)
		git_cmd_setenv(cmd, "GIT_ALTERNATE_OBJECT_DIRECTORIES", alternates);
	git_cmd_flag(cmd, "--format=%(trailers:unfold,separator=%x00)");
	git_cmd_flag(cmd, "--no-patch");
	git_cmd_arg(cmd, c->id);
	if (git_cmd_run(cmd, NULL, 0, &out, NULL, &res, err) < 0)
		goto out;
	if (res.exit_code != 0) {
		error_set(err, STATUS_INTERNAL, "error when running git show: exit status %d",
			  res.exit_code);
		goto out;
	}
	nl = out.buf ? memchr(out.buf, '\n', out.len) : NULL;
	if (nl && (size_t)(nl - out.buf) + 1 < out.len) {
		error_set(err, STATUS_INTERNAL, "git show produced more than one line of output");
		goto out;
	}
	if (out.len)
		gitcommit_parse_trailers(out.buf, nl ? (size_t)(nl - out.buf) : out.len, c);
	ret = 0;
out:
	strbuf_release(&out);
	return ret;
}

void gitcommit_free(Gitaly__GitCommit *c)
{
	if (c)
		protobuf_c_message_free_unpacked(&c->base, NULL);
}

void gitcommit_tag_free(Gitaly__Tag *t)
{
	if (t)
		protobuf_c_message_free_unpacked(&t->base, NULL);
}
