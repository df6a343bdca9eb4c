/*
 * test_snapshot.c - snapshots: a saved and loaded database equals the
 * original table by table; damaged files are refused with the byte offset
 * and the reason; a snapshot taken while two threads decide is consistent
 * per record (each user equals its initial state plus exactly the effects
 * with seq <= its stamp).
 *
 * AUTHD_WRITE_SEEDS=DIR also writes the round-trip file to DIR (the fuzz
 * corpus tests/fuzz/corpus/snapshot is made that way).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <urcu-qsbr.h>

#include "lim_fixture.h"
#include "lim_pvt.h"

#define ERR_LEN 512

static char tmpdir[64];

static void
tmp_path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", tmpdir, name);
}

static void
db_free(struct lim_db *db)
{
	lim_db_free(db);
}

static void
fx_drop(struct fx *f)
{
	db_free(f->db);
	memset(f, 0, sizeof(*f));
}

/* ---- the world: fixture tables plus activity in every state ------------ */

static struct auth_resp
exec_req(struct fx *f, uint8_t op, uint64_t rid, uint64_t user, uint64_t ref,
	 int64_t amount, uint8_t product, uint32_t group)
{
	struct auth_req r = fx_req(op, rid, user, ref, amount, product);

	r.group_id = group;
	if (user == FX_UB)
		r.region = 31;
	return fx_exec(f, &r);
}

static void
world(struct fx *f)
{
	fx_init(f, 4096);
	/* held, partly captured, voided, refunded, a cash loan, a bank loan,
	 * a group payment, a decline, a tombstone, a repayment */
	assert_int_equal(exec_req(f, LIM_OP_AUTHORIZE, 1, FX_UA, 0, 20000,
				  LIM_PRODUCT_PAYLATER, FX_G).status, 0);
	assert_int_equal(exec_req(f, LIM_OP_AUTHORIZE, 2, FX_UA, 0, 30000,
				  LIM_PRODUCT_INSTALLMENT, 0).status, 0);
	assert_int_equal(exec_req(f, LIM_OP_CAPTURE, 3, FX_UA, 2, 25000,
				  LIM_PRODUCT_INSTALLMENT, 0).status, 0);
	assert_int_equal(exec_req(f, LIM_OP_REFUND, 4, FX_UA, 2, 5000,
				  LIM_PRODUCT_INSTALLMENT, 0).status, 0);
	assert_int_equal(exec_req(f, LIM_OP_AUTHORIZE, 5, FX_UB, 0, 40000,
				  LIM_PRODUCT_PAYLATER, 0).status, 0);
	assert_int_equal(exec_req(f, LIM_OP_VOID, 6, FX_UB, 5, 10000,
				  LIM_PRODUCT_PAYLATER, 0).status, 0);
	assert_int_equal(exec_req(f, LIM_OP_AUTHORIZE, 7, FX_UC, 0, 10000,
				  LIM_PRODUCT_CASH, 0).status, 0);
	assert_int_equal(exec_req(f, LIM_OP_REPAY, 8, FX_UC, 0, 3000,
				  LIM_PRODUCT_CASH, 0).status, 0);
	assert_int_equal(exec_req(f, LIM_OP_AUTHORIZE, 9, FX_UFROZEN, 0, 100,
				  LIM_PRODUCT_PAYLATER, 0).status, 1);
	assert_int_equal(exec_req(f, LIM_OP_VOID, 10, FX_UEXT, 777, 0,
				  LIM_PRODUCT_PAYLATER, 0).status, 1);
	assert_int_equal(exec_req(f, LIM_OP_AUTHORIZE, 11, FX_UEXT, 0, 1050000,
				  LIM_PRODUCT_PAYLATER, 0).status, 0);
	assert_true(lim_ops_count(f->db->ops) >= 11);
	fx_check_money(f, true);
}

/* ---- table-by-table comparison ----------------------------------------- */

struct kv_cmp {
	struct lim_db *other;
	unsigned n;
};

static int
cmp_merchant(const void *rec, void *arg)
{
	const struct lim_merchant *m = rec, *o;
	struct kv_cmp *c = arg;

	o = lim_merchant_find(c->other, m->merchant_id);
	assert_non_null(o);
	assert_memory_equal(m, o, sizeof(*m));
	c->n++;
	return 0;
}

static int
cmp_group(const void *rec, void *arg)
{
	const struct lim_group *g = rec, *o;
	struct kv_cmp *c = arg;

	o = lim_group_find(c->other, g->group_id);
	assert_non_null(o);
	assert_int_equal(g->n_members, o->n_members);
	assert_int_equal(g->budget_fen, o->budget_fen);
	assert_memory_equal(g->members, o->members, sizeof(g->members));
	assert_int_equal(g->st->month_spend_fen, o->st->month_spend_fen);
	assert_int_equal(g->st->month_start_s, o->st->month_start_s);
	assert_int_equal(o->st->lock, 0);
	c->n++;
	return 0;
}

