/*
 * @file fsync-lat.c: latency of one 4 KiB pwrite followed by fsync, as a
 * database's log or page write sees it. Built and run by durable.sh and
 * fsync-path.sh.
 *
 *   fsync-lat overwrite FILE N SIZE_MIB   FILE is first written in full and
 *                                         fsynced (untimed); then N writes at
 *                                         random 4 KiB-aligned offsets in it
 *   fsync-lat rewrite FILE N SIZE_MIB     the same writes on FILE as it is
 *                                         (no truncation, no prefill: it must
 *                                         hold SIZE_MIB already), so nothing
 *                                         but the timed writes reaches it
 *   fsync-lat mapped FILE N SIZE_MIB      FILE prefilled as for overwrite,
 *                                         then each 4 KiB store goes into a
 *                                         MAP_SHARED mapping of it, made
 *                                         durable by msync(MS_SYNC) of its
 *                                         page: what the pmemfs daemon does
 *                                         with its region file per overwrite
 *   fsync-lat append FILE N               FILE is truncated; N writes each at
 *                                         its end, so every fsync also
 *                                         commits a size change and a block
 *                                         allocation
 *
 * Prints "P50 P99 MEAN" in microseconds. Each write's bytes differ from the
 * last (a counter in the block), so no layer can skip an unchanged page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096

static void fail(const char *what, const char *path)
{
	fprintf(stderr, "fsync-lat: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* xorshift64: reproducible offsets without rand()'s short period */
static uint64_t next_random(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void prefill(int fd, const char *path, long blocks, char *buf)
{
	for (long i = 0; i < blocks; i++)
		if (pwrite(fd, buf, BLOCK, (off_t)i * BLOCK) != BLOCK)
			fail("prefill", path);
	if (fsync(fd) < 0)
		fail("fsync", path);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int append = argc == 4 && strcmp(mode, "append") == 0;
	int overwrite = argc == 5 && strcmp(mode, "overwrite") == 0;
	int rewrite = argc == 5 && strcmp(mode, "rewrite") == 0;
	int mapped = argc == 5 && strcmp(mode, "mapped") == 0;

	if (!append && !overwrite && !rewrite && !mapped) {
		fprintf(stderr, "usage: fsync-lat overwrite|rewrite|mapped FILE N SIZE_MIB | append FILE N\n");
		return 2;
	}
	const char *path = argv[2];
	long n = atol(argv[3]);
	long blocks = append ? 0 : atol(argv[4]) * (1048576 / BLOCK);
	if (n <= 0 || (!append && blocks <= 0)) {
		fprintf(stderr, "fsync-lat: N and SIZE_MIB must be positive\n");
		return 2;
	}

	char *buf = aligned_alloc(BLOCK, BLOCK);
	double *lat = malloc(n * sizeof(*lat));
	if (!buf || !lat) {
		fprintf(stderr, "fsync-lat: out of memory\n");
		return 1;
	}
	memset(buf, 0xa5, BLOCK);
	int fd = open(path, rewrite ? O_RDWR : O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		fail("open", path);
	if (rewrite && lseek(fd, 0, SEEK_END) < (off_t)blocks * BLOCK) {
		fprintf(stderr, "fsync-lat: %s is shorter than %ld MiB: rewrite needs it written first\n", path, blocks / (1048576 / BLOCK));
		return 2;
	}
	if (overwrite || mapped)
		prefill(fd, path, blocks, buf);
	char *map = NULL;
	if (mapped) {
		map = mmap(NULL, (size_t)blocks * BLOCK, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED)
			fail("mmap", path);
	}

	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	double sum = 0;
	for (long i = 0; i < n; i++) {
		off_t off = append ? (off_t)i * BLOCK : (off_t)(next_random(&seed) % blocks) * BLOCK;
		memcpy(buf, &i, sizeof(i));
		double t0 = now_us();
		if (mapped) {
			memcpy(map + off, buf, BLOCK);
			if (msync(map + off, BLOCK, MS_SYNC) < 0)
				fail("msync", path);
		} else {
			if (pwrite(fd, buf, BLOCK, off) != BLOCK)
				fail("pwrite", path);
			if (fsync(fd) < 0)
				fail("fsync", path);
		}
		lat[i] = now_us() - t0;
		sum += lat[i];
	}
	if (map && munmap(map, (size_t)blocks * BLOCK) < 0)
		fail("munmap", path);
	if (close(fd) < 0)
		fail("close", path);

	qsort(lat, n, sizeof(*lat), cmp_double);
	/* nearest rank: the smallest value with at least p% of samples at or below it */
	long r50 = (n * 50 + 99) / 100, r99 = (n * 99 + 99) / 100;
	printf("%.1f %.1f %.1f\n", lat[r50 - 1], lat[r99 - 1], sum / n);
	return 0;
}
