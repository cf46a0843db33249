## lme4 values checked by vignettes/crossed-and-nested.md.
##
## Run from the project root:
##   Rscript tests/reference/make_vignette_crossed_and_nested_reference.R
## Writes tests/reference/vignette_crossed_and_nested.json (a few seconds):
## - Penicillin, diameter ~ 1 + (1 | plate) + (1 | sample) (REML): the
##   conditional modes and their conditional standard deviations for every
##   level of both factors (what dotplot(ranef(m, condVar = TRUE)) draws);
## - Pastes, the nested model written three ways, (1 | batch/cask),
##   (1 | batch) + (1 | batch:cask) and (1 | batch) + (1 | sample), and the
##   mistaken (1 | batch) + (1 | cask), which crosses batch with the
##   reused cask labels a, b, c: REML criterion, theta, variance components,
##   fixed effects, number of levels; the modes of the nested fit.
## The fits' summaries (Penicillin, Pastes nested) are also in
## lmer_reference.json and InstEval's ML fit in lme4_fits.json.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

source("tests/reference/load_data.R")  # load_data(name): data/<name>.csv with R's levels

fit_out <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  list(
    formula = paste(deparse(formula(m)), collapse = " "),
    REMLcrit = as.numeric(REMLcrit(m)),
    theta = unname(getME(m, "theta")),
    fixef = as.list(fixef(m)),
    fixef_se = as.list(setNames(sqrt(diag(as.matrix(vcov(m)))), names(fixef(m)))),
    sigma = sigma(m),
    varcorr = lapply(seq_len(nrow(vc)), function(i)
      list(grp = vc$grp[i], vcov = vc$vcov[i], sdcor = vc$sdcor[i])),
    ngroups = as.list(ngrps(m)),
    is_singular = isSingular(m)
  )
}

modes_out <- function(m) {
  rr <- ranef(m, condVar = TRUE)
  lapply(rr, function(x) list(level = rownames(x), mode = x[[1]],
                              cond_sd = sqrt(as.numeric(attr(x, "postVar")[1, 1, ]))))
}

pen <- load_data("Penicillin")
mp <- lmer(diameter ~ 1 + (1 | plate) + (1 | sample), data = pen, REML = TRUE)

pas <- load_data("Pastes")
forms <- list(
  nested = strength ~ 1 + (1 | batch/cask),
  explicit = strength ~ 1 + (1 | batch) + (1 | batch:cask),
  sample = strength ~ 1 + (1 | batch) + (1 | sample),
  crossed_by_mistake = strength ~ 1 + (1 | batch) + (1 | cask)
)
pastes <- lapply(forms, function(f) fit_out(lmer(f, data = pas, REML = TRUE)))
mn <- lmer(forms$nested, data = pas, REML = TRUE)

out <- list(
  r_versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                    Matrix = as.character(packageVersion("Matrix")),
                    jsonlite = as.character(packageVersion("jsonlite"))),
  penicillin = list(fit = fit_out(mp), ranef = modes_out(mp)),
  pastes = c(pastes, list(nested_ranef = modes_out(mn)))
)
write_json(out, "tests/reference/vignette_crossed_and_nested.json", digits = 15,
           auto_unbox = TRUE, null = "null", pretty = FALSE)
cat("wrote tests/reference/vignette_crossed_and_nested.json\n")