static int
cmp_ext(const void *rec, void *arg)
{
	const struct lim_user_ext *x = rec, *o;
	struct kv_cmp *c = arg;

	o = lim_ext_find(c->other, x->user_id);
	assert_non_null(o);
	assert_memory_equal(x, o, sizeof(*x));
	c->n++;
	return 0;
}

static void
same_kv(struct lim_kv *a, struct lim_kv *b, struct lim_db *bdb,
	lim_kv_visit_fn fn)
{
	struct kv_cmp c = {.other = bdb};

	assert_int_equal(lim_kv_foreach(a, fn, &c), 0);
	assert_int_equal(c.n, lim_kv_count(a));
	assert_int_equal(lim_kv_count(a), lim_kv_count(b));
}

/* Every table of @p a equals @p b's (the fixture state covers users byte
 * for byte, op entries, budgets, group states and seq). */
static void
same_db(struct fx *a, struct fx *b)
{
	const struct lim_funders *fa = lim_funders_get(a->db);
	const struct lim_funders *fb = lim_funders_get(b->db);
	struct fx_state sa, sb;

	fx_state_take(a, &sa);
	fx_state_take(b, &sb);
	fx_state_same(&sa, &sb);
	same_kv(a->db->ext, b->db->ext, b->db, cmp_ext);
	same_kv(a->db->merchants, b->db->merchants, b->db, cmp_merchant);
	same_kv(a->db->groups, b->db->groups, b->db, cmp_group);
	assert_int_equal(fa->n, fb->n);
	assert_memory_equal(fa->f, fb->f, fa->n * sizeof(fa->f[0]));
	for (unsigned i = 0; i < fa->n; i++)
		assert_int_equal(lim_budget_total(fa->budget[i]),
				 lim_budget_total(fb->budget[i]));
	assert_memory_equal(lim_policy_get(a->db), lim_policy_get(b->db),
			    sizeof(struct lim_policy));
}

static void
fx_wrap(struct fx *f, struct lim_db *db)
{
	memset(f, 0, sizeof(*f));
	f->db = db;
	f->x.db = db;
	fx_set_now(f, FX_T0);
}

static struct lim_db *
load_ok(const char *path, struct lim_snapshot_meta *meta)
{
	char err[ERR_LEN] = "";
	struct lim_db *db = lim_snapshot_load(path, NULL, NULL, meta, err,
					      sizeof(err));

	if (!db)
		fail_msg("load %s: %s", path, err);
	return db;
}

static void
save_ok(struct lim_db *db, const char *path)
{
	char err[ERR_LEN] = "";

	if (lim_snapshot_save(db, path, err, sizeof(err)))
		fail_msg("save %s: %s", path, err);
}

static uint64_t progress_done, progress_total;

static void
progress(uint64_t done, uint64_t total)
{
	progress_done = done;
	progress_total = total;
}

static void
write_seed(const char *src, const char *name)
{
	const char *dir = getenv("AUTHD_WRITE_SEEDS");
	char cmd[512];

	if (!dir)
		return;
	snprintf(cmd, sizeof(cmd), "cp %s %s/%s", src, dir, name);
	assert_int_equal(system(cmd), 0);
}

static void
test_round_trip(void **state)
{
	struct fx a, b;
	struct lim_snapshot_meta meta;
	char path[128], err[ERR_LEN];
	struct auth_resp ra, rb;

	(void)state;
	world(&a);
	tmp_path(path, sizeof(path), "world.snap");
	save_ok(a.db, path);
	write_seed(path, "world.snap");
	progress_done = progress_total = 0;
	b.db = lim_snapshot_load(path, NULL, progress, &meta, err, sizeof(err));
	if (!b.db)
		fail_msg("%s", err);
	fx_wrap(&b, b.db);
	same_db(&a, &b);
	fx_check_money(&b, true);
	assert_int_equal(progress_done, FX_USERS);
	assert_int_equal(progress_total, FX_USERS);
	assert_int_equal(meta.seq_start, a.db->seq);
	assert_int_equal(meta.seq_end, a.db->seq);
	assert_int_equal(meta.users, FX_USERS);
	for (unsigned i = 0; i < FX_USERS; i++)
		assert_int_equal(meta.user_stamp[i], 0);
	assert_int_equal(meta.groups, FX_GROUPS);
	assert_int_equal(lim_users_capacity(b.db->users),
			 FX_USERS + FX_USERS / 16 + 1024);
	/* the loaded database decides exactly as the original */
	ra = exec_req(&a, LIM_OP_CAPTURE, 20, FX_UB, 5, 30000,
		      LIM_PRODUCT_PAYLATER, 0);
	rb = exec_req(&b, LIM_OP_CAPTURE, 20, FX_UB, 5, 30000,
		      LIM_PRODUCT_PAYLATER, 0);
	assert_int_equal(ra.status, 0);
	assert_memory_equal(&ra, &rb, sizeof(ra));
	ra = exec_req(&a, LIM_OP_AUTHORIZE, 777, FX_UEXT, 0, 100,
		      LIM_PRODUCT_PAYLATER, 0);
	rb = exec_req(&b, LIM_OP_AUTHORIZE, 777, FX_UEXT, 0, 100,
		      LIM_PRODUCT_PAYLATER, 0);
	assert_int_equal(ra.reason, AUTH_REASON_REVERSED);
	assert_memory_equal(&ra, &rb, sizeof(ra));
	same_db(&a, &b);
	/* a second generation: save the loaded one, load again */
	save_ok(b.db, path);
	lim_snapshot_meta_free(&meta);
	fx_drop(&b);
	b.db = load_ok(path, NULL);
	fx_wrap(&b, b.db);
	same_db(&a, &b);
	fx_drop(&b);
	fx_drop(&a);
}

