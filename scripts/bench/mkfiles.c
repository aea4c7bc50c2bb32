/*
 * @file mkfiles.c: create many small files as fast as one process can, for
 * scale.sh (built and run by it).
 *
 *   mkfiles N DIR...   creates DIR[i % ndirs]/f<i> for i in 0..N-1, each
 *                      with open(O_CREAT|O_EXCL|O_WRONLY), one write of
 *                      i % 101 bytes (0 to 100) and close
 *
 * Prints nothing; the first failure is reported and ends the run (exit 1).
 * The caller times the whole process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[4096], buf[101];
	char *end;

	if (argc < 3) {
		fprintf(stderr, "usage: mkfiles N DIR...\n");
		return 2;
	}
	errno = 0;
	long n = strtol(argv[1], &end, 10);
	if (errno || *end || n <= 0) {
		fprintf(stderr, "mkfiles: N must be a positive integer, got '%s'\n", argv[1]);
		return 2;
	}
	int ndirs = argc - 2;
	memset(buf, 'x', sizeof(buf));
	for (long i = 0; i < n; i++) {
		size_t len = (size_t)(i % 101);
		int fd;

		snprintf(path, sizeof(path), "%s/f%ld", argv[2 + i % ndirs], i);
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0 || (len && write(fd, buf, len) != (ssize_t)len) || close(fd) < 0) {
			fprintf(stderr, "mkfiles: %s: %s\n", path, strerror(errno));
			return 1;
		}
	}
	return 0;
}
