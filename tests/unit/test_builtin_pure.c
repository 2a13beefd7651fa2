/* SPDX-License-Identifier: MIT */
/*
 * test_builtin_pure.c - the pure pieces under the built-in job types:
 * SHA-256 and CRC32C against published vectors (and fed in every split),
 * the HTTP/1.1 response parser fed at every split point, malformed and
 * cut-short responses, URL and address parsing and the "until" rule.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "builtin_impl.h"

/* ---- SHA-256 ------------------------------------------------------------ */

/*
 * Both SHA-256 paths run every test: the one jobq__sha256_init() picks
 * (SHA-NI where the CPU has it) and the portable one.
 */
typedef void (*sha_init_fn)(struct jobq__sha256 *);

static const sha_init_fn sha_inits[2] = {jobq__sha256_init,
					 jobq__sha256_init_sw};

static void sha_hex(sha_init_fn init, const void *p, size_t len, char out[65])
{
	struct jobq__sha256 s;
	uint8_t d[32];

	init(&s);
	jobq__sha256_update(&s, p, len);
	jobq__sha256_final(&s, d);
	jobq__hex(d, 32, out);
}

static void test_sha256_vectors(void **state)
{
	/* FIPS 180-4 examples (one block, two blocks, and the 896-bit
	 * message) and the NIST one-million-'a' vector. */
	static const char *abc56 =
	    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	static const char *abc112 =
	    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
	    "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	char hex[65];
	char *million = malloc(1000000);

	(void)state;
	assert_non_null(million);
	memset(million, 'a', 1000000);
	for (int f = 0; f < 2; f++) {
		sha_hex(sha_inits[f], "", 0, hex);
		assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
					 "27ae41e4649b934ca495991b7852b855");
		sha_hex(sha_inits[f], "abc", 3, hex);
		assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
					 "b00361a396177a9cb410ff61f20015ad");
		sha_hex(sha_inits[f], abc56, strlen(abc56), hex);
		assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039"
					 "a33ce45964ff2167f6ecedd419db06c1");
		sha_hex(sha_inits[f], abc112, strlen(abc112), hex);
		assert_string_equal(hex, "cf5b16a778af8380036ce59e7b049237"
					 "0b249b11e8f07a51afac45037afee9d1");
		sha_hex(sha_inits[f], million, 1000000, hex);
		assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67"
					 "f1809a48a497200e046d39ccc7112cd0");
	}
	free(million);
	printf("sha256: the SHA extensions are %s\n",
	       jobq__sha256_hw() ? "used"
				 : "not available: portable code only");
}

static void test_sha256_block_edges(void **state)
{
	/* Lengths on both sides of the padding edges (55/56 bytes: the
	 * length still fits in the last block or not) and of one and two
	 * blocks, over the bytes (i * 7 + 3) mod 256. The digests were
	 * computed with an independent implementation (OpenSSL's, through
	 * Python's hashlib). */
	static const struct {
		size_t len;
		const char *hex;
	} v[] = {
	    {55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac"
		 "70b"},
	    {56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6"
		 "c27"},
	    {57, "35df609437dcfea3279283ab79fd554e2bf78f8f7ae2de532d8ee300b09e8"
		 "f73"},
	    {63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625"
		 "055"},
	    {64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882"
		 "241"},
	    {65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae"
		 "95e"},
	    {119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc"
		  "177e"},
	    {120, "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a"
		  "04b5"},
	    {127, "a8d23e75d936f303d248888d9b165ee543f4cbafcad3c9dd2a79bd84faa1"
		  "1d07"},
	    {128, "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c0"
		  "8cf6"},
	    {129, "307f8fc2c1622b92762e818d39a185d4d667ad49a4b07ceae1f4afa008a9"
		  "3ec4"},
	    {1000, "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868"
		   "d2371"},
	};
	uint8_t data[1000];
	char hex[65];

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	for (int f = 0; f < 2; f++)
		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
			sha_hex(sha_inits[f], data, v[i].len, hex);
			assert_string_equal(hex, v[i].hex);
		}
}

