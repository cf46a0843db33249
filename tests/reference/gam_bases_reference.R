## mgcv's cc, cs and ts bases (model matrices, penalties) and fits, for tests/smooth/test_bases_cc_cs_ts.py.
##
## Run from the project root:  Rscript tests/reference/gam_bases_reference.R
## Uses tests/reference/gam_methods_data.csv (made by gam_methods_reference.R) and
## writes tests/reference/gam_bases.json.

suppressPackageStartupMessages({
  library(mgcv)
  library(jsonlite)
})

d <- read.csv("tests/reference/gam_methods_data.csv")
d$t <- d$x1 * 24  # a 'time of day' covariate for the cyclic smooth

mats <- list(
  cc = list(spec = s(t, bs = "cc", k = 8), knots = NULL),
  cc_ends = list(spec = s(t, bs = "cc", k = 8), knots = list(t = c(0, 24))),
  cc_full = list(spec = s(t, bs = "cc", k = 6), knots = list(t = c(0, 3, 8, 12, 20, 24))),
  cs = list(spec = s(x0, bs = "cs", k = 7), knots = NULL),
  ts = list(spec = s(x0, bs = "ts", k = 7), knots = NULL)
)
out <- list(r_versions = list(R = R.version.string, mgcv = as.character(packageVersion("mgcv"))),
            matrices = list(), fits = list())
for (nm in names(mats)) {
  sm <- smoothCon(mats[[nm]]$spec, data = d, knots = mats[[nm]]$knots, absorb.cons = TRUE,
                  scale.penalty = TRUE)[[1]]
  newx <- data.frame(t = c(-3, 0, 5.5, 24, 27), x0 = c(0.05, 0.3, 0.5, 0.7, 0.95))
  out$matrices[[nm]] <- list(
    X = unname(sm$X[1:12, , drop = FALSE]), S = unname(sm$S[[1]]), rank = sm$rank,
    null_space_dim = sm$null.space.dim, knots = if (is.null(sm$xp)) NULL else as.numeric(sm$xp),
    Xnew = unname(PredictMat(sm, newx))
  )
}
cases <- list(
  cc = list(form = y ~ s(t, bs = "cc", k = 8) + s(x0, bs = "cr"), knots = list(t = c(0, 24))),
  cs = list(form = y ~ s(x0, bs = "cs") + s(x2, bs = "cs") + s(x3, bs = "cs"), knots = NULL),
  ts = list(form = y ~ s(x0, bs = "ts") + s(x2, bs = "ts") + s(x3, bs = "ts"), knots = NULL),
  te_cc = list(form = y ~ te(x0, t, bs = c("cr", "cc"), k = c(5, 6)), knots = list(t = c(0, 24)))
)
for (nm in names(cases)) {
  m <- gam(cases[[nm]]$form, data = d, method = "REML", knots = cases[[nm]]$knots)
  st <- summary(m)$s.table
  out$fits[[nm]] <- list(
    formula = paste(deparse(cases[[nm]]$form), collapse = ""), knots = cases[[nm]]$knots,
    coefficients = unname(coef(m)), sp = unname(m$sp), edf = unname(st[, "edf"]),
    edf_terms = rownames(st), scale = m$sig2, score = as.numeric(m$gcv.ubre),
    fitted_head = as.numeric(fitted(m))[1:10]
  )
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/gam_bases.json")
