/*
 * mmap-probe - the program 83-libpmemfs.sh runs under libpmemfs-preload.so:
 * it maps files the way an unmodified program would (plain mmap(2) with
 * 0x80000, MAP_DIRECT / MAP_SYNC) and obeys one command per stdin line,
 * answering one line each, so the test can look at the file from outside
 * (truncate, .pmemfs/leases) between steps.
 *
 *   open PATH rw|ro                 -> fd N
 *   map FD OFF LEN rw|r sv|private  -> ok ID | err ENAME   (flags | 0x80000)
 *   plain FD LEN                    -> ok ID | err ENAME   (MAP_SHARED, no bit)
 *   tmap FD OFF LEN                 -> as `map FD OFF LEN rw sv`, from a
 *                                      thread that exits right after
 *   fill ID BYTE [LEN]              -> ok   (stores BYTE over LEN bytes, default all)
 *   unmap ID PAGE NPAGES            -> ok | err ENAME   (munmap of those pages)
 *   exit                            exits at once, unmapping nothing
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include "pmemfs_uapi.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BIT 0x80000
#define MAX_MAPS 64

static struct { char *addr; size_t len; } maps[MAX_MAPS];
static int nmaps;

static void reply_map(void *p)
{
	if (p == MAP_FAILED) {
		printf("err %s\n", strerrorname_np(errno));
		return;
	}
	maps[nmaps].addr = p;
	printf("ok %d\n", nmaps++);
}

struct tmap { int fd; long off; size_t len; void *p; int err; };

/* A lease taken by a thread that exits right after (the ioctl itself, no library). */
static void *tlease_thread(void *arg)
{
	int *fd = arg;

	fd[1] = ioctl(fd[0], PMEMFS_IOC_LEASE) < 0 ? errno : 0;
	return NULL;
}

static void *tmap_thread(void *arg)
{
	struct tmap *t = arg;

	t->p = mmap(NULL, t->len, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | BIT, t->fd, t->off);
	t->err = errno;
	return NULL;
}

int main(void)
{
	char line[4096], a[4096], b[64], c[64];
	long x, y, z;
	int n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin) && nmaps < MAX_MAPS) {
		if (sscanf(line, "open %4095s %63s", a, b) == 2) {
			printf("fd %d\n", open(a, strcmp(b, "rw") == 0 ? O_RDWR : O_RDONLY));
		} else if (sscanf(line, "map %ld %ld %ld %63s %63s", &x, &y, &z, b, c) == 5) {
			int prot = strcmp(b, "rw") == 0 ? PROT_READ | PROT_WRITE : PROT_READ;
			int type = strcmp(c, "sv") == 0 ? MAP_SHARED_VALIDATE : MAP_PRIVATE;

			maps[nmaps].len = (size_t)z;
			reply_map(mmap(NULL, (size_t)z, prot, type | BIT, (int)x, y));
		} else if (sscanf(line, "plain %ld %ld", &x, &z) == 2) {
			maps[nmaps].len = (size_t)z;
			reply_map(mmap(NULL, (size_t)z, PROT_READ | PROT_WRITE, MAP_SHARED, (int)x, 0));
		} else if (sscanf(line, "tmap %ld %ld %ld", &x, &y, &z) == 3) {
			struct tmap t = { (int)x, y, (size_t)z, MAP_FAILED, 0 };
			pthread_t th;

			pthread_create(&th, NULL, tmap_thread, &t);
			pthread_join(th, NULL);
			errno = t.err;
			maps[nmaps].len = (size_t)z;
			reply_map(t.p);
		} else if (sscanf(line, "tlease %ld", &x) == 1) {
			int fd[2] = { (int)x, 0 };
			pthread_t th;

			pthread_create(&th, NULL, tlease_thread, fd);
			pthread_join(th, NULL);
			if (fd[1])
				printf("err %s\n", strerrorname_np(fd[1]));
			else
				printf("ok\n");
		} else if ((n = sscanf(line, "fill %ld %li %ld", &x, &y, &z)) >= 2) {
			memset(maps[x].addr, (int)y, n == 3 ? (size_t)z : maps[x].len);
			printf("ok\n");
		} else if (sscanf(line, "unmap %ld %ld %ld", &x, &y, &z) == 3) {
			if (munmap(maps[x].addr + y * 4096, (size_t)z * 4096) < 0)
				printf("err %s\n", strerrorname_np(errno));
			else
				printf("ok\n");
		} else if (strncmp(line, "exit", 4) == 0) {
			_exit(0);
		} else {
			printf("err bad command: %s", line);
		}
	}
	return 0;
}
