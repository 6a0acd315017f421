/*
 * Commit signatures: GetCommitSignatures splits each commit object into its
 * signature (the gpgsig / gpgsig-sha256 header, continuation spaces
 * removed) and the signed text (the object without that header), streamed
 * as upstream; FilterShasWithSignatures answers, per request of a bidi
 * stream, which of the given commits carry a signature. Signatures are not
 * verified here: every signer is reported as SIGNER_USER (upstream reports
 * SIGNER_SYSTEM for commits signed with [git] signing_key, which this
 * server does not use yet).
 */
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "git/revision.h"
#include "service/commit_internal.h"

/* Splits a raw commit at its signature header. */
static void split_signature(const char *data, size_t len, struct strbuf *sig, struct strbuf *text)
{
	int saw = 0, in = 0;

	for (size_t off = 0; off < len;) {
		const char *nl = memchr(data + off, '\n', len - off);
		size_t llen = nl ? (size_t)(nl - (data + off)) + 1 : len - off;
		const char *line = data + off;

		off += llen;
		if (!nl) {
			strbuf_add(text, line, llen);
			break;
		}
		if (!saw && !in) {
			if (llen >= 7 && !memcmp(line, "gpgsig ", 7)) {
				saw = in = 1;
				line += 7;
				llen -= 7;
			} else if (llen >= 14 && !memcmp(line, "gpgsig-sha256 ", 14)) {
				saw = in = 1;
				line += 14;
				llen -= 14;
			}
		}
		if (in && !(llen == 1 && line[0] == '\n')) {
			if (llen && line[0] == ' ') {
				line++;
				llen--;
			}
			strbuf_add(sig, line, llen);
		} else {
			in = 0;
			strbuf_add(text, line, llen);
		}
	}
	if (sig->len && sig->buf[sig->len - 1] == '\n')
		sig->buf[--sig->len] = '\0';
}

int commit_signatures_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__GetCommitSignaturesRequest *req =
		(const Gitaly__GetCommitSignaturesRequest *)rpc_call_request(call);
	struct commit_repo r;
	size_t want;
	int ret = -1;

	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (commit_repo_open(&r, err) < 0)
		goto out;
	if (req->n_commit_ids == 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "empty CommitIds");
		goto out;
	}
	/* libgit2 only opens SHA-1 repositories; SHA-256 ones get a reader. */
	want = r.cf ? 64 : 40;
	for (size_t i = 0; i < req->n_commit_ids; i++) {
		const char *id = req->commit_ids[i];
		size_t len = strlen(id);

		if (len != want) {
			char *q = commit_quote(id, len);

			error_set(err, STATUS_INVALID_ARGUMENT, "invalid object ID: %s, expected length %zu, got %zu",
				  q, want, len);
			free(q);
			goto out;
		}
		for (size_t k = 0; k < len; k++) {
			if (!((id[k] >= '0' && id[k] <= '9') || (id[k] >= 'a' && id[k] <= 'f'))) {
				char *q = commit_quote(id, len), *c = commit_quote(id + k, 1);

				/* Go prints the rune with %q: 'x'. */
				c[0] = '\'';
				c[strlen(c) - 1] = '\'';
				error_set(err, STATUS_INVALID_ARGUMENT, "invalid object ID: %s, invalid character %s", q, c);
				free(q);
				free(c);
				goto out;
			}
		}
	}
	for (size_t i = 0; i < req->n_commit_ids; i++) {
		Gitaly__GetCommitSignaturesResponse head = GITALY__GET_COMMIT_SIGNATURES_RESPONSE__INIT;
		struct strbuf sig = STRBUF_INIT, text = STRBUF_INIT;
		struct odb_object raw;
		char oid[ODB_OID_MAX];
		int found = commit_read_raw_commit(&r, req->commit_ids[i], oid, &raw, err), rc = 0;

		if (found < 0)
			goto out;
		if (!found)
			continue;
		split_signature(raw.data, raw.len, &sig, &text);
		if (sig.len) {
			head.commit_id = req->commit_ids[i];
			head.signature.data = (uint8_t *)sig.buf;
			head.signature.len = sig.len;
			head.signer = GITALY__GET_COMMIT_SIGNATURES_RESPONSE__SIGNER__SIGNER_USER;
			rc = rpc_call_send(call, &head.base, err);
			for (size_t off = 0; rc == 0 && off < text.len; off += SERVICE_CHUNK_SIZE) {
				Gitaly__GetCommitSignaturesResponse chunk = GITALY__GET_COMMIT_SIGNATURES_RESPONSE__INIT;

				chunk.signed_text.data = (uint8_t *)text.buf + off;
				chunk.signed_text.len = text.len - off > SERVICE_CHUNK_SIZE ? SERVICE_CHUNK_SIZE : text.len - off;
				rc = rpc_call_send(call, &chunk.base, err);
			}
		}
		strbuf_release(&sig);
		strbuf_release(&text);
		odb_object_release(&raw);
		if (rc < 0)
			goto out;
	}
	ret = 0;
out:
	commit_repo_release(&r);
	return ret;
}

int commit_filter_signed_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__FilterShasWithSignaturesRequest *req =
		(const Gitaly__FilterShasWithSignaturesRequest *)rpc_call_request(call);
	struct commit_repo r = { 0 };
	ProtobufCMessage *next = NULL;
	int ret = -1;

	if (!req) {
		error_set(err, STATUS_UNKNOWN, "EOF");
		goto out;
	}
	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (commit_repo_open(&r, err) < 0)
		goto out;
	for (;;) {
		Gitaly__FilterShasWithSignaturesResponse resp = GITALY__FILTER_SHAS_WITH_SIGNATURES_RESPONSE__INIT;
		ProtobufCBinaryData *shas = calloc(req->n_shas + 1, sizeof(*shas));
		int rc;

		if (!shas)
			abort();
		for (size_t i = 0; i < req->n_shas; i++) {
			Gitaly__GitCommit *c = NULL;
			char *rev = commit_bytes_dup(&req->shas[i]);
			int found = commit_read_rev(&r, rev, &c, err);

			free(rev);
			if (found < 0) {
				free(shas);
				goto out;
			}
			if (found && c->signature_type != GITALY__SIGNATURE_TYPE__NONE)
				shas[resp.n_shas++] = req->shas[i];
			commit_gitcommit_free(c);
		}
		resp.shas = shas;
		rc = rpc_call_send(call, &resp.base, err);
		free(shas);
		if (rc < 0)
			goto out;
		if (next)
			rpc_call_free_message(call, next);
		next = NULL;
		rc = rpc_call_recv(call, &next, err);
		if (rc < 0)
			goto out;
		if (rc == 0)
			break;
		req = (const Gitaly__FilterShasWithSignaturesRequest *)next;
	}
	ret = 0;
out:
	if (next)
		rpc_call_free_message(call, next);
	commit_repo_release(&r);
	return ret;
}
