/*
 * Tests for src/rpc/auth.c: every branch of the v2 token check (parse
 * failures, version, HMAC, timestamp parsing, the inclusive +-30 s window),
 * the transitioning and disabled modes, previous tokens, and the exact
 * metric lines each outcome produces. Signatures are checked against a
 * vector computed independently (Python's hmac module).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/metrics.h"
#include "rpc/auth.h"

#define TS 1700000000
/* hmac.new(b"secret-token", b"1700000000", sha256).hexdigest() */
#define SIG_CURRENT "7dcde6bb4e3ba6a12c9a8f07cbfadec5b1d7d6aff4f8d38ecae7aa77fddceba4"
/* hmac.new(b"old-token", b"1700000000", sha256).hexdigest() */
#define SIG_OLD "8b12be1b07bb7f52c96d4a10e6e6aeb493909326d95197d155471a5f2b7a360f"

static const struct auth_config enforced = { "secret-token", 0, NULL, 0 };

static void sign(const char *secret, const char *msg, char *hex_out)
{
	unsigned char mac[32];
	unsigned int len = 0;

	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, strlen(msg),
	     mac, &len);
	assert_int_equal(len, 32);
	for (int i = 0; i < 32; i++)
		snprintf(hex_out + 2 * i, 3, "%02x", mac[i]);
}

static char *render(void)
{
	struct strbuf sb = STRBUF_INIT;

	assert_int_equal(metrics_render(&sb), 0);
	return strbuf_detach(&sb, NULL);
}

static void assert_metric(const char *line)
{
	char *text = render();
	char *want = NULL;

	assert_true(asprintf(&want, "\n%s\n", line) > 0);
	if (!strstr(text, want)) {
		print_error("missing line: %s\nin:\n%s", line, text);
		fail();
	}
	free(want);
	free(text);
}

static void assert_no_metric(const char *prefix)
{
	char *text = render();
	assert_null(strstr(text, prefix));
	free(text);
}

/* Runs auth_check and returns the resulting code (0 when accepted). */
static int check(const struct auth_config *cfg, const char *value, int64_t now,
		 const char **version)
{
	struct error err = ERROR_INIT;
	const char *v = "unset";
	int ret = auth_check(cfg, value, now, &v, &err);
	int code = err.code;

	if (ret == 0) {
		assert_false(error_is_set(&err));
	} else {
		assert_int_equal(ret, -1);
		if (code == STATUS_UNAUTHENTICATED)
			assert_string_equal(err.message, "authentication required");
		else if (code == STATUS_PERMISSION_DENIED)
			assert_string_equal(err.message, "permission denied");
		else
			fail();
	}
	if (version)
		*version = v;
	error_release(&err);
	return code;
}

static void test_token_v2_vector(void **state)
{
	char buf[128];

	(void)state;
	assert_int_equal(auth_token_v2("secret-token", TS, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "v2." SIG_CURRENT ".1700000000");
	/* too small a buffer fails cleanly */
	assert_int_equal(auth_token_v2("secret-token", TS, buf, 40), -1);
	assert_string_equal(buf, "");
}

static void test_accept_window_inclusive(void **state)
{
	const char *h = "Bearer v2." SIG_CURRENT ".1700000000";
	const char *version = NULL;

	(void)state;
	metrics_reset();
	assert_int_equal(check(&enforced, h, TS, &version), STATUS_OK);
	assert_string_equal(version, "v2");
	assert_int_equal(check(&enforced, h, TS + 30, NULL), STATUS_OK);
	assert_int_equal(check(&enforced, h, TS - 30, NULL), STATUS_OK);
	assert_metric("gitaly_authentications_total{enforced=\"true\",status=\"ok\"} 3");

	assert_int_equal(check(&enforced, h, TS + 31, NULL), STATUS_PERMISSION_DENIED);
	assert_metric("gitaly_authentication_errors_total{error=\"timestamp too old\",version=\"v2\"} 1");
	assert_int_equal(check(&enforced, h, TS - 31, NULL), STATUS_PERMISSION_DENIED);
	assert_metric("gitaly_authentication_errors_total{error=\"timestamp too new\",version=\"v2\"} 1");
	assert_metric("gitaly_authentications_total{enforced=\"true\",status=\"denied\"} 2");
}

static void test_scheme_case_insensitive(void **state)
{
	(void)state;
	metrics_reset();
	assert_int_equal(check(&enforced, "bearer v2." SIG_CURRENT ".1700000000", TS, NULL), 0);
	assert_int_equal(check(&enforced, "BEARER v2." SIG_CURRENT ".1700000000", TS, NULL), 0);
	/* upper-case hex decodes too */
	{
		char upper[] = "Bearer v2." SIG_CURRENT ".1700000000";
		for (char *p = upper + 10; *p != '.'; p++)
			if (*p >= 'a' && *p <= 'f')
				*p = (char)(*p - 'a' + 'A');
		assert_int_equal(check(&enforced, upper, TS, NULL), 0);
	}
}

static void test_unauthenticated(void **state)
{
	static const char *const bad[] = {
		NULL,                                     /* no metadata */
		"",                                       /* empty */
		"Bearer",                                 /* no token */
		"Basic v2." SIG_CURRENT ".1700000000",    /* other scheme */
		"Bearer v2" SIG_CURRENT "1700000000",     /* no dots */
		"Bearer v2." SIG_CURRENT,                 /* two parts */
		"Bearer v2.zz.1700000000",                /* not hex */
		"Bearer v2.abc.1700000000",               /* odd hex */
		"Bearerv2." SIG_CURRENT ".1700000000",    /* no space */
	};
	const char *version = "x";

	(void)state;
	metrics_reset();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(check(&enforced, bad[i], TS, &version), STATUS_UNAUTHENTICATED);
		assert_null(version);
	}
	assert_metric("gitaly_authentications_total{enforced=\"true\",status=\"unauthenticated\"} 9");
	assert_no_metric("gitaly_authentication_errors_total");
}

