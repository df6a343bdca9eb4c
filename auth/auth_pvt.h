/*
 * auth_pvt.h - private to auth/: assertions and wire layout checks.
 */
#ifndef AUTH_PVT_H
#define AUTH_PVT_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "auth.h"

#define AUTH_VERIFY(cond)                                                      \
	do {                                                                   \
		if (__builtin_expect(!(cond), 0)) {                            \
			fprintf(stderr, "%s:%d: %s: invariant failed: %s\n",   \
				__FILE__, __LINE__, __func__, #cond);          \
			abort();                                               \
		}                                                              \
	} while (0)

#ifdef NDEBUG
#define AUTH_ASSERT(cond) ((void)0)
#else
#define AUTH_ASSERT(cond) AUTH_VERIFY(cond)
#endif

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the wire structs are read in place: little-endian hosts only"
#endif

_Static_assert(sizeof(struct auth_hdr) == AUTH_HDR_LEN, "header is 32 bytes");
_Static_assert(offsetof(struct auth_hdr, gateway_id) == 8, "hdr layout");
_Static_assert(offsetof(struct auth_hdr, seq) == 16, "hdr layout");
_Static_assert(offsetof(struct auth_hdr, sent_ns) == 24, "hdr layout");
_Static_assert(sizeof(struct auth_req) == AUTH_REC_LEN, "request is 64 bytes");
_Static_assert(offsetof(struct auth_req, merchant_id) == 32, "req layout");
_Static_assert(offsetof(struct auth_req, mcc) == 40, "req layout");
_Static_assert(offsetof(struct auth_req, op) == 44, "req layout");
_Static_assert(offsetof(struct auth_req, device_id) == 48, "req layout");
_Static_assert(offsetof(struct auth_req, reserved1) == 60, "req layout");
_Static_assert(sizeof(struct auth_resp) == AUTH_REC_LEN, "response is 64 bytes");
_Static_assert(offsetof(struct auth_resp, hold_expires) == 40, "resp layout");
_Static_assert(offsetof(struct auth_resp, op) == 44, "resp layout");
_Static_assert(offsetof(struct auth_resp, funder_id) == 48, "resp layout");
_Static_assert(offsetof(struct auth_resp, risk_score) == 52, "resp layout");
_Static_assert(offsetof(struct auth_resp, self_cap_left) == 56, "resp layout");
_Static_assert(LIM_PRODUCT_CASH == 3 && LIM_OP_REPAY == 5, "wire numbers");

#endif /* AUTH_PVT_H */
