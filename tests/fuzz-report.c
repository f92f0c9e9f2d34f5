/*
 * fuzz-report.c — libFuzzer target for what a batch reads to resume
 * (`make fuzz`): an output folder's marker (.eosin-output, output/folder.c)
 * and its report.json with the result's identity (output/report.c,
 * identity.c).
 *
 * The input is report.json; or, when it starts with "eosin-output 1\n",
 * a marker text, then a line "=== report.json", then report.json. Without
 * a marker of its own the folder gets a sealed one listing report.json at
 * its size (what Eosin writes), so the fuzzer reaches the JSON at once.
 * _eosin_output_state classifies the folder for a fixed identity (the one
 * scripts/data/make-fuzz-corpus writes into its seeds, so identical seeds are
 * COMPLETE); _eosin_identity_differs is also called directly on the
 * parsed JSON's object and its "identity" for identities with and without
 * models and --mpp; and _eosin_output_remove then empties the folder,
 * trusting only the marker.
 */
#include "fuzz-common.c"

static char *want_paths[] = {"/data/slides/fuzz.svs", NULL};
static char *model_paths[] = {"/models/a.onnx", "/models/b.onnx", NULL};
static char *model_sums[] = {"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                             "5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9",
                             NULL};
static char *no_models[] = {NULL};

/* The identity the corpus's seeds carry (scripts/data/make-fuzz-corpus). */
static EosinIdentity identity(int n_models, double mpp) {
  static char *paths1[2], *sums1[2];
  paths1[0] = model_paths[0], sums1[0] = model_sums[0];
  EosinIdentity id = {
      .slide_path = want_paths[0],
      .slide_size = 123456,
      .slide_hash = "openslide-quickhash-1:"
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
      .mpp_user = mpp,
      .task = "stain",
      .config_sha256 = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
      .model_paths = n_models == 0 ? no_models : n_models == 1 ? paths1 : model_paths,
      .model_sha256 = n_models == 0 ? no_models : n_models == 1 ? sums1 : model_sums,
  };
  return id;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char MAGIC[] = "eosin-output 1\n";
  const char *json = (const char *) data, *marker = NULL;
  size_t json_len = size, marker_len = 0;
  if (size >= strlen(MAGIC) && !memcmp(data, MAGIC, strlen(MAGIC))) {
    marker = (const char *) data;
    const char *sep = g_strstr_len(marker, size, "\n=== report.json\n");
    marker_len = sep ? (size_t) (sep - marker) + 1 : size;
    json = sep ? sep + strlen("\n=== report.json\n") : marker + size;
    json_len = size - (json - marker);
  }
  g_autofree char *outdir = fuzz_fresh_dir("out");
  g_autofree char *final = g_build_filename(outdir, "fuzz", NULL);
  g_mkdir(final, 0700);
  g_autofree char *report = g_build_filename(final, "report.json", NULL);
  g_autofree char *mpath = g_build_filename(final, _eosin_marker_name(), NULL);
  fuzz_write(report, json, json_len);
  if (marker) {
    fuzz_write(mpath, marker, marker_len);
  } else {
    g_autofree char *m = g_strdup_printf("eosin-output 1\nwriter eosin fuzz\nslide %s\n"
                                         "created 2026-01-01T00:00:00Z\nfile %zu report.json\n"
                                         "sealed\n",
                                         want_paths[0], json_len);
    fuzz_write(mpath, m, strlen(m));
  }

  for (int v = 0; v < 3; v++) {
    EosinIdentity want = identity(v, v == 2 ? 0.25 : 0);
    char *why = NULL;
    EosinOutputState st = _eosin_output_state(final, &want, &why);
    FUZZ_ASSERT(st >= EOSIN_OUTPUT_ABSENT && st <= EOSIN_OUTPUT_FOREIGN, "state %d", st);
    FUZZ_ASSERT(st != EOSIN_OUTPUT_ABSENT, "the folder is there");
    FUZZ_ASSERT((st == EOSIN_OUTPUT_COMPLETE) == (why == NULL), "state %d, why %s", st,
                why ? why : "(none)");
    g_free(why);
  }

  /* the identity comparison on whatever JSON the input is */
  g_autoptr(JsonParser) parser = json_parser_new();
  g_autofree char *text = g_strndup(json, json_len);
  if (json_parser_load_from_data(parser, text, (gssize) json_len, NULL)) {
    JsonNode *root = json_parser_get_root(parser);
    JsonObject *o = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
    JsonNode *idn = o ? json_object_get_member(o, "identity") : NULL;
    JsonObject *ido = idn && JSON_NODE_HOLDS_OBJECT(idn) ? json_node_get_object(idn) : NULL;
    for (int v = 0; v < 3; v++) {
      EosinIdentity want = identity(v, v == 2 ? 0.25 : 0);
      g_free(_eosin_identity_differs(&want, o));
      g_free(_eosin_identity_differs(&want, ido));
    }
  }

  GError *err = NULL;
  bool ok = _eosin_output_remove(final, &err);
  fuzz_contract(ok, err, "_eosin_output_remove");
  g_clear_error(&err);
  return 0;
}
