/*
 * cmd-info.c — `eosin info SLIDE [--json] [--mpp X]`: what Eosin sees in a
 * slide (vendor, levels, µm/px and where it came from, bounds, associated
 * images, and the content hash report.json identifies it by), the first
 * thing to run on a slide that misbehaves.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

int eosin_cmd_info(int argc, char **argv) {
  gboolean json = FALSE;
  double mpp = 0;
  GOptionEntry entries[] = {
      {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL},
      {"mpp", 0, 0, G_OPTION_ARG_DOUBLE, &mpp, "µm/px to use when the slide has none", "UM"},
      {NULL}};
  g_autoptr(GOptionContext) ctx = g_option_context_new("SLIDE - describe a slide");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_set_description(
      ctx, "A slide that does not state its µm/px is described all the same, its µm/px\n"
           "\"unknown\" with the reason (JSON: mpp_x/mpp_y null and mpp_problem).\n"
           "Exit codes: 0 ok, 1 the slide cannot be read, 2 usage.");
  if (!eosin_cli_parse(ctx, &argc, &argv))
    return EOSIN_EXIT_USAGE;
  if (argc != 2) {
    fprintf(stderr, "eosin info: expected one SLIDE (see --help)\n");
    return EOSIN_EXIT_USAGE;
  }
  if (!eosin_cli_check_mpp("info", mpp))
    return EOSIN_EXIT_USAGE;
  g_autoptr(GError) err = NULL;
  g_autofree char *no_mpp = NULL;
  g_autoptr(EosinSlide) slide = _eosin_slide_open_to_describe(argv[1], mpp, &no_mpp, &err);
  if (!slide) {
    fprintf(stderr, "eosin: %s\n", err->message);
    return EOSIN_EXIT_FAILED;
  }
  const EosinSlideInfo *i = eosin_slide_get_info(slide);
  g_autofree char *hash = eosin_slide_hash(argv[1], &err);
  if (!hash) {
    fprintf(stderr, "eosin: %s\n", err->message);
    return EOSIN_EXIT_FAILED;
  }
  if (json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    eosin_slide_info_json(i, b);
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    json_object_set_string_member(json_node_get_object(root), "hash", hash);
    if (no_mpp) {
      /* unknown is null, not 0: a reader must not compute with it */
      json_object_set_null_member(json_node_get_object(root), "mpp_x");
      json_object_set_null_member(json_node_get_object(root), "mpp_y");
      json_object_set_string_member(json_node_get_object(root), "mpp_problem", no_mpp);
    }
    eosin_cli_print_json(root);
    return EOSIN_EXIT_OK;
  }
  printf("slide:      %s\n", i->path);
  printf("reader:     %s (%s)\n", i->backend, i->vendor);
  printf("hash:       %s\n", hash);
  printf("size:       %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT " px (level 0)\n", i->width,
         i->height);
  if (no_mpp)
    printf("µm/px:      unknown (%s): give it with --mpp UM, or a manifest's mpp column, "
           "to run or batch it\n",
           no_mpp);
  else
    printf("µm/px:      %.4f x %.4f (from %s)\n", i->mpp_x, i->mpp_y,
           eosin_mpp_source_name(i->mpp_source));
  if (i->objective_power > 0)
    printf("objective:  %gx\n", i->objective_power);
  else
    printf("objective:  not stated\n");
  printf("bounds:     x %" G_GINT64_FORMAT " y %" G_GINT64_FORMAT " w %" G_GINT64_FORMAT
         " h %" G_GINT64_FORMAT "%s\n",
         i->bounds_x, i->bounds_y, i->bounds_w, i->bounds_h,
         i->has_bounds ? "" : " (whole slide)");
  printf("levels:     %d\n", i->n_levels);
  for (int l = 0; l < i->n_levels; l++) {
    printf("  %2d  %8" G_GINT64_FORMAT " x %-8" G_GINT64_FORMAT " downsample %-8.3f", l,
           i->levels[l].width, i->levels[l].height, i->levels[l].downsample);
    if (no_mpp)
      printf("\n");
    else
      printf(" %.3f µm/px\n", i->levels[l].downsample * i->mpp_x);
  }
  printf("associated:");
  for (char **a = i->associated; a && *a; a++)
    printf(" %s", *a);
  printf("%s\n", i->associated && *i->associated ? "" : " none");
  return EOSIN_EXIT_OK;
}
