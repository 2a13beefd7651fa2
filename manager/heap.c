/* SPDX-License-Identifier: MIT */
/*
 * heap.c - a two-level segregated-fit allocator (TLSF) over a byte range of
 * the store mapping.
 *
 * Blocks. The range is cut into blocks that tile it without gaps. Each block
 * starts with a 16-byte header (struct blk: the size of the physically
 * previous block and its own size), and its payload follows, so a payload is
 * 16-byte aligned whenever the block is, and every block size is a multiple
 * of 16. The header is the whole per-block overhead: a 64-byte object costs
 * an 80-byte block. A free block also keeps its free-list links (offsets) in
 * the first 16 bytes of its payload, so the smallest block is 32 bytes.
 * After the last block sits a 16-byte sentinel header of size 0 that is
 * never free, so a block can always look at its right neighbour.
 *
 * Invariants (jobq__heap_check() verifies every one):
 *  - blocks tile [start, sentinel) exactly; prev_size of each block (and of
 *    the sentinel) is the size of the block before it, 0 for the first;
 *  - no two free blocks are neighbours: free() merges them at once, so
 *    freeing everything leaves one free block of the whole capacity;
 *  - every free block is on exactly one list, the one of its size class,
 *    and a class's bit in the bitmaps is set exactly when its list is
 *    non-empty;
 *  - used is the sum of the sizes of the blocks that are not free.
 *
 * Size classes. Sizes below 512 have one class per 16 bytes, so every block
 * in such a class has the same size. Above, each power of two [2^f, 2^f+1)
 * is split into 32 classes of equal width. A bitmap of first levels and one
 * of second levels per first level find the smallest non-empty class at or
 * above a size with two find-first-set instructions: alloc and free are
 * O(1).
 *
 * Good fit. alloc rounds the request up to the next class boundary before
 * the search, so any block of the class found is big enough and the head of
 * its list is taken without looking at sizes. When that finds nothing, the
 * request's own class may still hold a block that fits (its blocks vary in
 * size within the class width); alloc then looks at the first HEAP_SCAN
 * blocks of that one list. jobq__heap_largest_free() answers with the same
 * rule, so "the largest request that would succeed" is exact.
 *
 * Bookkeeping outside the range (the list heads and bitmaps) lives in the
 * malloc'd struct jobq__heap; clients never read any of it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"

#define HEAP_ALIGN     16u
#define HEAP_HDR       16u /* struct blk without the free-list links */
#define HEAP_MIN_BLOCK 32u /* header + two links */
#define HEAP_FREE      1u  /* low bit of blk.size: the block is free */

#define SL_LOG2	    5u /* 32 second-level classes */
#define SL_COUNT    (1u << SL_LOG2)
#define FL_SHIFT    (SL_LOG2 + 4u)	  /* 4: log2(HEAP_ALIGN) */
#define SMALL_BLOCK (1u << FL_SHIFT)	  /* 512: below, classes are exact */
#define FL_COUNT    (64u - FL_SHIFT + 1u) /* covers every 64-bit size */

/* How many blocks of its own class a request that missed the fast path may
 * look at; bounds alloc and largest_free when the heap is nearly full. */
#define HEAP_SCAN 32u

/* A block header at an offset of the mapping. */
struct blk {
	uint64_t prev_size; /* size of the block before, 0 for the first */
	uint64_t size;	    /* whole block, header included | HEAP_FREE */
	/* Only while free: */
	uint64_t next_free; /* offset of the next block on its list, 0: end */
	uint64_t prev_free; /* offset of the previous one, 0: list head */
};

_Static_assert(sizeof(struct blk) == HEAP_MIN_BLOCK, "links fill the minimum");

struct jobq__heap {
	unsigned char *base;	   /* the mapping; every offset is from here */
	uint64_t start;		   /* offset of the first block */
	uint64_t end;		   /* offset of the sentinel header */
	uint64_t capacity;	   /* end - start: bytes of blocks */
	uint64_t used;		   /* bytes in blocks handed out */
	uint64_t fl_map;	   /* bit fl: some sl_map[fl] bit is set */
	uint32_t sl_map[FL_COUNT]; /* bit sl: heads[fl][sl] is not 0 */
	/* Offsets of the first free block of each class, 0: none. */
	uint64_t heads[FL_COUNT][SL_COUNT];
};

static inline struct blk *blk_at(const struct jobq__heap *h, uint64_t off)
{
	return (struct blk *)(h->base + off);
}

static inline uint64_t blk_size(const struct blk *b)
{
	return b->size & ~(uint64_t)(HEAP_ALIGN - 1);
}

