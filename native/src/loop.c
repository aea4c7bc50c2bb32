/*
 * loop.c - the session loop: the /dev/fuse fd, made non-blocking, is
 * watched with uv_poll on the Node event loop. On each wakeup the JS
 * thread receives and processes requests until the device says EAGAIN (at
 * most POLL_BATCH per wakeup, so timers still run), inside one handle
 * scope and one callback scope: promise continuations and nextTicks run
 * when the batch ends. Interrupts recorded while a request was processed
 * go to JS right after it (slots.c). No request crosses a thread: after a
 * reply a client waited for, idlepoll.c's helper is only renewed (a store,
 * and a futex wake if it slept) to keep another CPU from halting
 * (idle_poll). The one FUSE_INIT request goes through init.c, which
 * patches libfuse's reply.
 */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Stop polling; tell JS once. The session itself is destroyed by sessionStop(). */
static void session_ended(const char *why)
{
	if (g.ended)
		return;
	g.ended = true;
	loop_stop();
	napi_value a[] = { str(why) };
	call_js(OP_ENDED, -1, 1, a);
}

/* Receive and process up to POLL_BATCH requests; returns why the session ended, or NULL. */
static const char *receive_batch(void)
{
	uint64_t spin_until = 0;
	for (int i = 0; i < POLL_BATCH; i++) {
		int res = fuse_session_receive_buf(g.se, &g.buf);
		if (res == -EINTR)
			continue;
		if (res == -EAGAIN) {
			/*
			 * Adaptive polling: a synchronous client sends its next
			 * request a few microseconds after our reply. Looking again
			 * for up to spin_us saves the sleep and wakeup in between
			 * (tens of microseconds on a VM); an idle daemon stops
			 * looking after that and sleeps in the event loop.
			 */
			uint64_t now = now_ns();
			if (!g.spin_ns)
				break;
			if (!spin_until)
				spin_until = now + g.spin_ns;
			if (now >= spin_until) {
				idle_poll_stop();	/* the thread sleeps: nothing to keep awake for */
				break;
			}
			i--;
			continue;
		}
		/* A client waited for this one (the queue was empty before it): its CPU may have gone idle. */
		bool waited = spin_until != 0 || i == 0;
		spin_until = 0;
		if (res <= 0)
			return res == 0 ? "the kernel ended the session (unmounted)" : "reading /dev/fuse failed";
		if (init_is_request(&g.buf)) {
			const char *why = init_process();
			init_report();
			if (why)
				return why;
		} else {
			fuse_session_process_buf(g.se, &g.buf);
			if (g.spin_ns && waited)
				idle_poll_renew();	/* a client waits on each reply: keep another CPU from halting */
		}
		slots_deliver_interrupts();
		if (fuse_session_exited(g.se))
			return "the session exited";
	}
	return NULL;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	(void)h;
	(void)events;
	napi_env env = g.env;
	napi_handle_scope hs;
	napi_callback_scope cs;
	napi_value resource;

	if (!g.se || g.ended)
		return;
	napi_open_handle_scope(env, &hs);
	napi_get_reference_value(env, g.resource, &resource);
	napi_open_callback_scope(env, resource, g.actx, &cs);
	const char *why = status < 0 ? "poll error" : receive_batch();
	if (why)
		session_ended(why);
	napi_close_callback_scope(env, cs);
	napi_close_handle_scope(env, hs);
}

/* Make the device fd non-blocking and watch it from the event loop. */
void loop_start(int fd)
{
	uv_loop_t *loop;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	napi_get_uv_event_loop(g.env, &loop);
	uv_poll_init(loop, &g.poll, fd);
	uv_poll_start(&g.poll, UV_READABLE, on_readable);
	g.polling = true;
	g.ended = false;
}

void loop_stop(void)
{
	idle_poll_stop();
	if (g.polling) {
		uv_poll_stop(&g.poll);
		g.polling = false;
	}
}
