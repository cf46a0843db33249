## mgcv fits by method = "ML" and "GCV.Cp", and with select = TRUE, for tests/fit/test_gam_methods.py.
##
## Run from the project root:  Rscript tests/reference/gam_methods_reference.R
## Simulates tests/reference/gam_methods_data.csv (gamSim example 1 plus a binary
## and a count response) and writes tests/reference/gam_methods.json: per fit the
## coefficients, smoothing parameters, edf per smooth, scale and criterion.

suppressPackageStartupMessages({
  library(mgcv)
  library(jsonlite)
})

set.seed(11)
d <- gamSim(1, n = 300, dist = "normal", scale = 2, verbose = FALSE)
d <- d[, c("y", "x0", "x1", "x2", "x3")]
f <- d$f <- (d$y - mean(d$y)) / 4
d$yb <- rbinom(nrow(d), 1, binomial()$linkinv(f))
d$yp <- rpois(nrow(d), exp(0.5 + f))
d$f <- NULL
write.csv(d, "tests/reference/gam_methods_data.csv", row.names = FALSE)
d <- read.csv("tests/reference/gam_methods_data.csv")

cases <- list(
  gauss_ml = list(form = y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2), family = "gaussian", method = "ML"),
  gauss_gcv = list(form = y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2), family = "gaussian", method = "GCV.Cp"),
  gauss_te_ml = list(form = y ~ te(x1, x2) + s(x0, bs = "cr"), family = "gaussian", method = "ML"),
  gauss_te_gcv = list(form = y ~ te(x1, x2) + s(x0, bs = "cr"), family = "gaussian", method = "GCV.Cp"),
  binom_ml = list(form = yb ~ s(x0, bs = "cr") + s(x2, bs = "cr"), family = "binomial", method = "ML"),
  binom_ubre = list(form = yb ~ s(x0, bs = "cr") + s(x2, bs = "cr"), family = "binomial", method = "GCV.Cp"),
  pois_ml = list(form = yp ~ s(x1, bs = "cr") + s(x2), family = "poisson", method = "ML"),
  pois_ubre = list(form = yp ~ s(x1, bs = "cr") + s(x2), family = "poisson", method = "GCV.Cp"),
  select_reml = list(form = y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2) + s(x3, bs = "cr"),
                     family = "gaussian", method = "REML", select = TRUE),
  select_ml = list(form = y ~ s(x0, bs = "cr") + s(x2) + s(x3), family = "gaussian", method = "ML", select = TRUE),
  select_te = list(form = y ~ te(x1, x2) + s(x3, bs = "cr"), family = "gaussian", method = "REML", select = TRUE),
  select_pois = list(form = yp ~ s(x1, bs = "cr") + s(x3, bs = "cr"), family = "poisson", method = "REML",
                     select = TRUE)
)

out <- list(
  r_versions = list(R = R.version.string, mgcv = as.character(packageVersion("mgcv")),
                    jsonlite = as.character(packageVersion("jsonlite"))),
  fits = list()
)
for (nm in names(cases)) {
  cs <- cases[[nm]]
  sel <- if (is.null(cs$select)) FALSE else cs$select
  m <- gam(cs$form, data = d, family = cs$family, method = cs$method, select = sel)
  st <- summary(m)$s.table
  out$fits[[nm]] <- list(
    formula = paste(deparse(cs$form), collapse = ""), family = cs$family, method = cs$method,
    select = sel,
    coefficients = unname(coef(m)), coef_names = names(coef(m)),
    sp = unname(m$sp), edf = unname(st[, "edf"]), edf_terms = rownames(st),
    edf_total = sum(m$edf),
    scale = m$sig2, score = as.numeric(m$gcv.ubre), deviance = deviance(m),
    converged = m$converged
  )
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/gam_methods.json")
