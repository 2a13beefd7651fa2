/* SPDX-License-Identifier: MIT */
/*
 * supervise.c - the worker processes jobqd starts itself: `--workers N`
 * built-in workers (this executable again, `--as-worker`) and `--worker
 * CMD` programs (`sh -c CMD`).
 *
 * Every child gets a pidfd, polled by the io_uring loop; when it becomes
 * readable the child is reaped with waitid(P_PIDFD) at once, so no child is
 * ever left a zombie. Nobody else can reap our children, so the pid a pidfd
 * is opened on right after fork() is still the child's.
 *
 * Daemon workers (the built-in ones unless --workers-nondaemon) die with
 * the manager even when it is killed: PR_SET_PDEATHSIG. On a graceful stop
 * every worker gets JOBQ_NOTICE_STOP and SIGTERM and its running jobs
 * finish while the loop goes on serving their W_DONE: a daemon worker's
 * for up to --grace (then it is killed), a non-daemon worker's however
 * long they take (jobq__supervise_drained()).
 *
 * A worker runs in a process group of its own, and jobqd is a child
 * subreaper: what the worker started (`sh -c CMD` may fork CMD) is killed
 * with its group when the worker ends, comes to jobqd when orphaned, and
 * is reaped here by group (waitid(P_PGID)) instead of lingering as a
 * zombie of an init that may not reap. A killed member is not dead at
 * once; its group is remembered and reaped on SIGCHLD, which jobqd reads
 * from its signalfd. That covers every way such a member can end: one of
 * our children that dies sends SIGCHLD, and so does a zombie re-parented
 * to us when its parent dies; waitid(P_PGID) sees nothing else. So no
 * timer polls for them, and a member that never dies costs nothing.
 *
 * A child that exits while jobqd is not stopping is started again after a
 * backoff (1 s, doubling to 30 s; back to 1 s after a run longer than
 * 10 s). One that fails 5 times in a row within 10 s of its start, each
 * time before it registered as a worker, is reported in the log and left
 * stopped.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobqd.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define NSEC	       JOBQ__NSEC_PER_SEC
#define SV_BACKOFF_MIN (1 * NSEC)
#define SV_BACKOFF_MAX (30 * NSEC)
#define SV_QUICK_NS    (10 * NSEC) /* a run shorter than this is a quick crash */
#define SV_QUICK_MAX   5

struct child {
	const char *cmd; /* NULL: a built-in worker */
	bool daemon;
	bool alive;
	bool given_up;
	pid_t pid;
	int pidfd;
	uint64_t started;    /* CLOCK_MONOTONIC */
	uint64_t restart_at; /* 0: no restart pending */
	uint64_t backoff;
	unsigned quick; /* quick crashes in a row */
	bool served;	/* registered as a worker since its start */
	pid_t worker;	/* the pid that registered (it or its child) */
	unsigned n;	/* starts so far */
};

static struct {
	struct child *ch;
	uint32_t n;
	bool stop_started;
	bool grace_over; /* daemon workers were ended */
	uint64_t grace_at;
	pid_t *groups; /* groups of ended workers with members left */
	uint32_t ngroups, cgroups;
} super;

static const char *child_name(const struct child *ch, char *buf, size_t len)
{
	if (ch->cmd)
		snprintf(buf, len, "worker \"%.60s\"", ch->cmd);
	else
		snprintf(buf, len, "built-in worker %u",
			 (unsigned)(ch - super.ch) + 1);
	return buf;
}

static void arm(void)
{
	uint64_t at = 0;

	for (uint32_t i = 0; i < super.n; i++)
		if (super.ch[i].restart_at &&
		    (!at || super.ch[i].restart_at < at))
			at = super.ch[i].restart_at;
	/* A grace deadline already passed is seen by the next
	 * jobq__supervise_drained(); armed again it would fire forever. */
	if (super.stop_started && super.grace_at > jobq__now_ns() &&
	    (!at || super.grace_at < at))
		at = super.grace_at;
	jobq__timer_arm(JOBQ__TIMER_SUPERVISE, at);
}

