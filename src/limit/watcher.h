/*
 * Resource watchers for the adaptive calculator. The CPU watcher compares
 * how long work was held back since its previous poll with the wall time
 * between the polls; the memory watcher compares non-evictable usage with
 * the limit. Their figures come from:
 *  - the parent cgroup, like upstream (cgroup v2 `cpu.stat` throttled_usec,
 *    `memory.current`/`memory.max`/`memory.stat` inactive_file; v1
 *    `cpu.stat` throttled_time, `memory.usage_in_bytes`/`limit_in_bytes`,
 *    `memory.stat` total_inactive_file, `memory.oom_control` under_oom);
 *  - or, without a cgroup, the host: CPU pressure stall time (PSI
 *    `/proc/pressure/cpu` "some" total) or, when the kernel has no PSI, the
 *    1-minute load average as the share of runnable tasks beyond the CPU
 *    count; memory as (MemTotal - MemAvailable) / MemTotal from
 *    `/proc/meminfo`.
 */
#ifndef LIMIT_WATCHER_H
#define LIMIT_WATCHER_H

#include <stdint.h>

#include "limit/adaptive.h"

/* Where a watcher reads its figures. */
struct watcher_source {
	const char *cgroup_dir; /* the parent cgroup's directory (for this
				 * resource, under v1), or NULL for the host */
	int cgroup_v1;          /* the files of cgroup v1 rather than v2 */
	const char *proc_root;  /* "/proc" unless testing */
	int64_t (*now_us)(void); /* wall clock for the CPU ratio; NULL: CLOCK_MONOTONIC */
	int n_cpus;             /* for the load-average fallback; <= 0: online CPUs */
};

/*
 * Watchers named "CgroupCpu"/"CgroupMemory" (cgroup source, upstream's
 * names) or "HostCpu"/"HostMemory" (host source). threshold 0 selects the
 * defaults, 0.5 for CPU and 0.9 for memory. Strings in src are copied.
 * NULL when out of memory.
 */
struct adaptive_watcher *watcher_cpu_new(const struct watcher_source *src, double threshold);
struct adaptive_watcher *watcher_memory_new(const struct watcher_source *src, double threshold);

#endif
