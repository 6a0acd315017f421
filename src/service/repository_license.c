/*
 * FindLicense of RepositoryService. Upstream runs go-license-detector over
 * the top-level files of HEAD's tree; this is a faithful subset of it:
 *
 * - Candidate files: blobs at the top of HEAD's tree whose name matches
 *   the detector's license-file pattern (LICENSE, LICENCE(S), COPYING,
 *   COPYRIGHT, COPYLEFT, LEGAL, UNLICENSE, [L]GPL[-vX.Y], BSD, MIT, APACHE,
 *   alone or joined to other words by '-', '_', '.' or ' ', any case).
 * - Recognition: the text is normalised (lower case, every run of
 *   non-alphanumerics becomes one space) and must contain the distinctive
 *   phrases of one of these licenses: AGPL-3.0, LGPL-3.0, LGPL-2.1,
 *   GPL-3.0, GPL-2.0, Apache-2.0, MPL-2.0, BSD-3-Clause, BSD-2-Clause, MIT,
 *   ISC, Unlicense, CC0-1.0. Names, URLs and nicknames are the ones
 *   upstream returns for them (SPDX names, first SPDX URL; the GPL family
 *   under their deprecated short ids such as "gpl-3.0").
 * - Not detected: every other SPDX license, licenses stated only in a
 *   README (upstream also looks there), and fuzzy matches of altered texts
 *   (upstream scores similarity; here the phrases must be present).
 * - A candidate file that matches nothing gives upstream's "Other" answer;
 *   no candidate, or no HEAD, gives an empty answer.
 */
#include <pthread.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "git/command.h"
#include "repository.pb-c.h"
#include "service/repository_internal.h"
#include "service/util.h"

#define LICENSE_FILE_CAP ((size_t)4 * 1024 * 1024)
#define TREE_CAP ((size_t)64 * 1024 * 1024)

struct license_def {
	const char *short_name, *name, *url, *nickname;
	const char *phrases[4]; /* all must appear (normalised) */
	const char *absent;     /* must not appear, or NULL */
};

static const struct license_def licenses[] = {
	{ "agpl-3.0", "GNU Affero General Public License v3.0", "https://www.gnu.org/licenses/agpl.txt",
	  "GNU AGPLv3", { "gnu affero general public license version 3 19 november 2007" }, NULL },
	{ "lgpl-3.0", "GNU Lesser General Public License v3.0 only",
	  "https://www.gnu.org/licenses/lgpl-3.0-standalone.html", "GNU LGPLv3",
	  { "gnu lesser general public license version 3 29 june 2007" }, NULL },
	{ "lgpl-2.1", "GNU Lesser General Public License v2.1 only",
	  "https://www.gnu.org/licenses/old-licenses/lgpl-2.1-standalone.html", "GNU LGPLv2.1",
	  { "gnu lesser general public license version 2 1 february 1999" }, NULL },
	{ "gpl-3.0", "GNU General Public License v3.0 only",
	  "https://www.gnu.org/licenses/gpl-3.0-standalone.html", "GNU GPLv3",
	  { "gnu general public license version 3 29 june 2007" }, NULL },
	{ "gpl-2.0", "GNU General Public License v2.0 only",
	  "https://www.gnu.org/licenses/old-licenses/gpl-2.0-standalone.html", "GNU GPLv2",
	  { "gnu general public license version 2 june 1991" }, NULL },
	{ "apache-2.0", "Apache License 2.0", "https://www.apache.org/licenses/LICENSE-2.0", "",
	  { "apache license", "version 2 0", "terms and conditions for use reproduction and distribution" },
	  NULL },
	{ "mpl-2.0", "Mozilla Public License 2.0", "https://www.mozilla.org/MPL/2.0/", "",
	  { "mozilla public license version 2 0" }, NULL },
	{ "bsd-3-clause", "BSD 3-Clause \"New\" or \"Revised\" License",
	  "https://opensource.org/licenses/BSD-3-Clause", "",
	  { "redistribution and use in source and binary forms with or without modification are permitted",
	    "neither the name of" },
	  NULL },
	{ "bsd-2-clause", "BSD 2-Clause \"Simplified\" License",
	  "https://opensource.org/licenses/BSD-2-Clause", "",
	  { "redistribution and use in source and binary forms with or without modification are permitted",
	    "redistributions in binary form must reproduce the above copyright notice" },
	  "neither the name of" },
	{ "mit", "MIT License", "https://opensource.org/licenses/MIT", "",
	  { "permission is hereby granted free of charge to any person obtaining a copy of this software",
	    "the above copyright notice and this permission notice shall be included in all copies or substantial portions of the software" },
	  NULL },
	{ "isc", "ISC License", "https://www.isc.org/licenses/", "",
	  { "permission to use copy modify and or distribute this software for any purpose with or without fee is hereby granted" },
	  NULL },
	{ "unlicense", "The Unlicense", "https://unlicense.org/", "",
	  { "this is free and unencumbered software released into the public domain" }, NULL },
	{ "cc0-1.0", "Creative Commons Zero v1.0 Universal",
	  "https://creativecommons.org/publicdomain/zero/1.0/legalcode", "",
	  { "creative commons", "cc0 1 0 universal" }, NULL },
};

