/*
 * slots.c - request slots: a pending request, named to JS by a slot id.
 *
 * A slot id is the slot's index and its generation (session.h): the
 * generation moves on each time the slot takes a request, so a late reply
 * or interrupt naming an earlier request of a reused slot finds a different
 * generation and is dropped; it never reaches the request now there.
 *
 * Interrupts (FUSE_INTERRUPT): every request registers on_interrupt with
 * fuse_req_interrupt_func. libfuse calls it from inside
 * fuse_session_process_buf, under its own request lock, so it only records
 * the slot; slots_deliver_interrupts hands the record to JS's `interrupt`
 * handler once the request that carried the interrupt has been processed.
 * An interrupt for a request already answered never comes here (libfuse
 * unregisters the callback at the reply). What to do with one is JS's
 * decision: a waiting request ends with EINTR, any other answers as usual.
 */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static slot_id id_of(int i)
{
	return (slot_id)g.slots[i].gen << SLOT_INDEX_BITS | i;
}

/* The pending slot named by id (NULL: free, or taken since by a later request). */
struct slot *slot_at(slot_id id)
{
	if (id < 0)
		return NULL;
	int i = (int)(id & (SLOT_MAX - 1));
	if (i >= g.nslots || !g.slots[i].req || id_of(i) != id)
		return NULL;
	return &g.slots[i];
}

/* libfuse: request `req` was interrupted. Recorded only (see the header). */
static void on_interrupt(fuse_req_t req, void *data)
{
	slot_id id = (slot_id)(uintptr_t)data;
	struct slot *s = slot_at(id);

	if (!s || s->req != req || s->interrupted)
		return;
	if (g.nintr == g.intr_cap) {
		int n = g.intr_cap ? g.intr_cap * 2 : 16;
		slot_id *q = realloc(g.intr, (size_t)n * sizeof *q);
		if (!q)
			return;	/* the request waits as if never interrupted */
		g.intr = q;
		g.intr_cap = n;
	}
	s->interrupted = true;
	g.intr[g.nintr++] = id;
}

/* A slot for req, or -1 when none can be had (the caller answers ENOMEM). */
slot_id slot_new(fuse_req_t req)
{
	if (g.free_head < 0) {
		int n = g.nslots ? g.nslots * 2 : 64;
		if (n > SLOT_MAX)
			return -1;
		struct slot *s = realloc(g.slots, (size_t)n * sizeof *s);
		if (!s)
			return -1;
		memset(s + g.nslots, 0, (size_t)(n - g.nslots) * sizeof *s);
		for (int i = n - 1; i >= g.nslots; i--) {
			s[i].next_free = g.free_head;
			g.free_head = i;
		}
		g.slots = s;
		g.nslots = n;
	}
	int i = g.free_head;
	struct slot *s = &g.slots[i];
	g.free_head = s->next_free;
	s->req = req;
	s->gen++;
	s->interrupted = false;
	slot_id id = id_of(i);
	fuse_req_interrupt_func(req, on_interrupt, (void *)(uintptr_t)id);
	return id;
}

/* Free the slot (its request is answered, or dropped by the caller); the generation stays. */
void slot_free(slot_id id)
{
	struct slot *s = slot_at(id);
	if (!s)
		return;
	int i = (int)(id & (SLOT_MAX - 1));
	uint32_t gen = s->gen;
	free(s->dir);
	free(s->in_copy);
	memset(s, 0, sizeof *s);
	s->gen = gen;
	s->next_free = g.free_head;
	g.free_head = i;
}

/* Take the request out of slot id: the slot is free again. */
fuse_req_t slot_take(slot_id id)
{
	struct slot *s = slot_at(id);
	fuse_req_t req = s ? s->req : NULL;
	slot_free(id);
	return req;
}

/* The pending slot named by a JS argument; throws (and returns -1) otherwise. */
slot_id arg_slot(napi_env env, napi_value v, const char *fn)
{
	double d = -1;
	if (napi_get_value_double(env, v, &d) == napi_ok && d >= 0 && d < 4503599627370496.0 &&
	    d == (double)(slot_id)d && slot_at((slot_id)d))
		return (slot_id)d;
	char msg[160];
	snprintf(msg, sizeof msg, "%s: slot %.0f is not a pending request (answered twice, or a stale id)", fn, d);
	napi_throw_error(env, "ERR_FUSE_SLOT", msg);
	return -1;
}

/* Tell JS of the interrupts recorded while the last request was processed. */
void slots_deliver_interrupts(void)
{
	if (!g.nintr)
		return;
	napi_handle_scope hs;
	napi_open_handle_scope(g.env, &hs);
	for (int k = 0; k < g.nintr; k++) {
		if (!slot_at(g.intr[k]))
			continue;	/* answered in between */
		napi_value a[] = { num((double)g.intr[k]) };
		call_js(OP_INTERRUPT, -1, 1, a);
	}
	g.nintr = 0;
	napi_close_handle_scope(g.env, hs);
}

/* Answer every pending request with err (the session is stopping). */
void slots_answer_all(int err)
{
	for (int i = 0; i < g.nslots; i++)
		if (g.slots[i].req)
			fuse_reply_err(slot_take(id_of(i)), err);
	g.nintr = 0;
}

int slots_pending(void)
{
	int n = 0;
	for (int i = 0; i < g.nslots; i++)
		n += g.slots[i].req != NULL;
	return n;
}
