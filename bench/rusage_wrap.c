/*
 * rusage_wrap LOG PROGRAM ARGS...: runs PROGRAM and appends one line to LOG
 * with its user and system seconds, minor page faults, voluntary and
 * involuntary context switches (wait4(2), children included). Used by
 * bench/packcache_hit.py to measure gitaly-hooks without a heavy wrapper.
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct rusage ru;
	int st = 0;
	pid_t pid;
	FILE *f;

	if (argc < 3) {
		fprintf(stderr, "usage: rusage_wrap LOG PROGRAM [ARGS...]\n");
		return 2;
	}
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		execv(argv[2], argv + 2);
		_exit(127);
	}
	if (wait4(pid, &st, 0, &ru) < 0)
		return 1;
	f = fopen(argv[1], "a");
	if (f) {
		fprintf(f, "%.6f %.6f %ld %ld %ld\n",
			(double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
			(double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, ru.ru_minflt,
			ru.ru_nvcsw, ru.ru_nivcsw);
		fclose(f);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
