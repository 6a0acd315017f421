/*
 * Encoding and decoding of the hooks payload (see payload.h). The JSON field
 * names are upstream's; the repository is a protojson string whose field
 * names are lowerCamelCase when we write them, and either spelling when we
 * read them, as protojson accepts both.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "hook/payload.h"

#define MAX_PAYLOAD ((size_t)1 << 20)

static char *dup_str(json_t *o, const char *camel, const char *snake)
{
	const char *s = json_string_value(json_object_get(o, camel));
	if (!s && snake)
		s = json_string_value(json_object_get(o, snake));
	return s ? strdup(s) : NULL;
}

static int decode_repo(const char *text, struct hook_payload_repo *r, struct error *err)
{
	json_error_t jerr;
	json_t *o = json_loads(text, 0, &jerr);
	int ret = -1;

	if (!o || !json_is_object(o)) {
		error_set(err, STATUS_INVALID_ARGUMENT, "decoding hooks payload repository: %s",
			  jerr.text);
		goto out;
	}
	r->storage_name = dup_str(o, "storageName", "storage_name");
	r->relative_path = dup_str(o, "relativePath", "relative_path");
	r->git_object_directory = dup_str(o, "gitObjectDirectory", "git_object_directory");
	r->gl_repository = dup_str(o, "glRepository", "gl_repository");
	r->gl_project_path = dup_str(o, "glProjectPath", "gl_project_path");
	json_t *alts = json_object_get(o, "gitAlternateObjectDirectories");
	if (!alts)
		alts = json_object_get(o, "git_alternate_object_directories");
	size_t n = json_is_array(alts) ? json_array_size(alts) : 0;
	if (n) {
		r->git_alternate_object_directories = calloc(n, sizeof(char *));
		if (!r->git_alternate_object_directories) {
			error_set(err, STATUS_RESOURCE_EXHAUSTED, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			const char *s = json_string_value(json_array_get(alts, i));
			r->git_alternate_object_directories[i] = strdup(s ? s : "");
		}
		r->n_git_alternate_object_directories = n;
	}
	ret = 0;
out:
	json_decref(o);
	return ret;
}

int hook_payload_decode(const char *value, struct hook_payload *p, struct error *err)
{
	size_t len = strlen(value);
	unsigned char *raw = NULL;
	json_t *o = NULL;
	json_error_t jerr;
	int ret = -1;

	memset(p, 0, sizeof(*p));
	if (len > MAX_PAYLOAD || len % 4) {
		error_set(err, STATUS_INVALID_ARGUMENT, "decoding hooks payload: illegal base64 data");
		goto out;
	}
	raw = malloc(len / 4 * 3 + 1);
	if (!raw) {
		error_set(err, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	int n = EVP_DecodeBlock(raw, (const unsigned char *)value, (int)len);
	if (n < 0) {
		error_set(err, STATUS_INVALID_ARGUMENT, "decoding hooks payload: illegal base64 data");
		goto out;
	}
	/* EVP_DecodeBlock counts '=' padding as zero bytes. */
	if (len >= 1 && value[len - 1] == '=')
		n--;
	if (len >= 2 && value[len - 2] == '=')
		n--;
	o = json_loadb((const char *)raw, (size_t)n, 0, &jerr);
	if (!o || !json_is_object(o)) {
		error_set(err, STATUS_INVALID_ARGUMENT, "decoding hooks payload: %s", jerr.text);
		goto out;
	}
	p->requested_hooks = (unsigned)json_integer_value(json_object_get(o, "requested_hooks"));
	if (!p->requested_hooks)
		p->requested_hooks = HOOK_ALL;
	const char *repo = json_string_value(json_object_get(o, "repository"));
	if (repo && decode_repo(repo, &p->repo, err) < 0)
		goto out;
	p->object_format = dup_str(o, "object_format", NULL);
	p->runtime_dir = dup_str(o, "runtime_dir", NULL);
	p->internal_socket = dup_str(o, "internal_socket", NULL);
	p->internal_socket_token = dup_str(o, "internal_socket_token", NULL);
	json_t *tx = json_object_get(o, "transaction");
	p->has_transaction = tx && !json_is_null(tx);
	json_t *ud = json_object_get(o, "user_details");
	if (json_is_object(ud)) {
		p->has_user_details = 1;
		p->username = dup_str(ud, "username", NULL);
		p->userid = dup_str(ud, "userid", NULL);
		p->protocol = dup_str(ud, "protocol", NULL);
		p->remote_ip = dup_str(ud, "remote_ip", NULL);
	}
	json_t *ff = json_object_get(o, "feature_flags_with_value");
	if (json_is_array(ff))
		p->feature_flags_json = json_dumps(ff, JSON_COMPACT);
	ret = 0;
