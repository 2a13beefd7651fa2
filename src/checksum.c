/* SPDX-License-Identifier: MIT */
/*
 * checksum.c - SHA-256 (FIPS 180-4) and CRC32C (Castagnoli), both
 * streaming, for file.checksum.
 *
 * SHA-256 uses the CPU's SHA extensions (SHA-NI: sha256rnds2, sha256msg1,
 * sha256msg2) where it has them and portable C otherwise; CRC32C uses the
 * SSE4.2 crc32 instruction where the CPU has it and slicing-by-8 tables
 * otherwise. Each is probed once at run time (the build may not assume
 * it: a binary built here can run on an older CPU). Both paths of each
 * compute the same function; the unit tests check them against each other
 * and against published vectors.
 */
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI 1
#endif

#include "builtin.h"

/* ---- SHA-256 ------------------------------------------------------------ */

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t ror(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static void sha256_block(uint32_t h[8], const uint8_t *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, hh;

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 =
		    ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 =
		    ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = h[0], b = h[1], c = h[2], d = h[3];
	e = h[4], f = h[5], g = h[6], hh = h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t s1 = ror(e, 6) ^ ror(e, 11) ^ ror(e, 25);
		uint32_t ch = (e & f) ^ (~e & g);
		uint32_t t1 = hh + s1 + ch + K[i] + w[i];
		uint32_t s0 = ror(a, 2) ^ ror(a, 13) ^ ror(a, 22);
		uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
		uint32_t t2 = s0 + maj;

		hh = g, g = f, f = e, e = d + t1;
		d = c, c = b, b = a, a = t1 + t2;
	}
	h[0] += a, h[1] += b, h[2] += c, h[3] += d;
	h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

static void sha256_blocks_sw(uint32_t h[8], const uint8_t *p, size_t n)
{
	for (; n; n--, p += 64)
		sha256_block(h, p);
}

#ifdef HAVE_SHA_NI
/*
 * The same compression with the SHA extensions, four rounds per group.
 *
 * The instructions keep the eight working variables in two registers,
 * ABEF and CDGH (lane 3 first: A, B, E, F), not in the order of h[];
 * sha256rnds2 does two rounds with the two message+constant words in the
 * low lanes of its third operand, and returns the new ABEF, while the old
 * ABEF becomes the new CDGH. sha256msg1 and sha256msg2 compute the
 * sigma0 and sigma1 parts of the message schedule, four words at a time:
 * W[i..i+3] = msg2(msg1(W[i-16..], W[i-12..]) + W[i-7..i-4], W[i-4..]).
 */
__attribute__((target("sha,sse4.1"))) static void
sha256_blocks_ni(uint32_t h[8], const uint8_t *p, size_t n)
{
	/* Big-endian words: reverse the bytes of each 32-bit lane. */
	const __m128i bswap =
	    _mm_set_epi64x(0x0c0d0e0f08090a0bll, 0x0405060700010203ll);
	__m128i abef, cdgh, t;

	t = _mm_loadu_si128((const __m128i *)&h[0]);	/* D C B A */
	cdgh = _mm_loadu_si128((const __m128i *)&h[4]); /* H G F E */
	t = _mm_shuffle_epi32(t, 0xb1);			/* C D A B */
	cdgh = _mm_shuffle_epi32(cdgh, 0x1b);		/* E F G H */
	abef = _mm_alignr_epi8(t, cdgh, 8);		/* A B E F */
	cdgh = _mm_blend_epi16(cdgh, t, 0xf0);		/* C D G H */

	for (; n; n--, p += 64) {
		__m128i save_abef = abef, save_cdgh = cdgh, m[4], k;

		for (int g = 0; g < 16; g++) {
			__m128i *w = &m[g & 3];

			if (g < 4) {
				*w = _mm_shuffle_epi8(
				    _mm_loadu_si128(
					(const __m128i *)(p + 16 * g)),
				    bswap);
			} else {
				/* m[g-4] is *w itself, m[g-3] the next,
				 * m[g-2] and m[g-1] the two before. */
				__m128i w1 = m[(g - 1) & 3];
				__m128i w2 = m[(g - 2) & 3];
				__m128i w3 = m[(g - 3) & 3];

				t = _mm_sha256msg1_epu32(*w, w3);
				t = _mm_add_epi32(t,
						  _mm_alignr_epi8(w1, w2, 4));
				*w = _mm_sha256msg2_epu32(t, w1);
			}
			k = _mm_add_epi32(
			    *w, _mm_loadu_si128((const __m128i *)&K[4 * g]));
			cdgh = _mm_sha256rnds2_epu32(cdgh, abef, k);
			k = _mm_shuffle_epi32(k, 0x0e);
			abef = _mm_sha256rnds2_epu32(abef, cdgh, k);
		}
		abef = _mm_add_epi32(abef, save_abef);
		cdgh = _mm_add_epi32(cdgh, save_cdgh);
	}

	t = _mm_shuffle_epi32(abef, 0x1b);     /* F E B A */
	cdgh = _mm_shuffle_epi32(cdgh, 0xb1);  /* D C H G */
	abef = _mm_blend_epi16(t, cdgh, 0xf0); /* D C B A */
	cdgh = _mm_alignr_epi8(cdgh, t, 8);    /* H G F E */
	_mm_storeu_si128((__m128i *)&h[0], abef);
	_mm_storeu_si128((__m128i *)&h[4], cdgh);
}

bool jobq__sha256_hw(void)
{
	static int have = -1; /* a race here only computes it twice */
	unsigned a, b, c, d;
	int v = have;

	if (v >= 0)
		return v;
	/* SHA: leaf 7 EBX bit 29; SSSE3 and SSE4.1: leaf 1 ECX bits 9, 19. */
	v = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSSE3) &&
	    (c & bit_SSE4_1) && __get_cpuid_count(7, 0, &a, &b, &c, &d) &&
	    (b & (1u << 29));
	have = v;
	return v;
}
#else
bool jobq__sha256_hw(void)
{
	return false;
}
#endif

