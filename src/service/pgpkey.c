/*
 * OpenPGP secret key -> public keyring, and verification through gpgv (see
 * pgpkey.h). A version 4 key packet is version, creation time, algorithm,
 * then algorithm-specific public fields (multiprecision integers, curve
 * OIDs, KDF parameters); a secret key packet continues with the protected
 * secret part. Cutting it after the public fields and retagging it gives
 * the public key packet, whose bytes (and so key id and self-signatures)
 * are those of the original. gpgv runs with a private home and keyring in
 * a fresh temporary directory, removed afterwards.
 */
#include "service/pgpkey.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/banned.h"
#include "base/process.h"

#define TAG_SIGNATURE 2
#define TAG_SECRET_KEY 5
#define TAG_PUBLIC_KEY 6
#define TAG_SECRET_SUBKEY 7
#define TAG_USER_ID 13
#define TAG_PUBLIC_SUBKEY 14
#define TAG_USER_ATTRIBUTE 17
#define GPGV_TIMEOUT_MS 10000

/* Reads one packet header; -1 when malformed or of indeterminate length. */
static int packet_header(const uint8_t *p, size_t left, int *tag, size_t *hlen, size_t *blen)
{
	if (left < 2 || !(p[0] & 0x80))
		return -1;
	if (p[0] & 0x40) {
		*tag = p[0] & 0x3f;
		if (p[1] < 192) {
			*hlen = 2;
			*blen = p[1];
		} else if (p[1] < 224) {
			if (left < 3)
				return -1;
			*hlen = 3;
			*blen = ((size_t)(p[1] - 192) << 8) + p[2] + 192;
		} else if (p[1] == 255) {
			if (left < 6)
				return -1;
			*hlen = 6;
			*blen = (size_t)p[2] << 24 | (size_t)p[3] << 16 | (size_t)p[4] << 8 | p[5];
		} else {
			return -1; /* partial lengths: never used for keys */
		}
	} else {
		int type = p[0] & 3;

		*tag = (p[0] >> 2) & 0xf;
		if (type == 3)
			return -1;
		*hlen = 1 + ((size_t)1 << type);
		if (left < *hlen)
			return -1;
		*blen = 0;
		for (size_t i = 1; i < *hlen; i++)
			*blen = *blen << 8 | p[i];
	}
	if (*blen > left - *hlen)
		return -1;
	return 0;
}

/* Skips n multiprecision integers; -1 when they overrun. */
static int skip_mpis(const uint8_t *b, size_t len, size_t *off, int n)
{
	for (int i = 0; i < n; i++) {
		size_t bits, bytes;

		if (*off + 2 > len)
			return -1;
		bits = (size_t)b[*off] << 8 | b[*off + 1];
		bytes = (bits + 7) / 8;
		if (*off + 2 + bytes > len)
			return -1;
		*off += 2 + bytes;
	}
	return 0;
}

/* Skips a one-octet-length field (curve OID, KDF parameters). */
static int skip_short(const uint8_t *b, size_t len, size_t *off)
{
	if (*off + 1 > len || *off + 1 + b[*off] > len)
		return -1;
	*off += 1 + b[*off];
	return 0;
}

/* Length of the public part of a version 4 key packet body; 0 if unknown. */
static size_t public_length(const uint8_t *b, size_t len)
{
	size_t off = 6;

	if (len < 6 || b[0] != 4)
		return 0;
	switch (b[5]) {
	case 1: case 2: case 3: /* RSA: n, e */
		if (skip_mpis(b, len, &off, 2) < 0)
			return 0;
		break;
	case 16: /* Elgamal: p, g, y */
		if (skip_mpis(b, len, &off, 3) < 0)
			return 0;
		break;
	case 17: /* DSA: p, q, g, y */
		if (skip_mpis(b, len, &off, 4) < 0)
			return 0;
		break;
	case 18: /* ECDH: curve, point, KDF parameters */
		if (skip_short(b, len, &off) < 0 || skip_mpis(b, len, &off, 1) < 0 ||
		    skip_short(b, len, &off) < 0)
			return 0;
		break;
	case 19: case 22: /* ECDSA, EdDSA: curve, point */
		if (skip_short(b, len, &off) < 0 || skip_mpis(b, len, &off, 1) < 0)
			return 0;
		break;
	default:
		return 0;
	}
	return off;
}

static int put_packet(struct strbuf *out, int tag, const uint8_t *body, size_t len)
{
	uint8_t h[6];
	size_t hl;

	h[0] = (uint8_t)(0xc0 | tag);
	if (len < 192) {
		h[1] = (uint8_t)len;
		hl = 2;
	} else if (len < 8384) {
		h[1] = (uint8_t)(((len - 192) >> 8) + 192);
		h[2] = (uint8_t)((len - 192) & 0xff);
		hl = 3;
	} else {
		h[1] = 255;
		h[2] = (uint8_t)(len >> 24);
		h[3] = (uint8_t)(len >> 16);
		h[4] = (uint8_t)(len >> 8);
		h[5] = (uint8_t)len;
		hl = 6;
	}
	return strbuf_add(out, h, hl) < 0 || strbuf_add(out, body, len) < 0 ? -1 : 0;
}

