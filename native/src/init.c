/*
 * init.c - FUSE_DIRECT_IO_ALLOW_MMAP for a libfuse that does not know it.
 *
 * Why: dax=always opens regular files with FOPEN_DIRECT_IO, and the kernel
 * refuses a MAP_SHARED mmap of such a file (ENODEV) unless the daemon
 * accepted FUSE_DIRECT_IO_ALLOW_MMAP at INIT (protocol 7.39, Linux 6.6).
 * libfuse 3.14 builds the INIT reply itself from the capabilities it knows
 * (protocol 7.38), so neither ll_init nor conn->want can set that bit.
 *
 * How: for the one FUSE_INIT request, the loop calls init_process()
 * instead of fuse_session_process_buf(). For the length of that call the
 * device's descriptor number points at one end of a socket pair (dup2), so
 * libfuse's reply lands in the socket; the number then gets /dev/fuse back
 * (the same open file description: its O_NONBLOCK and its epoll
 * registration stay as they were), and we write the reply to the device
 * ourselves, patched. Nothing else runs in between: the notification
 * thread has nothing to send before INIT is answered.
 *
 * The same reply also gets FUSE_HANDLE_KILLPRIV_V2 (protocol 7.33) when
 * the kernel offers it: the daemon clears set-user-ID/set-group-ID itself
 * on write, truncate and chown (src/vfs/io.ts, src/vfs/attrs.ts; it stores
 * no security.* attributes, so there is no capability to remove), and the
 * kernel marks the superblock SB_NOSEC and stops
 * asking for security.capability (a GETXATTR round trip) before every
 * page-cache write. libfuse 3.14 drops FATTR_KILL_SUIDGID from SETATTR,
 * which is why the daemon decides from the caller, as the kernel would.
 *
 * What is patched: only a successful reply long enough to carry flags2,
 * and only when the kernel's request offered FUSE_INIT_EXT and, in its
 * flags2, DIRECT_IO_ALLOW_MMAP; then the reply gets FUSE_INIT_EXT in flags
 * and DIRECT_IO_ALLOW_MMAP in flags2. Older kernels (before 6.6) do not
 * offer the bit: there is no swap, libfuse answers as usual, and MAP_SHARED
 * on dax=always files stays ENODEV. If the swap cannot be set up, libfuse
 * answers directly (unpatched) and the reason is reported. Either way the
 * outcome goes to JS once, through the `init` handler (init_report).
 *
 * Coherence, as measured on Linux 6.18 (test/shell/81-shared-mmap.sh): a
 * direct read(2) sees stores made through a shared mapping (even before
 * msync), and a direct pwrite(2) is seen through an existing mapping.
 */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Wire protocol (linux/fuse.h; DIRECT_IO_ALLOW_MMAP since 7.39). */
#define PMEMFS_OP_INIT 26
#define PMEMFS_INIT_EXT (1u << 30)		/* flags: flags2 is valid */
#define PMEMFS_DIRECT_IO_ALLOW_MMAP2 (1u << 4)	/* flags2 bit 4: bit 36 of the 64-bit flags */
#define PMEMFS_HANDLE_KILLPRIV_V2 (1u << 28)	/* flags: the daemon kills suid/sgid/caps (7.33) */

/* The fields we read or patch; the structs on the wire go on past these. */
struct wire_in_header {
	uint32_t len, opcode;
	uint64_t unique, nodeid;
	uint32_t uid, gid, pid;
	uint16_t total_extlen, padding;
};
struct wire_init_in {
	uint32_t major, minor, max_readahead, flags, flags2;
};
struct wire_out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};
struct wire_init_out {
	uint32_t major, minor, max_readahead, flags;
	uint16_t max_background, congestion_threshold;
	uint32_t max_write, time_gran;
	uint16_t max_pages, map_alignment;
	uint32_t flags2;
};
_Static_assert(sizeof(struct wire_in_header) == 40, "fuse_in_header is 40 bytes");
_Static_assert(sizeof(struct wire_out_header) == 16, "fuse_out_header is 16 bytes");
_Static_assert(offsetof(struct wire_init_in, flags2) == 16, "fuse_init_in.flags2 at 16");
_Static_assert(offsetof(struct wire_init_out, flags2) == 32, "fuse_init_out.flags2 at 32");

#define IN_FLAGS2_END (sizeof(struct wire_in_header) + sizeof(struct wire_init_in))
#define OUT_FLAGS2_END (sizeof(struct wire_out_header) + sizeof(struct wire_init_out))
#define REPLY_MAX 4096		/* libfuse 3.14's INIT reply is 80 bytes */

/* What INIT came to, for JS. */
static struct {
	uint32_t major, minor;
	bool offered, allow_mmap;	/* DIRECT_IO_ALLOW_MMAP offered by the kernel, and set */
	bool kp_offered, killpriv_v2;	/* HANDLE_KILLPRIV_V2 offered, and set */
	char problem[160];
} res;

bool init_is_request(const struct fuse_buf *b)
{
	struct wire_in_header h;
	if ((b->flags & FUSE_BUF_IS_FD) || b->size < sizeof h)
		return false;
	memcpy(&h, b->mem, sizeof h);
	return h.opcode == PMEMFS_OP_INIT;
}