static void
test_empty_and_sizing(void **state)
{
	const struct lim_db_config small = {.users_max = 2, .ops_max = 64,
					    .shards = 2};
	const struct lim_db_config roomy = {.users_max = 100, .ops_max = 64};
	char path[128], err[ERR_LEN];
	struct fx a, b;

	(void)state;
	fx_init_empty(&a, 16, 64, 3);
	tmp_path(path, sizeof(path), "empty.snap");
	save_ok(a.db, path);
	write_seed(path, "empty.snap");
	b.db = load_ok(path, NULL);
	fx_wrap(&b, b.db);
	same_db(&a, &b);
	assert_int_equal(b.db->shards, 3);
	fx_drop(&b);
	fx_drop(&a);

	world(&a);
	tmp_path(path, sizeof(path), "world2.snap");
	save_ok(a.db, path);
	assert_null(lim_snapshot_load(path, &small, NULL, NULL, err,
				      sizeof(err)));
	assert_non_null(strstr(err, "5 users do not fit users_max 2"));
	b.db = lim_snapshot_load(path, &roomy, NULL, NULL, err, sizeof(err));
	assert_non_null(b.db);
	assert_int_equal(lim_users_capacity(b.db->users), 100);
	assert_int_equal(b.db->shards, 4); /* from the file */
	fx_drop(&b);
	fx_drop(&a);
}