/* In the child after fork(): becomes the worker. Never returns. */
static void __attribute__((noreturn))
child_exec(const struct child *ch, pid_t parent)
{
	const char *dir = jobq__m.o.dir;
	sigset_t ss;

	/* The manager blocks the signals it reads from a signalfd; a mask
	 * survives exec, and the worker must see SIGTERM. */
	sigemptyset(&ss);
	sigprocmask(SIG_SETMASK, &ss, NULL);
	signal(SIGPIPE, SIG_DFL);
	/*
	 * Nothing of the manager's is the worker's: above all not the
	 * instance and journal locks, which a child that outlived a killed
	 * manager (until exec, or PR_SET_PDEATHSIG, ends it) would hold
	 * against the next manager. Close-on-exec acts too late for that.
	 */
	if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	/* A group of its own: `sh -c CMD` may fork CMD, and signals to the
	 * worker go to the whole group so nothing it started is left. */
	setpgid(0, 0);
	if (ch->daemon) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			_exit(126);
		/* The manager died before prctl took hold. */
		if (getppid() != parent)
			_exit(1);
	}
	setenv("JOBQ_DIR", dir, 1);
	if (ch->cmd)
		execl("/bin/sh", "sh", "-c", ch->cmd, (char *)NULL);
	else {
		/* --worker-concurrency: jobs each built-in worker runs at
		 * once, as fibers. The built-in types wait on IO, so the
		 * default lets a worker overlap a few of them; one at a time
		 * would pay a round trip to the manager per job. */
		char conc[16];

		snprintf(conc, sizeof(conc), "%u",
			 jobq__m.o.worker_concurrency
			     ? jobq__m.o.worker_concurrency
			     : JOBQ__BUILTIN_CONCURRENCY);
		execl("/proc/self/exe", "jobqd", "--as-worker", "--dir", dir,
		      "--concurrency", conc,
		      ch->daemon ? "--daemon" : (char *)NULL, (char *)NULL);
	}
	_exit(127);
}

/* Starts child @ch. Returns 0 or -errno (logged). */
static int spawn(struct child *ch)
{
	pid_t parent = getpid(), pid;
	char name[96];
	int fd;

	ch->restart_at = 0;
	pid = fork();
	if (pid < 0) {
		int e = errno;

		jobq__log(JOBQ__LOG_ERROR, "starting %s: fork: %s",
			  child_name(ch, name, sizeof(name)), strerror(e));
		return -e;
	}
	if (pid == 0)
		child_exec(ch, parent);
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0) {
		int e = errno;

		/* Without a pidfd we could not notice its exit: undo. */
		jobq__log(JOBQ__LOG_ERROR, "starting %s: pidfd_open: %s",
			  child_name(ch, name, sizeof(name)), strerror(e));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -e;
	}
	/* Also here, so the group exists before we might signal it. */
	setpgid(pid, pid);
	ch->pid = pid;
	ch->pidfd = fd;
	ch->alive = true;
	ch->started = jobq__now_ns();
	ch->served = false;
	ch->n++;
	jobq__loop_watch_child(fd, (uint32_t)(ch - super.ch));
	jobq__log(1, "started %s: pid %d", child_name(ch, name, sizeof(name)),
		  (int)pid);
	return 0;
}

/*
 * reap_group - reap the children of ours left in process group @pgid (a
 * worker's, killed already). Returns true when none is left; without
 * @block, false while some has not died yet.
 */
static bool reap_group(pid_t pgid, bool block)
{
	for (;;) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		if (waitid(P_PGID, (id_t)pgid, &si,
			   WEXITED | (block ? 0 : WNOHANG)) < 0) {
			if (errno == EINTR)
				continue;
			return true; /* ECHILD: none of ours is left */
		}
		if (si.si_pid == 0)
			return false;
	}
}

/* Ends what is left of ended worker @pgid's group, now or later. */
static void end_group(pid_t pgid)
{
	kill(-pgid, SIGKILL);
	if (reap_group(pgid, false))
		return;
	if (super.ngroups == super.cgroups) {
		uint32_t nc = super.cgroups ? 2 * super.cgroups : 8;
		pid_t *n = realloc(super.groups, nc * sizeof(*n));

		if (!n)
			return; /* left to init */
		super.groups = n;
		super.cgroups = nc;
	}
	super.groups[super.ngroups++] = pgid;
}

static void sweep_groups(bool block)
{
	for (uint32_t i = 0; i < super.ngroups;) {
		if (reap_group(super.groups[i], block))
			super.groups[i] = super.groups[--super.ngroups];
		else
			i++;
	}
}