void jobq__sha256_init_sw(struct jobq__sha256 *s)
{
	static const uint32_t init[8] = {
	    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};

	memcpy(s->h, init, sizeof(init));
	s->len = 0;
	s->nbuf = 0;
	s->blocks = sha256_blocks_sw;
}

void jobq__sha256_init(struct jobq__sha256 *s)
{
	jobq__sha256_init_sw(s);
#ifdef HAVE_SHA_NI
	if (jobq__sha256_hw())
		s->blocks = sha256_blocks_ni;
#endif
}

void jobq__sha256_update(struct jobq__sha256 *s, const void *data, size_t len)
{
	const uint8_t *p = data;

	s->len += len;
	if (s->nbuf) {
		size_t n = 64 - s->nbuf < len ? 64 - s->nbuf : len;

		memcpy(s->buf + s->nbuf, p, n);
		s->nbuf += n;
		p += n;
		len -= n;
		if (s->nbuf < 64)
			return;
		s->blocks(s->h, s->buf, 1);
		s->nbuf = 0;
	}
	if (len >= 64) {
		s->blocks(s->h, p, len / 64);
		p += len & ~(size_t)63;
		len &= 63;
	}
	memcpy(s->buf, p, len);
	s->nbuf = len;
}

void jobq__sha256_final(struct jobq__sha256 *s, uint8_t out[32])
{
	uint64_t bits = s->len * 8;

	/* The padding: 0x80, zeros up to 56 mod 64, the length in bits. */
	s->buf[s->nbuf++] = 0x80;
	if (s->nbuf > 56) {
		memset(s->buf + s->nbuf, 0, 64 - s->nbuf);
		s->blocks(s->h, s->buf, 1);
		s->nbuf = 0;
	}
	memset(s->buf + s->nbuf, 0, 56 - s->nbuf);
	for (int i = 0; i < 8; i++)
		s->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	s->blocks(s->h, s->buf, 1);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(s->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)s->h[i];
	}
}

void jobq__hex(const uint8_t *p, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = '\0';
}
