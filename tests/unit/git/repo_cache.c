/*
 * Repository handle cache: hits and misses (and their metric), the idle
 * bound and TTL, eviction, and above all that a cached handle sees what the
 * git CLI writes underneath it: new loose objects and refs, new packs,
 * repack -ad removing the packs it had open, pack-refs, a repository
 * removed and recreated at the same path, and quarantine object directories.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../support/gitsh.h"

#include "base/error.h"
#include "base/metrics.h"
#include "git/locator.h"
#include "git/objmemo.h"
#include "git/repo_cache.h"

static char tmp[64];

/* Runs a shell snippet in tmp (tests/unit/support/gitsh.h); asserts success. */
#define sh(...) TEST_GIT_SH(tmp, __VA_ARGS__)

static char *path_of(const char *rel)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s", tmp, rel) > 0);
	return p;
}

static double counter(const char *type)
{
	static const char *const names[] = { "type" };
	const char *v[] = { type };

	return metrics_get(metrics_counter("gitaly_catfile_cache_total", "x", names, 1), v);
}

static double members(void)
{
	static const char *const names[] = { "type" };
	const char *v[] = { "object_reader" };

	return metrics_get(metrics_gauge("gitaly_catfile_cache_members", "x", names, 1), v);
}

/* Blob content of rev:path through the handle, or NULL when missing. */
static char *read_path(git_repository *repo, const char *spec)
{
	git_object *obj = NULL;
	char *out = NULL;

	if (git_revparse_single(&obj, repo, spec) < 0)
		return NULL;
	if (git_object_type(obj) == GIT_OBJECT_BLOB) {
		const git_blob *b = (const git_blob *)obj;
		size_t n = (size_t)git_blob_rawsize(b);

		out = calloc(1, n + 1);
		assert_non_null(out);
		memcpy(out, git_blob_rawcontent(b), n);
	}
	git_object_free(obj);
	return out;
}

static void assert_reads(git_repository *repo, const char *spec, const char *want)
{
	char *got = read_path(repo, spec);

	if (!got)
		fail_msg("%s not readable", spec);
	assert_string_equal(got, want);
	free(got);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/repocacheXXXXXX");
	assert_non_null(mkdtemp(tmp));
	repo_cache_configure(100);
	repo_cache_set_ttl_ms(-1);
	sh("git init -q --bare -b main r.git && git init -q -b main w && cd w && "
	   "echo one > f && git add f && git commit -q -m one && git push -q ../r.git main");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	repo_cache_clear();
	sh("rm -rf '%s'", tmp);
	return 0;
}

static void test_hit_miss_and_metrics(void **state)
{
	struct error err = ERROR_INIT;
	git_repository *a = NULL, *b = NULL, *c = NULL;
	char *r = path_of("r.git");
	double hit0 = counter("hit"), miss0 = counter("miss");

	(void)state;
	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), 0);
	/* A second concurrent checkout gets its own handle. */
	assert_int_equal(repo_cache_get(r, NULL, NULL, &b, &err), 0);
	assert_ptr_not_equal(a, b);
	assert_true(counter("miss") == miss0 + 2);
	repo_cache_put(a);
	assert_true(members() == 1);
	assert_int_equal(repo_cache_get(r, NULL, NULL, &c, &err), 0);
	assert_ptr_equal(c, a);
	assert_true(counter("hit") == hit0 + 1);
	assert_reads(c, "main:f", "one\n");
	repo_cache_put(b);
	repo_cache_put(c);
	assert_int_equal(repo_cache_idle_count(), 2);
	assert_true(members() == 2);
	free(r);
}

static void test_open_failure(void **state)
{
	struct error err = ERROR_INIT;
	git_repository *a = NULL;
	char *r = path_of("missing.git");

	(void)state;
	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_null(a);
	error_release(&err);
	free(r);
}

static void test_sees_new_loose_objects_and_refs(void **state)
{
	struct error err = ERROR_INIT;
	git_repository *a = NULL;
	char *r = path_of("r.git");

	(void)state;
	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), 0);
	assert_reads(a, "main:f", "one\n");
	assert_null(read_path(a, "refs/heads/topic:g"));
	repo_cache_put(a);

	/* Push a few objects (unpacked as loose objects) and a new branch. */
	sh("cd w && echo two > f && echo gee > g && git add f g && git commit -q -m two && "
	   "git push -q ../r.git main main:topic");
	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), 0);
	assert_true(repo_cache_idle_count() == 0);
	assert_reads(a, "main:f", "two\n");
	assert_reads(a, "refs/heads/topic:g", "gee\n");
	repo_cache_put(a);
	free(r);
}

