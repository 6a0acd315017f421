/*
 * gitlab client: the exact JSON bodies of /allowed, /pre_receive and
 * /post_receive, the headers (JWT, user agent), how replies and HTTP errors
 * are read, and the post-receive message format (basic and alert box),
 * against a one-shot HTTP server on a unix socket (http+unix URL).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/metrics.h"
#include "base/strbuf.h"
#include "config/config.h"
#include "gitlab/client.h"

struct server {
	int fd;
	char path[108];
	char url[256];
	const char *reply; /* full HTTP response */
	char request[65536];
	size_t req_len;
	pthread_t th;
};

/* Reads one request (headers + Content-Length body), sends reply, closes. */
static void *serve_one(void *arg)
{
	struct server *s = arg;
	int c = accept(s->fd, NULL, NULL);
	size_t want = (size_t)-1;

	s->req_len = 0;
	while (c >= 0 && s->req_len < sizeof(s->request) - 1) {
		ssize_t n = read(c, s->request + s->req_len, sizeof(s->request) - 1 - s->req_len);
		if (n <= 0)
			break;
		s->req_len += (size_t)n;
		s->request[s->req_len] = 0;
		char *end = strstr(s->request, "\r\n\r\n");
		if (end && want == (size_t)-1) {
			char *cl = strcasestr(s->request, "Content-Length: ");
			want = (size_t)(end + 4 - s->request) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
		}
		if (want != (size_t)-1 && s->req_len >= want)
			break;
	}
	if (c >= 0) {
		if (write(c, s->reply, strlen(s->reply)) < 0)
			perror("write");
		close(c);
	}
	return NULL;
}

static void server_start(struct server *s, const char *reply)
{
	struct sockaddr_un sa;
	memset(s, 0, sizeof(*s));
	snprintf(s->path, sizeof(s->path), "/tmp/gl-test-%d.sock", (int)getpid());
	unlink(s->path);
	s->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, s->path, strlen(s->path));
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->fd, 1), 0);
	snprintf(s->url, sizeof(s->url), "http+unix://%%2Ftmp%%2Fgl-test-%d.sock", (int)getpid());
	s->reply = reply;
	pthread_create(&s->th, NULL, serve_one, s);
}

static void server_stop(struct server *s)
{
	pthread_join(s->th, NULL);
	close(s->fd);
	unlink(s->path);
}

static void config_for(struct config *cfg, struct server *s)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->gitlab.url = s->url;
	cfg->gitlab.secret = "topsecret";
}

static json_t *request_body(struct server *s)
{
	char *b = strstr(s->request, "\r\n\r\n");
	assert_non_null(b);
	json_t *js = json_loads(b + 4, 0, NULL);
	assert_non_null(js);
	return js;
}

static char *reply_json(int status, const char *ctype, const char *body)
{
	static char buf[4096];
	snprintf(buf, sizeof(buf), "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n%s",
		 status, ctype, strlen(body), body);
	return buf;
}

