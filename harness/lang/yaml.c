/* yaml.c: YAML documents (see doc.h). Not supported yet. */
#include "lang/doc.h"

json_t *er_yaml_parse(const char *file, const char *text, size_t len,
                      er_jpos_t **pos, er_diags_t *diags) {
  (void)text;
  (void)len;
  if (pos)
    *pos = NULL;
  er_diags_addf(diags, file, 0, 0, ER_DIAG_ERROR,
                "YAML files are not supported yet");
  return NULL;
}