static void
test_save_errors(void **state)
{
	char err[ERR_LEN] = "", cmd[256];
	struct fx a;
	FILE *p;

	(void)state;
	fx_init(&a, 64);
	assert_int_equal(lim_snapshot_save(a.db, "/nonexistent-dir/x.snap", err,
					   sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent-dir/x.snap.tmp."));
	assert_non_null(strstr(err, "No such file or directory"));
	/* a directory in the way of the rename: the temporary file goes */
	snprintf(cmd, sizeof(cmd), "%s/dir.snap", tmpdir);
	assert_int_equal(mkdir(cmd, 0700), 0);
	assert_int_equal(lim_snapshot_save(a.db, cmd, err, sizeof(err)),
			 -EISDIR);
	assert_non_null(strstr(err, "rename"));
	snprintf(cmd, sizeof(cmd), "ls %s | grep -c tmp", tmpdir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fgetc(p), '0');
	pclose(p);
	/* a failed fsync of the directory fails the save: the rename may not
	 * survive a crash, so the snapshot cannot be relied on */
	snprintf(cmd, sizeof(cmd), "%s/dirsync.snap", tmpdir);
	lim_file_inject_dir_sync_error(EIO);
	assert_int_equal(lim_snapshot_save(a.db, cmd, err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "fsync directory"));
	assert_int_equal(lim_snapshot_save(a.db, cmd, err, sizeof(err)), 0);
	fx_drop(&a);
}

/* ---- damaged files ------------------------------------------------------ */

struct image {
	uint8_t *p;
	size_t len;
	struct lim_snapshot_info info;
};

static void
image_of(struct image *im, const char *path)
{
	char err[ERR_LEN];
	struct stat st;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	im->len = (size_t)st.st_size;
	im->p = malloc(im->len + 64);
	assert_non_null(im->p);
	assert_int_equal(read(fd, im->p, im->len), (ssize_t)im->len);
	close(fd);
	if (lim_snapshot_inspect(path, &im->info, err, sizeof(err)))
		fail_msg("%s", err);
}

static const struct lim_snapshot_section *
sec_named(const struct image *im, const char *name)
{
	for (unsigned i = 0; i < im->info.n_sections; i++)
		if (strcmp(im->info.sec[i].name, name) == 0)
			return &im->info.sec[i];
	fail_msg("no section %s", name);
	return NULL;
}

static uint8_t *
rec(struct image *im, uint8_t *copy, const char *name, uint64_t i)
{
	const struct lim_snapshot_section *s = sec_named(im, name);

	assert_true(i < s->count);
	return copy + s->offset + i * s->record_size;
}

static uint64_t
rec_off(struct image *im, const char *name, uint64_t i)
{
	const struct lim_snapshot_section *s = sec_named(im, name);

	return s->offset + i * s->record_size;
}

/* Load @p len bytes of @p p: must fail at @p off with @p why in the text. */
static void
refused_(const uint8_t *p, size_t len, uint64_t off, const char *why,
	 const char *file, int line)
{
	char err[ERR_LEN] = "", at[64];
	struct lim_db *db;

	db = lim_snapshot_load_buf(p, len, "t.snap", NULL, NULL, NULL, err,
				   sizeof(err));
	if (db) {
		db_free(db);
		print_error("loaded, expected '%s' at offset %llu\n", why,
			    (unsigned long long)off);
		_fail(file, line);
	}
	snprintf(at, sizeof(at), "t.snap: offset %llu: ",
		 (unsigned long long)off);
	if (strncmp(err, at, strlen(at)) != 0 || !strstr(err, why)) {
		print_error("got \"%s\", expected \"%s...%s\"\n", err, at, why);
		_fail(file, line);
	}
}

#define refused(p, len, off, why) refused_((p), (len), (off), (why), __FILE__, __LINE__)

/* A copy of the image with @p fn applied and the checksums resealed. */
static uint8_t *
edited(struct image *im)
{
	uint8_t *c = malloc(im->len);

	assert_non_null(c);
	memcpy(c, im->p, im->len);
	return c;
}

static void
world_image(struct image *im)
{
	char path[128];
	struct fx a;

	world(&a);
	tmp_path(path, sizeof(path), "damage.snap");
	save_ok(a.db, path);
	image_of(im, path);
	fx_drop(&a);
}

static void
test_truncated(void **state)
{
	struct image im;
	uint64_t cuts[128];
	unsigned n = 0;

	(void)state;
	world_image(&im);
	for (uint64_t c = 1; c <= 8; c++)
		cuts[n++] = c;
	cuts[n++] = 64;
	cuts[n++] = 120;
	cuts[n++] = 127;
	cuts[n++] = 128;
	cuts[n++] = 128 + 48 * 3 + 7;
	cuts[n++] = 128 + 48 * im.info.n_sections;
	for (unsigned i = 0; i < im.info.n_sections; i++) {
		const struct lim_snapshot_section *s = &im.info.sec[i];

		cuts[n++] = s->offset;
		cuts[n++] = s->offset + s->length / 2;
		cuts[n++] = s->offset + s->length;
		if (s->length > 8)
			cuts[n++] = s->offset + s->length - 1;
	}
	cuts[n++] = im.len - 1;
	refused(im.p, 0, 0, "empty file, not a snapshot");
	for (unsigned i = 0; i < n; i++) {
		if (cuts[i] >= im.len)
			continue;
		refused(im.p, cuts[i], cuts[i], "truncated");
	}
	/* and through a file */
	{
		char path[128], err[ERR_LEN];
		int fd;

		tmp_path(path, sizeof(path), "cut.snap");
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		char want[128];

		assert_int_equal(write(fd, im.p, 2000), 2000);
		close(fd);
		assert_null(lim_snapshot_load(path, NULL, NULL, NULL, err,
					      sizeof(err)));
		snprintf(want, sizeof(want), "cut.snap: offset 2000: truncated: "
			 "the file has 2000 bytes, the header says %zu", im.len);
		assert_non_null(strstr(err, want));
	}
	free(im.p);
}

static void
test_flipped_bits(void **state)
{
	struct image im;
	uint8_t *c;
	char why[96];

	(void)state;
	world_image(&im);
	c = edited(&im);
	/* header fields under the checksum */
	for (unsigned off = 16; off < 120; off += 8) {
		c[off] ^= 0x10;
		refused(c, im.len, 120, "header checksum mismatch");
		c[off] ^= 0x10;
	}
	c[0] ^= 1;
	refused(c, im.len, 0, "not a snapshot");
	c[0] ^= 1;
	c[8] ^= 4;
	refused(c, im.len, 8, "unsupported format version 5");
	c[8] ^= 4;
	c[12] ^= 1;
	refused(c, im.len, 12, "header length 129, expected 128");
	c[12] ^= 1;
	/* the section table */
	for (unsigned i = 0; i < im.info.n_sections * 48; i += 13) {
		c[128 + i] ^= 0x80;
		refused(c, im.len, 128, "section table checksum mismatch");
		c[128 + i] ^= 0x80;
	}
	/* each section, at its start, middle and end */
	for (unsigned i = 0; i < im.info.n_sections; i++) {
		const struct lim_snapshot_section *s = &im.info.sec[i];
		uint64_t at[3] = {s->offset, s->offset + s->length / 2,
				  s->offset + s->length - 1};

		if (s->length == 0)
			continue;
		snprintf(why, sizeof(why), "section '%s' checksum mismatch",
			 s->name);
		for (unsigned k = 0; k < 3; k++) {
			c[at[k]] ^= 1;
			refused(c, im.len, s->offset, why);
			c[at[k]] ^= 1;
		}
	}
	/* padding between sections is not under a checksum: it must be 0 */
	for (unsigned i = 1; i < im.info.n_sections; i++) {
		const struct lim_snapshot_section *p = &im.info.sec[i - 1];
		uint64_t end = p->offset + p->length;

		if (im.info.sec[i].offset == end)
			continue;
		c[end] = 0xff;
		snprintf(why, sizeof(why), "padding before section %u is not "
			 "zero", i);
		refused(c, im.len, end, why);
		c[end] = 0;
	}
	assert_memory_equal(c, im.p, im.len);
	/* one byte more */
	c = realloc(c, im.len + 1);
	c[im.len] = 0;
	refused(c, im.len + 1, im.len, "extended");
	free(c);
	free(im.p);
}

static void
test_unrelated_files(void **state)
{
	static const char text[] = "user_id,limit_fen\n1,100\n";
	char path[128], err[ERR_LEN];
	struct image im;
	uint8_t *c;
	int fd;

	(void)state;
	refused((const uint8_t *)text, sizeof(text) - 1, 0, "not a snapshot");
	tmp_path(path, sizeof(path), "text.snap");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), sizeof(text) - 1);
	close(fd);
	assert_null(lim_snapshot_load(path, NULL, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "text.snap: offset 0: not a snapshot"));
	tmp_path(path, sizeof(path), "zero.snap");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	close(fd);
	assert_null(lim_snapshot_load(path, NULL, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "zero.snap: offset 0: empty file"));
	assert_null(lim_snapshot_load(tmpdir, NULL, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "not a regular file"));
	tmp_path(path, sizeof(path), "absent.snap");
	assert_null(lim_snapshot_load(path, NULL, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "absent.snap: open: No such file"));
	/* a wrong version, checksums right */
	world_image(&im);
	c = edited(&im);
	c[8] = 2;
	lim_snapshot_reseal(c, im.len);
	refused(c, im.len, 8, "unsupported format version 2 (this build reads 1)");
	free(c);
	free(im.p);
}

