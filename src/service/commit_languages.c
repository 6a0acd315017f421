/*
 * CommitLanguages: bytes per language of the blobs in a commit's tree.
 *
 * Upstream asks go-enry (a port of GitHub's linguist). We have no linguist
 * here, so detection is our own, kept deliberately simple and documented:
 * - the language comes from the file name (a table of well-known file names
 *   and extensions, with linguist's names, types and colours); content is
 *   only used to drop binary blobs (a NUL byte in the first 2 KiB, as
 *   linguist's binary check) — ambiguous extensions take their most common
 *   language (".h" is C) instead of linguist's content heuristics;
 * - only programming and markup languages count (linguist's rule);
 * - documentation and vendored paths are skipped by a subset of linguist's
 *   documentation.yml / vendor.yml patterns, minified JS/CSS count as
 *   generated;
 * - the linguist-documentation, -vendored, -generated, -detectable and
 *   -language gitattributes of the commit override all of the above.
 * Symlinks and submodules are not files here. Results are not cached.
 */
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "git/revision.h"
#include "service/commit_internal.h"
#include "service/repository_internal.h"

enum lang_type { DATA, PROGRAMMING, MARKUP, PROSE };

struct lang {
	const char *name;
	enum lang_type type;
	const char *color;
	const char *exts; /* space separated, with leading dots; or exact names */
};

static const struct lang langs[] = {
	{ "C", PROGRAMMING, "#555555", ".c .h" },
	{ "C++", PROGRAMMING, "#f34b7d", ".cpp .cc .cxx .c++ .hpp .hh .hxx .h++ .ipp .tcc" },
	{ "C#", PROGRAMMING, "#178600", ".cs" },
	{ "Go", PROGRAMMING, "#00ADD8", ".go" },
	{ "Rust", PROGRAMMING, "#dea584", ".rs" },
	{ "Ruby", PROGRAMMING, "#701516", ".rb .rake .gemspec .ru Rakefile Gemfile Guardfile Vagrantfile" },
	{ "Python", PROGRAMMING, "#3572A5", ".py .pyw .pyi" },
	{ "JavaScript", PROGRAMMING, "#f1e05a", ".js .mjs .cjs .jsx" },
	{ "TypeScript", PROGRAMMING, "#3178c6", ".ts .cts .mts" },
	{ "TSX", PROGRAMMING, "#3178c6", ".tsx" },
	{ "Java", PROGRAMMING, "#b07219", ".java" },
	{ "Kotlin", PROGRAMMING, "#A97BFF", ".kt .kts" },
	{ "Scala", PROGRAMMING, "#c22d40", ".scala .sc" },
	{ "Swift", PROGRAMMING, "#F05138", ".swift" },
	{ "Objective-C", PROGRAMMING, "#438eff", ".m" },
	{ "PHP", PROGRAMMING, "#4F5D95", ".php .phtml" },
	{ "Perl", PROGRAMMING, "#0298c3", ".pl .pm" },
	{ "Shell", PROGRAMMING, "#89e051", ".sh .bash .zsh .ksh" },
	{ "PowerShell", PROGRAMMING, "#012456", ".ps1 .psm1 .psd1" },
	{ "Lua", PROGRAMMING, "#000080", ".lua" },
	{ "Haskell", PROGRAMMING, "#5e5086", ".hs .lhs" },
	{ "Elixir", PROGRAMMING, "#6e4a7e", ".ex .exs" },
	{ "Erlang", PROGRAMMING, "#B83998", ".erl .hrl" },
	{ "Clojure", PROGRAMMING, "#db5855", ".clj .cljs .cljc .edn" },
	{ "R", PROGRAMMING, "#198CE7", ".r" },
	{ "Dart", PROGRAMMING, "#00B4AB", ".dart" },
	{ "Makefile", PROGRAMMING, "#427819", ".mk .mak Makefile GNUmakefile makefile" },
	{ "CMake", PROGRAMMING, "#DA3434", ".cmake CMakeLists.txt" },
	{ "Dockerfile", PROGRAMMING, "#384d54", ".dockerfile Dockerfile Containerfile" },
	{ "Assembly", PROGRAMMING, "#6E4C13", ".asm .nasm" },
	{ "Unix Assembly", PROGRAMMING, "#6E4C13", ".s .S" },
	{ "Vim Script", PROGRAMMING, "#199f4b", ".vim .vimrc" },
	{ "Emacs Lisp", PROGRAMMING, "#c065db", ".el" },
	{ "OCaml", PROGRAMMING, "#ef7a08", ".ml .mli" },
	{ "Zig", PROGRAMMING, "#ec915c", ".zig" },
	{ "Nix", PROGRAMMING, "#7e7eff", ".nix" },
	{ "HCL", PROGRAMMING, "#844FBA", ".hcl .tf .tfvars" },
	{ "PLpgSQL", PROGRAMMING, "#336790", ".pgsql" },
	{ "SQL", DATA, "#e38c00", ".sql" },
	{ "Vue", MARKUP, "#41b883", ".vue" },
	{ "HTML", MARKUP, "#e34c26", ".html .htm .xhtml" },
	{ "HTML+ERB", MARKUP, "#701516", ".erb .rhtml" },
	{ "Haml", MARKUP, "#ece2a9", ".haml" },
	{ "CSS", MARKUP, "#563d7c", ".css" },
	{ "SCSS", MARKUP, "#c6538c", ".scss" },
	{ "Sass", MARKUP, "#a53b70", ".sass" },
	{ "Less", MARKUP, "#1d365d", ".less" },
	{ "TeX", MARKUP, "#3D6117", ".tex .sty .cls" },
	{ "Markdown", PROSE, "#083fa1", ".md .markdown .mdown .mkd" },
	{ "AsciiDoc", PROSE, "#73a0c5", ".adoc .asciidoc" },
	{ "Text", PROSE, NULL, ".txt" },
	{ "JSON", DATA, "#292929", ".json" },
	{ "YAML", DATA, "#cb171e", ".yml .yaml" },
	{ "TOML", DATA, "#9c4221", ".toml" },
	{ "XML", DATA, "#0060ac", ".xml .xsd .xsl" },
};

