/*
 * registry.c — the table of analyzers, looked up by the name a config's
 * [task] analyzer key gives. Adding a task means adding an analyzer file,
 * a line here and a config.
 */
#include "tasks/analyzer.h"

extern const EosinAnalyzerOps _eosin_analyzer_stain;
extern const EosinAnalyzerOps _eosin_analyzer_cnn;
extern const EosinAnalyzerOps _eosin_analyzer_ihc;
extern const EosinAnalyzerOps _eosin_analyzer_cytology;

static const EosinAnalyzerOps *const ANALYZERS[] = {
    &_eosin_analyzer_stain,
    &_eosin_analyzer_cnn,
    &_eosin_analyzer_ihc,
    &_eosin_analyzer_cytology,
    NULL,
};

const EosinAnalyzerOps *eosin_analyzer_find(const char *name) {
  for (int i = 0; ANALYZERS[i]; i++)
    if (name && !strcmp(ANALYZERS[i]->name, name))
      return ANALYZERS[i];
  return NULL;
}

const EosinAnalyzerOps *_eosin_analyzer_nth(int i) {
  return i >= 0 && i < (int) G_N_ELEMENTS(ANALYZERS) ? ANALYZERS[i] : NULL;
}