static void test_denied(void **state)
{
	char value[256], sig[65];
	const char *version = NULL;

	(void)state;
	metrics_reset();
	/* wrong version: denied without an error-label count */
	assert_int_equal(check(&enforced, "Bearer v1." SIG_CURRENT ".1700000000", TS, &version),
			 STATUS_PERMISSION_DENIED);
	assert_string_equal(version, "v1");
	assert_int_equal(check(&enforced, "Bearer v3." SIG_CURRENT ".1700000000", TS, &version),
			 STATUS_PERMISSION_DENIED);
	assert_null(version);
	assert_no_metric("gitaly_authentication_errors_total");

	/* wrong signature, wrong length, empty signature */
	assert_int_equal(check(&enforced, "Bearer v2." SIG_OLD ".1700000000", TS, NULL),
			 STATUS_PERMISSION_DENIED);
	assert_int_equal(check(&enforced, "Bearer v2.abcd.1700000000", TS, NULL),
			 STATUS_PERMISSION_DENIED);
	assert_int_equal(check(&enforced, "Bearer v2..1700000000", TS, NULL),
			 STATUS_PERMISSION_DENIED);
	/* a signature longer than 32 bytes never matches */
	assert_int_equal(check(&enforced, "Bearer v2." SIG_CURRENT "00.1700000000", TS, NULL),
			 STATUS_PERMISSION_DENIED);
	assert_metric("gitaly_authentication_errors_total{error=\"wrong hmac signature\",version=\"v2\"} 4");

	/* signed but unparsable timestamp */
	sign("secret-token", "17e8", sig);
	snprintf(value, sizeof(value), "Bearer v2.%s.17e8", sig);
	assert_int_equal(check(&enforced, value, TS, NULL), STATUS_PERMISSION_DENIED);
	sign("secret-token", "99999999999999999999", sig);
	snprintf(value, sizeof(value), "Bearer v2.%s.99999999999999999999", sig);
	assert_int_equal(check(&enforced, value, TS, NULL), STATUS_PERMISSION_DENIED);
	assert_metric("gitaly_authentication_errors_total{error=\"cannot parse timestamp\",version=\"v2\"} 2");

	/* the message may itself contain dots: it is still the signed text */
	sign("secret-token", "1700000000.5", sig);
	snprintf(value, sizeof(value), "Bearer v2.%s.1700000000.5", sig);
	assert_int_equal(check(&enforced, value, TS, NULL), STATUS_PERMISSION_DENIED);
	assert_metric("gitaly_authentication_errors_total{error=\"cannot parse timestamp\",version=\"v2\"} 3");

	/* a "+" sign parses like Go's ParseInt */
	sign("secret-token", "+1700000000", sig);
	snprintf(value, sizeof(value), "Bearer v2.%s.+1700000000", sig);
	assert_int_equal(check(&enforced, value, TS, NULL), STATUS_OK);

	/* extreme timestamps do not overflow the window arithmetic */
	sign("secret-token", "-9223372036854775808", sig);
	snprintf(value, sizeof(value), "Bearer v2.%s.-9223372036854775808", sig);
	assert_int_equal(check(&enforced, value, TS, NULL), STATUS_PERMISSION_DENIED);
	sign("secret-token", "9223372036854775807", sig);
	snprintf(value, sizeof(value), "Bearer v2.%s.9223372036854775807", sig);
	assert_int_equal(check(&enforced, value, TS, NULL), STATUS_PERMISSION_DENIED);
	assert_metric("gitaly_authentication_errors_total{error=\"timestamp too new\",version=\"v2\"} 1");
	assert_metric("gitaly_authentication_errors_total{error=\"timestamp too old\",version=\"v2\"} 1");
}