/* A subset of linguist's vendor.yml and documentation.yml. */
static const char *const vendor_patterns[] = {
	"(^|/)vendors?/", "(^|/)third[-_]?party/", "(^|/)node_modules/", "(^|/)bower_components/",
	"(^|/)Godeps/_workspace/", "(^|/)\\.yarn/", "(^|/)cache/", "(^|/)[Pp]ackages/",
	"(\\.|-)min\\.(js|css)$", "(^|/)jquery([^.]*)\\.js$", "(^|/)\\.git/",
};
static const char *const doc_patterns[] = {
	"^[Dd]ocs?/", "(^|/)[Dd]ocumentation/", "(^|/)[Jj]avadoc/", "^[Mm]an/", "^[Ee]xamples/",
	"^[Dd]emos?/", "^[Ss]amples?/", "(^|/)CHANGE(S|LOG)?(\\.|$)", "(^|/)CONTRIBUTING(\\.|$)",
	"(^|/)COPYING(\\.|$)", "(^|/)INSTALL(\\.|$)", "(^|/)LICEN[CS]E(\\.|$)", "(^|/)[Ll]icen[cs]e(\\.|$)",
	"(^|/)README(\\.|$)", "(^|/)[Rr]eadme(\\.|$)",
};

static int any_match(const char *const *pats, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++) {
		regex_t re;
		int hit;

		if (regcomp(&re, pats[i], REG_EXTENDED | REG_NOSUB) != 0)
			continue;
		hit = regexec(&re, path, 0, NULL, 0) == 0;
		regfree(&re);
		if (hit)
			return 1;
	}
	return 0;
}

