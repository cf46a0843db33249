# lme4's fit and intervals of replicate 1 of the coverage study, for the vignette
# vignettes/do-the-intervals-cover.md.
# Run from the project root:
#   python tests/reference/make_vignette_interval_data.py     # writes the CSV read here
#   Rscript tests/reference/make_vignette_do_the_intervals_cover_reference.R
# Reads tests/reference/vignette_do_the_intervals_cover.csv (the first of
# bench/bench_coverage.py's simulated data sets, 200 groups x 10 occasions, the
# doubles written with 17 significant digits) and writes
# tests/reference/vignette_do_the_intervals_cover.json: the REML fit of
# y ~ t + x + (t | g), lme4's Wald intervals (confint(m, method = "Wald")) and
# profile intervals (confint(m), i.e. confint(profile(m))), with R and package versions.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})

d <- read.csv("tests/reference/vignette_do_the_intervals_cover.csv")
d$g <- factor(d$g)
m <- lmer(y ~ t + x + (t | g), data = d, REML = TRUE)

interval_table <- function(ci) {
  list(parm = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]))
}

t0 <- proc.time()[["elapsed"]]
prof <- suppressWarnings(confint(m, method = "profile", level = 0.95))
profile_seconds <- proc.time()[["elapsed"]] - t0
wald <- confint(m, method = "Wald", level = 0.95)

out <- list(
  data = "tests/reference/vignette_do_the_intervals_cover.csv",
  formula = "y ~ t + x + (t | g)",
  REML = TRUE,
  nobs = nobs(m),
  REMLcrit = REMLcrit(m),
  theta = unname(getME(m, "theta")),
  sigma = sigma(m),
  fixef = as.list(fixef(m)),
  fixef_se = as.list(sqrt(diag(as.matrix(vcov(m))))),
  wald = interval_table(wald),
  profile = interval_table(prof),
  profile_seconds = profile_seconds,
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  Matrix_version = as.character(packageVersion("Matrix")),
  jsonlite_version = as.character(packageVersion("jsonlite"))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"),
           "tests/reference/vignette_do_the_intervals_cover.json")
