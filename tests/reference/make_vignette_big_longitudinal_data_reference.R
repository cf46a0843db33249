# lme4's fits of the simulated data of the vignette vignettes/big-longitudinal-data.md.
# Run from the project root:
#   python tests/reference/make_vignette_interval_data.py     # the bundled subset (CSV)
#   python bench/sim_longitudinal.py 10000 20 20 1 bench/.cache/longitudinal_N10000.csv
#   Rscript tests/reference/make_vignette_big_longitudinal_data_reference.R
# The data: bench/sim_longitudinal.py with N = 10,000 subjects x 20 occasions,
# 20 covariates, seed 1 (200,000 rows; the vignette draws the same numbers).
# Writes tests/reference/vignette_big_longitudinal_data.json with, per data set, the
# REML fit of y ~ x1 + ... + x20 + (1 + x1 | id) and R and package versions:
# - "subset": tests/reference/vignette_big_longitudinal_data.csv, subjects 1..50 at
#   occasions t = 0..9 (500 rows, 10 significant digits, bundled), with lme4's Wald
#   intervals (confint(m, method = "Wald"));
# - "full": all 200,000 rows (bench/.cache/longitudinal_N10000.csv, 56 MB, not bundled,
#   10 significant digits), with lme4's profile intervals of the variance parameters
#   (confint(profile(m, which = "theta_"))) and the seconds they took (about 10 minutes).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})

form <- as.formula(paste("y ~", paste0("x", 1:20, collapse = " + "), "+ (1 + x1 | id)"))

fit_record <- function(path) {
  d <- read.csv(path)
  d$id <- factor(d$id)
  t0 <- proc.time()[["elapsed"]]
  m <- lmer(form, data = d, REML = TRUE)
  list(model = m, record = list(
    data = path, nobs = nobs(m), fit_seconds = proc.time()[["elapsed"]] - t0,
    REMLcrit = REMLcrit(m), theta = unname(getME(m, "theta")), sigma = sigma(m),
    fixef = as.list(fixef(m)), fixef_se = as.list(sqrt(diag(as.matrix(vcov(m))))),
    messages = m@optinfo$conv$lme4$messages))
}
interval_table <- function(ci) list(parm = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]))

sub <- fit_record("tests/reference/vignette_big_longitudinal_data.csv")
sub$record$wald <- interval_table(confint(sub$model, method = "Wald", level = 0.95))

full <- fit_record("bench/.cache/longitudinal_N10000.csv")
t0 <- proc.time()[["elapsed"]]
pr <- profile(full$model, which = "theta_")
full$record$profile_seconds <- proc.time()[["elapsed"]] - t0
full$record$profile <- interval_table(confint(pr, level = 0.95))

out <- list(
  formula = paste(deparse(form, width.cutoff = 500L), collapse = " "),
  REML = TRUE,
  subset = sub$record,
  full = full$record,
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  Matrix_version = as.character(packageVersion("Matrix")),
  jsonlite_version = as.character(packageVersion("jsonlite"))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null", null = "null"),
           "tests/reference/vignette_big_longitudinal_data.json")
