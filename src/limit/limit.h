/*
 * The limiter middleware: from `[[concurrency]]`, `[[rate_limiting]]` and
 * `[adaptive_limiting]` it builds one concurrency limiter and/or one rate
 * limiter per configured RPC (plus upstream's implicit limit of 1 per
 * repository for RepositoryService/ReplicateRepository), and applies them
 * to each call after authentication and the first request message, keyed
 * by that message's repository.relative_path, before the handler runs.
 * Concurrency is checked first, then the rate, as in upstream's
 * interceptor chain. Refusals are upstream's: ResourceExhausted "maximum
 * queue size reached", "maximum time in concurrency queue reached" or
 * "rate limit reached", with a gitaly.LimitError{error_message,
 * retry_after: 0s} detail; the access-log line gets the limit.* fields and
 * the gitaly_concurrency_limiting_* and gitaly_requests_dropped_total
 * metrics move.
 */
#ifndef LIMIT_LIMIT_H
#define LIMIT_LIMIT_H

#include <jansson.h>

#include "base/error.h"
#include "limit/concurrency.h"

struct config;
struct rpc_call;
struct limit_set;
struct limit_guard;
struct adaptive_limit;

/* Receives the limit.* access-log fields of a call (value stolen). */
typedef void (*limit_log_fn)(void *arg, const char *key, json_t *value);

/*
 * Builds the limiters of cfg (nothing is started). Returns NULL with err
 * set on failure. The metric families are registered in the global
 * registry; label series of every configured RPC start at 0 like upstream's.
 */
struct limit_set *limit_set_new(const struct config *cfg, struct error *err);

/*
 * Starts the background threads: the rate-limit bucket pruner (every
 * 5 minutes) and, when some limit is adaptive, the adaptive calculator.
 * Returns 0, or -1 with err set.
 */
int limit_set_start(struct limit_set *s, struct error *err);

/* Stops the threads and frees everything. No call may be inside. NULL is fine. */
void limit_set_free(struct limit_set *s);

/*
 * Applies the limits of full_method to a call on repository key. Returns 0
 * with *out set (NULL when nothing was limited: unconfigured method, empty
 * key, unlimited), or -1 with err set (the call must be answered with it).
 * w describes the caller's deadline and cancellation; log receives the
 * limit.* fields (may be NULL).
 */
int limit_set_enter(struct limit_set *s, const char *full_method, const char *key,
		    const struct conc_wait *w, limit_log_fn log, void *log_arg,
		    struct limit_guard **out, struct error *err);

/* Ends what limit_set_enter granted. NULL is fine. */
void limit_set_leave(struct limit_guard *g);

/* The concurrency limiter of a method, or NULL (tests and introspection). */
struct conc_limiter *limit_set_concurrency(struct limit_set *s, const char *full_method);

/*
 * Process-wide wiring used by the gRPC runtime. limit_setup builds and
 * starts the limiters of cfg and installs them for every server of the
 * process (call it once, before serving). limit_teardown uninstalls and
 * frees them (after the servers stopped).
 */
int limit_setup(const struct config *cfg, struct error *err);
void limit_teardown(void);

/*
 * Adds an adaptive limit kept by another module (upstream's "packObjects"
 * limit of [pack_objects_limiting]) to those the calculator of the next
 * limit_set_new moves and exports. The limit must outlive every limit set;
 * call it before limit_setup. Returns 0, or -1 when the list is full.
 */
int limit_register_adaptive(struct adaptive_limit *l);

/*
 * For src/rpc/call.c: limits a call whose first request message has been
 * received and whose authentication passed. Same contract as
 * limit_set_enter; the key is the repository.relative_path of the first
 * request, the deadline and cancellation are the call's, the log fields go
 * to the call's access-log line. Without limit_setup it does nothing.
 */
int limit_call_enter(struct rpc_call *call, struct limit_guard **out, struct error *err);
void limit_call_leave(struct limit_guard *g);

#endif
