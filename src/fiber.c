/* SPDX-License-Identifier: MIT */
/*
 * fiber.c - fiber stacks and the context switch.
 *
 * A stack is one anonymous mapping: a PROT_NONE guard page at the bottom,
 * so that overflowing it faults at once (SIGSEGV, which takes the process
 * down as any crash does) instead of writing over a neighbour.
 *
 * The switch saves only what the C calling convention says a callee must
 * preserve, on the stack being left, and stores the stack pointer in the
 * context; switching to a context loads its stack pointer and pops the
 * same registers. A new context is a stack laid out as if it had been
 * switched away from just before jobq__ctx_start, which moves the fiber
 * pointer (parked in a callee-saved register) into the first argument and
 * calls jobq__fiber_main(). That function never returns: a fiber that ends
 * switches away for the last time.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine.h"

void *jobq__stack_alloc(size_t size, size_t *len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t n = (size + page - 1) / page * page + page;
	void *p;

	p = mmap(NULL, n, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1,
		 0);
	if (p == MAP_FAILED)
		return NULL;
	if (mprotect(p, page, PROT_NONE)) {
		munmap(p, n);
		return NULL;
	}
	*len = n;
	return p;
}

void jobq__stack_free(void *base, size_t len)
{
	if (base)
		munmap(base, len);
}

#if defined(JOBQ__ASM_SWITCH) && defined(__x86_64__)
/*
 * System V x86-64: rbx, rbp, r12-r15 are callee-saved, and so are the
 * control bits of MXCSR and the x87 control word (a fiber that changes
 * the rounding mode must not change it for the others).
 *
 * Stack at a saved context, from the stack pointer up:
 *   [0] mxcsr (4 bytes), x87 cw (2)   [8] r15  [16] r14  [24] r13
 *   [32] r12  [40] rbx  [48] rbp  [56] return address
 */
__asm__(".text\n"
	".globl jobq__ctx_swap\n"
	".hidden jobq__ctx_swap\n"
	".type jobq__ctx_swap,@function\n"
	"jobq__ctx_swap:\n"
	"	pushq %rbp\n"
	"	pushq %rbx\n"
	"	pushq %r12\n"
	"	pushq %r13\n"
	"	pushq %r14\n"
	"	pushq %r15\n"
	"	subq $8, %rsp\n"
	"	stmxcsr (%rsp)\n"
	"	fnstcw 4(%rsp)\n"
	"	movq %rsp, (%rdi)\n"
	"	movq %rsi, %rsp\n"
	"	ldmxcsr (%rsp)\n"
	"	fldcw 4(%rsp)\n"
	"	addq $8, %rsp\n"
	"	popq %r15\n"
	"	popq %r14\n"
	"	popq %r13\n"
	"	popq %r12\n"
	"	popq %rbx\n"
	"	popq %rbp\n"
	"	ret\n"
	".size jobq__ctx_swap, .-jobq__ctx_swap\n"
	".globl jobq__ctx_start\n"
	".hidden jobq__ctx_start\n"
	".type jobq__ctx_start,@function\n"
	"jobq__ctx_start:\n"
	"	movq %r12, %rdi\n"
	"	call jobq__fiber_main\n"
	"	ud2\n"
	".size jobq__ctx_start, .-jobq__ctx_start\n");

#define FRAME_WORDS 8
#define FRAME_ARG   4 /* r12 */
#define FRAME_RET   7

#elif defined(JOBQ__ASM_SWITCH) && defined(__aarch64__)
/*
 * AAPCS64: x19-x28, the frame pointer x29, the link register x30 and the
 * low halves of v8-v15 (d8-d15) are callee-saved. 160 bytes, a multiple
 * of 16 as sp must stay.
 *   [0] x19 x20  [16] x21 x22  [32] x23 x24  [48] x25 x26  [64] x27 x28
 *   [80] x29 x30 (return address)  [96..159] d8-d15
 */