static void test_sees_new_pack_and_survives_repack(void **state)
{
	struct error err = ERROR_INIT;
	git_repository *a = NULL;
	char *r = path_of("r.git");

	(void)state;
	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), 0);
	assert_reads(a, "main:f", "one\n"); /* warm the handle */
	repo_cache_put(a);

	/* unpackLimit=1 keeps the pushed objects as a new pack. */
	sh("cd w && for i in 1 2 3 4 5; do echo $i > n$i; done && git add . && "
	   "git commit -q -m packed && git -C ../r.git config receive.unpackLimit 1 && git push -q ../r.git main && "
	   "ls ../r.git/objects/pack/*.pack >/dev/null");
	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), 0);
	assert_reads(a, "main:n3", "3\n");
	assert_reads(a, "main~1:f", "one\n");
	repo_cache_put(a);

	/* repack -ad deletes the packs the handle has open and packs the
	 * loose objects; then pack-refs moves the refs into packed-refs. */
	sh("cd r.git && git repack -q -ad && git pack-refs --all && "
	   "test -z \"$(find objects -type f -path 'objects/[0-9a-f][0-9a-f]/*')\"");
	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), 0);
	assert_reads(a, "main:n5", "5\n");
	assert_reads(a, "main~1:f", "one\n");
	repo_cache_put(a);

	/* A ref updated after pack-refs (loose again, newer than packed). */
	sh("cd w && echo three > f && git commit -q -am three && git push -q ../r.git main && "
	   "cd ../r.git && git repack -q -ad");
	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), 0);
	assert_reads(a, "main:f", "three\n");
	repo_cache_put(a);
	free(r);
}

static void test_replaced_repository(void **state)
{
	struct error err = ERROR_INIT;
	git_repository *a = NULL;
	char *r = path_of("r.git");
	double miss0;

	(void)state;
	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), 0);
	assert_reads(a, "main:f", "one\n");
	repo_cache_put(a);

	/* Removed and recreated at the same path with other history. */
	sh("rm -rf r.git && git init -q --bare -b main r.git && git init -q -b main w2 && cd w2 && "
	   "echo other > f && git add f && git commit -q -m other && git push -q ../r.git main");
	miss0 = counter("miss");
	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), 0);
	if (counter("miss") != miss0 + 1)
		fail_msg("miss %f -> %f", miss0, counter("miss"));
	assert_reads(a, "main:f", "other\n");
	repo_cache_put(a);

	/* Removed for good: the idle handle is not handed out. */
	sh("rm -rf r.git");
	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), -1);
	assert_int_equal(err.code, STATUS_INTERNAL);
	assert_int_equal(repo_cache_idle_count(), 0);
	error_release(&err);
	free(r);
}

/* Locates r.git in tmp as a request would (which stamps it), then checks
 * out a handle. */
static git_repository *locate_and_get(void)
{
	struct locator_storage st = { "default", tmp };
	struct locator loc = { &st, 1 };
	struct repo_ref ref = { .storage_name = "default", .relative_path = "r.git" };
	struct error err = ERROR_INIT;
	git_repository *repo = NULL;
	char *path = NULL;

	if (locator_repo_path(&loc, &ref, 0, &path, &err) < 0)
		fail_msg("locate: %s", err.message);
	if (repo_cache_get(path, NULL, NULL, &repo, &err) < 0)
		fail_msg("get: %s", err.message);
	free(path);
	return repo;
}

/*
 * With the locator's stamp of this request the identity check costs no
 * system call while the repository directory is unchanged; an objects
 * directory replaced, or the repository recreated, is still a new handle
 * on the very next request.
 */
static void test_identity_from_locator_stamp(void **state)
{
	git_repository *a;
	unsigned long fast;
	double hit0, miss0;

	(void)state;
	locator_test_set_trust_margin_ms(0);
	usleep(30000);
	a = locate_and_get();
	assert_reads(a, "main:f", "one\n");
	repo_cache_put(a);
	/* the first reuse confirms the identity and records the stamp */
	repo_cache_put(locate_and_get());
	fast = locator_test_fast_hits();
	hit0 = counter("hit");
	miss0 = counter("miss");
	a = locate_and_get();
	assert_reads(a, "main:f", "one\n");
	repo_cache_put(a);
	assert_true(locator_test_fast_hits() > fast);
	assert_true(counter("hit") == hit0 + 1 && counter("miss") == miss0);

	/* objects swapped for a copy: the handle is reopened */
	sh("mv r.git/objects r.git/objects.old && cp -a r.git/objects.old r.git/objects");
	miss0 = counter("miss");
	a = locate_and_get();
	assert_true(counter("miss") == miss0 + 1);
	assert_reads(a, "main:f", "one\n");
	repo_cache_put(a);

	/* recreated with other history */
	usleep(30000);
	repo_cache_put(locate_and_get());
	repo_cache_put(locate_and_get());
	sh("rm -rf r.git && git init -q --bare -b main r.git && git init -q -b main w3 && cd w3 && "
	   "echo three > f && git add f && git commit -q -m three && git push -q ../r.git main");
	miss0 = counter("miss");
	a = locate_and_get();
	assert_true(counter("miss") == miss0 + 1);
	assert_reads(a, "main:f", "three\n");
	repo_cache_put(a);
	locator_test_set_trust_margin_ms(-1);
}