static void test_allowed_body_and_denial(void **state)
{
	struct server s;
	struct config cfg;
	struct error err = ERROR_INIT;
	char *msg = NULL;
	int allowed = 1;
	const char *alts[] = { "objects" };
	struct gitlab_allowed_params p = {
		.repo_path = "/storage/it's.git", .relative_path = "it's.git",
		.object_dir_rel = "objects/incoming-abc", .alt_dirs_rel = alts, .n_alt_dirs_rel = 1,
		.gl_repository = "project-1", .gl_id = "user-42", .protocol = "web",
		.changes = "a b refs/heads/main\n",
	};
	(void)state;

	server_start(&s, reply_json(200, "application/json",
				    "{\"status\":false,\"message\":\"You are not allowed\"}"));
	config_for(&cfg, &s);
	assert_int_equal(gitlab_allowed(&cfg, &p, &allowed, &msg, &err), 0);
	server_stop(&s);
	assert_int_equal(allowed, 0);
	assert_string_equal(msg, "You are not allowed");
	assert_true(!strncmp(s.request, "POST /api/v4/internal/allowed HTTP/1.1\r\n", 40));
	assert_non_null(strstr(s.request, "\r\nGitlab-Shell-Api-Request: ey"));
	assert_non_null(strstr(s.request, "\r\nUser-Agent: gitaly/"));
	json_t *js = request_body(&s);
	assert_string_equal(json_string_value(json_object_get(js, "action")), "git-receive-pack");
	assert_string_equal(json_string_value(json_object_get(js, "project")), "/storage/its.git");
	assert_string_equal(json_string_value(json_object_get(js, "user_id")), "42");
	assert_null(json_object_get(js, "key_id"));
	assert_string_equal(json_string_value(json_object_get(js, "protocol")), "web");
	assert_string_equal(json_string_value(json_object_get(js, "gl_repository")), "project-1");
	assert_string_equal(json_string_value(json_object_get(js, "changes")),
			    "a b refs/heads/main\n");
	assert_string_equal(json_string_value(json_object_get(js, "env")),
			    "{\"GIT_ALTERNATE_OBJECT_DIRECTORIES_RELATIVE\":[\"objects\"],"
			    "\"GIT_OBJECT_DIRECTORY_RELATIVE\":\"objects/incoming-abc\"}");
	json_decref(js);
	free(msg);

	/* The call was timed under its endpoint label. */
	static const char *const labels[] = { "endpoint" };
	static const double b[] = { 1 };
	const char *ep = "allowed", *other = "post-receive";
	struct metric_family *f = metrics_histogram("gitaly_gitlab_api_latency_seconds", "x", labels,
						    1, b, 1);
	assert_true(metrics_get(f, &ep) >= 1);
	assert_true(metrics_get(f, &other) == 0);
}

static void test_allowed_errors(void **state)
{
	struct server s;
	struct config cfg;
	struct error err = ERROR_INIT;
	char *msg = NULL, *body = NULL;
	int allowed = 1;
	struct gitlab_allowed_params p = { .gl_id = "key-7", .changes = "x" };
	(void)state;

	/* An API error carries GitLab's message. */
	server_start(&s, reply_json(401, "application/json", "{\"message\":\"Access denied\"}"));
	config_for(&cfg, &s);
	assert_int_equal(gitlab_allowed(&cfg, &p, &allowed, &msg, &err), -1);
	server_stop(&s);
	assert_string_equal(err.message, "Access denied");
	error_release(&err);

	/* A non-JSON reply is refused. */
	server_start(&s, reply_json(200, "text/html", "<html>"));
	config_for(&cfg, &s);
	assert_int_equal(gitlab_allowed(&cfg, &p, &allowed, &msg, &err), -1);
	server_stop(&s);
	assert_string_equal(err.message,
			    "/allowed endpoint respond with unsupported content type: text/html");
	error_release(&err);

	/* A 500 without a JSON message. */
	server_start(&s, reply_json(500, "text/plain", "boom"));
	config_for(&cfg, &s);
	assert_int_equal(gitlab_allowed(&cfg, &p, &allowed, &msg, &err), -1);
	server_stop(&s);
	assert_string_equal(err.message, "Internal API error (500)");
	error_release(&err);

	/* Nobody listening. */
	cfg.gitlab.url = "http+unix://%2Fnonexistent%2Fgitlab.sock";
	assert_int_equal(gitlab_allowed(&cfg, &p, &allowed, &msg, &err), -1);
	assert_string_equal(err.message, "Internal API unreachable");
	error_release(&err);

	/* gl_id forms. */
	p.gl_id = "user-x1";
	assert_int_equal(gitlab_allowed_body(&p, &body, &err), -1);
	assert_string_equal(err.message, "setting gl_id: gl_id='user-x1' is invalid");
	error_release(&err);
	p.gl_id = "username-jane";
	assert_int_equal(gitlab_allowed_body(&p, &body, &err), 0);
	assert_non_null(strstr(body, "\"username\":\"jane\""));
	free(body);
	p.gl_id = "key-7";
	assert_int_equal(gitlab_allowed_body(&p, &body, &err), 0);
	assert_non_null(strstr(body, "\"key_id\":\"7\""));
	free(body);
}

