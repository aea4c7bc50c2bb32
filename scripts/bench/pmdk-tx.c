/*
 * @file pmdk-tx.c: libpmemobj transactions per second on a pool file, the
 * way a PMDK application commits. Built and run by durable.sh.
 *
 *   pmdk-tx POOL POOL_MIB SECONDS
 *
 * Creates POOL (which must not exist) of POOL_MIB MiB, then for SECONDS
 * runs transactions that each snapshot one 64-byte slot of the root object
 * (pmemobj_tx_add_range) and overwrite it; prints transactions per second.
 *
 * Where the pool is not on DAX (every FUSE mount, ext4 without -o dax),
 * pmem_is_pmem() is false and PMDK makes each persist an msync(MS_SYNC) of
 * the touched pages: a transaction costs several host flushes (undo log,
 * data, commit). That is the figure wanted, so durable.sh runs this with
 * PMEM_IS_PMEM_FORCE unset.
 */
#include <errno.h>
#include <libpmemobj.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOT_SIZE 64
#define SLOTS 64

struct root {
	char slot[SLOTS][SLOT_SIZE];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: pmdk-tx POOL POOL_MIB SECONDS\n");
		return 2;
	}
	const char *path = argv[1];
	size_t pool = (size_t)atol(argv[2]) << 20;
	double seconds = atof(argv[3]);
	if (pool < PMEMOBJ_MIN_POOL || seconds <= 0) {
		fprintf(stderr, "pmdk-tx: POOL_MIB must be at least %zu, SECONDS positive\n",
			(size_t)(PMEMOBJ_MIN_POOL >> 20));
		return 2;
	}

	PMEMobjpool *pop = pmemobj_create(path, "pmemfs-durable-bench", pool, 0600);
	if (!pop) {
		fprintf(stderr, "pmdk-tx: pmemobj_create %s: %s\n", path, pmemobj_errormsg());
		return 1;
	}
	PMEMoid root = pmemobj_root(pop, sizeof(struct root));
	if (OID_IS_NULL(root)) {
		fprintf(stderr, "pmdk-tx: pmemobj_root: %s\n", pmemobj_errormsg());
		pmemobj_close(pop);
		return 1;
	}
	struct root *r = pmemobj_direct(root);

	uint64_t n = 0, aborted = 0;
	double t0 = now_s(), t1 = t0;
	while (t1 - t0 < seconds) {
		unsigned s = n % SLOTS;
		TX_BEGIN(pop) {
			pmemobj_tx_add_range(root, offsetof(struct root, slot[s]), SLOT_SIZE);
			memset(r->slot[s], (int)(n & 0xff), SLOT_SIZE);
			memcpy(r->slot[s], &n, sizeof(n));
		} TX_ONABORT {
			aborted++;
		} TX_END
		if (aborted) {
			fprintf(stderr, "pmdk-tx: transaction %llu aborted: %s\n",
				(unsigned long long)n, pmemobj_errormsg());
			pmemobj_close(pop);
			return 1;
		}
		n++;
		t1 = now_s();
	}
	pmemobj_close(pop);
	printf("%.0f\n", n / (t1 - t0));
	return 0;
}
