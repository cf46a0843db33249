## mgcv's smooth bases and small penalized fits, for tests/smooth and tests/fit.
##
## Run from the project root:  Rscript tests/reference/smooth_reference.R
## Writes tests/reference/smooth_cases_data.csv (the data, generated here),
## tests/reference/smooth_bases.json (smoothCon output: model matrix with the
## identifiability constraint absorbed, scaled penalties, prediction matrix on
## new data) and tests/reference/gam_small_fits.json (gam / bam fits on the
## same data). The data are read back from the CSV before anything is fitted,
## so R and the tests see exactly the same numbers.
##
## The "fs" cases go through tests/reference/fs_null_basis.R: mgcv's own fs
## constructor with the null-space columns of its base basis rotated to the
## basis fixed by the function space (as pymlm builds it). mgcv's unrotated
## basis is an arbitrary rotation from rounding, and its fs fits move with it.

suppressPackageStartupMessages({
  library(mgcv)
  library(jsonlite)
})
source("tests/reference/fs_null_basis.R")

out_dir <- "tests/reference"
csv_path <- file.path(out_dir, "smooth_cases_data.csv")

## ---- data -------------------------------------------------------------
set.seed(31)
n <- 300
x <- round(runif(n), 4)
z <- round(runif(n), 4)
fac <- sample(c("a", "b", "c", "d"), n, replace = TRUE)
g <- sprintf("g%02d", sample(1:12, n, replace = TRUE))
bg <- rnorm(12, 0, 0.7)
fx <- sin(2 * pi * x) + 0.5 * (fac == "b") - 0.3 * (fac == "c")
fz <- exp(2 * z) / 4
eta <- fx + fz + bg[as.integer(substr(g, 2, 3))]
y <- round(eta + rnorm(n, 0, 0.4), 6)
yb <- rbinom(n, 1, binomial()$linkinv(eta - 1.5))
yc <- rpois(n, exp(0.5 * eta))
ypos <- round(rgamma(n, shape = 3, rate = 3 / exp(0.3 * eta)), 6)
tot <- sample(5:15, n, replace = TRUE)
succ <- rbinom(n, tot, binomial()$linkinv(eta - 1.5))
write.csv(data.frame(y, yb, yc, ypos, succ, tot, x, z, fac, g), csv_path, row.names = FALSE)

d <- read.csv(csv_path)
d$fac <- factor(d$fac)
d$g <- factor(d$g)
nd <- data.frame(
  x = c(-0.1, 0, 0.05, 0.5, 0.77777, 1, 1.2),
  z = c(0.3, 0.9, -0.05, 0.5, 0.1, 1.1, 0.6),
  fac = factor(c("a", "b", "c", "d", "a", "b", "c"), levels = levels(d$fac)),
  g = factor(c("g01", "g02", "g03", "g04", "g05", "g06", "g07"), levels = levels(d$g))
)

versions <- list(
  R = R.version.string,
  mgcv = as.character(packageVersion("mgcv")),
  jsonlite = as.character(packageVersion("jsonlite"))
)

## ---- bases ------------------------------------------------------------
basis_specs <- list(
  cr = s(x, bs = "cr", k = 8),
  cr_default = s(x, bs = "cr"),
  ps = s(x, bs = "ps", k = 9),
  ps_m = s(z, bs = "ps", k = 8, m = c(3, 1)),
  tp = s(x, bs = "tp", k = 7),
  tp2 = s(x, z, k = 15),
  re = s(g, bs = "re"),
  re_slope = s(x, g, bs = "re"),
  fs = s(x, fac, bs = "fsnull", k = 5),
  te = te(x, z),
  te_ps_cr = te(x, z, bs = c("ps", "cr"), k = c(6, 4)),
  by_num = s(x, by = z, bs = "cr", k = 6),
  by_fac = s(x, by = fac, bs = "cr", k = 6)
)

mat <- function(m) unname(lapply(seq_len(nrow(m)), function(i) as.numeric(m[i, ])))

bases <- list()
for (nm in names(basis_specs)) {
  sml <- smoothCon(basis_specs[[nm]], data = d, knots = NULL, absorb.cons = TRUE,
                   scale.penalty = TRUE)
  parts <- list()
  for (sm in sml) {
    parts[[length(parts) + 1]] <- list(
      label = sm$label,
      X = mat(sm$X),
      S = lapply(sm$S, mat),
      S_scale = sm$S.scale,
      rank = sm$rank,
      null_space_dim = sm$null.space.dim,
      predict = mat(PredictMat(sm, nd)),
      knots = if (inherits(sm, "cr.smooth")) as.numeric(sm$xp) else NULL
    )
  }
  bases[[nm]] <- list(spec = deparse(basis_specs[[nm]]$term), smooths = parts)
}
write_json(list(r_versions = versions, newdata = nd, bases = bases),
           file.path(out_dir, "smooth_bases.json"), digits = 15, auto_unbox = TRUE,
           null = "null", pretty = FALSE)