static inline bool blk_is_free(const struct blk *b)
{
	return b->size & HEAP_FREE;
}

static inline unsigned fls64(uint64_t x)
{
	return 63u - (unsigned)__builtin_clzll(x);
}

/* The class that a free block of @size (a multiple of 16, >= 32) is filed
 * under: the one whose range holds it. */
static inline void mapping_insert(uint64_t size, unsigned *fl, unsigned *sl)
{
	if (size < SMALL_BLOCK) {
		*fl = 0;
		*sl = (unsigned)(size / HEAP_ALIGN);
	} else {
		unsigned f = fls64(size);

		*sl = (unsigned)(size >> (f - SL_LOG2)) ^ SL_COUNT;
		*fl = f - (FL_SHIFT - 1);
	}
}

/* The first class whose every block holds @size: its class after rounding
 * up to the next class boundary. @size is below 2^62 (the caller checks it
 * against the capacity), so the rounding cannot overflow. */
static inline void mapping_search(uint64_t size, unsigned *fl, unsigned *sl)
{
	if (size >= SMALL_BLOCK)
		size += (1ull << (fls64(size) - SL_LOG2)) - 1;
	mapping_insert(size, fl, sl);
}

static void list_insert(struct jobq__heap *h, uint64_t off, uint64_t size)
{
	struct blk *b = blk_at(h, off);
	unsigned fl, sl;
	uint64_t head;

	mapping_insert(size, &fl, &sl);
	head = h->heads[fl][sl];
	b->prev_free = 0;
	b->next_free = head;
	if (head)
		blk_at(h, head)->prev_free = off;
	h->heads[fl][sl] = off;
	h->sl_map[fl] |= 1u << sl;
	h->fl_map |= 1ull << fl;
}

static void list_remove(struct jobq__heap *h, uint64_t off, uint64_t size)
{
	struct blk *b = blk_at(h, off);
	unsigned fl, sl;

	if (b->next_free)
		blk_at(h, b->next_free)->prev_free = b->prev_free;
	if (b->prev_free) {
		blk_at(h, b->prev_free)->next_free = b->next_free;
		return;
	}
	mapping_insert(size, &fl, &sl);
	h->heads[fl][sl] = b->next_free;
	if (!b->next_free) {
		h->sl_map[fl] &= ~(1u << sl);
		if (!h->sl_map[fl])
			h->fl_map &= ~(1ull << fl);
	}
}

/* The head of the first non-empty list at or above class (fl, sl), or 0. */
static uint64_t find_suitable(const struct jobq__heap *h, unsigned fl,
			      unsigned sl)
{
	uint32_t sl_bits;
	uint64_t fl_bits;

	if (fl >= FL_COUNT)
		return 0;
	sl_bits = sl < SL_COUNT ? h->sl_map[fl] & (~0u << sl) : 0;
	if (!sl_bits) {
		fl_bits = fl + 1 < 64 ? h->fl_map & (~0ull << (fl + 1)) : 0;
		if (!fl_bits)
			return 0;
		fl = (unsigned)__builtin_ctzll(fl_bits);
		sl_bits = h->sl_map[fl];
	}
	return h->heads[fl][__builtin_ctz(sl_bits)];
}

/* The first of at most HEAP_SCAN blocks of class (fl, sl) that holds
 * @bsize, or 0. */
static uint64_t scan_class(const struct jobq__heap *h, unsigned fl, unsigned sl,
			   uint64_t bsize)
{
	uint64_t off = h->heads[fl][sl];

	for (unsigned n = 0; off && n < HEAP_SCAN; n++) {
		const struct blk *b = blk_at(h, off);

		if (blk_size(b) >= bsize)
			return off;
		off = b->next_free;
	}
	return 0;
}

struct jobq__heap *jobq__heap_create(void *base, uint64_t off, uint64_t size)
{
	struct jobq__heap *h;
	uint64_t start, end;
	struct blk *first, *sentinel;

	/* Headers are read as 64-bit words through the mapping, so the
	 * mapping itself must be aligned like the offsets (a mapping is page
	 * aligned; this only refuses a caller's mistake). */
	if (!base || (uintptr_t)base % HEAP_ALIGN)
		return NULL;
	if (size > UINT64_MAX - off || off > UINT64_MAX - HEAP_ALIGN)
		return NULL;
	start = (off + HEAP_ALIGN - 1) & ~(uint64_t)(HEAP_ALIGN - 1);
	/* Offset 0 ends the free lists ("none"), so no block may start
	 * there; a range at the very start of the mapping gives up 16 bytes. */
	if (start == 0)
		start = HEAP_ALIGN;
	end = (off + size) & ~(uint64_t)(HEAP_ALIGN - 1);
	/* One minimal block and the sentinel must fit; sizes stay below 2^62
	 * so that size arithmetic never overflows. */
	if (end < start || end - start < HEAP_MIN_BLOCK + HEAP_HDR ||
	    end - start >= (1ull << 62))
		return NULL;
	end -= HEAP_HDR;

	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->base = base;
	h->start = start;
	h->end = end;
	h->capacity = end - start;

