/* act_use.c: the "use" step: a step file's steps (lang/uses.h).
 *
 * {"use": "steps/register-batch.step.json", "with": {"count": 3}}
 *   "with" is templated in the caller's scope; the step file's steps run
 *   in a scope of their own (the run-wide names, then the inputs: given,
 *   or their defaults, then its vars in order), on the caller's
 *   connections; its outputs, templated in its scope once every step
 *   passed, become the caller's captures. A failure inside names the step
 *   file's step with its file:line:col, behind the `use` step.
 * The loader checked the file, the inputs' names and the literal values'
 * types; the types of values known only now are checked here. */
#include <stdio.h>
#include <string.h>

#include "lang/jsonx.h"
#include "lang/template.h"
#include "lang/uses.h"
#include "run/exec.h"

/* The inputs and vars of the call into cx's scope. ER_STEP_OK, or
 * ER_STEP_FATAL with detail in x. */
static int set_inputs(er_exec_t *x, er_exec_t *cx, const er_stepfile_t *sf,
                      const json_t *given, const char *base) {
  const char *k;
  json_t *spec, *v;
  er_err_t err = {0};
  json_object_foreach((json_t *)sf->inputs, k, spec) {
    const char *t = json_string_value(json_object_get(spec, "type"));
    v = json_object_get(given, k);
    if (v && !er_uses_type_fits(t, v)) {
      er_buf_printf(x->detail, "use %s: input '%s' must be %s %s, got %s", base,
                    k, t && strchr("aeiou", t[0]) ? "an" : "a", t,
                    er_json_type_noun(v));
      return ER_STEP_FATAL;
    }
    if (v)
      cx->group->set_var(cx, k, json_incref(v));
  }
  /* defaults after every given input, so that one may use the others */
  json_object_foreach((json_t *)sf->inputs, k, spec) {
    const json_t *d = json_object_get(spec, "default");
    if (json_object_get(given, k) || !d)
      continue;
    v = er_tmpl_expand(cx->tmpl, d, &err);
    if (!v) {
      er_buf_printf(x->detail, "use %s: the default of input '%s': %s", base, k,
                    err.msg);
      return ER_STEP_FATAL;
    }
    cx->group->set_var(cx, k, v);
  }
  json_object_foreach((json_t *)sf->vars, k, spec) {
    v = er_tmpl_expand(cx->tmpl, spec, &err);
    if (!v) {
      er_buf_printf(x->detail, "use %s: vars.%s: %s", base, k, err.msg);
      return ER_STEP_FATAL;
    }
    cx->group->set_var(cx, k, v);
  }
  return ER_STEP_OK;
}

static int run_use(er_exec_t *x, const json_t *step) {
  const er_stepfile_t *sf = x->group->use_file(x, step);
  const json_t *with = json_object_get(step, "with");
  const char *base;
  json_t *given = NULL, *outs = NULL;
  er_exec_t *cx = NULL;
  er_err_t err = {0};
  int rc;

  if (!sf) {
    er_buf_puts(x->detail, "use: the step file was not loaded");
    return ER_STEP_FATAL;
  }
  base = strrchr(sf->file, '/') ? strrchr(sf->file, '/') + 1 : sf->file;
  given = with ? er_tmpl_expand(x->tmpl, with, &err) : json_object();
  if (!given) {
    er_buf_printf(x->detail, "use %s: with: %s", base,
                  err.msg[0] ? err.msg : "out of memory");
    return ER_STEP_FATAL;
  }
  cx = x->group->call_new(x, base, sf->dir);
  if (!cx) {
    er_buf_printf(x->detail,
                  "use %s: step files nest more than %d deep (or memory "
                  "ran out)",
                  base, ER_USE_DEPTH_MAX);
    json_decref(given);
    return ER_STEP_FATAL;
  }
  er_exec_log(x, "use %s", sf->file);
  rc = set_inputs(x, cx, sf, given, base);
  if (rc == ER_STEP_OK)
    rc = cx->group->run_steps(cx, sf->steps, "");
  if (rc == ER_STEP_OK && sf->outputs) {
    outs = er_tmpl_expand(cx->tmpl, sf->outputs, &err);
    if (!outs) {
      er_buf_printf(x->detail, "use %s: outputs: %s", base, err.msg);
      rc = ER_STEP_FATAL;
    }
  }
  x->group->call_join(x, cx, rc != ER_STEP_OK);
  if (rc == ER_STEP_OK && outs)
    json_object_update(x->captures, outs);
  json_decref(outs);
  json_decref(given);
  return rc;
}

const er_action_t er_act_use = {
    .name = "use", .whole_step = true, .raw_args = true, .run = run_use};