/* go-license-detector's license file name pattern (case-insensitive). */
#define LICENSE_FILE_RE                                                                         \
	"^(.*[-_. ])?(li[cs]en[cs]es?|legal|copy(left|right|ing)|unlicense|"                   \
	"l?gpl([-_ v]?)([0-9]\\.?[0-9])?|bsd|mit|apache)([-_. ].*)?$"

/* Lower case, each run of other characters becomes one space, trimmed. */
static char *normalise(const char *s, size_t len)
{
	char *out = malloc(len + 3), *o = out;
	int space = 1;

	if (!out)
		return NULL;
	*o++ = ' ';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			*o++ = (char)c;
			space = 0;
		} else if (!space) {
			*o++ = ' ';
			space = 1;
		}
	}
	if (!space)
		*o++ = ' ';
	*o = '\0';
	return out;
}

/* Whether the normalised text holds phrase as whole words. */
static int has_phrase(const char *text, const char *phrase)
{
	char buf[512];
	size_t n = strlen(phrase);

	if (n + 3 > sizeof(buf))
		return 0;
	buf[0] = ' ';
	memcpy(buf + 1, phrase, n);
	buf[n + 1] = ' ';
	buf[n + 2] = '\0';
	return strstr(text, buf) != NULL;
}

static const struct license_def *license_identify(const char *data, size_t len)
{
	const struct license_def *found = NULL;
	char *text = normalise(data, len);

	if (!text)
		return NULL;
	for (size_t i = 0; i < sizeof(licenses) / sizeof(licenses[0]) && !found; i++) {
		const struct license_def *l = &licenses[i];
		int ok = 1;

		for (size_t j = 0; j < 4 && l->phrases[j] && ok; j++)
			ok = has_phrase(text, l->phrases[j]);
		if (ok && l->absent && has_phrase(text, l->absent))
			ok = 0;
		if (ok)
			found = l;
	}
	free(text);
	return found;
}

static regex_t license_re;
static int license_re_ok;
static pthread_once_t license_re_once = PTHREAD_ONCE_INIT;

static void license_re_compile(void)
{
	license_re_ok = regcomp(&license_re, LICENSE_FILE_RE, REG_EXTENDED | REG_ICASE | REG_NOSUB) == 0;
}

int repo_license_file_name(const char *name)
{
	pthread_once(&license_re_once, license_re_compile);
	return license_re_ok && regexec(&license_re, name, 0, NULL, 0) == 0;
}

static int git_output(struct git_cmd *cmd, size_t cap, struct strbuf *out, int *exit_code,
		      struct error *err)
{
	struct git_result res;

	strbuf_init(out, cap);
	if (git_cmd_run(cmd, NULL, 0, out, NULL, &res, err) < 0)
		return -1;
	*exit_code = res.exit_code;
	return 0;
}

int repo_find_license(const char *repo_path, const struct service_git_env *genv,
		      struct repo_license *out, struct error *err)
{
	struct git_cmd *cmd;
	struct strbuf head = STRBUF_INIT, tree = STRBUF_INIT, blob = STRBUF_INIT;
	const struct license_def *best = NULL;
	char *best_path = NULL, *first_path = NULL;
	int code = 0, ret = -1;
	size_t pos = 0;