	first = blk_at(h, start);
	first->prev_size = 0;
	first->size = h->capacity | HEAP_FREE;
	sentinel = blk_at(h, end);
	sentinel->prev_size = h->capacity;
	sentinel->size = 0;
	list_insert(h, start, h->capacity);
	return h;
}

void jobq__heap_destroy(struct jobq__heap *h)
{
	free(h);
}

uint64_t jobq__heap_alloc(struct jobq__heap *h, uint64_t size)
{
	uint64_t bsize, off, have, rest;
	unsigned fl, sl;
	struct blk *b;

	if (size > h->capacity)
		return 0;
	bsize =
	    (size + HEAP_HDR + HEAP_ALIGN - 1) & ~(uint64_t)(HEAP_ALIGN - 1);
	if (bsize < HEAP_MIN_BLOCK)
		bsize = HEAP_MIN_BLOCK;

	mapping_search(bsize, &fl, &sl);
	off = find_suitable(h, fl, sl);
	if (!off) {
		mapping_insert(bsize, &fl, &sl);
		off = scan_class(h, fl, sl, bsize);
		if (!off)
			return 0;
	}
	b = blk_at(h, off);
	have = blk_size(b);
	list_remove(h, off, have);

	/* Split off the tail when it can stand as a block of its own. The
	 * block after this one is in use (free neighbours never touch), so
	 * the tail needs no merging. */
	rest = have - bsize;
	if (rest >= HEAP_MIN_BLOCK) {
		struct blk *tail = blk_at(h, off + bsize);

		tail->prev_size = bsize;
		tail->size = rest | HEAP_FREE;
		blk_at(h, off + have)->prev_size = rest;
		list_insert(h, off + bsize, rest);
		have = bsize;
	}
	b->size = have;
	h->used += have;
	return off + HEAP_HDR;
}

/* A freed offset that does not name a block in use means the manager's own
 * bookkeeping is broken; carrying on would corrupt the store silently. */
__attribute__((noreturn)) static void heap_bad_free(uint64_t off,
						    const char *why)
{
	fprintf(stderr, "jobqd: heap: free of offset %llu: %s\n",
		(unsigned long long)off, why);
	abort();
}

void jobq__heap_free(struct jobq__heap *h, uint64_t off)
{
	uint64_t boff, size;
	struct blk *b, *next;

	if (!off)
		return;
	if (off % HEAP_ALIGN)
		heap_bad_free(off, "not 16-byte aligned");
	if (off < h->start + HEAP_HDR || off > h->end - HEAP_HDR)
		heap_bad_free(off, "outside the heap");
	boff = off - HEAP_HDR;
	b = blk_at(h, boff);
	if (blk_is_free(b))
		heap_bad_free(off, "already free");
	size = blk_size(b);
	if (size < HEAP_MIN_BLOCK || size > h->end - boff)
		heap_bad_free(off, "not a block");
	h->used -= size;

	next = blk_at(h, boff + size);
	if (blk_is_free(next)) {
		uint64_t nsize = blk_size(next);

		list_remove(h, boff + size, nsize);
		size += nsize;
	}
	if (b->prev_size) {
		uint64_t poff = boff - b->prev_size;
		struct blk *prev = blk_at(h, poff);

		if (blk_is_free(prev)) {
			list_remove(h, poff, b->prev_size);
			size += b->prev_size;
			boff = poff;
			b = prev;
		}
	}
	b->size = size | HEAP_FREE;
	blk_at(h, boff + size)->prev_size = size;
	list_insert(h, boff, size);
}

uint64_t jobq__heap_used(const struct jobq__heap *h)
{
	return h->used;
}

uint64_t jobq__heap_capacity(const struct jobq__heap *h)
{
	return h->capacity;
}

/*
 * Mirrors jobq__heap_alloc(): a request whose class lies below the highest
 * non-empty class always succeeds on the fast path; one in that class
 * succeeds when one of the first HEAP_SCAN blocks of its list is big
 * enough; one above fails. So the answer is the biggest of those blocks,
 * less its header.
 */
