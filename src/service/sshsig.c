/*
 * SSHSIG verification (see sshsig.h). Both inputs are base64 inside PEM-like
 * armor; their contents are SSH wire encoding (uint32 big-endian lengths
 * before strings). A signature is checked by rebuilding the blob the
 * signer signed ("SSHSIG", namespace, reserved, hash name, hash of the
 * text) and asking OpenSSL to verify it with the key; the key embedded in
 * the signature must be the configured key itself.
 */
#include "service/sshsig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "base/banned.h"

#define KEY_FILE_CAP ((long)1 << 20)
#define ARMOR_CAP ((size_t)1 << 20)

/* A cursor over SSH wire data. */
struct wire {
	const uint8_t *p;
	size_t left;
};

static int wire_u32(struct wire *w, uint32_t *v)
{
	if (w->left < 4)
		return -1;
	*v = (uint32_t)w->p[0] << 24 | (uint32_t)w->p[1] << 16 | (uint32_t)w->p[2] << 8 | w->p[3];
	w->p += 4;
	w->left -= 4;
	return 0;
}

static int wire_string(struct wire *w, const uint8_t **s, size_t *len)
{
	uint32_t n;

	if (wire_u32(w, &n) < 0 || n > w->left)
		return -1;
	*s = w->p;
	*len = n;
	w->p += n;
	w->left -= n;
	return 0;
}

static int wire_is(const uint8_t *s, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(s, want, len) == 0;
}

static void put_string(uint8_t **p, const void *s, size_t len)
{
	(*p)[0] = (uint8_t)(len >> 24);
	(*p)[1] = (uint8_t)(len >> 16);
	(*p)[2] = (uint8_t)(len >> 8);
	(*p)[3] = (uint8_t)len;
	memcpy(*p + 4, s, len);
	*p += 4 + len;
}

/*
 * The base64 between "-----BEGIN <label>-----" and "-----END <label>-----",
 * decoded into a new buffer. -1 when the armor or the base64 is wrong.
 */
static int dearmor(const char *text, size_t len, const char *label, uint8_t **out, size_t *out_len)
{
	char begin[64], end[64];
	const char *b, *e, *stop = text + len;
	char *clean = NULL;
	size_t n = 0, pad = 0;
	int dec, ret = -1;

	snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
	snprintf(end, sizeof(end), "-----END %s-----", label);
	b = memmem(text, len, begin, strlen(begin));
	if (!b || len > ARMOR_CAP)
		return -1;
	b += strlen(begin);
	e = memmem(b, (size_t)(stop - b), end, strlen(end));
	if (!e)
		return -1;
	clean = malloc((size_t)(e - b) + 1);
	if (!clean)
		abort();
	for (const char *c = b; c < e; c++) {
		if (*c == ' ' || *c == '\t' || *c == '\r' || *c == '\n')
			continue;
		clean[n++] = *c;
	}
	if (n == 0 || n % 4)
		goto out;
	pad = clean[n - 1] == '=' ? (clean[n - 2] == '=' ? 2 : 1) : 0;
	*out = malloc(n / 4 * 3 + 1);
	if (!*out)
		abort();
	dec = EVP_DecodeBlock(*out, (const unsigned char *)clean, (int)n);
	if (dec < 0 || (size_t)dec < pad) {
		free(*out);
		*out = NULL;
		goto out;
	}
	*out_len = (size_t)dec - pad;
	ret = 0;
out:
	free(clean);
	return ret;
}

int sshsig_key_load(const char *path, struct sshsig_key *key, struct error *err)
{
	static const char magic[] = "openssh-key-v1";
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	uint8_t *raw = NULL;
	size_t raw_len = 0;
	long len;
	struct wire w;
	const uint8_t *s;
	size_t slen;
	uint32_t nkeys;
	int ret = -1;

	if (!f) {
		error_set(err, STATUS_UNKNOWN, "open file: %s", strerror(errno));
		goto out;
	}
	if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || len > KEY_FILE_CAP ||
	    fseek(f, 0, SEEK_SET) < 0) {
		error_set(err, STATUS_UNKNOWN, "read file: too large or unreadable");
		goto out;
	}
	text = malloc((size_t)len + 1);
	if (!text)
		abort();
	if (fread(text, 1, (size_t)len, f) != (size_t)len) {
		error_set(err, STATUS_UNKNOWN, "read file: %s", strerror(errno));
		goto out;
	}
	text[len] = '\0';
	if (strncmp(text, "-----BEGIN OPENSSH", 18) != 0) {
		ret = 0;
		goto out;
	}
	if (dearmor(text, (size_t)len, "OPENSSH PRIVATE KEY", &raw, &raw_len) < 0 ||
	    raw_len < sizeof(magic) || memcmp(raw, magic, sizeof(magic)) != 0) {
		error_set(err, STATUS_UNKNOWN, "parse private key: malformed OpenSSH key");
		goto out;
	}
	w.p = raw + sizeof(magic);
	w.left = raw_len - sizeof(magic);
	/* cipher, kdf, kdf options, key count, then the first public key */
	if (wire_string(&w, &s, &slen) < 0 || wire_string(&w, &s, &slen) < 0 ||
	    wire_string(&w, &s, &slen) < 0 || wire_u32(&w, &nkeys) < 0 || nkeys < 1 ||
	    wire_string(&w, &s, &slen) < 0) {
		error_set(err, STATUS_UNKNOWN, "parse private key: malformed OpenSSH key");
		goto out;
	}
	key->blob = malloc(slen ? slen : 1);
	if (!key->blob)
		abort();
	memcpy(key->blob, s, slen);
	key->len = slen;
	ret = 1;
