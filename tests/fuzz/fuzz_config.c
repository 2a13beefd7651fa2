/* SPDX-License-Identifier: MIT */
/*
 * fuzz_config - jobqd's configuration file reader (manager/options.c): the
 * input is the file, read as `jobqd --config FILE --dir DIR` would. A bad
 * file must end in a message and exit status 2, never a crash; here the
 * exit comes back to this harness through jobq__opts_exit().
 *
 * The words of the options live as long as the process (the options point
 * into them), so each run leaves them behind by design: tests/fuzz/run.sh
 * runs this target without leak detection.
 */
#include <getopt.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobqd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static jmp_buf back;
static int status;

void jobq__opts_exit(int st)
{
	status = st;
	longjmp(back, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64], dir[64];
	struct jobq__opts o;
	char *argv[] = {"jobqd", "--config", path, "--dir", dir, NULL};
	FILE *f;

	if (!path[0]) {
		snprintf(path, sizeof(path), "/tmp/fuzz_config.%d.json",
			 (int)getpid());
		snprintf(dir, sizeof(dir), "/tmp/fuzz_config.%d.dir",
			 (int)getpid());
	}
	f = fopen(path, "w");
	if (!f)
		return 0;
	if (size && fwrite(data, 1, size, f) != size) {
		fclose(f);
		return 0;
	}
	fclose(f);
	memset(&o, 0, sizeof(o));
	optind = 0; /* glibc: start getopt afresh */
	status = -1;
	if (!setjmp(back))
		jobq__parse_opts(5, argv, &o);
	/* Parsed, or refused with the usage status: nothing else. */
	if (status != -1 && status != 0 && status != 2)
		abort();
	unlink(path);
	return 0;
}
