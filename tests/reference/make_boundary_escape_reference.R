# Reference fits from lme4 whose REML optimum is a small positive theta: responses
# simulated from the Dyestuff fit (Yield ~ 1 + (1 | Batch)) for which lme4 finds
# 1e-3 < theta < 0.15 and a criterion below its value at 0. The REML criterion
# is flat to first order in theta at 0 (theta enters only squared), so a
# gradient method that reaches 0 sees a zero gradient and can stop on the bound
# although the criterion falls inwards.
# Run from the project root:  Rscript tests/reference/make_boundary_escape_reference.R
# Writes tests/reference/boundary_escape_reference.json (R and package versions inside).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
source("tests/reference/load_data.R")

dye <- load_data("Dyestuff")
m <- lmer(Yield ~ 1 + (1 | Batch), dye)
set.seed(20261202)
ys <- simulate(m, nsim = 3000)
cases <- list()
for (k in seq_along(ys)) {
  d <- dye
  d$Yield <- ys[[k]]
  mk <- suppressMessages(lmer(Yield ~ 1 + (1 | Batch), d))
  th <- getME(mk, "theta")
  dev <- as.function(mk)  # the REML criterion as a function of theta
  # inside (not singular by isSingular's 1e-4) and clearly below the criterion at 0
  if (th > 1e-3 && th < 0.15 && REMLcrit(mk) < dev(0) - 1e-8) {
    cases[[length(cases) + 1]] <- list(
      y = unname(ys[[k]]), theta = unname(th), REMLcrit = REMLcrit(mk), REMLcrit_at_0 = dev(0),
      fixef = unname(fixef(mk)), sigma = sigma(mk))
  }
}
out <- list(data = "Dyestuff (Batch as in data/Dyestuff.csv), Yield replaced by y",
            formula = "Yield ~ 1 + (1 | Batch)", REML = TRUE, nsim = 3000,
            seed = 20261202, cases = cases,
            versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                            Matrix = as.character(packageVersion("Matrix"))))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/reference/boundary_escape_reference.json")
cat(length(cases), "cases\n")