static int word_in(const char *list, const char *w, int nocase)
{
	size_t n = strlen(w);

	for (const char *p = list; *p;) {
		const char *e = strchr(p, ' ');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == n && (nocase ? !strncasecmp(p, w, n) : !strncmp(p, w, n)))
			return 1;
		p += len;
		while (*p == ' ')
			p++;
	}
	return 0;
}

/* Language of a path by file name, then extension. */
static const struct lang *lang_by_name(const char *path)
{
	const char *base = strrchr(path, '/'), *dot;

	base = base ? base + 1 : path;
	for (size_t i = 0; i < sizeof(langs) / sizeof(langs[0]); i++)
		if (word_in(langs[i].exts, base, 0))
			return &langs[i];
	dot = strrchr(base, '.');
	if (!dot || dot == base)
		return NULL;
	/* ".S" is case sensitive in linguist (Unix Assembly); others are not. */
	for (size_t i = 0; i < sizeof(langs) / sizeof(langs[0]); i++)
		if (word_in(langs[i].exts, dot, 0))
			return &langs[i];
	return NULL;
}

static const struct lang *lang_by_attr(const char *name)
{
	for (size_t i = 0; i < sizeof(langs) / sizeof(langs[0]); i++)
		if (!strcasecmp(langs[i].name, name))
			return &langs[i];
	return NULL;
}

struct tally {
	char *name;
	const char *color;
	uint64_t bytes;
};

struct lang_walk {
	struct commit_repo *r;
	git_attr_options opts;
	struct tally *t;
	size_t n;
	int failed;
	struct error *err;
	/* SHA-256 (no libgit2 attributes): files gathered first, then one
	 * git check-attr over all of them. */
	char **paths, **oids;
	size_t n_files, alloc_files;
};

static const char *const attr_names[] = { "linguist-documentation", "linguist-vendored",
					   "linguist-generated", "linguist-detectable",
					   "linguist-language" };
#define N_ATTRS (sizeof(attr_names) / sizeof(attr_names[0]))

/* check-attr's "set" and "unset" in the SHA-256 path (libgit2 keeps its
 * own markers private). */
static const char attr_set_mark[] = "set", attr_unset_mark[] = "unset";

/* -1 unset (attr false), 1 set (true), 0 unspecified. */
static int attr_state(const char *v)
{
	if (v == attr_set_mark)
		return 1;
	if (v == attr_unset_mark)
		return -1;
	switch (git_attr_value(v)) {
	case GIT_ATTR_VALUE_TRUE:
		return 1;
	case GIT_ATTR_VALUE_FALSE:
		return -1;
	default:
		return 0;
	}
}

/* One regular file with its attribute values (NULL unspecified, libgit2's
 * values or the marks above, or a string). */
static int lang_file(struct lang_walk *w, const char *path, const char *oid,
		     const char *const *values)
{
	struct repo_handle h = commit_repo_handle(w->r);
	struct odb_object blob = { 0 };
	const struct lang *l = NULL;
	const char *lname = NULL, *color = NULL;
	int doc, vendored, generated, detectable, detect_ok, rc;

	doc = attr_state(values[0]);
	vendored = attr_state(values[1]);
	generated = attr_state(values[2]);
	detectable = attr_state(values[3]);
	if (doc > 0 || (doc == 0 && any_match(doc_patterns, sizeof(doc_patterns) / sizeof(*doc_patterns), path)))
		goto out;
	if (vendored > 0 ||
	    (vendored == 0 && any_match(vendor_patterns, sizeof(vendor_patterns) / sizeof(*vendor_patterns), path)))
		goto out;
	rc = odb_h_read(&h, oid, &blob, w->err);
	if (rc <= 0 || blob.type != GIT_OBJECT_BLOB) {
		error_release(w->err);
		error_set(w->err, STATUS_INTERNAL, "language stats: reading %s", path);
		w->failed = 1;
		odb_object_release(&blob);
		return -1;
	}
	if (generated > 0)
		goto out;
	if (values[4] && values[4] != attr_set_mark && values[4] != attr_unset_mark &&
	    git_attr_value(values[4]) == GIT_ATTR_VALUE_STRING) {
		lname = values[4];
		l = lang_by_attr(lname);
	} else {
		if (memchr(blob.data, '\0', blob.len > 2048 ? 2048 : blob.len))
			goto out;
		l = lang_by_name(path);
		lname = l ? l->name : NULL;
	}
	if (!lname)
		goto out;
	detect_ok = detectable > 0 || (detectable == 0 && l && (l->type == PROGRAMMING || l->type == MARKUP));
	if (!detect_ok)
		goto out;
	color = l ? l->color : NULL;
	{
		size_t i;

		for (i = 0; i < w->n && strcmp(w->t[i].name, lname); i++)
			;
		if (i == w->n) {
			struct tally *t = realloc(w->t, (w->n + 1) * sizeof(*t));

			if (!t)
				abort();
			w->t = t;
			t[i].name = strdup(lname);
			t[i].color = color;
			t[i].bytes = 0;
			if (!t[i].name)
				abort();
			w->n++;
		}
		w->t[i].bytes += (uint64_t)blob.len;
	}
out:
	odb_object_release(&blob);
	return 0;
}