/* ---- records: changed, checksums resealed ------------------------------- */

struct edit_case {
	const char *section;
	uint64_t index;
	void (*edit)(uint8_t *rec, struct image *im, uint8_t *copy);
	const char *why;
	const char *at_section; /* the offset is this section's (NULL: rec) */
};

static void e_user_id0(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; memset(r, 0, 8); }
static void e_user_dup(uint8_t *r, struct image *im, uint8_t *c)
{ memcpy(r, rec(im, c, "users", 0), 8); }
static void e_user_tier(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_user *)r)->tier = 9; }
static void e_user_negative(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_user *)r)->outstanding_fen = -1; }
static void e_user_huge(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_user *)r)->limit_fen = LIM_MONEY_MAX + 1; }
static void e_user_lock(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_user *)r)->lock = 1; }
static void e_user_buckets(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_user *)r)->cash_fen = 1; }
static void e_user_noext(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_user *)r)->flags &= ~LIM_USER_EXT; }
static void e_user_ext(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_user *)r)->flags |= LIM_USER_EXT; }
static void e_stamp(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; memset(r, 0xff, 4); }
static void e_merchant_dup(uint8_t *r, struct image *im, uint8_t *c)
{ memcpy(r, rec(im, c, "merchants", 0), 4); }
static void e_merchant_risk(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_merchant *)r)->risk_score = 1001; }
static void e_group_members(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; r[4] = 0; }
static void e_op_state(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_op *)r)->state = 9; }
static void e_op_user(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_op *)r)->user_id = 424242; }
static void e_op_dup(uint8_t *r, struct image *im, uint8_t *c)
{ memcpy(r, rec(im, c, "ops", 0), sizeof(struct lim_op)); }
static void e_op_refunded(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_op *)r)->refunded_fen = LIM_MONEY_MAX + 1; }
static void e_funder0(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_funder *)r)->funder_id = 5; }
static void e_funder_share(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_funder *)r)->share_pct = 120; }
static void e_funder_quota(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_funder *)r)->quota_fen = 1; }
static void e_policy_ceiling0(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; ((struct lim_policy *)r)->ceiling_fen = 0; }
static void
e_policy_small(uint8_t *r, struct image *im, uint8_t *c)
{
	struct lim_policy *p = (struct lim_policy *)r;

	(void)im; (void)c;
	p->ceiling_fen = 1000;
	p->cap_chunk_fen = 10;
}
static void e_trailer(uint8_t *r, struct image *im, uint8_t *c)
{ (void)im; (void)c; r[24] ^= 1; }

