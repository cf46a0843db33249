## mgcv's concurvity(b, full = TRUE / FALSE), for tests/fit/test_gam_concurvity.py.
##
## Run from the project root:  Rscript tests/reference/gam_concurvity_reference.R
## Uses tests/reference/gam_methods_data.csv (made by gam_methods_reference.R), with a
## covariate x4 = x1 + noise (concurvity with s(x1)); writes tests/reference/gam_concurvity.json.

suppressPackageStartupMessages({
  library(mgcv)
  library(jsonlite)
})

d <- read.csv("tests/reference/gam_methods_data.csv")
d$x4 <- d$x1^2 + 0.1 * sin(20 * d$x0)
form <- y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x4, bs = "cr") + te(x2, x3)
m <- gam(form, data = d, method = "REML")
full <- concurvity(m, full = TRUE)
pair <- concurvity(m, full = FALSE)
out <- list(
  r_versions = list(R = R.version.string, mgcv = as.character(packageVersion("mgcv"))),
  formula = paste(deparse(form), collapse = ""),
  full = list(labels = colnames(full), worst = unname(full["worst", ]), observed = unname(full["observed", ]),
              estimate = unname(full["estimate", ])),
  pairwise = lapply(pair, function(M) unname(M))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/gam_concurvity.json")