static void test_sha256_streaming(void **state)
{
	/* Every split of 200 bytes into two pieces, and byte by byte, gives
	 * the digest of the whole: the 55/56/64-byte padding edges too. */
	uint8_t data[200], whole[32], d[32];
	struct jobq__sha256 s;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	for (int f = 0; f < 2; f++) {
		sha_init_fn init = sha_inits[f];

		for (size_t len = 0; len <= sizeof(data); len++) {
			init(&s);
			jobq__sha256_update(&s, data, len);
			jobq__sha256_final(&s, whole);
			for (size_t cut = 0; cut <= len;
			     cut += (len > 70 ? 13 : 1)) {
				init(&s);
				jobq__sha256_update(&s, data, cut);
				jobq__sha256_update(&s, data + cut, len - cut);
				jobq__sha256_final(&s, d);
				assert_memory_equal(d, whole, 32);
			}
		}
		init(&s);
		for (size_t i = 0; i < sizeof(data); i++)
			jobq__sha256_update(&s, data + i, 1);
		jobq__sha256_final(&s, d);
		init(&s);
		jobq__sha256_update(&s, data, sizeof(data));
		jobq__sha256_final(&s, whole);
		assert_memory_equal(d, whole, 32);
	}
}

static void test_sha256_paths_agree(void **state)
{
	/* Random contents, lengths, alignments and pieces: the SHA-NI path
	 * and the portable one give the same digest every time. (Without
	 * the SHA extensions both are the portable code, and this passes
	 * trivially.) */
	static uint8_t data[70000 + 16];
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		data[i] = (uint8_t)(x >> 24);
	}
	for (int round = 0; round < 300; round++) {
		struct jobq__sha256 a, b;
		uint8_t da[32], db[32];
		size_t off, len, at = 0;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		off = x % 16;
		/* Mostly short, some long: the edges are in the short ones. */
		len = round % 4 ? (x >> 8) % 300 : (x >> 8) % 70000;
		jobq__sha256_init(&a);
		jobq__sha256_init_sw(&b);
		while (at < len) {
			size_t piece = 1 + (size_t)((x >> (at % 40)) % 200);

			if (piece > len - at)
				piece = len - at;
			jobq__sha256_update(&a, data + off + at, piece);
			jobq__sha256_update(&b, data + off + at, piece);
			at += piece;
		}
		jobq__sha256_final(&a, da);
		jobq__sha256_final(&b, db);
		assert_memory_equal(da, db, 32);
	}
}

/* ---- CRC32C ------------------------------------------------------------- */

static void test_crc32c_vectors(void **state)
{
	/* "123456789" is the check value of the CRC catalogue; the 32-byte
	 * patterns are RFC 3720 (iSCSI) appendix B.4. */
	uint8_t buf[32];
	uint32_t (*fns[2])(uint32_t, const void *, size_t) = {jobq__crc32c,
							      jobq__crc32c_sw};

	(void)state;
	for (int f = 0; f < 2; f++) {
		assert_int_equal(fns[f](0, "123456789", 9), 0xe3069283u);
		assert_int_equal(fns[f](0, "", 0), 0);
		memset(buf, 0, 32);
		assert_int_equal(fns[f](0, buf, 32), 0x8a9136aau);
		memset(buf, 0xff, 32);
		assert_int_equal(fns[f](0, buf, 32), 0x62a8ab43u);
		for (int i = 0; i < 32; i++)
			buf[i] = (uint8_t)i;
		assert_int_equal(fns[f](0, buf, 32), 0x46dd794eu);
		for (int i = 0; i < 32; i++)
			buf[i] = (uint8_t)(31 - i);
		assert_int_equal(fns[f](0, buf, 32), 0x113fdb5cu);
	}
	printf("crc32c: the CPU instruction is %s\n",
	       jobq__crc32c_hw() ? "used" : "not available: tables only");
}

static void test_crc32c_streaming(void **state)
{
	/* Both paths agree on every length and alignment, and chaining
	 * over any split gives the CRC of the whole. */
	uint8_t data[300];

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31 + 5);
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len + off <= sizeof(data); len += 7) {
			uint32_t whole = jobq__crc32c_sw(0, data + off, len);

			assert_int_equal(jobq__crc32c(0, data + off, len),
					 whole);
			for (size_t cut = 0; cut <= len; cut += 11) {
				uint32_t c = jobq__crc32c(0, data + off, cut);

				c = jobq__crc32c_sw(c, data + off + cut,
						    len - cut);
				assert_int_equal(c, whole);
			}
		}
}

/* ---- HTTP ---------------------------------------------------------------- */

struct parsed {
	int rc; /* 0, or -EPROTO from feed or eof */
	int status;
	char body[4096];
	size_t blen;
	size_t rest; /* bytes after the message, not consumed */
	const char *error;
};

/* Feeds @resp in pieces cut at @cuts (ascending offsets), then EOF when
 * @eof. */
