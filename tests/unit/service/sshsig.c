/*
 * SSHSIG verification and OpenPGP key conversion: real signatures made by
 * ssh-keygen at test time verify, altered text or another key do not, and
 * every truncation of a signature, of a key file and of a secret key packet
 * stream is rejected without reading out of bounds (run under ASan by
 * `make unit-asan`).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/strbuf.h"
#include "service/pgpkey.h"
#include "service/sshsig.h"
#include "../support/shell.h"

static char dir[] = "/tmp/sshsig-test-XXXXXX";
static int have_keygen;

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	have_keygen = test_shell(NULL, 0, 0, "command -v ssh-keygen >/dev/null") == 0;
	if (!have_keygen)
		return 0;
	return test_shell(NULL, 0, 0,
			  "cd %s && ssh-keygen -q -t ed25519 -N '' -f a && ssh-keygen -q -t ed25519 -N '' -f b"
			  " && ssh-keygen -q -t rsa -b 2048 -N '' -f r && printf 'signed text\\n' > t"
			  " && ssh-keygen -q -Y sign -n git -f a t && mv t.sig ta.sig"
			  " && ssh-keygen -q -Y sign -n git -f r t && mv t.sig tr.sig",
			  dir) == 0
		       ? 0
		       : -1;
}

static int teardown(void **state)
{
	(void)state;
	return test_shell(NULL, 0, 0, "rm -rf %s", dir) == 0 ? 0 : -1;
}

static char *slurp(const char *name, size_t *len)
{
	char path[256];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void load(const char *name, struct sshsig_key *k)
{
	char path[256];
	struct error err = ERROR_INIT;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(sshsig_key_load(path, k, &err), 1);
	error_release(&err);
}

static void test_verify(void **state)
{
	struct sshsig_key a = { 0 }, b = { 0 }, r = { 0 };
	size_t slen, rlen;
	char *sig, *rsig;
	const char *text = "signed text\n";

	(void)state;
	if (!have_keygen)
		skip();
	load("a", &a);
	load("b", &b);
	load("r", &r);
	sig = slurp("ta.sig", &slen);
	rsig = slurp("tr.sig", &rlen);
	assert_true(sshsig_verify(&a, sig, slen, text, strlen(text)));
	assert_false(sshsig_verify(&b, sig, slen, text, strlen(text)));
	assert_false(sshsig_verify(&a, sig, slen, "signed texT\n", strlen(text)));
	assert_true(sshsig_verify(&r, rsig, rlen, text, strlen(text)));
	assert_false(sshsig_verify(&a, rsig, rlen, text, strlen(text)));
	/* every prefix of the armor short of its end line is rejected, and
	 * never read past */
	const char *endline = strstr(sig, "-----END SSH SIGNATURE-----");

	assert_non_null(endline);
	for (size_t n = 0; n < (size_t)(endline - sig) + 27; n++) {
		char *cut = malloc(n ? n : 1);

		assert_non_null(cut);
		memcpy(cut, sig, n);
		assert_false(sshsig_verify(&a, cut, n, text, strlen(text)));
		free(cut);
	}
	free(sig);
	free(rsig);
	sshsig_key_release(&a);
	sshsig_key_release(&b);
	sshsig_key_release(&r);
}

static void test_key_files(void **state)
{
	struct sshsig_key k = { 0 };
	struct error err = ERROR_INIT;
	char path[256];
	size_t len;
	char *key;

	(void)state;
	if (!have_keygen)
		skip();
	/* not an OpenSSH key: 0, for the caller to try GPG */
	snprintf(path, sizeof(path), "%s/t", dir);
	assert_int_equal(sshsig_key_load(path, &k, &err), 0);
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(sshsig_key_load(path, &k, &err), -1);
	assert_int_equal(err.code, STATUS_UNKNOWN);
	error_release(&err);
	/* truncated key files: errors, no crash */
	key = slurp("a", &len);
	for (size_t n = 20; n < len; n += 7) {
		FILE *f;
		int rc;

		snprintf(path, sizeof(path), "%s/cut", dir);
		f = fopen(path, "wb");
		assert_non_null(f);
		fwrite(key, 1, n, f);
		fclose(f);
		rc = sshsig_key_load(path, &k, &err);
		if (rc == 1)
			sshsig_key_release(&k);
		error_release(&err);
	}
	free(key);
}

static void test_pgp_truncations(void **state)
{
	/* a tiny v4 EdDSA secret key packet stream: key, user id */
	static const uint8_t key[] = {
		0xc5, 0x14, 4, 0, 0, 0, 1, 22, 3, 0x2b, 0x06, 0x01, 0x00, 0x08, 0xaa, 0x00, 0xaa,
		0xbb, 0xcc, 0x00, 0x01, 0x01,
		0xcd, 0x03, 'u', 'i', 'd',
	};
	struct strbuf out = STRBUF_INIT;

	(void)state;
	assert_int_equal(pgpkey_public_keyring(key, sizeof(key), &out), 1);
	/* public key packet (tag 6) with the 13 public bytes, then the user id */
	assert_int_equal(out.len, 2 + 13 + 5);
	assert_int_equal((uint8_t)out.buf[0], 0xc6);
	assert_int_equal((uint8_t)out.buf[1], 13);
	assert_memory_equal(out.buf + 2, key + 2, 13);
	assert_memory_equal(out.buf + 15, key + 22, 5);
	for (size_t n = 0; n < sizeof(key); n++) {
		uint8_t *cut = malloc(n ? n : 1);

		assert_non_null(cut);
		memcpy(cut, key, n);
		strbuf_reset(&out);
		/* only the whole key packet (alone or with its user id) parses */
		assert_int_equal(pgpkey_public_keyring(cut, n, &out), n == 22 || n == sizeof(key));
		free(cut);
	}
	strbuf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_key_files),
		cmocka_unit_test(test_pgp_truncations),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
