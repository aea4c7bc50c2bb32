/*
 * map-direct.c - the C twin of dma-vs-truncate.ts: a process maps a pmemfs
 * file's blocks straight from the region with pmemfs_map_direct() (as an
 * RDMA NIC or a DMA engine would be handed them) and keeps storing through
 * that mapping, while another process tries to truncate the file. The
 * lease makes the truncate fail with ETXTBSY instead of freeing blocks
 * that are still being written; after pmemfs_unmap_direct() it succeeds.
 *
 * The file starts sparse: the lease fills its holes, so every page has a
 * fixed region block before the mapping is returned.
 *
 * Persistence: no msync, fsync or cache flush follows the stores. They go
 * straight to the region file, pmemfs's emulated medium (like pmem on a
 * platform whose CPU caches are in the persistence domain, eADR): the mount
 * reads them at once, and `powerfail` of the control file keeps them.
 *
 * Build and run on a dax=always mount:
 *   cc -O2 -pthread -o map-direct examples/map-direct.c $(pkg-config --cflags --libs pmemfs)
 *   ./map-direct MNT/buf [SECONDS]
 * It prints what each side saw and exits non-zero if the filesystem let
 * the truncate through while the mapping was live.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pmemfs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SIZE (1u << 20)
#define PAGE 4096u

static atomic_uint seq;
static atomic_int stop;

/* The "device": stamps a sequence number into every 4 KiB page, over and over. */
static void *device(void *arg)
{
	struct pmemfs_direct *m = arg;
	const struct timespec tick = { 0, 10 * 1000 * 1000 };

	while (!atomic_load(&stop)) {
		uint32_t s = atomic_load(&seq) + 1;

		for (uint64_t o = 0; o + 4 <= m->len; o += PAGE)
			memcpy((char *)m->addr + o, &s, 4);
		atomic_store(&seq, s);
		nanosleep(&tick, NULL);
	}
	return NULL;
}

/* The other process: truncate(2) the file to 0; returns 0 or the errno it got. */
static int truncate_elsewhere(const char *path)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return errno;
	if (pid == 0)
		_exit(truncate(path, 0) == 0 ? 0 : errno);
	if (waitpid(pid, &status, 0) < 0)
		return errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
}

static void print_state(int fd, const char *when)
{
	char st[256];

	if (pmemfs_state(fd, st, sizeof(st)) >= 0)
		printf("state %s: %s\n", when, st);
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : NULL;
	double seconds = argc > 2 ? atof(argv[2]) : 2;
	struct pmemfs_direct *m;
	pthread_t dev;
	uint32_t via_mount = 0;
	int fd, during, after;

	if (!path) {
		fprintf(stderr, "usage: map-direct FILE_ON_PMEMFS [SECONDS]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, SIZE) < 0) {
		fprintf(stderr, "map-direct: %s: %s\n", path, strerror(errno));
		return 1;
	}
	print_state(fd, "before (sparse)");

	m = pmemfs_map_direct(NULL, SIZE, PROT_READ | PROT_WRITE, 0, fd, 0);
	if (!m) {
		fprintf(stderr, "map-direct: pmemfs_map_direct %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("mapped %zu extent(s) from %s:", m->nextents, m->region.path);
	for (size_t i = 0; i < m->nextents; i++)
		printf(" file %llu+%llu @ region 0x%llx", (unsigned long long)m->extents[i].file_off,
		       (unsigned long long)m->extents[i].len, (unsigned long long)m->extents[i].phys);
	printf("\n");
	print_state(fd, "while mapped");

	pthread_create(&dev, NULL, device, m);
	nanosleep(&(struct timespec){ 0, 200 * 1000 * 1000 }, NULL);
	during = truncate_elsewhere(path);
	printf("truncate while mapped: %s\n", during ? strerror(during) : "succeeded");

	nanosleep(&(struct timespec){ (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9) }, NULL);
	atomic_store(&stop, 1);
	pthread_join(dev, NULL);
	/* No msync: the stores are already on the emulated medium. */
	if (pread(fd, &via_mount, 4, SIZE - PAGE) != 4)
		via_mount = 0;
	printf("device wrote sequence %u; the mount reads %u at the last page\n", atomic_load(&seq), via_mount);

	if (pmemfs_unmap_direct(m) < 0)
		fprintf(stderr, "map-direct: pmemfs_unmap_direct: %s\n", strerror(errno));
	print_state(fd, "after unmap");
	after = truncate_elsewhere(path);
	printf("truncate after unmap: %s\n", after ? strerror(after) : "succeeded");
	close(fd);

	if (during == ETXTBSY && via_mount == atomic_load(&seq) && via_mount > 0 && after == 0) {
		printf("OK: the block map stayed put while the device used it\n");
		return 0;
	}
	printf("FAIL\n");
	return 1;
}