__asm__(".text\n"
	".globl jobq__ctx_swap\n"
	".hidden jobq__ctx_swap\n"
	".type jobq__ctx_swap,%function\n"
	"jobq__ctx_swap:\n"
	"	sub sp, sp, #160\n"
	"	stp x19, x20, [sp, #0]\n"
	"	stp x21, x22, [sp, #16]\n"
	"	stp x23, x24, [sp, #32]\n"
	"	stp x25, x26, [sp, #48]\n"
	"	stp x27, x28, [sp, #64]\n"
	"	stp x29, x30, [sp, #80]\n"
	"	stp d8, d9, [sp, #96]\n"
	"	stp d10, d11, [sp, #112]\n"
	"	stp d12, d13, [sp, #128]\n"
	"	stp d14, d15, [sp, #144]\n"
	"	mov x9, sp\n"
	"	str x9, [x0]\n"
	"	mov sp, x1\n"
	"	ldp x19, x20, [sp, #0]\n"
	"	ldp x21, x22, [sp, #16]\n"
	"	ldp x23, x24, [sp, #32]\n"
	"	ldp x25, x26, [sp, #48]\n"
	"	ldp x27, x28, [sp, #64]\n"
	"	ldp x29, x30, [sp, #80]\n"
	"	ldp d8, d9, [sp, #96]\n"
	"	ldp d10, d11, [sp, #112]\n"
	"	ldp d12, d13, [sp, #128]\n"
	"	ldp d14, d15, [sp, #144]\n"
	"	add sp, sp, #160\n"
	"	ret\n"
	".size jobq__ctx_swap, .-jobq__ctx_swap\n"
	".globl jobq__ctx_start\n"
	".hidden jobq__ctx_start\n"
	".type jobq__ctx_start,%function\n"
	"jobq__ctx_start:\n"
	"	mov x0, x19\n"
	"	bl jobq__fiber_main\n"
	"	brk #0\n"
	".size jobq__ctx_start, .-jobq__ctx_start\n");

#define FRAME_WORDS 20
#define FRAME_ARG   0  /* x19 */
#define FRAME_RET   11 /* x30 */
#endif

#ifdef JOBQ__ASM_SWITCH
void jobq__ctx_swap(void **from_sp, void *to_sp);
void jobq__ctx_start(void);

void jobq__ctx_make(struct jobq__ctx *ctx, void *base, size_t len,
		    jobq_fiber_t *f)
{
	/* The top, 16-byte aligned, less 16 so that jobq__ctx_start runs
	 * with the stack pointer 16-byte aligned before its call, as the
	 * ABIs want it at a call. */
	uintptr_t top = ((uintptr_t)base + len) & ~(uintptr_t)15;
	uint64_t *sp = (uint64_t *)(top - 16) - FRAME_WORDS;

	memset(sp, 0, FRAME_WORDS * sizeof(*sp));
#if defined(__x86_64__)
	/* The defaults of a new thread: all exceptions masked, round to
	 * nearest; x87 extended precision. */
	sp[0] = 0x1f80 | ((uint64_t)0x037f << 32);
#endif
	sp[FRAME_ARG] = (uint64_t)(uintptr_t)f;
	sp[FRAME_RET] = (uint64_t)(uintptr_t)jobq__ctx_start;
	ctx->sp = sp;
}

void jobq__ctx_switch(struct jobq__ctx *from, struct jobq__ctx *to)
{
	jobq__ctx_swap(&from->sp, to->sp);
}

#else /* ucontext */

/* makecontext() passes int arguments only: the pointer goes in halves. */
static void ctx_entry(unsigned hi, unsigned lo)
{
	uintptr_t p = ((uintptr_t)hi << 16 << 16) | lo;

	jobq__fiber_main((jobq_fiber_t *)p);
}

void jobq__ctx_make(struct jobq__ctx *ctx, void *base, size_t len,
		    jobq_fiber_t *f)
{
	uintptr_t p = (uintptr_t)f;

	getcontext(&ctx->uc);
	ctx->uc.uc_stack.ss_sp = base;
	ctx->uc.uc_stack.ss_size = len;
	ctx->uc.uc_link = NULL;
	makecontext(&ctx->uc, (void (*)(void))ctx_entry, 2,
		    (unsigned)(p >> 16 >> 16), (unsigned)p);
}

void jobq__ctx_switch(struct jobq__ctx *from, struct jobq__ctx *to)
{
	swapcontext(&from->uc, &to->uc);
}
#endif