static void parse_pieces(const char *resp, size_t len, const size_t *cuts,
			 size_t ncuts, bool eof, struct parsed *out)
{
	struct jobq__http *h = malloc(sizeof(*h));
	size_t at = 0;

	assert_non_null(h);
	memset(out, 0, sizeof(*out));
	jobq__http_init(h, false);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : len;

		while (at < end && h->state != JOBQ__HTTP_DONE) {
			const char *b = NULL;
			size_t bl;
			ssize_t n =
			    jobq__http_feed(h, resp + at, end - at, &b, &bl);

			if (n < 0) {
				out->rc = (int)n;
				out->error = h->error;
				free(h);
				return;
			}
			assert_true(n > 0);
			assert_true(out->blen + bl <= sizeof(out->body));
			if (bl)
				memcpy(out->body + out->blen, b, bl);
			out->blen += bl;
			at += (size_t)n;
		}
	}
	out->rest = len - at;
	if (eof)
		out->rc = jobq__http_eof(h);
	else if (h->state != JOBQ__HTTP_DONE)
		out->rc = -EAGAIN;
	out->status = h->status;
	out->error = h->error;
	free(h);
}

/* Every single split point, and byte by byte, give the same result. */
static void check_all_splits(const char *resp, bool eof, int want_rc,
			     int want_status, const char *want_body)
{
	size_t len = strlen(resp);
	size_t *cuts = malloc((len + 1) * sizeof(*cuts));
	struct parsed p;

	assert_non_null(cuts);
	for (size_t cut = 0; cut <= len; cut++) {
		parse_pieces(resp, len, &cut, 1, eof, &p);
		assert_int_equal(p.rc, want_rc);
		if (want_rc)
			continue;
		assert_int_equal(p.status, want_status);
		assert_int_equal(p.blen, strlen(want_body));
		assert_memory_equal(p.body, want_body, p.blen);
	}
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	parse_pieces(resp, len, cuts, len, eof, &p);
	assert_int_equal(p.rc, want_rc);
	if (!want_rc) {
		assert_int_equal(p.blen, strlen(want_body));
		assert_memory_equal(p.body, want_body, p.blen);
	}
	free(cuts);
}

static void test_http_content_length(void **state)
{
	(void)state;
	check_all_splits("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n"
			 "Content-Type: text/plain\r\n\r\nhello world",
			 true, 0, 200, "hello world");
	/* Headers are case-insensitive; a bare LF ends a line too. */
	check_all_splits("HTTP/1.0 404 Not Found\ncontent-length:3\n\nnop",
			 true, 0, 404, "nop");
	check_all_splits("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false,
			 0, 200, "");
}

static void test_http_rest_not_consumed(void **state)
{
	static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
				"okEXTRA";
	struct parsed p;

	(void)state;
	parse_pieces(r, strlen(r), NULL, 0, false, &p);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.blen, 2);
	assert_int_equal(p.rest, 5);
}

static void test_http_chunked(void **state)
{
	(void)state;
	check_all_splits("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n"
			 "0\r\nX-Trailer: yes\r\n\r\n",
			 false, 0, 200, "hello 0123456789");
	/* chunked wins over Content-Length. */
	check_all_splits("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n"
			 "Transfer-Encoding: gzip, chunked\r\n\r\n"
			 "3\r\nabc\r\n0\r\n\r\n",
			 false, 0, 200, "abc");
}

static void test_http_until_close_and_no_body(void **state)
{
	(void)state;
	check_all_splits("HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall of it", true,
			 0, 200, "all of it");
	check_all_splits("HTTP/1.1 204 No Content\r\n\r\n", false, 0, 204, "");
	check_all_splits(
	    "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false, 0,
	    304, "");
	/* An interim 100 is skipped. */
	check_all_splits("HTTP/1.1 100 Continue\r\n\r\n"
			 "HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
			 false, 0, 201, "x");
}

static void expect_malformed(const char *resp, const char *why_part)
{
	struct parsed p;

	parse_pieces(resp, strlen(resp), NULL, 0, true, &p);
	assert_int_equal(p.rc, -EPROTO);
	assert_non_null(p.error);
	if (!strstr(p.error, why_part))
		fail_msg("\"%s\" gave \"%s\", not \"%s\"", resp, p.error,
			 why_part);
}

