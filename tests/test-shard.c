/*
 * test-shard.c — one worker's share of a batch (src/shard.c): --shard K/N
 * parsed strictly, the shards of 1..N a partition of the manifest that
 * does not depend on the order of its lines, a Slurm array task's place
 * read from its environment, and `eosin batch --shard` end to end.
 */
#include "test-util.h"

static void item_free(gpointer p) {
  EosinBatchItem *it = p;
  g_free(it->path);
  g_free(it);
}

static GPtrArray *items_of(const char *const *paths) {
  GPtrArray *a = g_ptr_array_new_with_free_func(item_free);
  for (int i = 0; paths[i]; i++) {
    EosinBatchItem *it = g_new0(EosinBatchItem, 1);
    it->path = g_strdup(paths[i]);
    g_ptr_array_add(a, it);
  }
  return a;
}

static void items_free(GPtrArray *a) {
  g_ptr_array_unref(a);
}

static char *joined(GPtrArray *a) {
  GString *s = g_string_new(NULL);
  for (guint i = 0; i < a->len; i++)
    g_string_append_printf(s, "%s%s", i ? " " : "", ((EosinBatchItem *) a->pdata[i])->path);
  return g_string_free(s, FALSE);
}

Test(shard, k_of_n_is_parsed_strictly) {
  int k = 0, n = 0;
  cr_assert(_eosin_shard_parse("2/3", &k, &n, NULL));
  cr_expect(k == 2 && n == 3);
  cr_assert(_eosin_shard_parse("1/1", &k, &n, NULL));
  cr_expect(k == 1 && n == 1);
  const char *bad[] = {"3/2", "0/0", "0/3", "1/0", "a/b", "1/2x", "-1/2", " 1/2", "1/", "/2",
                       "1/2/3", "", "4/100001", NULL};
  for (int i = 0; bad[i]; i++) {
    g_autoptr(GError) err = NULL;
    cr_expect(!_eosin_shard_parse(bad[i], &k, &n, &err), "'%s' accepted", bad[i]);
    cr_expect(err && err->code == EOSIN_ERROR_CONFIG && strstr(err->message, bad[i]),
              "'%s': %s", bad[i], err ? err->message : "no error");
  }
}

/* Shards 1..N hold every slide once, each every N-th of the sorted list,
 * in manifest order, the same for any order of the manifest's lines. */
Test(shard, shards_partition_the_sorted_manifest) {
  const char *paths[] = {"e.svs", "a.svs", "d.svs", "b.svs", "g.svs", "c.svs", "f.svs", NULL};
  const char *reversed[] = {"f.svs", "c.svs", "g.svs", "b.svs", "d.svs", "a.svs", "e.svs", NULL};
  /* sorted: a b c d e f g; shard 1/3 = a d g, 2/3 = b e, 3/3 = c f */
  const char *want[] = {"a.svs d.svs g.svs", "b.svs e.svs", "c.svs f.svs"};
  const char *want_manifest_order[] = {"a.svs d.svs g.svs", "e.svs b.svs", "c.svs f.svs"};
  for (int k = 1; k <= 3; k++) {
    GPtrArray *a = items_of(paths), *b = items_of(reversed);
    _eosin_batch_keep_shard(a, k, 3);
    _eosin_batch_keep_shard(b, k, 3);
    g_autofree char *ja = joined(a), *jb = joined(b);
    cr_expect_str_eq(ja, want_manifest_order[k - 1], "shard %d/3", k);
    /* the reversed manifest gives the same slides (in its own order) */
    g_auto(GStrv) wa = g_strsplit(want[k - 1], " ", -1);
    cr_expect_eq(b->len, g_strv_length(wa));
    for (int i = 0; wa[i]; i++)
      cr_expect(strstr(jb, wa[i]), "shard %d/3 of the reversed manifest lacks %s: %s", k, wa[i],
                jb);
    items_free(a);
    items_free(b);
  }
  /* more shards than slides: the last ones are empty; 1/1 keeps all */
  GPtrArray *a = items_of(paths);
  _eosin_batch_keep_shard(a, 9, 9);
  cr_expect_eq(a->len, 0);
  items_free(a);
  a = items_of(paths);
  _eosin_batch_keep_shard(a, 1, 1);
  cr_expect_eq(a->len, 7);
  items_free(a);
}