static int lang_cb(void *payload, const char *root, const struct odb_tree_entry *te,
		   struct error *err)
{
	struct lang_walk *w = payload;
	const char *values[N_ATTRS] = { NULL };
	size_t rlen = strlen(root);
	char *path;
	int rc;

	(void)err;
	if ((te->mode & 0170000) != 0100000)
		return 0; /* trees are walked; symlinks and submodules skipped */
	path = malloc(rlen + te->name_len + 1);
	if (!path)
		abort();
	memcpy(path, root, rlen);
	memcpy(path + rlen, te->name, te->name_len);
	path[rlen + te->name_len] = '\0';
	if (!w->r->git) {
		if (w->n_files == w->alloc_files) {
			size_t alloc = w->alloc_files ? 2 * w->alloc_files : 64;
			char **p = realloc(w->paths, alloc * sizeof(*p));
			char **o;

			if (!p)
				abort();
			w->paths = p;
			o = realloc(w->oids, alloc * sizeof(*o));
			if (!o)
				abort();
			w->oids = o;
			w->alloc_files = alloc;
		}
		w->paths[w->n_files] = path;
		w->oids[w->n_files] = strdup(te->oid);
		if (!w->oids[w->n_files++])
			abort();
		return 0;
	}
	if (git_attr_get_many_ext(values, w->r->git, &w->opts, path, N_ATTRS,
				  (const char **)attr_names) < 0)
		memset(values, 0, sizeof(values));
	rc = lang_file(w, path, te->oid, values);
	free(path);
	return rc;
}