static void test_idle_bound_ttl_and_evict(void **state)
{
	struct error err = ERROR_INIT;
	git_repository *h[3];
	char *paths[3];
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	double miss0;

	(void)state;
	sh("git init -q --bare r1.git && git init -q --bare r2.git && git init -q --bare r3.git");
	repo_cache_configure(2);
	for (int i = 0; i < 3; i++) {
		char rel[32];

		snprintf(rel, sizeof(rel), "r%d.git", i + 1);
		paths[i] = path_of(rel);
		assert_int_equal(repo_cache_get(paths[i], NULL, NULL, &h[i], &err), 0);
	}
	for (int i = 0; i < 3; i++)
		repo_cache_put(h[i]);
	assert_int_equal(repo_cache_idle_count(), 2);
	/* The oldest (r1) went; r3 is still there. */
	miss0 = counter("miss");
	assert_int_equal(repo_cache_get(paths[2], NULL, NULL, &h[2], &err), 0);
	assert_true(counter("miss") == miss0);
	assert_int_equal(repo_cache_get(paths[0], NULL, NULL, &h[0], &err), 0);
	assert_true(counter("miss") == miss0 + 1);

	/* Evicting while checked out: the handle is dropped on return. */
	repo_cache_evict(paths[2]);
	repo_cache_put(h[2]);
	repo_cache_put(h[0]);
	assert_int_equal(repo_cache_idle_count(), 2); /* r2 and r1 */
	repo_cache_evict(paths[1]);
	assert_int_equal(repo_cache_idle_count(), 1);

	/* TTL: idle handles expire. */
	repo_cache_set_ttl_ms(1);
	nanosleep(&ts, NULL);
	miss0 = counter("miss");
	assert_int_equal(repo_cache_get(paths[0], NULL, NULL, &h[0], &err), 0);
	assert_true(counter("miss") == miss0 + 1);
	repo_cache_put(h[0]);
	repo_cache_set_ttl_ms(-1);
	repo_cache_configure(100);
	for (int i = 0; i < 3; i++)
		free(paths[i]);
}

static void test_quarantine(void **state)
{
	struct error err = ERROR_INIT;
	git_repository *plain = NULL, *q = NULL;
	char *r = path_of("r.git"), *qdir = path_of("r.git/objects/incoming-x"), *objects;
	git_oid oid;

	(void)state;
	objects = path_of("r.git/objects");
	/* An object written only into the quarantine directory. */
	sh("mkdir -p r.git/objects/incoming-x && "
	   "echo quarantined | GIT_OBJECT_DIRECTORY=$PWD/r.git/objects/incoming-x "
	   "GIT_ALTERNATE_OBJECT_DIRECTORIES=$PWD/r.git/objects "
	   "git -C r.git hash-object -w --stdin > qoid");
	{
		char *f = path_of("qoid"), hex[64] = "";
		FILE *fp = fopen(f, "r");

		assert_non_null(fp);
		assert_non_null(fgets(hex, sizeof(hex), fp));
		fclose(fp);
		hex[40] = 0;
		assert_int_equal(git_oid_fromstr(&oid, hex), 0);
		free(f);
	}
	assert_int_equal(repo_cache_get(r, NULL, NULL, &plain, &err), 0);
	assert_int_equal(repo_cache_get(r, qdir, objects, &q, &err), 0);
	assert_ptr_not_equal(plain, q);
	{
		git_blob *b = NULL;

		assert_int_not_equal(git_blob_lookup(&b, plain, &oid), 0);
		assert_int_equal(git_blob_lookup(&b, q, &oid), 0);
		assert_memory_equal(git_blob_rawcontent(b), "quarantined\n", 12);
		git_blob_free(b);
	}
	/* Objects of the main directory stay visible through the alternate. */
	assert_reads(q, "main:f", "one\n");
	repo_cache_put(q);
	repo_cache_put(plain);

	/* The quarantine key only matches quarantine requests. */
	assert_int_equal(repo_cache_get(r, qdir, objects, &q, &err), 0);
	{
		git_blob *b = NULL;

		assert_int_equal(git_blob_lookup(&b, q, &oid), 0);
		git_blob_free(b);
	}
	repo_cache_put(q);
	/* Without the alternate, main's objects are not visible (as git).
	 * (Looked up by id: libgit2 1.5's revparse leaks a reference when a
	 * ref's target is missing, which ASan would report.) */
	{
		git_object *obj = NULL;
		git_blob *b = NULL;
		git_oid main_f;

		assert_int_equal(repo_cache_get(r, NULL, NULL, &plain, &err), 0);
		assert_int_equal(git_revparse_single(&obj, plain, "main:f"), 0);
		git_oid_cpy(&main_f, git_object_id(obj));
		git_object_free(obj);
		repo_cache_put(plain);
		assert_int_equal(repo_cache_get(r, qdir, NULL, &q, &err), 0);
		assert_int_equal(git_blob_lookup(&b, q, &main_f), GIT_ENOTFOUND);
		repo_cache_put(q);
	}
	free(r);
	free(qdir);
	free(objects);
}

