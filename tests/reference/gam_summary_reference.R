## mgcv's tests of smooth and random-effect terms (summary.gam) and its variance
## components (gam.vcomp), for tests/inference/test_gam_tests.py.
##
## Run from the project root:  Rscript tests/reference/gam_summary_reference.R
## Writes tests/reference/gam_summary_reference.json: per case the data (a
## bundled data set, the first `rows` rows, the derived columns listed in
## `derived`), the call, the fit (edf, sp, scale, score, first fitted values:
## to check that the fits agree before the statistics are compared), the
## summary's s.table (edf, Ref.df, F or Chi.sq, p-value), the residual degrees
## of freedom and gam.vcomp's standard deviations (rescale = TRUE); for some
## cases mgcv's own inputs and results of testStat / reTest per term
## (`kernel_inputs`); and values of psum.chisq (Davies' algorithm) for a few
## weighted sums of chi-squares.
## Takes about half a minute.

suppressPackageStartupMessages({
  library(mgcv)
  library(jsonlite)
})

levels_of <- fromJSON("data/factor_levels.json", simplifyVector = FALSE)

load_data <- function(name) {
  d <- read.csv(file.path("data", paste0(name, ".csv")))
  for (col in names(levels_of[[name]])) {
    spec <- levels_of[[name]][[col]]
    d[[col]] <- factor(as.character(d[[col]]), levels = unlist(spec$levels), ordered = isTRUE(spec$ordered))
  }
  d
}

## `derived`: columns computed from the bundled data, in R syntax the tests repeat in Python
cases <- list(
  sleep_re_gam = list(data = "sleepstudy", kernel = TRUE, engine = "gam", family = "gaussian",
    formula = "Reaction ~ Days + s(Subject, bs = \"re\") + s(Subject, Days, bs = \"re\")"),
  sleep_re_bam = list(data = "sleepstudy", engine = "bam", discrete = FALSE, family = "gaussian",
    formula = "Reaction ~ Days + s(Subject, bs = \"re\") + s(Subject, Days, bs = \"re\")"),
  penicillin_re_gam = list(data = "Penicillin", kernel = TRUE, engine = "gam", family = "gaussian",
    formula = "diameter ~ s(plate, bs = \"re\") + s(sample, bs = \"re\")"),
  cbpp_re_gam = list(data = "cbpp", kernel = TRUE, engine = "gam", family = "binomial",
    formula = "cbind(incidence, size - incidence) ~ period + s(herd, bs = \"re\")"),
  cbpp_re_bam = list(data = "cbpp", engine = "bam", discrete = FALSE, family = "binomial",
    formula = "cbind(incidence, size - incidence) ~ period + s(herd, bs = \"re\")"),
  grouse_poisson_gam = list(data = "grouseticks", engine = "gam", family = "poisson",
    formula = "TICKS ~ YEAR + HEIGHT + s(BROOD, bs = \"re\") + s(LOCATION, bs = \"re\")"),
  grouse_poisson_bam = list(data = "grouseticks", engine = "bam", discrete = FALSE, family = "poisson",
    formula = "TICKS ~ YEAR + HEIGHT + s(BROOD, bs = \"re\") + s(LOCATION, bs = \"re\")"),
  grouse_by_poisson_gam = list(data = "grouseticks", engine = "gam", family = "poisson",
    formula = "TICKS ~ YEAR + s(HEIGHT, by = YEAR, bs = \"cr\", k = 6)"),
  grouse_by_gaussian_gam = list(data = "grouseticks", kernel = TRUE, engine = "gam", family = "gaussian",
    derived = list(lticks = "log(TICKS + 1)"),
    formula = "lticks ~ YEAR + s(HEIGHT, by = YEAR, bs = \"cr\", k = 6) + s(LOCATION, bs = \"re\")"),
  gamsim_smooths_gam = list(data = "gamsim_re", rows = 400, kernel = TRUE, engine = "gam", family = "gaussian",
    formula = "y ~ s(x0, bs = \"cr\") + s(x1, bs = \"ps\") + s(x2) + s(x3, bs = \"cr\", k = 5, fx = TRUE)"),
  gamsim_te_gam = list(data = "gamsim_re", rows = 400, engine = "gam", family = "gaussian",
    formula = "y ~ te(x0, x1) + s(x2, bs = \"cr\")"),
  gamsim_binomial_gam = list(data = "gamsim_re", rows = 400, kernel = TRUE, engine = "gam", family = "binomial",
    derived = list(yb = "as.numeric(y > 8)"),
    formula = "yb ~ s(x0, bs = \"cr\") + s(x1, bs = \"cr\") + s(x2, bs = \"cr\") + s(x3, bs = \"cr\", k = 4, fx = TRUE)"),
  gamsim_bam = list(data = "gamsim_re", rows = 4000, engine = "bam", discrete = FALSE, family = "gaussian",
    formula = "y ~ s(x0, bs = \"cr\") + s(x3, bs = \"cr\") + s(g, bs = \"re\")"),
  gamsim_bam_discrete = list(data = "gamsim_re", rows = 4000, engine = "bam", discrete = TRUE,
    family = "gaussian", formula = "y ~ s(x0, bs = \"cr\") + s(x3, bs = \"cr\") + s(g, bs = \"re\")")
)

