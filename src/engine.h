/* SPDX-License-Identifier: MIT */
/*
 * engine.h - internals of the IO engine (loop.c, fiber.c, uring_probe.c).
 *
 * A loop is one io_uring and the fibers and requests on it, all owned by
 * one thread. The scheduler is the code of jobq_loop_run(): it resumes
 * runnable fibers one after another, runs the callbacks of finished
 * callback-form requests, and when there is nothing left to run it submits
 * and sleeps in io_uring_enter() until a completion arrives. Fibers never
 * switch to one another directly: every switch is scheduler -> fiber or
 * fiber -> scheduler, which keeps the stack bookkeeping (and the
 * AddressSanitizer annotations) to two cases.
 */
#ifndef JOBQ_ENGINE_H
#define JOBQ_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/uio.h>

#include <liburing.h>

#include "jobq.h"

/* Hand-written context switches where we have them; ucontext elsewhere
 * (swapcontext() costs a sigprocmask syscall per switch), or when built
 * with -DJOBQ_UCONTEXT, which is how the fallback gets tested. */
#if (defined(__x86_64__) || defined(__aarch64__)) && !defined(JOBQ_UCONTEXT)
#define JOBQ__ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

struct jobq__ctx {
#ifdef JOBQ__ASM_SWITCH
	void *sp; /* the saved stack pointer; registers are on the stack */
#else
	ucontext_t uc;
#endif
};

/* ------------------------------------------------------------------------
 * uring_probe.c: everything that depends on the kernel's io_uring version.
 */
struct jobq__uring_caps {
	unsigned setup_flags; /* the flags the ring was set up with */
	unsigned features;    /* IORING_FEAT_* the kernel reported */
	uint8_t ops[64];      /* 1: opcode supported */
};

/*
 * jobq__uring_init - set up @ring with room for @entries submissions and a
 * completion queue four times that, with the best setup flags this kernel
 * accepts; fill @caps. On failure returns -errno and writes into @why (of
 * @whylen bytes) what is wrong and how to allow io_uring.
 */
int jobq__uring_init(struct io_uring *ring, unsigned entries,
		     struct jobq__uring_caps *caps, char *why, size_t whylen);

/*
 * How buffers are registered: io_uring_register_buffers(), or, in tests,
 * a stand-in that refuses as a kernel does when RLIMIT_MEMLOCK is too
 * low (-ENOMEM).
 */
extern int (*jobq__uring_register_buffers)(struct io_uring *ring,
					   const struct iovec *iov, unsigned n);

/* Whether the kernel behind @caps runs opcode @op. */
static inline bool jobq__uring_has(const struct jobq__uring_caps *caps,
				   unsigned op)
{
	return op < sizeof(caps->ops) && caps->ops[op];
}

/* ------------------------------------------------------------------------
 * fiber.c: stacks and context switches.
 */

/* jobq__stack_alloc - @size usable bytes (rounded up to pages) with one
 * PROT_NONE guard page below them. Returns the base (the guard page) and
 * stores the whole mapping's length in *len, or NULL. */
void *jobq__stack_alloc(size_t size, size_t *len);
void jobq__stack_free(void *base, size_t len);

/*
 * jobq__ctx_make - prepare @ctx so that switching to it runs
 * jobq__fiber_main(@f) on the stack [@base, @base + @len) (guard page
 * included at the bottom).
 */
void jobq__ctx_make(struct jobq__ctx *ctx, void *base, size_t len,
		    jobq_fiber_t *f);

/* jobq__ctx_switch - save the running context in @from and run @to. */
void jobq__ctx_switch(struct jobq__ctx *from, struct jobq__ctx *to);

/* The first code a fiber runs (loop.c); it never returns. */
void jobq__fiber_main(jobq_fiber_t *f) __attribute__((noreturn));

/* ------------------------------------------------------------------------
 * loop.c: parking a fiber on a condition that is not a request.
 */

/*
 * jobq__fiber_park - suspend the calling fiber until jobq__fiber_unpark()
 * (or, when @cancellable, jobq_fiber_cancel()) wakes it. Wake-ups may be
 * spurious: the caller re-checks its condition in a loop. Returns 0;
 * -ECANCELED when @cancellable and the fiber is cancelled (then without
 * waiting); -EINVAL outside a fiber. A fiber parked not cancellable stays
 * parked through a cancel: for waits that must end before the fiber may
 * go on, like a request whose answer lands in its stack.
 */
int jobq__fiber_park(bool cancellable);

/* jobq__fiber_unpark - make parked fiber @f runnable, or end its
 * jobq__fiber_nap(); a fiber that runs or waits on a request is left
 * alone. */
void jobq__fiber_unpark(jobq_fiber_t *f);

/*
 * Streams (loop.c): the provided-buffer ring a loop sets up with its first
 * stream has jobq__pbuf_count buffers (a power of two) of jobq__pbuf_size
 * bytes; tests make it small to run out. jobq__loop_enobufs() counts the
 * multishot receives the kernel ended for want of buffers;
 * jobq__loop_multishot() says whether streams use multishot receives.
 */
extern unsigned jobq__pbuf_count;
extern size_t jobq__pbuf_size;
unsigned jobq__loop_enobufs(const jobq_loop_t *l);
int jobq__loop_multishot(const jobq_loop_t *l);

/*
 * jobq__fiber_nap - sleep @seconds like jobq_io_sleep(), except that
 * jobq__fiber_unpark() ends the sleep early. Returns 0 (slept it all),
 * -EINTR (unparked), -ECANCELED, -EINVAL outside a fiber.
 */
int jobq__fiber_nap(double seconds);

/*
 * jobq__loop_set_turn_hook - @fn runs in the scheduler after every turn,
 * before the loop enters the kernel: with @idle false after a turn, and
 * once more with @idle true when nothing is runnable and the loop is about
 * to sleep until a completion. With @idle true it returns whether it made
 * something runnable (then the loop does not sleep); the return value of
 * the other calls is ignored. It may submit requests, wake fibers and run
 * code that reaps; it must not switch fibers. @fn NULL removes the hook.
 *
 * This is what lets a worker batch what the jobs of one turn send (one
 * publish and at most one wake-up of the manager for all of them), and
 * ask the manager for a wake-up only when it is about to sleep.
 */
void jobq__loop_set_turn_hook(jobq_loop_t *l,
			      bool (*fn)(jobq_loop_t *l, void *arg, bool idle),
			      void *arg);

/* jobq__loop_in_fiber - whether a fiber of @l is running right now (not
 * the scheduler). Safe from a signal handler of the loop's thread. */
bool jobq__loop_in_fiber(const jobq_loop_t *l);

#endif