static const struct edit_case edit_cases[] = {
	{"users", 1, e_user_id0, "user id 0", NULL},
	{"users", 2, e_user_dup, ": user 1001: duplicate id", NULL},
	{"users", 1, e_user_tier, "user 1002: tier 9 out of range 0..7", NULL},
	{"users", 0, e_user_negative,
	 "user 1001: outstanding_fen -1 out of range 0..1000000000000000", NULL},
	{"users", 3, e_user_huge, "user 1004: limit_fen 1000000000000001 out of "
	 "range", NULL},
	{"users", 0, e_user_lock, "user 1001: lock byte set", NULL},
	{"users", 3, e_user_buckets, "user 1004: cash and installment debt "
	 "exceed the outstanding debt", NULL},
	{"users", 4, e_user_noext, "user 1005 has an extension but not the "
	 "LIM_USER_EXT flag", "user_ext"},
	{"users", 0, e_user_ext, "2 users have the LIM_USER_EXT flag, 1 "
	 "extensions", "users"},
	{"user_stamps", 2, e_stamp, "user 1003: stamp 4294967295 beyond "
	 "seq_end", NULL},
	{"merchants", 1, e_merchant_dup, "duplicate id", NULL},
	{"merchants", 2, e_merchant_risk, "risk above 1000", NULL},
	{"groups", 1, e_group_members, "0 members, expected 1..8", NULL},
	{"ops", 3, e_op_state, "invalid state 9", NULL},
	{"ops", 0, e_op_user, "unknown user 424242", NULL},
	{"ops", 2, e_op_dup, "duplicate", NULL},
	{"ops", 1, e_op_refunded, "refunded_fen 1000000000000001 out of range", NULL},
	{"funders", 0, e_funder0, "funder slot 0 must be the company's own "
	 "book", NULL},
	{"funders", 2, e_funder_share, "funder 12: share above 100%", NULL},
	{"funders", 1, e_funder_quota, "funder quota of bank 11: ", "ops"},
	{"policy", 0, e_policy_ceiling0, "policy: ceiling must be positive",
	 NULL},
	{"policy", 0, e_policy_small, "lending ceiling (users' debt and holds) "
	 "0: ", "users"},
	{"trailer", 0, e_trailer, "trailer does not match", NULL},
};

static void
test_bad_records(void **state)
{
	struct image im;

	(void)state;
	world_image(&im);
	for (unsigned i = 0; i < sizeof(edit_cases) / sizeof(edit_cases[0]); i++) {
		const struct edit_case *e = &edit_cases[i];
		uint8_t *c = edited(&im);
		uint64_t off = e->at_section ? sec_named(&im, e->at_section)->offset
					     : rec_off(&im, e->section, e->index);

		e->edit(rec(&im, c, e->section, e->index), &im, c);
		lim_snapshot_reseal(c, im.len);
		refused(c, im.len, off, e->why);
		free(c);
	}
	free(im.p);
}

static void
test_bad_table(void **state)
{
	struct image im;
	uint8_t *c;

	(void)state;
	world_image(&im);
	/* entry 2 (users): type, record size, count, offset */
	c = edited(&im);
	c[128 + 96] = 42;
	lim_snapshot_reseal(c, im.len);
	refused(c, im.len, 128 + 96, "section 2: unknown type 42");
	memcpy(c, im.p, im.len);
	c[128 + 96] = 1; /* a second policy */
	lim_snapshot_reseal(c, im.len);
	refused(c, im.len, 128 + 96, "section 2: second 'policy' section");
	memcpy(c, im.p, im.len);
	c[128 + 96 + 4] = 80;
	lim_snapshot_reseal(c, im.len);
	refused(c, im.len, 128 + 96 + 4, "section 'users': record size 80, "
		"expected 88");
	memcpy(c, im.p, im.len);
	c[128 + 96 + 8] += 1;
	lim_snapshot_reseal(c, im.len);
	refused(c, im.len, 128 + 96 + 8, "section 'users': length 440 is not 6 "
		"records of 88 bytes");
	memcpy(c, im.p, im.len);
	c[128 + 96 + 16] += 64;
	lim_snapshot_reseal(c, im.len);
	refused(c, im.len, 128 + 96 + 16, "section 'users' at offset");
	memcpy(c, im.p, im.len);
	c[128 + 48 * 8] = 3; /* the trailer entry becomes a second users */
	lim_snapshot_reseal(c, im.len);
	refused(c, im.len, 128 + 48 * 8, "second 'users' section");
	memcpy(c, im.p, im.len);
	c[48] = 1; /* one section: a shorter table moves where sections start */
	lim_snapshot_reseal(c, im.len);
	refused(c, im.len, 176, "padding before section 0 is not zero");
	memset(c + 176, 0, 16); /* now the offset itself is wrong */
	refused(c, im.len, 128 + 16, "section 'policy' at offset 576, expected "
		"192");
	free(c);
	free(im.p);
}