uint64_t jobq__heap_largest_free(const struct jobq__heap *h)
{
	unsigned fl, sl, n;
	uint64_t off, best = 0;

	if (!h->fl_map)
		return 0;
	fl = fls64(h->fl_map);
	sl = 31u - (unsigned)__builtin_clz(h->sl_map[fl]);
	off = h->heads[fl][sl];
	for (n = 0; off && n < HEAP_SCAN; n++) {
		const struct blk *b = blk_at(h, off);

		if (blk_size(b) > best)
			best = blk_size(b);
		off = b->next_free;
	}
	return best - HEAP_HDR;
}

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "jobqd: heap check: " __VA_ARGS__);    \
			fputc('\n', stderr);                                   \
			return -EUCLEAN;                                       \
		}                                                              \
	} while (0)

int jobq__heap_check(const struct jobq__heap *h)
{
	uint64_t off, prev_size = 0, used = 0, nfree = 0, listed = 0;
	bool prev_free = false;

	/* The physical walk: tiling, boundary tags, merging, accounting. */
	for (off = h->start; off < h->end;) {
		const struct blk *b = blk_at(h, off);
		uint64_t size = blk_size(b);

		CHECK(!(b->size & (HEAP_ALIGN - 1) & ~(uint64_t)HEAP_FREE),
		      "block %llu: stray flag bits in size %#llx",
		      (unsigned long long)off, (unsigned long long)b->size);
		CHECK(size >= HEAP_MIN_BLOCK && size <= h->end - off,
		      "block %llu: size %llu outside [%u, %llu]",
		      (unsigned long long)off, (unsigned long long)size,
		      HEAP_MIN_BLOCK, (unsigned long long)(h->end - off));
		CHECK(b->prev_size == prev_size,
		      "block %llu: prev_size %llu, previous block has %llu",
		      (unsigned long long)off, (unsigned long long)b->prev_size,
		      (unsigned long long)prev_size);
		if (blk_is_free(b)) {
			CHECK(!prev_free,
			      "blocks before %llu and at it are "
			      "both free (not merged)",
			      (unsigned long long)off);
			nfree++;
		} else {
			used += size;
		}
		prev_free = blk_is_free(b);
		prev_size = size;
		off += size;
	}
	CHECK(off == h->end, "blocks end at %llu, sentinel at %llu",
	      (unsigned long long)off, (unsigned long long)h->end);
	CHECK(blk_at(h, h->end)->size == 0, "sentinel size %llu, want 0",
	      (unsigned long long)blk_at(h, h->end)->size);
	CHECK(blk_at(h, h->end)->prev_size == prev_size,
	      "sentinel prev_size %llu, last block has %llu",
	      (unsigned long long)blk_at(h, h->end)->prev_size,
	      (unsigned long long)prev_size);
	CHECK(used == h->used, "blocks in use add up to %llu, used says %llu",
	      (unsigned long long)used, (unsigned long long)h->used);

	/* The lists: every free block once, each in its own class. */
	for (unsigned fl = 0; fl < FL_COUNT; fl++) {
		CHECK(!!(h->fl_map & (1ull << fl)) == !!h->sl_map[fl],
		      "first-level bit %u disagrees with its second level", fl);
		for (unsigned sl = 0; sl < SL_COUNT; sl++) {
			uint64_t back = 0;

			off = h->heads[fl][sl];
			CHECK(!!(h->sl_map[fl] & (1u << sl)) == !!off,
			      "class %u/%u: bitmap bit disagrees with its list",
			      fl, sl);
			while (off) {
				const struct blk *b;
				unsigned f, s;

				CHECK(off >= h->start && off < h->end &&
					  off % HEAP_ALIGN == 0,
				      "class %u/%u: link %llu outside the heap",
				      fl, sl, (unsigned long long)off);
				CHECK(++listed <= nfree,
				      "lists hold more blocks than the %llu "
				      "free ones (a cycle?)",
				      (unsigned long long)nfree);
				b = blk_at(h, off);
				CHECK(
				    blk_is_free(b),
				    "class %u/%u: block %llu listed but in use",
				    fl, sl, (unsigned long long)off);
				mapping_insert(blk_size(b), &f, &s);
				CHECK(f == fl && s == sl,
				      "block %llu of size %llu filed under "
				      "%u/%u, belongs in %u/%u",
				      (unsigned long long)off,
				      (unsigned long long)blk_size(b), fl, sl,
				      f, s);
				CHECK(b->prev_free == back,
				      "block %llu: back link %llu, want %llu",
				      (unsigned long long)off,
				      (unsigned long long)b->prev_free,
				      (unsigned long long)back);
				back = off;
				off = b->next_free;
			}
		}
	}
	CHECK(listed == nfree, "lists hold %llu blocks, %llu are free",
	      (unsigned long long)listed, (unsigned long long)nfree);
	return 0;
}
