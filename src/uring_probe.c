/* SPDX-License-Identifier: MIT */
/*
 * uring_probe.c - the one place that knows which kernel offers what in
 * io_uring: setup flags tried from the best to the plainest, the opcodes
 * probed, and the explanation when io_uring cannot be had at all.
 *
 * Kernel history that matters here:
 *   5.6   IORING_OP_{READ,WRITE,OPENAT,CLOSE,ACCEPT,CONNECT,SEND,RECV},
 *         the opcode probe, IORING_FEAT_RW_CUR_POS (offset -1)
 *   5.5   IORING_SETUP_CQSIZE, IORING_FEAT_NODROP
 *   5.6   IORING_SETUP_CLAMP
 *   5.18  IORING_SETUP_SUBMIT_ALL
 *   5.19  IORING_SETUP_COOP_TASKRUN, IORING_SETUP_SINGLE_ISSUER (6.0)
 *   6.1   IORING_SETUP_DEFER_TASKRUN (with SINGLE_ISSUER)
 *   6.6   the kernel.io_uring_disabled sysctl
 * An unknown setup flag is refused with -EINVAL, so the flag sets below
 * are tried in turn until one is accepted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

/*
 * Tried in this order. DEFER_TASKRUN runs completion work only when the
 * loop asks for completions, which suits a loop that owns its thread: no
 * interrupting task work while a fiber runs. COOP_TASKRUN is the next best
 * (no IPI to the task for every completion). SUBMIT_ALL keeps submitting
 * after a bad SQE, whose error then comes as its own CQE.
 */
static const unsigned flag_sets[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
	IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
	IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_SUBMIT_ALL,
    0,
};

int (*jobq__uring_register_buffers)(struct io_uring *ring,
				    const struct iovec *iov,
				    unsigned n) = io_uring_register_buffers;

/* The opcodes the engine cannot do without (Linux 5.6 has them all). */
static const struct {
	unsigned op;
	const char *name;
} required[] = {
    {IORING_OP_READ, "READ"},
    {IORING_OP_WRITE, "WRITE"},
    {IORING_OP_TIMEOUT, "TIMEOUT"},
    {IORING_OP_LINK_TIMEOUT, "LINK_TIMEOUT"},
    {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
    {IORING_OP_POLL_ADD, "POLL_ADD"},
    {IORING_OP_ACCEPT, "ACCEPT"},
    {IORING_OP_CONNECT, "CONNECT"},
    {IORING_OP_SEND, "SEND"},
    {IORING_OP_RECV, "RECV"},
};

/* kernel.io_uring_disabled: 0, 1 (only for kernel.io_uring_group), 2
 * (off), or -1 when this kernel has no such sysctl. */
static int sysctl_disabled(void)
{
	char buf[16] = "";
	int fd =
	    open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	return buf[0] - '0';
}

static void explain(int err, char *why, size_t len)
{
	int dis = sysctl_disabled();

	if (dis == 2) {
		snprintf(why, len,
			 "io_uring is disabled on this machine "
			 "(kernel.io_uring_disabled=2); allow it with "
			 "`sysctl kernel.io_uring_disabled=0`");
	} else if (dis == 1 && (err == -EPERM || err == -EACCES)) {
		snprintf(why, len,
			 "io_uring is allowed only for the group in "
			 "kernel.io_uring_group (kernel.io_uring_disabled=1) "
			 "and this process is not in it; allow it with "
			 "`sysctl kernel.io_uring_disabled=0` or add the user "
			 "to that group");
	} else if (err == -EPERM || err == -EACCES) {
		snprintf(why, len,
			 "io_uring_setup was refused (%s): a seccomp profile "
			 "forbids io_uring (container runtimes' default "
			 "profiles do); allow the io_uring_setup, "
			 "io_uring_enter and io_uring_register syscalls in the "
			 "container's seccomp profile (e.g. docker run "
			 "--security-opt seccomp=PROFILE)",
			 strerror(-err));
	} else if (err == -ENOSYS) {
		snprintf(why, len,
			 "io_uring is not available (ENOSYS): the kernel was "
			 "built without it or is older than 5.6, or a seccomp "
			 "profile hides it; run Linux 5.6 or later with "
			 "CONFIG_IO_URING, and allow the io_uring_setup, "
			 "io_uring_enter and io_uring_register syscalls in the "
			 "container's seccomp profile");
	} else if (err == -ENOMEM) {
		snprintf(why, len,
			 "io_uring_setup failed for lack of locked memory "
			 "(ENOMEM): a ring counts against RLIMIT_MEMLOCK for "
			 "users without CAP_IPC_LOCK; raise the limit (ulimit "
			 "-l, LimitMEMLOCK= in a systemd unit)");
	} else {
		snprintf(why, len, "io_uring_setup failed: %s", strerror(-err));
	}
}

int jobq__uring_init(struct io_uring *ring, unsigned entries,
		     struct jobq__uring_caps *caps, char *why, size_t whylen)
{
	struct io_uring_probe *probe;
	int err = -EINVAL;

	memset(caps, 0, sizeof(*caps));
	for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
		struct io_uring_params p = {0};

		/* A completion queue four times the submission queue: the
		 * overflow list (IORING_FEAT_NODROP) stays a rare path.
		 * CLAMP: sizes past the kernel's limits are cut to them. */
		p.flags =
		    flag_sets[i] | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
		p.cq_entries = entries * 4;
		err = io_uring_queue_init_params(entries, ring, &p);
		if (err == -EINVAL)
			continue;
		if (err)
			break;
		caps->setup_flags = p.flags;
		caps->features = p.features;
		break;
	}
	if (err) {
		explain(err, why, whylen);
		return err;
	}

	probe = io_uring_get_probe_ring(ring);
	if (!probe) {
		io_uring_queue_exit(ring);
		snprintf(why, whylen,
			 "this kernel's io_uring is too old (no opcode "
			 "probe); Linux 5.6 or later is needed");
		return -ENOSYS;
	}
	for (unsigned op = 0; op < sizeof(caps->ops); op++)
		caps->ops[op] = io_uring_opcode_supported(probe, (int)op) != 0;
	io_uring_free_probe(probe);
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!caps->ops[required[i].op]) {
			io_uring_queue_exit(ring);
			snprintf(why, whylen,
				 "this kernel's io_uring lacks "
				 "IORING_OP_%s; Linux 5.6 or later is needed",
				 required[i].name);
			return -ENOSYS;
		}
	if (!(caps->features & IORING_FEAT_RW_CUR_POS)) {
		io_uring_queue_exit(ring);
		snprintf(why, whylen,
			 "this kernel's io_uring cannot read at the current "
			 "file position; Linux 5.6 or later is needed");
		return -ENOSYS;
	}
	if (why && whylen)
		why[0] = '\0';
	return 0;
}