/* The gathered files of a SHA-256 walk, with check-attr's answers. */
static int lang_gathered(struct lang_walk *w, const char *commit_oid, struct error *err)
{
	struct repo_attr *attrs = NULL;
	size_t n_attrs = 0, k = 0;
	int ret = -1;

	if (w->n_files &&
	    repo_check_attr(w->r->path, &w->r->env, commit_oid, attr_names, N_ATTRS,
			    (const char *const *)w->paths, w->n_files, &attrs, &n_attrs, err) < 0) {
		error_prefix(err, "language stats");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	for (size_t i = 0; i < w->n_files; i++) {
		const char *values[N_ATTRS] = { NULL };

		/* Answers come per path in request order, unspecified ones left out. */
		for (; k < n_attrs && attrs[k].path == w->paths[i]; k++) {
			for (size_t j = 0; j < N_ATTRS; j++) {
				if (strcmp(attrs[k].attribute, attr_names[j]))
					continue;
				if (!strcmp(attrs[k].value, "set"))
					values[j] = attr_set_mark;
				else if (!strcmp(attrs[k].value, "unset"))
					values[j] = attr_unset_mark;
				else
					values[j] = attrs[k].value;
			}
		}
		if (lang_file(w, w->paths[i], w->oids[i], values) < 0)
			goto out;
	}
	ret = 0;
out:
	repo_attrs_free(attrs, n_attrs);
	return ret;
}

static int by_share(const void *a, const void *b)
{
	const struct tally *x = a, *y = b;

	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	return strcmp(x->name, y->name);
}

int commit_languages_rpc(struct rpc_call *call, struct error *err)
{
	const Gitaly__CommitLanguagesRequest *req = (const Gitaly__CommitLanguagesRequest *)rpc_call_request(call);
	Gitaly__CommitLanguagesResponse resp = GITALY__COMMIT_LANGUAGES_RESPONSE__INIT;
	Gitaly__CommitLanguagesResponse__Language *items = NULL, **ptrs = NULL;
	struct lang_walk w = { 0 };
	struct commit_repo r;
	char *rev = NULL, commit[ODB_OID_MAX], tree[ODB_OID_MAX];
	uint64_t total = 0;
	int found, ret = -1;

	if (commit_repo_locate(call, req->repository, &r, err) < 0)
		goto out;
	if (revision_validate((const char *)req->revision.data, req->revision.len, REVISION_ALLOW_EMPTY, err) < 0)
		goto out;
	if (commit_repo_open(&r, err) < 0)
		goto out;
	if (req->revision.len)
		rev = commit_bytes_dup(&req->revision);
	else if (commit_default_branch(&r, &rev, err) < 0)
		goto out;
	found = *rev ? commit_resolve_oid(&r, rev, GIT_OBJECT_COMMIT, commit, err) : 0;
	if (found > 0)
		found = commit_resolve_oid(&r, commit, GIT_OBJECT_TREE, tree, err);
	if (found < 0)
		goto out;
	if (!found) {
		error_set(err, STATUS_INTERNAL, "looking up revision: exit status 128");
		goto out;
	}
	w.r = &r;
	w.err = err;
	w.opts.version = GIT_ATTR_OPTIONS_VERSION;
	w.opts.flags = GIT_ATTR_CHECK_INDEX_ONLY | GIT_ATTR_CHECK_INCLUDE_COMMIT | GIT_ATTR_CHECK_NO_SYSTEM;
	if (r.git && git_oid_fromstr(&w.opts.attr_commit_id, commit) < 0) {
		error_set(err, STATUS_INTERNAL, "looking up revision: exit status 128");
		goto out;
	}
	if (commit_tree_walk(&r, tree, lang_cb, &w, err) < 0 ||
	    (!r.git && lang_gathered(&w, commit, err) < 0)) {
		if (!w.failed && strncmp(err->message ? err->message : "", "language stats", 14))
			error_prefix(err, "language stats");
		err->code = STATUS_INTERNAL;
		goto out;
	}
	qsort(w.t, w.n, sizeof(*w.t), by_share);
	for (size_t i = 0; i < w.n; i++)
		total += w.t[i].bytes;
	items = calloc(w.n + 1, sizeof(*items));
	ptrs = calloc(w.n + 1, sizeof(*ptrs));
	if (!items || !ptrs)
		abort();
	for (size_t i = 0; total && i < w.n; i++) {
		gitaly__commit_languages_response__language__init(&items[i]);
		items[i].name = w.t[i].name;
		items[i].color = (char *)(w.t[i].color ? w.t[i].color : "");
		items[i].bytes = w.t[i].bytes;
		/* float32 arithmetic, as upstream. */
		items[i].share = (float)(100 * w.t[i].bytes) / (float)total;
		ptrs[i] = &items[i];
		resp.n_languages++;
	}
	resp.languages = ptrs;
	ret = rpc_call_send(call, &resp.base, err);
out:
	for (size_t i = 0; i < w.n; i++)
		free(w.t[i].name);
	free(w.t);
	free(items);
	free(ptrs);
	for (size_t i = 0; i < w.n_files; i++) {
		free(w.paths[i]);
		free(w.oids[i]);
	}
	free(w.paths);
	free(w.oids);
	free(rev);
	commit_repo_release(&r);
	return ret;
}
