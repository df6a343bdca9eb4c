/*
 * lim_pvt.h - private to limits/: assertions, layout checks, internals shared
 * between the files of the module.
 */
#ifndef LIM_PVT_H
#define LIM_PVT_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "lim.h"

/*
 * Two levels (house style): LIM_ASSERT is checked in debug builds only (hot
 * path); LIM_VERIFY is always checked and stops the process with a message
 * (state that must never be wrong: money conservation, journal order).
 */
#define LIM_VERIFY(cond)                                                       \
	do {                                                                   \
		if (__builtin_expect(!(cond), 0)) {                            \
			fprintf(stderr, "%s:%d: %s: invariant failed: %s\n",   \
				__FILE__, __LINE__, __func__, #cond);          \
			abort();                                               \
		}                                                              \
	} while (0)

#ifdef NDEBUG
#define LIM_ASSERT(cond) ((void)0)
#else
#define LIM_ASSERT(cond) LIM_VERIFY(cond)
#endif

#define LIM_CACHE_LINE 64
#define LIM_ALIGNED __attribute__((aligned(LIM_CACHE_LINE)))

_Static_assert(sizeof(struct lim_user) == 88, "lim_user is 88 bytes");
_Static_assert(offsetof(struct lim_user, cool_until_s) == 64, "lim_user layout");
_Static_assert(sizeof(struct lim_user_ext) == 40, "lim_user_ext layout");
_Static_assert(sizeof(struct lim_op) == 128, "lim_op is two cache lines");
_Static_assert(sizeof(struct lim_effect) == 128, "lim_effect is 128 bytes");
_Static_assert(offsetof(struct lim_effect, check) == 124, "check is last");
_Static_assert(sizeof(struct lim_tier) == 32, "lim_tier layout");

#endif /* LIM_PVT_H */