static void test_http_malformed(void **state)
{
	char big[9000];

	(void)state;
	expect_malformed("SSH-2.0-OpenSSH\r\n\r\n", "not HTTP/1.x");
	expect_malformed("HTTP/1.1 2x0 OK\r\n\r\n", "3 digits");
	expect_malformed("HTTP/1.1 2000 OK\r\n\r\n", "3 digits");
	expect_malformed("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "no name");
	expect_malformed("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
			 "not allowed");
	expect_malformed("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
			 "not a number");
	expect_malformed("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
			 "not a number");
	expect_malformed("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999"
			 "999\r\n\r\n",
			 "not a number");
	expect_malformed("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
			 "Content-Length: 2\r\n\r\nab",
			 "disagree");
	expect_malformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
			 "not supported");
	expect_malformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "zz\r\n",
			 "not a hex number");
	expect_malformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "2\r\nabc\r\n0\r\n\r\n",
			 "longer than its size");
	expect_malformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "fffffffffffffffffff\r\n",
			 "too large");
	expect_malformed("HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", "folded");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	expect_malformed(big, "longer than 8 KiB");
}

static void test_http_cut_short(void **state)
{
	(void)state;
	expect_malformed("", "without answering");
	expect_malformed("HTTP/1.1 200", "middle of the headers");
	expect_malformed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
			 "before the end of the body");
	expect_malformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "5\r\nab",
			 "last chunk");
	expect_malformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "5\r\nabcde\r\n",
			 "last chunk");
}

/* ---- URLs and addresses ---------------------------------------------------
 */

static void expect_url(const char *url, const char *host, const char *port,
		       const char *path, const char *hostport)
{
	struct jobq__url u;

	assert_int_equal(jobq__url_parse(url, &u), 0);
	assert_string_equal(u.host, host);
	assert_string_equal(u.port, port);
	assert_int_equal(u.pathlen, strlen(path));
	assert_memory_equal(u.path, path, u.pathlen);
	assert_string_equal(u.hostport, hostport);
}

static void test_url(void **state)
{
	struct jobq__url u;

	(void)state;
	expect_url("http://example.com", "example.com", "80", "/",
		   "example.com");
	expect_url("http://127.0.0.1:8080/a/b?c=d#frag", "127.0.0.1", "8080",
		   "/a/b?c=d", "127.0.0.1:8080");
	expect_url("HTTP://[::1]:81/", "::1", "81", "/", "[::1]:81");
	expect_url("http://h?q=1", "h", "80", "?q=1", "h");
	assert_int_equal(jobq__url_parse("https://example.com/", &u),
			 -EPROTONOSUPPORT);
	assert_int_equal(jobq__url_parse("ftp://example.com/", &u),
			 -EPROTONOSUPPORT);
	assert_int_equal(jobq__url_parse("example.com/", &u), -EINVAL);
	assert_int_equal(jobq__url_parse("http:///path", &u), -EINVAL);
	assert_int_equal(jobq__url_parse("http://h:0/", &u), -EINVAL);
	assert_int_equal(jobq__url_parse("http://h:65536/", &u), -EINVAL);
	assert_int_equal(jobq__url_parse("http://h:/", &u), -EINVAL);
	assert_int_equal(jobq__url_parse("http://u@h/", &u), -EINVAL);
	assert_int_equal(jobq__url_parse("http://[::1/", &u), -EINVAL);
	assert_int_equal(jobq__url_parse("http://h/a b", &u), -EINVAL);
}

static void test_addr(void **state)
{
	struct jobq__addr a;
	const char *why;
	char big[200];

	(void)state;
	assert_int_equal(jobq__addr_parse("127.0.0.1:9000", &a), 0);
	assert_string_equal(a.host, "127.0.0.1");
	assert_string_equal(a.port, "9000");
	assert_int_equal(jobq__addr_resolve(&a, &why), 0);
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&a.sa)->sin_port), 9000);

	assert_int_equal(jobq__addr_parse("[::1]:80", &a), 0);
	assert_string_equal(a.host, "::1");
	assert_int_equal(jobq__addr_resolve(&a, &why), 0);
	assert_int_equal(a.family, AF_INET6);

	assert_int_equal(jobq__addr_parse("unix:/tmp/x.sock", &a), 0);
	assert_int_equal(a.family, AF_UNIX);
	assert_string_equal(((struct sockaddr_un *)&a.sa)->sun_path,
			    "/tmp/x.sock");

	assert_int_equal(jobq__addr_parse("localhost", &a), -EINVAL);
	assert_int_equal(jobq__addr_parse("::1:80", &a), -EINVAL);
	assert_int_equal(jobq__addr_parse("h:99999", &a), -EINVAL);
	assert_int_equal(jobq__addr_parse(":80", &a), -EINVAL);
	assert_int_equal(jobq__addr_parse("unix:", &a), -EINVAL);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "unix:/", 6);
	assert_int_equal(jobq__addr_parse(big, &a), -ENAMETOOLONG);
}