static void test_pre_receive(void **state)
{
	struct server s;
	struct config cfg;
	struct error err = ERROR_INIT;
	int inc = 0;
	(void)state;

	server_start(&s, reply_json(200, "application/json",
				    "{\"reference_counter_increased\":true}"));
	config_for(&cfg, &s);
	assert_int_equal(gitlab_pre_receive(&cfg, "project-9", &inc, &err), 0);
	server_stop(&s);
	assert_int_equal(inc, 1);
	assert_true(!strncmp(s.request, "POST /api/v4/internal/pre_receive ", 34));
	assert_string_equal(strstr(s.request, "\r\n\r\n") + 4, "{\"gl_repository\":\"project-9\"}");

	server_start(&s, reply_json(404, "application/json", "{}"));
	config_for(&cfg, &s);
	assert_int_equal(gitlab_pre_receive(&cfg, "project-9", &inc, &err), -1);
	server_stop(&s);
	assert_string_equal(err.message,
			    "http post to gitlab api /pre_receive endpoint: Internal API error (404)");
	error_release(&err);
}

static void test_post_receive(void **state)
{
	struct server s;
	struct config cfg;
	struct error err = ERROR_INIT;
	struct gitlab_message *msgs = NULL;
	size_t n = 0;
	int dec = 0;
	const char *opts[] = { "ci.skip" };
	(void)state;

	server_start(&s, reply_json(200, "application/json",
				    "{\"reference_counter_decreased\":true,\"messages\":["
				    "{\"message\":\"hello\",\"type\":\"basic\"}]}"));
	config_for(&cfg, &s);
	assert_int_equal(gitlab_post_receive(&cfg, "project-1", "user-1", "a b c\n", opts, 1, &dec,
					     &msgs, &n, &err),
			 0);
	server_stop(&s);
	assert_int_equal(dec, 1);
	assert_int_equal(n, 1);
	assert_string_equal(msgs[0].message, "hello");
	json_t *js = request_body(&s);
	assert_string_equal(json_string_value(json_object_get(js, "identifier")), "user-1");
	assert_string_equal(json_string_value(json_object_get(js, "gl_repository")), "project-1");
	assert_string_equal(json_string_value(json_object_get(js, "changes")), "a b c\n");
	assert_string_equal(json_string_value(json_array_get(json_object_get(js, "push_options"), 0)),
			    "ci.skip");
	json_decref(js);
	gitlab_messages_free(msgs, n);
}

static void test_format_messages(void **state)
{
	struct strbuf out = STRBUF_INIT;
	struct error err = ERROR_INIT;
	char eq[73];
	struct gitlab_message m[2] = {
		{ "To create a merge request, visit: http://x/mr", "basic" },
		{ "This is a long alert message that must be wrapped because it does not fit on one "
		  "single line of the box",
		  "alert" },
	};
	(void)state;

	memset(eq, '=', 72);
	eq[72] = 0;
	assert_int_equal(gitlab_format_messages(m, 2, &out, &err), 0);
	struct strbuf want = STRBUF_INIT;
	strbuf_addf(&want, "\nTo create a merge request, visit: http://x/mr\n\n");
	/* 68 columns at most per text line, each centred in 72. */
	const char *l1 = "This is a long alert message that must be wrapped because it does";
	const char *l2 = "not fit on one single line of the box";
	strbuf_addf(&want, "\n%s\n\n%*s%s\n%*s%s\n\n%s\n\n", eq, (int)(72 - strlen(l1)) / 2, "", l1,
		    (int)(72 - strlen(l2)) / 2, "", l2, eq);
	assert_string_equal(out.buf, want.buf);
	strbuf_release(&want);
	strbuf_release(&out);

	struct gitlab_message bad = { "x", "fancy" };
	assert_int_equal(gitlab_format_messages(&bad, 1, &out, &err), -1);
	assert_string_equal(err.message, "invalid message type: fancy");
	error_release(&err);
	strbuf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed_body_and_denial),
		cmocka_unit_test(test_allowed_errors),
		cmocka_unit_test(test_pre_receive),
		cmocka_unit_test(test_post_receive),
		cmocka_unit_test(test_format_messages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