out:
	if (f)
		fclose(f);
	free(text);
	free(raw);
	return ret;
}

void sshsig_key_release(struct sshsig_key *key)
{
	free(key->blob);
	key->blob = NULL;
	key->len = 0;
}

/* An RSA public key from its SSH exponent and modulus. */
static EVP_PKEY *rsa_key(const uint8_t *e, size_t elen, const uint8_t *n, size_t nlen)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *bn_e = BN_bin2bn(e, (int)elen, NULL), *bn_n = BN_bin2bn(n, (int)nlen, NULL);

	if (!bld || !bn_e || !bn_n || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
		goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_e);
	BN_free(bn_n);
	return pkey;
}

/* Verifies sig over data with the SSH public key blob. */
static int verify_blob(const uint8_t *keyblob, size_t keylen, const uint8_t *sigblob, size_t siglen,
		       const uint8_t *data, size_t dlen)
{
	struct wire k = { keyblob, keylen }, sg = { sigblob, siglen };
	const uint8_t *ktype, *algo, *sig, *a, *b;
	size_t ktlen, alen, slen, al, bl;
	EVP_PKEY *pkey = NULL;
	EVP_MD_CTX *md = NULL;
	const EVP_MD *hash = NULL;
	uint8_t *padded = NULL;
	int ok = 0;

	if (wire_string(&k, &ktype, &ktlen) < 0 || wire_string(&sg, &algo, &alen) < 0 ||
	    wire_string(&sg, &sig, &slen) < 0)
		return 0;
	if (wire_is(ktype, ktlen, "ssh-ed25519")) {
		if (!wire_is(algo, alen, "ssh-ed25519") || wire_string(&k, &a, &al) < 0 || al != 32)
			return 0;
		pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, a, al);
	} else if (wire_is(ktype, ktlen, "ssh-rsa")) {
		if (wire_is(algo, alen, "rsa-sha2-512"))
			hash = EVP_sha512();
		else if (wire_is(algo, alen, "rsa-sha2-256"))
			hash = EVP_sha256();
		else
			return 0;
		if (wire_string(&k, &a, &al) < 0 || wire_string(&k, &b, &bl) < 0)
			return 0;
		pkey = rsa_key(a, al, b, bl);
		/* SSH may drop leading zero bytes of the signature. */
		if (pkey && slen < (size_t)EVP_PKEY_get_size(pkey)) {
			size_t full = (size_t)EVP_PKEY_get_size(pkey);

			padded = calloc(1, full);
			if (!padded)
				abort();
			memcpy(padded + (full - slen), sig, slen);
			sig = padded;
			slen = full;
		}
	} else {
		return 0;
	}
	md = EVP_MD_CTX_new();
	if (pkey && md && EVP_DigestVerifyInit(md, NULL, hash, NULL, pkey) == 1)
		ok = EVP_DigestVerify(md, sig, slen, data, dlen) == 1;
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	free(padded);
	return ok;
}

int sshsig_verify(const struct sshsig_key *key, const char *armored, size_t armored_len,
		  const char *text, size_t text_len)
{
	uint8_t *raw = NULL, *signed_data = NULL, *p;
	size_t raw_len = 0;
	struct wire w;
	const uint8_t *pub, *ns, *reserved, *hname, *sig;
	size_t publen, nslen, rlen, hlen, siglen;
	uint32_t version;
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	const EVP_MD *md;
	int ok = 0;

	if (!key->blob || dearmor(armored, armored_len, "SSH SIGNATURE", &raw, &raw_len) < 0)
		return 0;
	w.p = raw;
	w.left = raw_len;
	if (w.left < 6 || memcmp(w.p, "SSHSIG", 6) != 0)
		goto out;
	w.p += 6;
	w.left -= 6;
	if (wire_u32(&w, &version) < 0 || version != 1 || wire_string(&w, &pub, &publen) < 0 ||
	    wire_string(&w, &ns, &nslen) < 0 || wire_string(&w, &reserved, &rlen) < 0 ||
	    wire_string(&w, &hname, &hlen) < 0 || wire_string(&w, &sig, &siglen) < 0)
		goto out;
	if (publen != key->len || memcmp(pub, key->blob, publen) != 0)
		goto out;
	if (wire_is(hname, hlen, "sha512"))
		md = EVP_sha512();
	else if (wire_is(hname, hlen, "sha256"))
		md = EVP_sha256();
	else
		goto out;
	if (EVP_Digest(text, text_len, digest, &dlen, md, NULL) != 1)
		goto out;
	signed_data = malloc(6 + 4 * 4 + nslen + rlen + hlen + dlen);
	if (!signed_data)
		abort();
	memcpy(signed_data, "SSHSIG", 6);
	p = signed_data + 6;
	put_string(&p, ns, nslen);
	put_string(&p, reserved, rlen);
	put_string(&p, hname, hlen);
	put_string(&p, digest, dlen);
	ok = verify_blob(key->blob, key->len, sig, siglen, signed_data, (size_t)(p - signed_data));
out:
	free(raw);
	free(signed_data);
	return ok;
}
