/*
 * internal.h - what the parts of libpmemfs share and do not export:
 * the lease table (leases.c) and raw mmap/munmap.
 *
 * The library maps and unmaps through the raw system calls, never through
 * the mmap/munmap symbols, so that an interposer of those symbols (its own
 * libpmemfs-preload.so, or another) never sees the library's internal
 * reservations and extent mappings, and cannot recurse into it.
 */
#ifndef PMEMFS_INTERNAL_H
#define PMEMFS_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#define PMEMFS_HIDDEN __attribute__((visibility("hidden")))

PMEMFS_HIDDEN void *pmemfs_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
PMEMFS_HIDDEN int pmemfs_sys_munmap(void *addr, size_t len);

/* An ioctl that returns 0 or -1 with errno, retried on EINTR. */
PMEMFS_HIDDEN int pmemfs_ioctl(int fd, unsigned long cmd, void *arg);

/*
 * One counted lease per file (st_dev, st_ino) and process. lease_get()
 * takes the daemon's lease when the count goes 0 -> 1 (on the helper
 * thread, keeping its own duplicate of fd) and returns a token for
 * lease_put(), which drops it when the count goes 1 -> 0.
 * A token inherited across fork() is inert: the child holds no lease.
 */
struct pmemfs_lease_ref;
PMEMFS_HIDDEN struct pmemfs_lease_ref *pmemfs_lease_get(int fd);
PMEMFS_HIDDEN int pmemfs_lease_put(struct pmemfs_lease_ref *ref);

#endif /* PMEMFS_INTERNAL_H */
