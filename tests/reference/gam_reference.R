## mgcv fits of the gamsim_re data (data/gamsim_re.csv, 20000 rows), for tests/fit.
##
## Run from the project root:  Rscript tests/reference/gam_reference.R
## Writes tests/reference/gam_gamsim_re.json with, per fitter (gam REML,
## bam fREML, bam fREML discrete): coefficients, edf, smoothing parameters,
## the summary's smooth-term table, scale, score, R-sq, deviance explained,
## the first 20 fitted values, and the knots of the cr smooths.
## The gam fit takes about two minutes.

suppressPackageStartupMessages({
  library(mgcv)
  library(jsonlite)
})

d <- read.csv("data/gamsim_re.csv")
lev <- sprintf("g%03d", 1:200)
d$g <- factor(d$g, levels = lev)
form <- y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr") + s(g, bs = "re")

fits <- list(
  gam = function() gam(form, data = d, method = "REML"),
  bam = function() bam(form, data = d, method = "fREML", discrete = FALSE),
  bam_discrete = function() bam(form, data = d, method = "fREML", discrete = TRUE)
)

out <- list(
  r_versions = list(R = R.version.string, mgcv = as.character(packageVersion("mgcv")),
                    jsonlite = as.character(packageVersion("jsonlite"))),
  formula = paste(deparse(form), collapse = ""),
  nobs = nrow(d),
  fits = list()
)
for (nm in names(fits)) {
  t0 <- proc.time()[["elapsed"]]
  m <- fits[[nm]]()
  secs <- proc.time()[["elapsed"]] - t0
  s <- summary(m)
  st <- s$s.table
  out$fits[[nm]] <- list(
    coefficients_all = as.list(coef(m)),
    coefficients_se = as.list(sqrt(diag(m$Vp))[1]),
    sp = as.list(m$sp),
    edf = as.list(setNames(st[, "edf"], rownames(st))),
    s_table = lapply(seq_len(nrow(st)), function(i) c(list(term = rownames(st)[i]), as.list(st[i, ]))),
    scale = m$sig2, score = as.numeric(m$gcv.ubre), r_sq = s$r.sq, dev_expl = s$dev.expl,
    fitted_head = as.numeric(fitted(m))[1:20],
    knots = lapply(m$smooth[1:4], function(sm) as.numeric(sm$xp)),
    fit_seconds = secs
  )
  cat(nm, "done in", secs, "s\n")
}
write_json(out, "tests/reference/gam_gamsim_re.json", digits = 15, auto_unbox = TRUE, pretty = FALSE)