static void test_transitioning_never_rejects(void **state)
{
	const struct auth_config cfg = { "secret-token", 1, NULL, 0 };

	(void)state;
	metrics_reset();
	assert_int_equal(check(&cfg, "Bearer v2." SIG_CURRENT ".1700000000", TS, NULL), 0);
	assert_int_equal(check(&cfg, NULL, TS, NULL), 0);
	assert_int_equal(check(&cfg, "Bearer v2." SIG_OLD ".1700000000", TS, NULL), 0);
	assert_int_equal(check(&cfg, "Bearer v2." SIG_CURRENT ".1700000000", TS + 100, NULL), 0);
	assert_metric("gitaly_authentications_total{enforced=\"false\",status=\"denied\"} 2");
	assert_metric("gitaly_authentications_total{enforced=\"false\",status=\"unauthenticated\"} 1");
	assert_metric("gitaly_authentications_total{enforced=\"false\",status=\"would be ok\"} 1");
	assert_metric("gitaly_authentication_errors_total{error=\"timestamp too old\",version=\"v2\"} 1");
}

static void test_disabled(void **state)
{
	const struct auth_config none = { NULL, 0, NULL, 0 };
	const struct auth_config empty_transitioning = { "", 1, NULL, 0 };
	const char *version = NULL;

	(void)state;
	metrics_reset();
	assert_int_equal(check(&none, NULL, TS, &version), 0);
	assert_null(version);
	/* the version is still reported for the log when a token was sent */
	assert_int_equal(check(&none, "Bearer v2.00.1", TS, &version), 0);
	assert_string_equal(version, "v2");
	assert_int_equal(check(NULL, NULL, TS, NULL), 0);
	assert_int_equal(check(&empty_transitioning, "garbage", TS, NULL), 0);
	assert_metric("gitaly_authentications_total{enforced=\"true\",status=\"server disabled authentication\"} 3");
	assert_metric("gitaly_authentications_total{enforced=\"false\",status=\"server disabled authentication\"} 1");
}

static void test_previous_tokens(void **state)
{
	const char *const previous[] = { "", "old-token" };
	const struct auth_config cfg = { "secret-token", 0, previous, 2 };

	(void)state;
	metrics_reset();
	assert_int_equal(check(&cfg, "Bearer v2." SIG_OLD ".1700000000", TS, NULL), 0);
	assert_int_equal(check(&cfg, "Bearer v2." SIG_CURRENT ".1700000000", TS, NULL), 0);
	/* previous tokens still obey the window */
	assert_int_equal(check(&cfg, "Bearer v2." SIG_OLD ".1700000000", TS + 31, NULL),
			 STATUS_PERMISSION_DENIED);
	/* an empty previous token never matches anything */
	{
		char sig[65], value[128];
		sign("other", "1700000000", sig);
		snprintf(value, sizeof(value), "Bearer v2.%s.1700000000", sig);
		assert_int_equal(check(&cfg, value, TS, NULL), STATUS_PERMISSION_DENIED);
	}
	assert_metric("gitaly_authentications_total{enforced=\"true\",status=\"ok\"} 2");
	assert_metric("gitaly_authentications_total{enforced=\"true\",status=\"denied\"} 2");
	/* without the list, the old token is refused */
	assert_int_equal(check(&enforced, "Bearer v2." SIG_OLD ".1700000000", TS, NULL),
			 STATUS_PERMISSION_DENIED);
}

static void test_roundtrip_client_token(void **state)
{
	char tok[128], value[160];

	(void)state;
	assert_int_equal(auth_token_v2("secret-token", TS + 5, tok, sizeof(tok)), 0);
	snprintf(value, sizeof(value), "Bearer %s", tok);
	assert_int_equal(check(&enforced, value, TS, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_v2_vector),
		cmocka_unit_test(test_accept_window_inclusive),
		cmocka_unit_test(test_scheme_case_insensitive),
		cmocka_unit_test(test_unauthenticated),
		cmocka_unit_test(test_denied),
		cmocka_unit_test(test_transitioning_never_rejects),
		cmocka_unit_test(test_disabled),
		cmocka_unit_test(test_previous_tokens),
		cmocka_unit_test(test_roundtrip_client_token),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