int pgpkey_public_keyring(const uint8_t *data, size_t len, struct strbuf *out)
{
	size_t off = 0;
	int keys = 0;

	while (off < len) {
		int tag;
		size_t hlen, blen, plen;
		const uint8_t *body;

		if (packet_header(data + off, len - off, &tag, &hlen, &blen) < 0)
			goto bad;
		body = data + off + hlen;
		off += hlen + blen;
		switch (tag) {
		case TAG_SECRET_KEY:
		case TAG_SECRET_SUBKEY:
			plen = public_length(body, blen);
			if (!plen)
				goto bad;
			if (put_packet(out, tag == TAG_SECRET_KEY ? TAG_PUBLIC_KEY : TAG_PUBLIC_SUBKEY, body,
				       plen) < 0)
				goto bad;
			keys += tag == TAG_SECRET_KEY;
			break;
		case TAG_SIGNATURE:
		case TAG_USER_ID:
		case TAG_USER_ATTRIBUTE:
			if (!keys || put_packet(out, tag, body, blen) < 0)
				goto bad;
			break;
		default:
			break;
		}
	}
	if (keys)
		return 1;
bad:
	strbuf_reset(out);
	return 0;
}

static int write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	const char *p = data;
	int ret = -1;

	if (fd < 0)
		return -1;
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n <= 0)
			goto out;
		p += n;
		len -= (size_t)n;
	}
	ret = 0;
out:
	close(fd);
	return ret;
}

/* gpgv from PATH (absolute), or NULL. */
static char *find_gpgv(void)
{
	const char *path = getenv("PATH");
	struct strbuf cand = STRBUF_INIT;

	if (!path || !*path)
		path = "/usr/bin:/bin";
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t n = colon ? (size_t)(colon - path) : strlen(path);

		strbuf_reset(&cand);
		if (n && path[0] == '/') {
			strbuf_add(&cand, path, n);
			strbuf_adds(&cand, "/gpgv");
			if (access(cand.buf, X_OK) == 0)
				return strbuf_detach(&cand, NULL);
		}
		path += n + (colon ? 1 : 0);
	}
	strbuf_release(&cand);
	return NULL;
}

int pgpkey_verify(const struct strbuf *keyring, const char *armored, size_t armored_len,
		  const char *text, size_t text_len, const char *tmp_dir)
{
	struct strbuf dir = STRBUF_INIT, ring = STRBUF_INIT, sig = STRBUF_INIT, data = STRBUF_INIT,
		      home = STRBUF_INIT;
	struct process_status st;
	char *gpgv = find_gpgv();
	pid_t pid = -1;
	int ok = 0, made = 0;
	struct error err = ERROR_INIT;

	if (!gpgv || !keyring->len)
		goto out;
	strbuf_adds(&dir, tmp_dir && *tmp_dir ? tmp_dir : "/tmp");
	strbuf_adds(&dir, "/gitaly-gpgv-XXXXXX");
	if (!mkdtemp(dir.buf))
		goto out;
	made = 1;
	strbuf_addf(&ring, "%s/keyring.gpg", dir.buf);
	strbuf_addf(&sig, "%s/signature.asc", dir.buf);
	strbuf_addf(&data, "%s/signed.txt", dir.buf);
	strbuf_addf(&home, "%s/home", dir.buf);
	if (mkdir(home.buf, 0700) < 0 || write_file(ring.buf, keyring->buf, keyring->len) < 0 ||
	    write_file(sig.buf, armored, armored_len) < 0 || write_file(data.buf, text, text_len) < 0)
		goto out;
	{
		const char *argv[] = { "gpgv", "--homedir", home.buf, "--keyring", ring.buf, "--",
				       sig.buf, data.buf, NULL };
		const char *envp[] = { "PATH=/usr/bin:/bin", "LC_ALL=C", NULL };
		struct process_spawn_opts o = { gpgv, argv, envp, dir.buf, -1, -1, -1, 1 };

		if (process_spawn(&o, &pid, &err) < 0) {
			pid = -1;
			goto out;
		}
		if (process_wait(pid, process_now_ms() + GPGV_TIMEOUT_MS, &st) != 0) {
			process_kill_group(pid);
			process_wait(pid, 0, &st);
			pid = -1;
			goto out;
		}
		pid = -1;
		ok = st.exited && st.exit_code == 0;
	}
out:
	if (made) {
		unlink(ring.buf);
		unlink(sig.buf);
		unlink(data.buf);
		/* gpgv may leave a lock or trustdb in its home */
		if (home.buf) {
			struct strbuf f = STRBUF_INIT;
			static const char *const leftovers[] = { "trustedkeys.kbx", "trustedkeys.gpg",
								 "pubring.kbx", "trustdb.gpg", "pubring.gpg" };

			for (size_t i = 0; i < sizeof(leftovers) / sizeof(*leftovers); i++) {
				strbuf_reset(&f);
				strbuf_addf(&f, "%s/%s", home.buf, leftovers[i]);
				unlink(f.buf);
			}
			strbuf_release(&f);
			rmdir(home.buf);
		}
		rmdir(dir.buf);
	}
	error_release(&err);
	free(gpgv);
	strbuf_release(&dir);
	strbuf_release(&ring);
	strbuf_release(&sig);
	strbuf_release(&data);
	strbuf_release(&home);
	return ok;
}