/* Reaps @ch; @block waits for it. Returns whether it was reaped. */
static bool reap(struct child *ch, bool block, siginfo_t *si)
{
	memset(si, 0, sizeof(*si));
	if (!ch->alive)
		return false;
	if (waitid((idtype_t)P_PIDFD, (id_t)ch->pidfd, si,
		   WEXITED | (block ? 0 : WNOHANG)) < 0) {
		if (errno != ECHILD)
			return false;
	} else if (si->si_pid == 0) {
		return false; /* not yet */
	}
	close(ch->pidfd);
	ch->pidfd = -1;
	ch->alive = false;
	return true;
}

static void describe_exit(const siginfo_t *si, char *buf, size_t len)
{
	if (si->si_code == CLD_EXITED)
		snprintf(buf, len, "exited with status %d", si->si_status);
	else
		snprintf(buf, len, "killed by signal %d (%s)", si->si_status,
			 strsignal(si->si_status));
}

int jobq__supervise_start(void)
{
	const struct jobq__opts *o = &jobq__m.o;
	uint32_t n = o->workers + o->nworker_cmds;

	memset(&super, 0, sizeof(super));
	if (!n)
		return 0;
	super.ch = calloc(n, sizeof(*super.ch));
	if (!super.ch)
		return -ENOMEM;
	super.n = n;
	/* Orphans of our workers come to us to be reaped (see the top). */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		jobq__log(0,
			  "cannot become a child subreaper: %s; what "
			  "workers start is reaped by init",
			  strerror(errno));
	for (uint32_t i = 0; i < n; i++) {
		struct child *ch = &super.ch[i];

		ch->pidfd = -1;
		ch->backoff = SV_BACKOFF_MIN;
		if (i < o->workers) {
			ch->daemon = !o->workers_nondaemon;
		} else {
			ch->cmd = o->worker_cmds[i - o->workers];
			ch->daemon = false;
		}
		if (spawn(ch))
			ch->restart_at = jobq__now_ns() + ch->backoff;
	}
	arm();
	return 0;
}

void jobq__supervise_exited(uint32_t idx)
{
	struct child *ch;
	char name[96], how[96];
	siginfo_t si;
	uint64_t now, ran;

	if (idx >= super.n)
		return;
	ch = &super.ch[idx];
	if (!reap(ch, false, &si))
		return;
	/* What it started must not outlive it (the group id stays ours
	 * while any member lives, so this reaches no one else). */
	end_group(ch->pid);
	describe_exit(&si, how, sizeof(how));
	child_name(ch, name, sizeof(name));
	if (jobq__m.stopping) {
		jobq__log(1, "%s (pid %d) %s", name, (int)si.si_pid, how);
		return;
	}
	now = jobq__now_ns();
	ran = now - ch->started;
	/* Only a child that dies before it ever served counts towards giving
	 * up: one killed while serving jobs is not crashing at start. */
	if (ran < SV_QUICK_NS && !ch->served) {
		ch->quick++;
	} else {
		ch->quick = 0;
		ch->backoff = SV_BACKOFF_MIN;
	}
	if (ch->quick >= SV_QUICK_MAX) {
		ch->given_up = true;
		jobq__log(JOBQ__LOG_ERROR,
			  "%s (pid %d) %s; it failed %u times within %llu s "
			  "of starting, so it is not started again",
			  name, (int)si.si_pid, how, ch->quick,
			  (unsigned long long)(SV_QUICK_NS / NSEC));
		return;
	}
	jobq__log(JOBQ__LOG_WARN,
		  "%s (pid %d) %s after %.1f s; starting it again in "
		  "%.0f s",
		  name, (int)si.si_pid, how, (double)ran / 1e9,
		  (double)ch->backoff / 1e9);
	ch->restart_at = now + ch->backoff;
	ch->backoff *= 2;
	if (ch->backoff > SV_BACKOFF_MAX)
		ch->backoff = SV_BACKOFF_MAX;
	arm();
}

void jobq__supervise_sigchld(void)
{
	/* Signals coalesce: one SIGCHLD may stand for many deaths, so every
	 * remembered group is looked at. */
	sweep_groups(false);
}

void jobq__supervise_timer(void)
{
	uint64_t now = jobq__now_ns();

	for (uint32_t i = 0; i < super.n && !jobq__m.stopping; i++) {
		struct child *ch = &super.ch[i];

		if (ch->restart_at && ch->restart_at <= now && spawn(ch))
			ch->restart_at = now + ch->backoff;
	}
	/* The grace deadline needs no action here: jobq__supervise_drained()
	 * runs every turn while stopping and sees that it passed. */
	arm();
}

