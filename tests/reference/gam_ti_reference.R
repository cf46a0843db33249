## mgcv's ti() tensor interactions (model matrix, penalties, fits), for tests/smooth/test_ti.py.
##
## Run from the project root:  Rscript tests/reference/gam_ti_reference.R
## Uses tests/reference/gam_methods_data.csv (made by gam_methods_reference.R) and
## writes tests/reference/gam_ti.json.

suppressPackageStartupMessages({
  library(mgcv)
  library(jsonlite)
})

d <- read.csv("tests/reference/gam_methods_data.csv")
d$yi <- d$y + 3 * sin(2 * pi * d$x1) * cos(2 * pi * d$x2)  # a response with an interaction
out <- list(r_versions = list(R = R.version.string, mgcv = as.character(packageVersion("mgcv"))),
            matrices = list(), fits = list())
specs <- list(cr = ti(x1, x2, k = c(5, 4)), ps = ti(x1, x2, bs = c("cr", "ps"), k = c(5, 6)))
for (nm in names(specs)) {
  sm <- smoothCon(specs[[nm]], data = d, absorb.cons = TRUE, scale.penalty = TRUE)[[1]]
  out$matrices[[nm]] <- list(X = unname(sm$X[1:10, ]), S = lapply(sm$S, unname), rank = sm$rank,
                             null_space_dim = sm$null.space.dim,
                             Xnew = unname(PredictMat(sm, data.frame(x1 = c(0.1, 0.5, 0.9), x2 = c(0.2, 0.6, 0.4)))))
}
cases <- list(
  ti_cr = y ~ s(x1, bs = "cr") + s(x2, bs = "cr") + ti(x1, x2),
  ti_real = yi ~ s(x1, bs = "cr") + s(x2, bs = "cr") + ti(x1, x2),
  ti_mixed = y ~ s(x0) + s(x1, bs = "cr") + s(x2, bs = "cr") + ti(x1, x2, bs = c("cr", "ps"), k = c(5, 6))
)
for (nm in names(cases)) {
  m <- gam(cases[[nm]], data = d, method = "REML")
  st <- summary(m)$s.table
  out$fits[[nm]] <- list(formula = paste(deparse(cases[[nm]]), collapse = ""), coefficients = unname(coef(m)),
                         coef_names = names(coef(m)), sp = unname(m$sp), edf = unname(st[, "edf"]),
                         edf_terms = rownames(st), p_value = unname(st[, "p-value"]),
                         score = as.numeric(m$gcv.ubre), scale = m$sig2,
                         fitted_head = as.numeric(fitted(m))[1:10])
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/gam_ti.json")