Test(shard, slurm_array_tasks_name_their_shard) {
  int k = 0, n = 0;
  bool found = true;
  EosinSlurmArray none = {0};
  cr_assert(_eosin_shard_from_slurm(&none, &k, &n, &found, NULL));
  cr_expect(!found, "outside an array job there is no shard");
  /* --array=3-7: task 5 is the third of five */
  EosinSlurmArray a = {"5", "3", "7", NULL, "5"};
  cr_assert(_eosin_shard_from_slurm(&a, &k, &n, &found, NULL));
  cr_expect(found && k == 3 && n == 5, "%d/%d", k, n);
  /* no COUNT: from MIN and MAX; --array=0-10:5 is tasks 0, 5, 10 */
  EosinSlurmArray b = {"10", "0", "10", "5", NULL};
  cr_assert(_eosin_shard_from_slurm(&b, &k, &n, &found, NULL));
  cr_expect(k == 3 && n == 3, "%d/%d", k, n);
  EosinSlurmArray bad[] = {{"8", "3", "7", NULL, "5"},  /* past the last */
                           {"2", "3", "7", NULL, NULL}, /* before the first */
                           {"6", "0", "10", "5", NULL}, /* between two steps */
                           {"x", "0", "3", NULL, NULL},
                           {"1", NULL, "3", NULL, NULL}};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) err = NULL;
    cr_expect(!_eosin_shard_from_slurm(&bad[i], &k, &n, &found, &err), "case %zu accepted", i);
    cr_expect(err && strstr(err->message, "SLURM_ARRAY_TASK_ID"), "case %zu", i);
  }
}

Test(shard, eosin_batch_runs_its_shard) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *man = g_build_filename(dir, "slides.txt", NULL);
  g_autofree char *a = td("tissue-a.svs"), *b = td("tissue-b.svs"), *c = td("tissue-c.svs");
  g_autofree char *text = g_strdup_printf("%s\n%s\n%s\n", c, a, b);
  cr_assert(g_file_set_contents(man, text, -1, NULL));
  g_autofree char *out = g_build_filename(dir, "out", NULL);
  g_autofree char *cfg = stain_config(256, 2.0, 0, 0.25, "");
  const char *argv[] = {"batch", "--task", cfg, "--manifest", man, "-o", out, "--shard", "1/2",
                        NULL};
  g_autofree char *err = NULL;
  cr_assert_eq(run_eosin(argv, NULL, &err), 0, "%s", err);
  cr_expect(strstr(err, "shard 1/2 (from --shard): 2 of 3 slides"), "%s", err);
  /* sorted a b c: shard 1/2 is a and c */
  g_autofree char *pa = g_build_filename(out, "tissue-a", NULL);
  g_autofree char *pb = g_build_filename(out, "tissue-b", NULL);
  g_autofree char *pc = g_build_filename(out, "tissue-c", NULL);
  cr_expect(g_file_test(pa, G_FILE_TEST_IS_DIR) && g_file_test(pc, G_FILE_TEST_IS_DIR));
  cr_expect(!g_file_test(pb, G_FILE_TEST_EXISTS), "tissue-b belongs to shard 2/2");

  const char *bad[] = {"batch", "--task", cfg, "--manifest", man, "-o", out, "--shard", "3/2",
                       NULL};
  g_autofree char *err2 = NULL;
  cr_expect_eq(run_eosin(bad, NULL, &err2), 2);
  cr_expect(strstr(err2, "--shard '3/2'"), "%s", err2);
}
