/*
 * pmdk-counter - a libpmemobj client for the power-cut test
 * (82-mmap-powercut.sh). The pool's root holds a counter and a ring of
 * the last 64 values, changed together in one transaction.
 *
 *   pmdk-counter create POOL   make a 16 MiB pool
 *   pmdk-counter run POOL      increment in transactions until killed;
 *                              print each value once its TX_END returned
 *   pmdk-counter check POOL    print the counter; exit 1 when the ring
 *                              disagrees with it (a torn transaction)
 */
#include <libpmemobj.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define LAYOUT "pmemfs-counter"
#define RING 64

struct root {
	uint64_t count;
	uint64_t ring[RING];
};

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: pmdk-counter create|run|check POOL\n");
		return 2;
	}
	const char *cmd = argv[1], *path = argv[2];
	PMEMobjpool *pop = strcmp(cmd, "create") == 0
		? pmemobj_create(path, LAYOUT, 16 << 20, 0644)
		: pmemobj_open(path, LAYOUT);
	if (!pop) {
		fprintf(stderr, "pmdk-counter: %s %s: %s\n", cmd, path, pmemobj_errormsg());
		return 1;
	}
	PMEMoid oid = pmemobj_root(pop, sizeof(struct root));
	struct root *r = pmemobj_direct(oid);
	int rc = 0;
	if (strcmp(cmd, "run") == 0) {
		setvbuf(stdout, NULL, _IOLBF, 0);
		for (;;) {
			uint64_t v = 0;
			TX_BEGIN(pop) {
				pmemobj_tx_add_range(oid, 0, sizeof(struct root));
				v = r->count + 1;
				r->count = v;
				r->ring[v % RING] = v;
			} TX_ONABORT {
				fprintf(stderr, "pmdk-counter: transaction aborted\n");
				return 1;
			} TX_END
			printf("%" PRIu64 "\n", v);
		}
	} else if (strcmp(cmd, "check") == 0) {
		printf("%" PRIu64 "\n", r->count);
		if (r->count && r->ring[r->count % RING] != r->count) {
			fprintf(stderr, "pmdk-counter: ring holds %" PRIu64 " for counter %" PRIu64 "\n", r->ring[r->count % RING], r->count);
			rc = 1;
		}
	}
	pmemobj_close(pop);
	return rc;
}
