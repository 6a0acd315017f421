/*
 * `gitaly check`: loads and validates the config, then asks GitLab's
 * internal API (GET /api/v4/internal/check) whether it is reachable, signing
 * the request with the gitlab-shell secret as a HS256 JWT in the
 * Gitlab-Shell-Api-Request header, like upstream's GitLab client (the HTTP
 * client itself lives in src/gitlab/client.c).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "base/strbuf.h"
#include "cmd/gitaly/gitaly.h"
#include "config/config.h"
#include "gitlab/client.h"

static const char *json_str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

int gitaly_check(const char *config_path)
{
	struct config cfg;
	struct error err = ERROR_INIT;
	struct gitlab_response resp = { 0, "", STRBUF_INIT };
	json_t *js = NULL;
	int status = 0, rc = 1;

	memset(&cfg, 0, sizeof(cfg));
	printf("Checking GitLab API access: ");
	fflush(stdout);
	if (config_load_file(&cfg, config_path, &err) < 0 || config_validate(&cfg, &err) < 0) {
		error_prefix(&err, "load config: config_path \"%s\"", config_path);
		goto fail;
	}
	if (gitlab_request(&cfg, "GET", "/check", NULL, &resp, &err) < 0)
		goto fail;
	status = resp.status;
	js = json_loadb(resp.body.buf ? resp.body.buf : "", resp.body.len, 0, NULL);
	if (status < 200 || status >= 400) {
		const char *m = js ? json_string_value(json_object_get(js, "message")) : NULL;
		if (m)
			error_set(&err, STATUS_UNAVAILABLE, "%s", m);
		else
			error_set(&err, STATUS_UNAVAILABLE, "Internal API error (%d)", status);
		goto fail;
	}
	if (!js || !json_is_object(js)) {
		error_set(&err, STATUS_UNAVAILABLE, "decoding response from /check endpoint");
		goto fail;
	}
	printf("OK\n");
	printf("GitLab version: %s\n", json_str(js, "gitlab_version"));
	printf("GitLab revision: %s\n", json_str(js, "gitlab_revision"));
	printf("GitLab Api version: %s\n", json_str(js, "api_version"));
	printf("Redis reachable for GitLab: %s\n",
	       json_is_true(json_object_get(js, "redis")) ? "true" : "false");
	printf("OK\n");
	rc = 0;
	goto out;
fail:
	printf("FAILED\n");
	fflush(stdout);
	fprintf(stderr, "%s\n", err.message ? err.message : "check failed");
out:
	json_decref(js);
	gitlab_response_release(&resp);
	error_release(&err);
	config_release(&cfg);
	return rc;
}
