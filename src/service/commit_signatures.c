/*
 * Commit signatures: GetCommitSignatures splits each commit object into its
 * signature (the gpgsig / gpgsig-sha256 header, continuation spaces
 * removed) and the signed text (the object without that header), streamed
 * as upstream; FilterShasWithSignatures answers, per request of a bidi
 * stream, which of the given commits carry a signature. As upstream, a
 * signature that verifies with `[git] signing_key` (or one of
 * `rotated_signing_keys`) is reported as SIGNER_SYSTEM, any other as
 * SIGNER_USER. OpenSSH keys (ed25519, RSA) verify in-process (sshsig.c);
 * a GPG key (binary secret key, as upstream reads it) is turned into a
 * public keyring and each PGP signature is checked by gpgv (pgpkey.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "git/revision.h"
#include "service/commit_internal.h"
#include "service/pgpkey.h"
#include "service/sshsig.h"

/* The server's signing keys: [git] signing_key then the rotated ones. */
struct signing_keys {
	struct sshsig_key *ssh;
	size_t n_ssh;
	struct strbuf *pgp; /* public keyrings made from GPG secret keys */
	size_t n_pgp;
	size_t n_alloc; /* entries of both arrays */
	const char *tmp_dir;
};

#define KEY_FILE_CAP ((size_t)1 << 20)

/* A GPG key file as a public keyring; -1 with err set when unusable. */
static int load_pgp(const char *path, struct strbuf *ring, struct error *err)
{
	struct strbuf raw;
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;
	int ret = -1;

	strbuf_init(&raw, KEY_FILE_CAP);
	strbuf_init(ring, KEY_FILE_CAP);
	if (!f) {
		error_set(err, STATUS_UNKNOWN, "open file: %s", strerror(errno));
		goto out;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (strbuf_add(&raw, chunk, n) < 0) {
			error_set(err, STATUS_UNKNOWN, "read file: too large");
			goto out;
		}
	}
	if (!pgpkey_public_keyring((const uint8_t *)raw.buf, raw.len, ring)) {
		error_set(err, STATUS_UNKNOWN, "read entity: not a supported OpenPGP secret key");
		goto out;
	}
	ret = 0;
out:
	if (f)
		fclose(f);
	strbuf_release(&raw);
	return ret;
}

/* Loads the configured keys; a key file that cannot be read or parsed
 * fails the request as upstream ("failed to parse signing key"). */
static int signing_keys_load(const struct service_deps *deps, struct signing_keys *out,
			     struct error *err)
{
	const struct config *cfg = deps ? deps->cfg : NULL;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!cfg || !cfg->git.signing_key || !*cfg->git.signing_key)
		return 0;
	out->tmp_dir = deps->runtime_dir;
	n = cfg->git.n_rotated_signing_keys + 1;
	out->n_alloc = n;
	out->ssh = calloc(n, sizeof(*out->ssh));
	out->pgp = calloc(n, sizeof(*out->pgp));
	if (!out->ssh || !out->pgp)
		abort();
	for (size_t i = 0; i < n; i++) {
		const char *path = i == 0 ? cfg->git.signing_key : cfg->git.rotated_signing_keys[i - 1];
		int rc = sshsig_key_load(path, &out->ssh[out->n_ssh], err);

		if (rc == 0 && load_pgp(path, &out->pgp[out->n_pgp], err) == 0) {
			out->n_pgp++;
			continue;
		}
		if (rc <= 0) {
			error_prefix(err, "failed to parse signing key");
			return -1;
		}
		out->n_ssh++;
	}
	return 0;
}

static void signing_keys_release(struct signing_keys *k)
{
	for (size_t i = 0; i < k->n_ssh; i++)
		sshsig_key_release(&k->ssh[i]);
	free(k->ssh);
	for (size_t i = 0; k->pgp && i < k->n_alloc; i++)
		strbuf_release(&k->pgp[i]);
	free(k->pgp);
	memset(k, 0, sizeof(*k));
}

static int signed_by_system(const struct signing_keys *k, const struct strbuf *sig,
			    const struct strbuf *text)
{
	const char *t = text->buf ? text->buf : "";

	if (sig->len >= 29 && !memcmp(sig->buf, "-----BEGIN SSH SIGNATURE-----", 29)) {
		for (size_t i = 0; i < k->n_ssh; i++)
			if (sshsig_verify(&k->ssh[i], sig->buf, sig->len, t, text->len))
				return 1;
	} else if (sig->len >= 29 && !memcmp(sig->buf, "-----BEGIN PGP SIGNATURE-----", 29)) {
		for (size_t i = 0; i < k->n_pgp; i++)
			if (pgpkey_verify(&k->pgp[i], sig->buf, sig->len, t, text->len, k->tmp_dir))
				return 1;
	}
	return 0;
}

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
	const struct service_deps *deps = rpc_call_service_data(call);
	struct signing_keys keys = { 0 };
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
	if (signing_keys_load(deps, &keys, err) < 0)
		goto out;
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
			head.signer = signed_by_system(&keys, &sig, &text)
					      ? GITALY__GET_COMMIT_SIGNATURES_RESPONSE__SIGNER__SIGNER_SYSTEM
					      : GITALY__GET_COMMIT_SIGNATURES_RESPONSE__SIGNER__SIGNER_USER;
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
	signing_keys_release(&keys);
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