/* ---- consistency under load -------------------------------------------- */

#define LOAD_USERS 20000
#define LOAD_THREADS 2
#define LOAD_LOG_MAX (1u << 20)
#define LOAD_SAVES 3

struct applied {
	uint64_t seq;
	uint64_t user_id;
	int64_t d_out, d_holds, d_cash, d_inst, d_month;
};

struct worker {
	pthread_t tid;
	unsigned shard;
	struct lim_db *db;
	volatile bool *stop;
	struct applied *log;
	uint64_t n;
	uint64_t ops;
};

static uint64_t
load_user_id(uint64_t i)
{
	return 1000000 + i * 7919;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct fx f;
	uint64_t rng = 0x1234567 + w->shard, rid = (uint64_t)w->shard << 40;
	uint64_t held[64] = {0}, held_user[64] = {0};

	rcu_register_thread();
	fx_wrap(&f, w->db);
	f.x.shard = w->shard;
	while (!__atomic_load_n(w->stop, __ATOMIC_RELAXED) &&
	       w->n + 4 < LOAD_LOG_MAX) {
		uint64_t r, u;
		unsigned k;
		struct auth_req q;
		struct auth_resp a;
		struct lim_effect e;

		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		r = rng >> 33;
		k = r % 64;
		u = load_user_id((r >> 6) % LOAD_USERS);
		if (held[k] && (r & 0x3000) != 0) {
			q = fx_req((r & 0x1000) ? LIM_OP_CAPTURE : LIM_OP_VOID,
				   ++rid, held_user[k], held[k], 0,
				   LIM_PRODUCT_PAYLATER);
			q.amount = q.op == LIM_OP_CAPTURE ? 100 : 0;
			held[k] = 0;
		} else {
			uint8_t prod = (r & 0xc000) == 0 ? LIM_PRODUCT_CASH
				       : (r & 0x10000) ? LIM_PRODUCT_INSTALLMENT
						       : LIM_PRODUCT_PAYLATER;

			q = fx_req(LIM_OP_AUTHORIZE, ++rid, u, 0,
				   100 + (int64_t)(r % 5000), prod);
			if (prod == LIM_PRODUCT_PAYLATER) {
				held[k] = rid;
				held_user[k] = u;
			}
		}
		if (fx_exec_gw(&f, FX_GW, &q, &a, &e) == AUTH_EXEC_RECORDED) {
			struct applied *l = &w->log[w->n++];

			l->seq = e.seq;
			l->user_id = e.user_id;
			l->d_out = e.d_outstanding_fen;
			l->d_holds = e.d_holds_fen;
			l->d_cash = e.product == LIM_PRODUCT_CASH ? e.d_bucket_fen : 0;
			l->d_inst = e.product == LIM_PRODUCT_INSTALLMENT
					    ? e.d_bucket_fen : 0;
			l->d_month = e.d_month_fen;
		}
		if (++w->ops % 64 == 0)
			lim_quiescent_state();
	}
	rcu_unregister_thread();
	return NULL;
}

static struct lim_db *
load_db(void)
{
	const struct lim_db_config cfg = {.users_max = LOAD_USERS,
					  .ops_max = 1u << 20,
					  .merchants_max = 64,
					  .groups_max = 64,
					  .shards = LOAD_THREADS + 1};
	const struct lim_merchant m = {.merchant_id = FX_M, .mcc = 5411,
				       .region = 21};
	struct lim_db *db = lim_db_create(&cfg);

	assert_non_null(db);
	assert_int_equal(lim_merchant_set(db, &m), 0);
	for (uint64_t i = 0; i < LOAD_USERS; i++) {
		/* tier 7: no velocity limits; a limit that never runs out */
		struct lim_user u = {.user_id = load_user_id(i),
				     .limit_fen = 1000000000000LL, .tier = 7,
				     .region = 21};

		assert_int_equal(lim_users_insert(db->users, &u), 0);
	}
	return db;
}

