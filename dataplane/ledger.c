/*
 * ledger.c - the ledger worker: takes the effects every dataplane lcore
 * decided off its ring and makes them durable.
 *
 * This first version drains and counts (the hand-off exists and is
 * measured); "durable" means "taken by the worker". The journal with group
 * commit replaces drain() in its own change.
 *
 * Threads: one control thread (not an lcore: it sleeps when the rings are
 * empty instead of spinning on a core the dataplane needs). It publishes
 * ctx->durable_seq with release order; dataplane lcores read it with acquire.
 * Per ring, effects arrive in seq order (one producer whose seqs only grow).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_ring_elem.h>

#include "dp.h"

#define LEDGER_BATCH 256
#define LEDGER_IDLE_NS 20000 /* sleep when every ring was empty */

struct dp_ledger {
	struct dp_ctx *ctx;
	pthread_t tid;
	int stop;                 /* atomic */
	uint64_t drained;         /* atomic */
	uint64_t seq_max;
	struct lim_effect buf[LEDGER_BATCH];
};

/* One pass over every ring; returns the effects taken. */
static unsigned
drain(struct dp_ledger *l)
{
	struct dp_ctx *ctx = l->ctx;
	unsigned total = 0;

	for (unsigned i = 0; i < ctx->n_lcores; i++) {
		unsigned n = rte_ring_sc_dequeue_burst_elem(
			ctx->lc[i]->effects, l->buf, sizeof(l->buf[0]),
			LEDGER_BATCH, NULL);

		for (unsigned j = 0; j < n; j++)
			if (l->buf[j].seq > l->seq_max)
				l->seq_max = l->buf[j].seq;
		total += n;
	}
	if (total) {
		__atomic_add_fetch(&l->drained, total, __ATOMIC_RELAXED);
		__atomic_store_n(&ctx->durable_seq, l->seq_max, __ATOMIC_RELEASE);
	}
	return total;
}

static void *
ledger_main(void *arg)
{
	struct dp_ledger *l = arg;
	struct timespec idle = {0, LEDGER_IDLE_NS};

	/* Sleep for about what is asked, not the default 50 us slack. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE))
		if (drain(l) == 0)
			nanosleep(&idle, NULL);
	while (drain(l) != 0)
		;
	return NULL;
}

struct dp_ledger *
dp_ledger_start(struct dp_ctx *ctx)
{
	struct dp_ledger *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->ctx = ctx;
	if (rte_ctrl_thread_create(&l->tid, "authd-ledger", NULL, ledger_main,
				   l) != 0) {
		free(l);
		return NULL;
	}
	return l;
}

void
dp_ledger_stop(struct dp_ledger *l)
{
	if (!l)
		return;
	__atomic_store_n(&l->stop, 1, __ATOMIC_RELEASE);
	pthread_join(l->tid, NULL);
	free(l);
}

uint64_t
dp_ledger_drained(const struct dp_ledger *l)
{
	return __atomic_load_n(&l->drained, __ATOMIC_RELAXED);
}