	memset(out, 0, sizeof(*out));
	cmd = service_git_new(repo_path, genv, "rev-parse");
	git_cmd_flag(cmd, "--verify");
	git_cmd_flag(cmd, "--quiet");
	git_cmd_arg(cmd, "HEAD^{commit}");
	if (git_output(cmd, 4096, &head, &code, err) < 0)
		goto out;
	strbuf_rtrim(&head);
	if (code != 0 || !head.len) {
		ret = 0; /* no HEAD: empty answer */
		goto out;
	}
	cmd = service_git_new(repo_path, genv, "ls-tree");
	git_cmd_flag(cmd, "-z");
	git_cmd_arg(cmd, head.buf);
	if (git_output(cmd, TREE_CAP, &tree, &code, err) < 0)
		goto out;
	if (code != 0) {
		error_set(err, STATUS_INTERNAL, "detect licenses: ls-tree failed: exit status %d", code);
		goto out;
	}
	/* "<mode> <type> <oid>\t<path>\0" per top-level entry. */
	while (pos < tree.len) {
		char *entry = tree.buf + pos, *tab, *name, type[16] = "", oid[65] = "";
		size_t elen = strlen(entry);
		const struct license_def *l;

		pos += elen + 1;
		tab = strchr(entry, '\t');
		if (!tab)
			continue;
		name = tab + 1;
		*tab = '\0';
		if (sscanf(entry, "%*s %15s %64s", type, oid) != 2 || strcmp(type, "blob") != 0)
			continue;
		if (!repo_license_file_name(name))
			continue;
		cmd = service_git_new(repo_path, genv, "cat-file");
		git_cmd_arg(cmd, "blob");
		git_cmd_arg(cmd, oid);
		strbuf_release(&blob);
		if (git_output(cmd, LICENSE_FILE_CAP, &blob, &code, err) < 0)
			goto out;
		if (!first_path && !(first_path = strdup(name))) {
			error_set(err, STATUS_INTERNAL, "out of memory");
			goto out;
		}
		if (code != 0)
			continue;
		l = license_identify(blob.buf ? blob.buf : "", blob.len);
		/* Equal confidence: the smaller short name wins, as upstream sorts. */
		if (l && (!best || strcmp(l->short_name, best->short_name) < 0)) {
			best = l;
			free(best_path);
			if (!(best_path = strdup(name))) {
				error_set(err, STATUS_INTERNAL, "out of memory");
				goto out;
			}
		}
	}
	if (best) {
		out->short_name = best->short_name;
		out->name = best->name;
		out->url = best->url;
		out->nickname = best->nickname;
		out->path = best_path;
		best_path = NULL;
	} else if (first_path) {
		out->short_name = "other";
		out->name = "Other";
		out->url = "";
		out->nickname = "LICENSE";
		out->path = first_path;
		first_path = NULL;
	}
	ret = 0;
out:
	free(best_path);
	free(first_path);
	strbuf_release(&head);
	strbuf_release(&tree);
	strbuf_release(&blob);
	return ret;
}

int repository_find_license_rpc(struct rpc_call *call, struct error *err)
{
	const struct service_deps *deps = rpc_call_service_data(call);
	const Gitaly__FindLicenseRequest *req =
		(const Gitaly__FindLicenseRequest *)rpc_call_request(call);
	Gitaly__FindLicenseResponse resp = GITALY__FIND_LICENSE_RESPONSE__INIT;
	struct service_git_env genv = { 0 };
	struct repo_license lic = { 0 };
	char *path = NULL;
	int ret = -1;

	if (service_repo_path(deps, req->repository, 0, &path, err) < 0)
		goto out;
	if (service_git_env_init(&genv, path, req->repository, err) < 0)
		goto out;
	if (repo_find_license(path, &genv, &lic, err) < 0)
		goto out;
	if (lic.short_name) {
		resp.license_short_name = (char *)lic.short_name;
		resp.license_name = (char *)lic.name;
		resp.license_url = (char *)lic.url;
		resp.license_nickname = (char *)lic.nickname;
		resp.license_path = lic.path;
	}
	ret = rpc_call_send(call, &resp.base, err);
out:
	free(lic.path);
	service_git_env_release(&genv);
	free(path);
	return ret;
}