/* By user, then seq. */
static int
cmp_seq(const void *a, const void *b)
{
	const struct applied *x = a, *y = b;

	if (x->user_id != y->user_id)
		return x->user_id < y->user_id ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/*
 * Each user of @p path = zero + exactly the effects with seq <= stamp.
 * Returns how many effects happened while the save ran (seq_end -
 * seq_start).
 */
static uint64_t
check_consistent(const char *path, struct applied *all, uint64_t n)
{
	struct lim_snapshot_meta meta;
	struct lim_db *db = load_ok(path, &meta);
	uint64_t users = lim_users_count(db->users), in_snap = 0, after = 0;

	assert_int_equal(users, LOAD_USERS);
	assert_true(meta.seq_end >= meta.seq_start);
	for (uint64_t i = 0; i < users; i++) {
		const struct lim_user *u = lim_users_at(db->users, i);
		uint64_t stamp = meta.seq_start + meta.user_stamp[i];
		int64_t out = 0, holds = 0, cash = 0, inst = 0, month = 0;
		uint64_t lo = 0, hi = n;
		const struct applied *e;

		assert_true(stamp <= meta.seq_end);
		while (lo < hi) { /* the first effect of this user */
			uint64_t mid = lo + (hi - lo) / 2;

			if (all[mid].user_id < u->user_id)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (e = all + lo; e < all + n && e->user_id == u->user_id; e++) {
			if (e->seq > stamp) {
				after++;
				continue;
			}
			in_snap++;
			out += e->d_out;
			holds += e->d_holds;
			cash += e->d_cash;
			inst += e->d_inst;
			month += e->d_month;
		}
		assert_int_equal(u->outstanding_fen, out);
		assert_int_equal(u->holds_fen, holds);
		assert_int_equal(u->cash_fen, cash);
		assert_int_equal(u->inst_fen, inst);
		assert_int_equal(u->month_spend_fen, month);
	}
	assert_true(in_snap > 0);
	print_message("%s: seq %llu..%llu, %llu effects in, %llu after\n",
		      strrchr(path, '/') + 1, (unsigned long long)meta.seq_start,
		      (unsigned long long)meta.seq_end,
		      (unsigned long long)in_snap, (unsigned long long)after);
	in_snap = meta.seq_end - meta.seq_start;
	lim_snapshot_meta_free(&meta);
	db_free(db);
	return in_snap;
}

static void
test_consistent_under_load(void **state)
{
	struct worker w[LOAD_THREADS];
	volatile bool stop = false;
	struct lim_db *db = load_db();
	char path[LOAD_SAVES][128];
	struct applied *all;
	uint64_t n = 0, during = 0;
	struct timespec pause = {0, 100 * 1000 * 1000};

	(void)state;
	for (unsigned t = 0; t < LOAD_THREADS; t++) {
		w[t] = (struct worker){.shard = t + 1, .db = db, .stop = &stop};
		w[t].log = malloc(LOAD_LOG_MAX * sizeof(struct applied));
		assert_non_null(w[t].log);
		assert_int_equal(pthread_create(&w[t].tid, NULL, worker_main,
						&w[t]), 0);
	}
	for (unsigned s = 0; s < LOAD_SAVES; s++) {
		char name[32];

		/* offline while asleep: a grace period must not wait for us */
		rcu_thread_offline();
		nanosleep(&pause, NULL);
		rcu_thread_online();
		snprintf(name, sizeof(name), "load%u.snap", s);
		tmp_path(path[s], sizeof(path[s]), name);
		save_ok(db, path[s]);
	}
	rcu_thread_offline();
	nanosleep(&pause, NULL);
	__atomic_store_n(&stop, true, __ATOMIC_RELAXED);
	for (unsigned t = 0; t < LOAD_THREADS; t++)
		assert_int_equal(pthread_join(w[t].tid, NULL), 0);
	rcu_thread_online();
	for (unsigned t = 0; t < LOAD_THREADS; t++) {
		n += w[t].n;
	}
	all = malloc((n ? n : 1) * sizeof(*all));
	assert_non_null(all);
	n = 0;
	for (unsigned t = 0; t < LOAD_THREADS; t++) {
		memcpy(all + n, w[t].log, w[t].n * sizeof(*all));
		n += w[t].n;
		free(w[t].log);
	}
	qsort(all, n, sizeof(*all), cmp_seq);
	print_message("%llu effects applied during %u saves (%llu, %llu "
		      "requests)\n", (unsigned long long)n, LOAD_SAVES,
		      (unsigned long long)w[0].ops, (unsigned long long)w[1].ops);
	for (unsigned s = 0; s < LOAD_SAVES; s++)
		during += check_consistent(path[s], all, n);
	assert_true(during > 0); /* the saves did overlap the decisions */
	free(all);
	db_free(db);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_snapshot.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_empty_and_sizing),
		cmocka_unit_test(test_save_errors),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_flipped_bits),
		cmocka_unit_test(test_unrelated_files),
		cmocka_unit_test(test_bad_records),
		cmocka_unit_test(test_bad_table),
		cmocka_unit_test(test_consistent_under_load),
	};
	int rc;

	rcu_register_thread();
	rc = cmocka_run_group_tests(tests, setup, teardown);
	rcu_unregister_thread();
	return rc;
}
