/*
 * idlepoll.c - while the daemon is busy, keep another CPU from halting
 * (mount option idle_poll).
 *
 * Why: a client waiting for a request sleeps, and its CPU goes idle while
 * the daemon's one JS thread works on another CPU. On a VM whose idle
 * CPUs halt (this project's VM boots with haltpoll.guest_halt_poll_ns=0),
 * the reply must then wake a halted vCPU: 22-25 µs after a short request
 * and 40-47 µs after an FSYNC (bench:fuse-ops, the gap from a reply to the
 * client's next request), against 4-5 µs on bindfs, whose worker threads
 * reply from the client's CPU. A running CPU takes the same wake-up in a
 * few microseconds.
 *
 * How: one helper thread at SCHED_IDLE priority, allowed on every CPU the
 * process may use but the JS thread's, spins while a client waits on the
 * JS thread: loop.c renews it after each request that found the queue
 * empty (the thread had polled for it, or slept), and stops it when the
 * poll window ends and the thread sleeps; it also stops SPIN_MAX_NS after
 * the last renewal (a request that long is not worth a CPU). Under many
 * concurrent clients the queue seldom runs dry and the other CPUs are
 * busy anyway: renewing after every request there cost fio with 16
 * writers 5-10% (docs/DESIGN.md, "Idle polling while busy").
 *
 * In effect this is the guest's halt polling (cpuidle-haltpoll), turned on
 * for one CPU while the mount is busy. Any other task on that CPU, the
 * woken client first, preempts a SCHED_IDLE task at once, and the
 * scheduler counts a CPU that runs only SCHED_IDLE tasks as idle when it
 * places a waking task (sched_idle_cpu, kernel/sched/fair.c). An idle
 * mount costs nothing; a busy one, a second CPU at idle priority, as
 * poll_us costs the JS thread's own. With two CPUs the helper is on the
 * client's; with more, on one of the others. There is nothing to do on
 * one CPU, or without polling (poll_us=0: no busy spell to cover).
 *
 * A second helper, on the JS thread's own CPU, covers the other halt: while
 * the JS thread waits in a flush (msync, sync_file_range: binding.c calls
 * idle_poll_flush_begin/end around them) its CPU has nothing to run, and
 * the disk's completion would have to wake it from halt. This one spins
 * only from the start of each flush to its end; waking it costs the JS
 * thread a futex call on its own CPU, where it runs only once the JS
 * thread blocks.
 *
 * The daemon stores by pwrite on a disk (region.ts, "Stores by pwrite"), so
 * a flush cleaning pages shoots down no TLB entry on the helpers' CPUs.
 *
 * Everything here but helper_main and fhelper_main runs on the JS thread.
 */
#include "native.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SPIN_MAX_NS 5000000u	/* past the last request: then the helper sleeps */

enum { IDLE, SPINNING };

static _Atomic uint32_t state = IDLE;	/* the futex word the helper sleeps on */
static _Atomic uint64_t renewed;	/* CLOCK_MONOTONIC ns of the last renewal */
static _Atomic uint64_t spells;		/* busy spells the helper spun through (stats) */
static bool enabled, started;
static pthread_t helper;
/* The flush helper (on the JS thread's CPU while it waits in a flush). */
static _Atomic uint32_t fstate = IDLE;
static _Atomic uint64_t flushes;	/* flushes it spun through (stats) */
static bool fstarted;
static pthread_t fhelper;
static int fcpu = -1;			/* the CPU it is pinned to */
static cpu_set_t allowed;		/* the process's CPUs when the helper started */
static int excluded = -1;		/* the CPU the helper is kept off (the JS thread's) */

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/* A helper's wait for work: sleep on `word` while it is IDLE, then count the spell in `count`. */
static void wait_for_spin(_Atomic uint32_t *word, _Atomic uint64_t *count)
{
	while (atomic_load(word) == IDLE)
		syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, IDLE, NULL, NULL, 0);
	atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
}

static void *helper_main(void *arg)
{
	(void)arg;
	for (;;) {
		wait_for_spin(&state, &spells);
		for (unsigned k = 1; atomic_load_explicit(&state, memory_order_relaxed) == SPINNING; k++) {
			cpu_relax();
			if (k & 255)
				continue;
			uint64_t last = atomic_load(&renewed);
			if (now_ns() - last < SPIN_MAX_NS)
				continue;
			/* Too long since the last request, unless one came meanwhile. */
			uint32_t expect = SPINNING;
			if (atomic_load(&renewed) == last && atomic_compare_exchange_strong(&state, &expect, IDLE))
				break;
		}
	}
	return NULL;
}

