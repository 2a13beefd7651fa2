/* SPDX-License-Identifier: MIT */
/*
 * heap.h - the allocator for objects in the store.
 *
 * The heap manages one byte range of the store mapping. Everything it hands
 * out is named by an offset from the start of that mapping (never a
 * pointer), 16-byte aligned, so clients can follow it in their own mapping.
 * Only the manager calls it; clients never read its bookkeeping. Capacity is
 * fixed at start: when no block fits, alloc returns 0 and the caller answers
 * "full" instead of growing.
 */
#ifndef JOBQ_HEAP_H
#define JOBQ_HEAP_H

#include <stdint.h>

struct jobq__heap;

/*
 * jobq__heap_create - manage [@off, @off + @size) of the mapping at @base.
 * Returns a new heap (freed with jobq__heap_destroy()) or NULL when out of
 * memory or when the range is too small to hold one block.
 */
struct jobq__heap *jobq__heap_create(void *base, uint64_t off, uint64_t size);
void jobq__heap_destroy(struct jobq__heap *h);

/*
 * jobq__heap_alloc - a block of at least @size bytes (size 0 is allowed and
 * yields a valid block). Returns its offset, or 0 when the heap has no room.
 */
uint64_t jobq__heap_alloc(struct jobq__heap *h, uint64_t size);

/* jobq__heap_free - give back a block from jobq__heap_alloc(); 0 is a no-op. */
void jobq__heap_free(struct jobq__heap *h, uint64_t off);

/* Bytes handed out, per-block overhead included; and the capacity. */
uint64_t jobq__heap_used(const struct jobq__heap *h);
uint64_t jobq__heap_capacity(const struct jobq__heap *h);

/* The largest request that would succeed right now. */
uint64_t jobq__heap_largest_free(const struct jobq__heap *h);

/*
 * jobq__heap_check - walk every block and verify the bookkeeping (for
 * tests). Returns 0 or -EUCLEAN with a message on stderr.
 */
int jobq__heap_check(const struct jobq__heap *h);

#endif
