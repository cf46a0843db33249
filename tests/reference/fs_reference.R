## mgcv fits with factor-smooth ("fs") terms whose null-space basis is fixed by the function
## space (tests/reference/fs_null_basis.R), for tests/fit/test_gam_fs.py.
##
## Run from the project root:  Rscript tests/reference/fs_reference.R
## Writes tests/reference/fs_fits.json: per case, gam(method = "REML") through the
## "fsnull" wrapper (mgcv's own fs constructor and fitting; only the rotation of the
## null-space columns is fixed): edf per term, smoothing parameters, REML score, scale
## and fitted values. Then, to document why the wrapper is needed, mgcv's own unmodified
## "fs" fit of the same model over a few row orders: its edf and REML score move with
## the row order (the null-space rotation comes from rounding), the wrapper's do not.
##
## Cases:
##   small      the "fs" case of smooth_reference.R (tests/reference/smooth_cases_data.csv)
##   by_level   the same data, s(x, fac, bs = "fs") by a two-level factor
##              half = "lo" for g in g01..g06, "hi" otherwise (levels hi, lo)
##   gamsim20   the rows of data/gamsim_re.csv in groups g001..g020 (factor levels sorted)

suppressPackageStartupMessages({
  library(mgcv)
  library(jsonlite)
})
source("tests/reference/fs_null_basis.R")

small <- read.csv("tests/reference/smooth_cases_data.csv")
small$fac <- factor(small$fac)
small$g <- factor(small$g)
small$half <- factor(ifelse(small$g %in% sprintf("g%02d", 1:6), "lo", "hi"), levels = c("hi", "lo"))
gs <- read.csv("data/gamsim_re.csv")
gs <- gs[gs$g %in% sprintf("g%03d", 1:20), ]
gs$g <- factor(gs$g)
rownames(gs) <- NULL

cases <- list(
  small = list(data = small, formula = y ~ s(z) + s(x, fac, bs = "fs", k = 5)),
  by_level = list(data = small, formula = y ~ half + s(z) + s(x, fac, bs = "fs", k = 5, by = half)),
  gamsim20 = list(data = gs, formula = y ~ s(x0, g, bs = "fs", k = 5) + s(x1))
)

edf_of <- function(m) {
  st <- summary(m)$s.table
  as.list(setNames(st[, "edf"], rownames(st)))
}

row_orders <- function(n) {
  set.seed(20261202)
  list(original = seq_len(n), reversed = rev(seq_len(n)),
       random1 = sample(n), random2 = sample(n), random3 = sample(n))
}

out <- list(
  r_versions = list(R = R.version.string, mgcv = as.character(packageVersion("mgcv")),
                    jsonlite = as.character(packageVersion("jsonlite")),
                    blas = La_library(), lapack = La_version()),
  cases = list()
)
for (nm in names(cases)) {
  cs <- cases[[nm]]
  d <- cs$data
  m <- gam(fs_fixed_formula(cs$formula), data = d, method = "REML")
  own <- list()
  fixed <- list()
  for (o in names(row_orders(nrow(d)))) {
    idx <- row_orders(nrow(d))[[o]]
    m0 <- gam(cs$formula, data = d[idx, ], method = "REML")
    m1 <- gam(fs_fixed_formula(cs$formula), data = d[idx, ], method = "REML")
    own[[o]] <- list(edf = edf_of(m0), score = as.numeric(m0$gcv.ubre))
    fixed[[o]] <- list(edf = edf_of(m1), score = as.numeric(m1$gcv.ubre))
  }
  out$cases[[nm]] <- list(
    formula = paste(deparse(cs$formula), collapse = ""),
    nobs = nrow(d),
    edf = edf_of(m),
    sp = as.list(m$sp),
    score = as.numeric(m$gcv.ubre),
    scale = m$sig2,
    fitted = as.numeric(fitted(m)),
    mgcv_own_by_row_order = own,
    fixed_null_by_row_order = fixed
  )
  cat(nm, ": edf", unlist(edf_of(m)), "score", m$gcv.ubre, "\n")
  cat("  mgcv's own fs edf over row orders:",
      sapply(own, function(r) r$edf[[grep("fac|g\\)", names(r$edf))[1]]]), "\n")
}
write_json(out, "tests/reference/fs_fits.json", digits = 15, auto_unbox = TRUE, pretty = FALSE)
cat("wrote tests/reference/fs_fits.json\n")
