# Reference intervals from lme4 for pymlm's GLMM confint tests.
# Run from the project root:  Rscript tests/reference/make_glmer_inference_reference.R
# Writes tests/reference/glmer_inference_reference.json (R and package versions inside):
# lme4's confint(m, method = "Wald" / "profile") of cbpp's binomial GLMM, at
# levels 0.95 and 0.8, and of a Poisson GLMM of grouseticks (profile of the
# random-effect sd and the fixed effects).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
source("tests/reference/load_data.R")

ci_list <- function(ci) {
  list(names = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]))
}
cbpp <- load_data("cbpp")
m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp, family = binomial)
pr <- profile(m)
out <- list(
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))),
  cbpp = list(
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
    theta = unname(getME(m, "theta")), fixef = unname(fixef(m)),
    wald_95 = ci_list(confint(m, method = "Wald")),
    profile_95 = ci_list(confint(pr, level = 0.95)),
    profile_80 = ci_list(confint(pr, level = 0.8))
  )
)
gt <- load_data("grouseticks")
g <- glmer(TICKS ~ YEAR + (1 | BROOD), data = gt, family = poisson)
out$grouseticks <- list(
  formula = "TICKS ~ YEAR + (1 | BROOD)",
  theta = unname(getME(g, "theta")), fixef = unname(fixef(g)),
  profile_95 = ci_list(confint(g, method = "profile"))
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/glmer_inference_reference.json")