## ---- fits -------------------------------------------------------------
fit_cases <- list(
  list(case = "cr_ps", engine = "gam", formula = y ~ s(x, bs = "cr") + s(z, bs = "ps"), family = "gaussian"),
  list(case = "tp2", engine = "gam", formula = y ~ s(x, z, k = 20), family = "gaussian"),
  list(case = "te", engine = "gam", formula = y ~ te(x, z), family = "gaussian"),
  list(case = "by_fac", engine = "gam", formula = y ~ fac + s(x, by = fac, bs = "cr", k = 6), family = "gaussian"),
  list(case = "fs", engine = "gam", formula = y ~ s(z) + s(x, fac, bs = "fs", k = 5), family = "gaussian"),
  list(case = "tp_re", engine = "gam", formula = y ~ s(x) + s(z, bs = "cr") + s(g, bs = "re"), family = "gaussian"),
  list(case = "slope_re", engine = "gam", formula = y ~ x + s(z, bs = "cr") + s(g, bs = "re") + s(x, g, bs = "re"), family = "gaussian"),
  list(case = "binomial_gam", engine = "gam", formula = yb ~ s(x, bs = "cr") + s(z, bs = "cr") + s(g, bs = "re"), family = "binomial"),
  list(case = "binomial_cbind_gam", engine = "gam", formula = cbind(succ, tot - succ) ~ s(x) + s(z, bs = "cr"), family = "binomial"),
  list(case = "poisson_gam", engine = "gam", formula = yc ~ s(x, bs = "cr") + s(z, bs = "cr") + s(g, bs = "re"), family = "poisson"),
  list(case = "binomial_bam", engine = "bam", formula = yb ~ s(x, bs = "cr") + s(z, bs = "cr") + s(g, bs = "re"), family = "binomial"),
  list(case = "binomial_cbind_bam", engine = "bam", formula = cbind(succ, tot - succ) ~ s(x, bs = "cr") + s(z, bs = "cr"), family = "binomial"),
  list(case = "poisson_bam", engine = "bam", formula = yc ~ s(x, bs = "cr") + s(z, bs = "cr") + s(g, bs = "re"), family = "poisson"),
  list(case = "gamma_bam", engine = "bam", formula = ypos ~ s(x, bs = "cr") + s(z, bs = "cr"), family = "Gamma_log")
)

fam <- function(name) switch(name,
  gaussian = gaussian(), binomial = binomial(), poisson = poisson(),
  Gamma_log = Gamma(link = "log"))

fits <- list()
for (fc in fit_cases) {
  f <- fam(fc$family)
  fit_formula <- fs_fixed_formula(fc$formula)
  m <- if (fc$engine == "gam") gam(fit_formula, data = d, family = f, method = "REML") else
    bam(fit_formula, data = d, family = f, method = "fREML", discrete = FALSE)
  s <- summary(m)
  st <- s$s.table
  fits[[fc$case]] <- list(
    case = fc$case, engine = fc$engine, formula = paste(deparse(fc$formula), collapse = ""),
    family = fc$family, link = f$link,
    coefficients_all = as.list(coef(m)),
    sp = as.list(m$sp),
    edf = as.list(setNames(st[, "edf"], rownames(st))),
    s_table = lapply(seq_len(nrow(st)), function(i) c(list(term = rownames(st)[i]), as.list(st[i, ]))),
    p_table = if (!is.null(s$p.table)) lapply(seq_len(nrow(s$p.table)), function(i)
      c(list(term = rownames(s$p.table)[i]), as.list(s$p.table[i, ]))) else NULL,
    scale = m$sig2, score = m$gcv.ubre, r_sq = s$r.sq, dev_expl = s$dev.expl,
    fitted = as.numeric(fitted(m)),
    se_diag = as.numeric(sqrt(diag(m$Vp))),
    predict_link = as.numeric(predict(m, nd, type = "link")),
    predict_link_se = as.numeric(predict(m, nd, type = "link", se.fit = TRUE)$se.fit),
    predict_response = as.numeric(predict(m, nd, type = "response")),
    summary_text = gsub("bs = \"fsnull\"", "bs = \"fs\"", capture.output(print(s)), fixed = TRUE)
  )
}
write_json(list(r_versions = versions, newdata = nd, fits = fits),
           file.path(out_dir, "gam_small_fits.json"), digits = 15, auto_unbox = TRUE,
           null = "null", pretty = FALSE)
cat("wrote", csv_path, "smooth_bases.json gam_small_fits.json\n")