/* ---- until ----------------------------------------------------------------
 */

static void test_until(void **state)
{
	struct jobq__until u;
	json_t *v;
	size_t end = 0;

	(void)state;
	assert_int_equal(jobq__until_parse(NULL, &u), 0);
	assert_int_equal(u.kind, JOBQ__UNTIL_CLOSE);
	v = json_string("close");
	assert_int_equal(jobq__until_parse(v, &u), 0);
	assert_int_equal(u.kind, JOBQ__UNTIL_CLOSE);
	assert_false(jobq__until_end(&u, "abc", 3, 0, &end));
	json_decref(v);

	v = json_integer(4);
	assert_int_equal(jobq__until_parse(v, &u), 0);
	assert_int_equal(u.kind, JOBQ__UNTIL_BYTES);
	assert_false(jobq__until_end(&u, "abc", 3, 0, &end));
	assert_true(jobq__until_end(&u, "abcdef", 6, 3, &end));
	assert_int_equal(end, 4);
	json_decref(v);
	v = json_integer(0);
	assert_int_equal(jobq__until_parse(v, &u), 0);
	assert_true(jobq__until_end(&u, "", 0, 0, &end));
	assert_int_equal(end, 0);
	json_decref(v);

	/* A delimiter that straddles two reads is found, and ends the
	 * answer right after it. */
	v = json_string("\r\n\r\n");
	assert_int_equal(jobq__until_parse(v, &u), 0);
	assert_int_equal(u.kind, JOBQ__UNTIL_DELIM);
	assert_false(jobq__until_end(&u, "ab\r\n\r", 5, 0, &end));
	assert_true(jobq__until_end(&u, "ab\r\n\r\nzz", 8, 5, &end));
	assert_int_equal(end, 6);
	assert_false(jobq__until_end(&u, "ab", 2, 0, &end));
	json_decref(v);

	v = json_integer(-1);
	assert_int_equal(jobq__until_parse(v, &u), -EINVAL);
	json_decref(v);
	v = json_string("");
	assert_int_equal(jobq__until_parse(v, &u), -EINVAL);
	json_decref(v);
	v = json_true();
	assert_int_equal(jobq__until_parse(v, &u), -EINVAL);
	json_decref(v);
}

/* ---- bytes in a JSON result ------------------------------------------------
 */

static void expect_bytes(const char *p, size_t len, const char *key,
			 const char *want)
{
	json_t *o = json_object();

	assert_int_equal(jobq__json_set_bytes(o, "out", p, len), 0);
	assert_int_equal(json_object_size(o), 1);
	assert_non_null(json_object_get(o, key));
	assert_string_equal(json_string_value(json_object_get(o, key)), want);
	json_decref(o);
}

static void test_json_bytes(void **state)
{
	(void)state;
	/* Text stays text; anything jansson would refuse goes as base64. */
	expect_bytes("plain\n", 6, "out", "plain\n");
	expect_bytes("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "out",
		     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	expect_bytes("", 0, "out", "");
	expect_bytes("a\0b", 3, "out_base64", "YQBi");
	expect_bytes("\xc3", 1, "out_base64", "ww==");	       /* cut short */
	expect_bytes("\xc0\x80", 2, "out_base64", "wIA=");     /* overlong */
	expect_bytes("\xed\xa0\x80", 3, "out_base64", "7aCA"); /* surrogate */
	expect_bytes("\xf4\x90\x80\x80", 4, "out_base64", "9JCAgA==");
	expect_bytes("\xff", 1, "out_base64", "/w==");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sha256_vectors),
	    cmocka_unit_test(test_sha256_block_edges),
	    cmocka_unit_test(test_sha256_streaming),
	    cmocka_unit_test(test_sha256_paths_agree),
	    cmocka_unit_test(test_crc32c_vectors),
	    cmocka_unit_test(test_crc32c_streaming),
	    cmocka_unit_test(test_http_content_length),
	    cmocka_unit_test(test_http_rest_not_consumed),
	    cmocka_unit_test(test_http_chunked),
	    cmocka_unit_test(test_http_until_close_and_no_body),
	    cmocka_unit_test(test_http_malformed),
	    cmocka_unit_test(test_http_cut_short),
	    cmocka_unit_test(test_url),
	    cmocka_unit_test(test_addr),
	    cmocka_unit_test(test_until),
	    cmocka_unit_test(test_json_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