## mgcv's own inputs and outputs of testStat / reTest for every smooth of `m`, so that the
## tests can check pymlm's statistics on exactly mgcv's matrices
kernel_inputs <- function(m) {
  est_disp <- m$scale.estimated
  res_df <- length(m$y) - sum(m$edf)
  random <- which(vapply(m$smooth, function(sm) isTRUE(sm$random), TRUE))
  lapply(seq_along(m$smooth), function(i) {
    sm <- m$smooth[[i]]
    ind <- sm$first.para:sm$last.para
    b <- unname(coef(m)[ind])
    if (!sm$fixed && sm$null.space.dim == 0) {
      rc <- mgcv:::recov(m, setdiff(random, i), i)
      res <- mgcv:::reTest(m, i)
      list(term = sm$label, test = "reTest", b = b, Rm = unname(rc$Rm), Ve = unname(rc$Ve[ind, ind]),
           scale = m$sig2, scale_estimated = est_disp, df_residual = m$df.residual,
           stat = res$stat, pval = res$pval, rank = res$rank)
    } else {
      edf1 <- sum(m$edf1[ind])
      rank <- min(length(ind), edf1)
      rdf <- if (est_disp) res_df else -1
      res <- mgcv:::testStat(b, m$R[, ind, drop = FALSE], m$Vp[ind, ind, drop = FALSE], rank,
                             type = 0, res.df = rdf)
      list(term = sm$label, test = "testStat", b = b, XtX = unname(crossprod(m$R[, ind, drop = FALSE])),
           V = unname(m$Vp[ind, ind, drop = FALSE]), rank_in = rank, res_df = rdf,
           stat = res$stat, pval = res$pval, rank = res$rank)
    }
  })
}

vcomp_sd <- function(m) {
  ## gam.vcomp() of mgcv 1.8-41 stops on a model with an unpenalized (fx = TRUE) smooth
  v <- NULL
  ok <- tryCatch({
    invisible(capture.output(v <- gam.vcomp(m)))
    TRUE
  }, error = function(e) FALSE)
  if (!ok) return(NULL)
  if (is.list(v) && !is.null(v$vc)) v <- v$vc
  if (is.matrix(v)) setNames(v[, "std.dev"], rownames(v)) else v
}

fit_case <- function(cs) {
  d <- load_data(cs$data)
  if (!is.null(cs$rows)) d <- d[seq_len(cs$rows), , drop = FALSE]
  for (nm in names(cs$derived)) d[[nm]] <- eval(parse(text = cs$derived[[nm]]), d)
  fam <- get(cs$family)()
  form <- as.formula(cs$formula)
  if (cs$engine == "gam") {
    m <- gam(form, data = d, family = fam, method = "REML")
  } else {
    m <- bam(form, data = d, family = fam, method = "fREML", discrete = cs$discrete)
  }
  s <- summary(m)
  st <- s$s.table
  list(
    kernel_inputs = if (isTRUE(cs$kernel)) kernel_inputs(m) else NULL,
    nobs = nrow(d),
    edf = as.list(setNames(st[, "edf"], rownames(st))),
    sp = as.list(m$sp),
    scale = m$sig2,
    scale_estimated = m$scale.estimated,
    reml_scale = if (is.null(m$reml.scale)) NULL else m$reml.scale,
    score = as.numeric(m$gcv.ubre),
    df_residual = m$df.residual,
    residual_df = s$residual.df,
    fitted_head = as.numeric(fitted(m))[1:10],
    s_table = lapply(seq_len(nrow(st)), function(i) c(list(term = rownames(st)[i]), as.list(st[i, ]))),
    S_scale = lapply(m$smooth, function(sm) sm$S.scale),
    vcomp_sd = {
      v <- vcomp_sd(m)
      if (is.null(v)) NULL else as.list(v)
    }
  )
}

out <- list(
  r_versions = list(R = R.version.string, mgcv = as.character(packageVersion("mgcv")),
                    jsonlite = as.character(packageVersion("jsonlite"))),
  cases = list(),
  psum_chisq = list()
)
for (nm in names(cases)) {
  cs <- cases[[nm]]
  res <- fit_case(cs)
  out$cases[[nm]] <- c(cs, res)
  cat(nm, "done\n")
}

## psum.chisq: upper tails of sum_j lb_j chi2_{df_j} at q (Davies' algorithm, acc = 2e-5)
sums <- list(
  list(q = 3.84, lb = 1, df = 1),
  list(q = 10, lb = c(2, 1, 0.5, 0.1), df = c(1, 1, 1, 1)),
  list(q = 60, lb = c(3, 2, 1, 1, 1, 0.5, 0.25), df = rep(1, 7)),
  list(q = 0.5, lb = c(1, 0.3), df = c(1, 1)),
  list(q = 25, lb = c(1, 1, 1, 1, 0.8, 0.2), df = c(1, 1, 1, 1, 1, 3)),
  list(q = 0, lb = c(1, 1, 0.8, 0.2, -0.01), df = c(1, 1, 1, 1, 150)),
  list(q = 0, lb = c(rep(1, 10), 0.5, -0.1), df = c(rep(1, 11), 200)),
  list(q = 0, lb = c(1.2, 0.9, 0.5, -3), df = c(1, 1, 1, 2)),
  list(q = 0, lb = c(seq(1, 0.05, length.out = 40), -2.5 / 5000), df = c(rep(1, 40), 5000))
)
for (a in sums) {
  out$psum_chisq[[length(out$psum_chisq) + 1]] <- c(a, list(p = psum.chisq(a$q, a$lb, a$df)))
}

write_json(out, "tests/reference/gam_summary_reference.json", digits = 15, auto_unbox = TRUE,
           pretty = FALSE, null = "null")