struct worker {
	const char *repo;
	int failures;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 200; i++) {
		struct error err = ERROR_INIT;
		git_repository *h = NULL;
		char *got;

		if (repo_cache_get(w->repo, NULL, NULL, &h, &err) < 0) {
			w->failures++;
			error_release(&err);
			continue;
		}
		got = read_path(h, "main:f");
		if (!got || strcmp(got, "one\n"))
			w->failures++;
		free(got);
		repo_cache_put(h);
	}
	return NULL;
}

/* Many threads checking handles in and out of one repository: every read
 * succeeds, and no more handles stay idle than were ever in use at once. */
static void test_concurrent_checkouts(void **state)
{
	enum { N = 8 };
	pthread_t th[N];
	struct worker w[N];
	char *r = path_of("r.git");

	(void)state;
	for (int i = 0; i < N; i++) {
		w[i].repo = r;
		w[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
	assert_true(repo_cache_idle_count() >= 1 && repo_cache_idle_count() <= N);
	free(r);
}

/*
 * The memo of decoded objects belongs to one handle: the same handle
 * checked out again has it, a quarantine handle has its own, and a
 * repository removed and recreated at the same path starts empty.
 */
static void test_objmemo_per_handle(void **state)
{
	struct error err = ERROR_INIT;
	git_repository *a = NULL, *q = NULL;
	char *r = path_of("r.git"), *qdir = path_of("r.git/objects/incoming-y");
	char *objects = path_of("r.git/objects");
	struct objmemo *m;
	git_oid id;
	char *v = strdup("value");

	(void)state;
	memset(&id, 7, sizeof(id));
	assert_null(repo_cache_objmemo((git_repository *)&id)); /* not a handle */
	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), 0);
	m = repo_cache_objmemo(a);
	assert_non_null(m);
	assert_ptr_equal(repo_cache_objmemo(a), m);
	assert_int_equal(objmemo_put(m, &id, v, 10, free), 1);
	repo_cache_put(a);
	assert_null(repo_cache_objmemo(a)); /* returned: not ours to use */

	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), 0);
	assert_ptr_equal(objmemo_get(repo_cache_objmemo(a), &id), v);
	sh("mkdir -p r.git/objects/incoming-y");
	assert_int_equal(repo_cache_get(r, qdir, objects, &q, &err), 0);
	assert_null(objmemo_get(repo_cache_objmemo(q), &id));
	repo_cache_put(q);
	repo_cache_put(a);

	sh("rm -rf r.git && git init -q --bare -b main r.git && git init -q -b main w3 && cd w3 && "
	   "echo other > f && git add f && git commit -q -m other && git push -q ../r.git main");
	assert_int_equal(repo_cache_get(r, NULL, NULL, &a, &err), 0);
	assert_null(objmemo_get(repo_cache_objmemo(a), &id));
	repo_cache_put(a);
	free(r);
	free(qdir);
	free(objects);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hit_miss_and_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sees_new_loose_objects_and_refs, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sees_new_pack_and_survives_repack, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_replaced_repository, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity_from_locator_stamp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_bound_ttl_and_evict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quarantine, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_checkouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_objmemo_per_handle, setup, teardown),
	};

	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	repo_cache_shutdown();
	return failed;
}