/* The flush helper: spins while fstate is SPINNING (the JS thread is inside a flush). */
static void *fhelper_main(void *arg)
{
	(void)arg;
	for (;;) {
		wait_for_spin(&fstate, &flushes);
		while (atomic_load_explicit(&fstate, memory_order_relaxed) == SPINNING)
			cpu_relax();
	}
	return NULL;
}

/*
 * A detached SCHED_IDLE thread named `name` (at most 15 characters, the
 * kernel's comm) running fn; false if none could start.
 */
static bool start_thread(pthread_t *t, void *(*fn)(void *), const char *name)
{
	pthread_attr_t a;
	struct sched_param sp = { 0 };
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 64 << 10);
	bool ok = pthread_create(t, &a, fn, NULL) == 0;
	pthread_attr_destroy(&a);
	if (!ok)
		return false;
	/* Set by us, not through the attributes: glibc's take only OTHER, FIFO and RR. */
	pthread_setschedparam(*t, SCHED_IDLE, &sp);
	pthread_setname_np(*t, name);
	return true;
}

/* Start the helper the first time it is needed; false if it cannot run (one CPU, no thread). */
static bool ensure_helper(void)
{
	if (started)
		return true;
	if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < 2)
		return false;
	if (!start_thread(&helper, helper_main, "pmemfs-idlepoll"))
		return false;
	started = true;
	return true;
}

/* A client waited for the request just served: keep the helper spinning (wake it if it sleeps), off the JS thread's CPU. */
void idle_poll_renew(void)
{
	if (!enabled)
		return;
	int cpu = sched_getcpu();
	if (cpu >= 0 && cpu != excluded && cpu < CPU_SETSIZE) {
		cpu_set_t set = allowed;
		CPU_CLR(cpu, &set);
		if (CPU_COUNT(&set) > 0)
			pthread_setaffinity_np(helper, sizeof set, &set);
		excluded = cpu;
	}
	atomic_store(&renewed, now_ns());
	if (atomic_load_explicit(&state, memory_order_relaxed) == IDLE && atomic_exchange(&state, SPINNING) == IDLE)
		syscall(SYS_futex, &state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/*
 * The JS thread is about to wait in a flush: the flush helper spins on its
 * CPU until idle_poll_flush_end (started at the first flush; a flush
 * without it just runs as before).
 */
void idle_poll_flush_begin(void)
{
	if (!enabled)
		return;
	if (!fstarted && !(fstarted = start_thread(&fhelper, fhelper_main, "pmemfs-flush")))
		return;
	int cpu = sched_getcpu();
	if (cpu >= 0 && cpu != fcpu && cpu < CPU_SETSIZE) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		pthread_setaffinity_np(fhelper, sizeof set, &set);
		fcpu = cpu;
	}
	if (atomic_exchange(&fstate, SPINNING) == IDLE)
		syscall(SYS_futex, &fstate, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* The flush returned: the flush helper stops. */
void idle_poll_flush_end(void)
{
	if (fstarted)
		atomic_store(&fstate, IDLE);
}

/* The JS thread stops polling and sleeps: so does the helper, after its current loop. */
void idle_poll_stop(void)
{
	if (started && atomic_load_explicit(&state, memory_order_relaxed) == SPINNING)
		atomic_store(&state, IDLE);
}

/*
 * setIdlePoll(on: boolean): whether a busy daemon keeps another CPU from
 * halting (mount option idle_poll; off until asked). Turning it off lets
 * the helper finish its current loop and sleep.
 * @returns whether it is on (false on one CPU, or when no thread could start)
 */
static napi_value set_idle_poll(napi_env env, napi_callback_info info)
{
	ARGS(1)
	bool on;
	if (napi_get_value_bool(env, argv[0], &on) != napi_ok) {
		type_error(env, "setIdlePoll", "on", "a boolean");
		return NULL;
	}
	enabled = on && ensure_helper();
	if (!enabled) {
		idle_poll_stop();
		idle_poll_flush_end();
	}
	napi_value v;
	napi_get_boolean(env, enabled, &v);
	return v;
}

/* idlePollSpells(): busy spells the helper spun through since the process started (stats). */
static napi_value idle_poll_spells(napi_env env, napi_callback_info info)
{
	(void)info;
	napi_value v;
	napi_create_double(env, (double)atomic_load(&spells), &v);
	return v;
}

/* idlePollFlushes(): flushes the flush helper spun through since the process started (stats). */
static napi_value idle_poll_flushes(napi_env env, napi_callback_info info)
{
	(void)info;
	napi_value v;
	napi_create_double(env, (double)atomic_load(&flushes), &v);
	return v;
}

bool idle_poll_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "setIdlePoll", NULL, set_idle_poll, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "idlePollSpells", NULL, idle_poll_spells, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "idlePollFlushes", NULL, idle_poll_flushes, NULL, NULL, NULL, napi_enumerable, NULL },
	};
	return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