out:
	if (ret < 0)
		hook_payload_release(p);
	json_decref(o);
	free(raw);
	return ret;
}

const char *hook_env_get(const char *const *env, size_t n, const char *key)
{
	size_t kl = strlen(key);
	const char *found = NULL;
	for (size_t i = 0; i < n; i++)
		if (env[i] && !strncmp(env[i], key, kl) && env[i][kl] == '=')
			found = env[i] + kl + 1;
	return found;
}

int hook_payload_from_env(const char *const *env, size_t n, struct hook_payload *p,
			  struct error *err)
{
	const char *v = hook_env_get(env, n, HOOK_PAYLOAD_ENV);
	memset(p, 0, sizeof(*p));
	if (!v)
		return error_set(err, STATUS_INVALID_ARGUMENT,
				 "no hooks payload found in environment");
	return hook_payload_decode(v, p, err);
}

static void set_str(json_t *o, const char *key, const char *v)
{
	if (v && *v)
		json_object_set_new(o, key, json_string(v));
}

int hook_payload_encode(const struct hook_payload *p, char **out, struct error *err)
{
	json_t *o = json_object(), *r = json_object();
	char *repo = NULL, *text = NULL;
	int ret = -1;

	*out = NULL;
	set_str(r, "storageName", p->repo.storage_name);
	set_str(r, "relativePath", p->repo.relative_path);
	set_str(r, "gitObjectDirectory", p->repo.git_object_directory);
	if (p->repo.n_git_alternate_object_directories) {
		json_t *a = json_array();
		for (size_t i = 0; i < p->repo.n_git_alternate_object_directories; i++)
			json_array_append_new(a, json_string(p->repo.git_alternate_object_directories[i]));
		json_object_set_new(r, "gitAlternateObjectDirectories", a);
	}
	set_str(r, "glRepository", p->repo.gl_repository);
	set_str(r, "glProjectPath", p->repo.gl_project_path);
	repo = json_dumps(r, JSON_COMPACT);
	json_object_set_new(o, "requested_hooks", json_integer(p->requested_hooks));
	if (p->feature_flags_json) {
		json_t *ff = json_loads(p->feature_flags_json, 0, NULL);
		if (ff)
			json_object_set_new(o, "feature_flags_with_value", ff);
	}
	json_object_set_new(o, "repository", json_string(repo ? repo : "{}"));
	json_object_set_new(o, "object_format",
			    json_string(p->object_format ? p->object_format : "sha1"));
	json_object_set_new(o, "runtime_dir", json_string(p->runtime_dir ? p->runtime_dir : ""));
	json_object_set_new(o, "internal_socket",
			    json_string(p->internal_socket ? p->internal_socket : ""));
	json_object_set_new(o, "internal_socket_token",
			    json_string(p->internal_socket_token ? p->internal_socket_token : ""));
	json_object_set_new(o, "transaction", json_null());
	if (p->has_user_details)
		json_object_set_new(o, "user_details",
				    json_pack("{s:s,s:s,s:s,s:s}", "username",
					      p->username ? p->username : "", "userid",
					      p->userid ? p->userid : "", "protocol",
					      p->protocol ? p->protocol : "", "remote_ip",
					      p->remote_ip ? p->remote_ip : ""));
	else
		json_object_set_new(o, "user_details", json_null());
	text = json_dumps(o, JSON_COMPACT);
	if (!text) {
		error_set(err, STATUS_INTERNAL, "encoding hooks payload");
		goto out;
	}
	size_t tl = strlen(text);
	*out = malloc((tl + 2) / 3 * 4 + 1);
	if (!*out) {
		error_set(err, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)*out, (const unsigned char *)text, (int)tl);
	ret = 0;
out:
	free(text);
	free(repo);
	json_decref(r);
	json_decref(o);
	return ret;
}

int hook_payload_is_requested(const struct hook_payload *p, unsigned hook)
{
	unsigned req = p->requested_hooks ? p->requested_hooks : HOOK_ALL;
	return (req & hook) != 0;
}

void hook_payload_release(struct hook_payload *p)
{
	free(p->repo.storage_name);
	free(p->repo.relative_path);
	free(p->repo.git_object_directory);
	for (size_t i = 0; i < p->repo.n_git_alternate_object_directories; i++)
		free(p->repo.git_alternate_object_directories[i]);
	free(p->repo.git_alternate_object_directories);
	free(p->repo.gl_repository);
	free(p->repo.gl_project_path);
	free(p->object_format);
	free(p->runtime_dir);
	free(p->internal_socket);
	free(p->internal_socket_token);
	free(p->username);
	free(p->userid);
	free(p->protocol);
	free(p->remote_ip);
	free(p->feature_flags_json);
	memset(p, 0, sizeof(*p));
}