/* Note what the kernel sent: its version and whether it offers the bit. */
static void read_request(const struct fuse_buf *b)
{
	struct wire_init_in in = { 0 };
	size_t n = b->size < IN_FLAGS2_END ? b->size : IN_FLAGS2_END;
	if (n > sizeof(struct wire_in_header))
		memcpy(&in, (const char *)b->mem + sizeof(struct wire_in_header), n - sizeof(struct wire_in_header));
	res.major = in.major;
	res.minor = in.minor;
	res.offered = n == IN_FLAGS2_END && (in.flags & PMEMFS_INIT_EXT) && (in.flags2 & PMEMFS_DIRECT_IO_ALLOW_MMAP2);
	res.kp_offered = n >= sizeof(struct wire_in_header) + offsetof(struct wire_init_in, flags2) &&
			 (in.flags & PMEMFS_HANDLE_KILLPRIV_V2);
}

/* Add the bit to libfuse's reply in place, if it is a successful one with room for flags2. */
static void patch_reply(char *msg, size_t n)
{
	struct wire_out_header oh;
	struct wire_init_out out;
	if (n < OUT_FLAGS2_END) {
		snprintf(res.problem, sizeof res.problem, "libfuse's INIT reply is %zu bytes, too short for flags2", n);
		return;
	}
	memcpy(&oh, msg, sizeof oh);
	if (oh.error != 0 || oh.len != n)
		return;		/* libfuse refused the connection; leave its answer alone */
	memcpy(&out, msg + sizeof oh, sizeof out);
	if (res.offered) {
		out.flags |= PMEMFS_INIT_EXT;
		out.flags2 |= PMEMFS_DIRECT_IO_ALLOW_MMAP2;
		res.allow_mmap = true;
	}
	if (res.kp_offered) {
		out.flags |= PMEMFS_HANDLE_KILLPRIV_V2;
		res.killpriv_v2 = true;
	}
	memcpy(msg + sizeof oh, &out, sizeof out);
}

/*
 * Run libfuse's INIT with its reply going into sp[0], then put the device
 * (`real`, a duplicate) back under `fd` with the descriptor flags it had.
 * @returns false if the device could not be put back
 */
static bool process_captured(int fd, int sp[2], int real)
{
	int fdflags = fcntl(fd, F_GETFD);
	if (fdflags < 0 || dup2(sp[0], fd) < 0) {
		snprintf(res.problem, sizeof res.problem, "dup2: %s", strerror(errno));
		fuse_session_process_buf(g.se, &g.buf);
		return true;
	}
	fuse_session_process_buf(g.se, &g.buf);
	return dup3(real, fd, fdflags & FD_CLOEXEC ? O_CLOEXEC : 0) >= 0;
}

/* The socket pair libfuse's reply goes into, and a duplicate of the device; false (reason noted) if not. */
static bool capture_open(int fd, int sp[2], int *real)
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		snprintf(res.problem, sizeof res.problem, "socketpair: %s", strerror(errno));
		return false;
	}
	if ((*real = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		snprintf(res.problem, sizeof res.problem, "dup: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return false;
	}
	return true;
}

/* Patch the captured reply (n bytes, or recv's -1 with err) and write it to the device. */
static const char *forward_reply(int fd, char *msg, ssize_t n, int err)
{
	if (n <= 0 || n > REPLY_MAX) {
		snprintf(res.problem, sizeof res.problem, "libfuse's INIT reply was not captured (%s)",
			 n < 0 ? strerror(err) : "empty or too long");
		return "the INIT reply was lost";
	}
	patch_reply(msg, (size_t)n);
	if (write(fd, msg, (size_t)n) != n) {
		snprintf(res.problem, sizeof res.problem, "writing the INIT reply: %s", strerror(errno));
		res.allow_mmap = false;
		res.killpriv_v2 = false;
		return "the kernel refused the INIT reply";
	}
	return NULL;
}

/*
 * Process the FUSE_INIT request in g.buf (init_is_request() said so).
 * @returns NULL, or why the session cannot go on (the device could not be
 * put back under its descriptor number, or the kernel refused the reply)
 */
const char *init_process(void)
{
	int fd = fuse_session_fd(g.se);
	int sp[2], real;
	static char msg[REPLY_MAX];

	memset(&res, 0, sizeof res);
	read_request(&g.buf);
	if (!res.offered && !res.kp_offered) {
		fuse_session_process_buf(g.se, &g.buf);
		return NULL;
	}
	if (!capture_open(fd, sp, &real)) {
		fuse_session_process_buf(g.se, &g.buf);
		return NULL;
	}
	bool restored = process_captured(fd, sp, real);
	close(real);
	close(sp[0]);
	ssize_t n = restored ? recv(sp[1], msg, sizeof msg, MSG_DONTWAIT | MSG_TRUNC) : -1;
	int err = errno;
	close(sp[1]);
	if (!restored)
		return "putting /dev/fuse back after INIT failed";
	if (res.problem[0])
		return NULL;	/* dup2 failed: libfuse wrote to the device itself */
	return forward_reply(fd, msg, n, err);
}

static void set_prop(napi_value obj, const char *name, napi_value v)
{
	napi_set_named_property(g.env, obj, name, v);
}

/* Tell JS's `init` handler what INIT came to: { kernelMajor, kernelMinor, directIoAllowMmap, killPrivV2, problem? }. */
void init_report(void)
{
	napi_handle_scope hs;
	napi_value info, b;
	napi_open_handle_scope(g.env, &hs);
	napi_create_object(g.env, &info);
	set_prop(info, "kernelMajor", num(res.major));
	set_prop(info, "kernelMinor", num(res.minor));
	napi_get_boolean(g.env, res.allow_mmap, &b);
	set_prop(info, "directIoAllowMmap", b);
	napi_get_boolean(g.env, res.killpriv_v2, &b);
	set_prop(info, "killPrivV2", b);
	if (res.problem[0])
		set_prop(info, "problem", str(res.problem));
	call_js(OP_INIT, -1, 1, &info);
	napi_close_handle_scope(g.env, hs);
}