void jobq__supervise_registered(pid_t pid, uint32_t *flags)
{
	char path[64], buf[512], *p;
	pid_t ppid = 0;
	FILE *f;

	/* `sh -c CMD` may run CMD as its child rather than exec it. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f) {
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
			if (sscanf(p + 1, " %*c %d", &ppid) != 1)
				ppid = 0;
		fclose(f);
	}
	for (uint32_t i = 0; i < super.n; i++) {
		struct child *ch = &super.ch[i];

		if (!ch->alive || (ch->pid != pid && ch->pid != ppid))
			continue;
		ch->served = true;
		ch->worker = pid;
		*flags |= JOBQ_WF_SUPERVISED;
		if (ch->daemon)
			*flags |= JOBQ_WF_DAEMON;
		else
			*flags &= ~(uint32_t)JOBQ_WF_DAEMON;
		return;
	}
}

bool jobq__supervise_kill_worker(pid_t pid)
{
	for (uint32_t i = 0; i < super.n; i++) {
		struct child *ch = &super.ch[i];

		if (!ch->alive || !ch->served || ch->worker != pid)
			continue;
		/*
		 * Through the pidfd, which names this child and no later
		 * process with its pid; and its group, whose id cannot be
		 * reused while its leader is our unreaped child. Its exit
		 * comes back through the pidfd as any other.
		 */
		if (syscall(SYS_pidfd_send_signal, ch->pidfd, SIGKILL, NULL,
			    0) < 0)
			kill(ch->pid, SIGKILL);
		kill(-ch->pid, SIGKILL);
		return true;
	}
	return false;
}

/* SIGKILLs every live child matching @daemon_only and reaps it. */
static void kill_and_reap(bool daemon_only)
{
	char name[96], how[96];
	siginfo_t si;

	for (uint32_t i = 0; i < super.n; i++) {
		struct child *ch = &super.ch[i];

		if (!ch->alive || (daemon_only && !ch->daemon))
			continue;
		kill(-ch->pid, SIGKILL);
		kill(ch->pid, SIGKILL);
		if (reap(ch, true, &si)) {
			describe_exit(&si, how, sizeof(how));
			jobq__log(1, "%s (pid %d) %s",
				  child_name(ch, name, sizeof(name)),
				  (int)ch->pid, how);
		}
		/* Killed with it: its orphans die and come to us. */
		reap_group(ch->pid, true);
	}
	if (!daemon_only) {
		for (uint32_t i = 0; i < super.ngroups; i++)
			kill(-super.groups[i], SIGKILL);
		sweep_groups(true);
	}
}

bool jobq__supervise_drained(void)
{
	const struct jobq__opts *o = &jobq__m.o;
	uint64_t now = jobq__now_ns();
	bool left = false;

	/*
	 * A graceful stop: every worker takes no more jobs and its running
	 * ones finish. Daemon workers get --grace for that, then die with
	 * the manager (their unfinished jobs run again when one is back);
	 * non-daemon workers are waited for however long their jobs take,
	 * as a program waits for its non-daemon children. A stop --now (or
	 * a second signal) kills them all at once.
	 */
	if (!super.stop_started) {
		super.stop_started = true;
		super.grace_at = now + o->grace_ns;
		for (uint32_t i = 0; i < super.n; i++)
			super.ch[i].restart_at = 0;
		jobq__jobs_notify_stop(o->grace_ns);
		for (uint32_t i = 0; i < super.n; i++)
			if (super.ch[i].alive)
				kill(-super.ch[i].pid, SIGTERM);
		arm();
	}
	if (jobq__m.stop_now) {
		kill_and_reap(false);
		return true;
	}
	if (now >= super.grace_at && !super.grace_over) {
		super.grace_over = true;
		if (jobq__jobs_running(true) > jobq__jobs_running(false))
			jobq__log(0,
				  "grace period of %.1f s over: ending the "
				  "daemon workers' jobs",
				  (double)o->grace_ns / 1e9);
		kill_and_reap(true);
		jobq__jobs_end_daemons();
	}
	for (uint32_t i = 0; i < super.n; i++)
		left |= super.ch[i].alive;
	return !left && jobq__jobs_running(!super.grace_over) == 0;
}
