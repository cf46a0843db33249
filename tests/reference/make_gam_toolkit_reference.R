## mgcv's log-likelihood, AIC and BIC of gam fits (logLik.gam: df = sum(edf2) + 1 for an
## estimated scale, edf2 the edf corrected for smoothing-parameter uncertainty, replaced by
## edf1 when larger) and anova.gam's tables, for tests/results/test_gam_toolkit.py.
##
## Run from the project root:  Rscript tests/reference/make_gam_toolkit_reference.R
## Writes tests/reference/gam_toolkit_reference.json: per case the data (a bundled data set,
## its first `rows` rows, derived columns), the call, the fit (edf, sp, scale, score),
## logLik with its df, AIC, BIC, sum(edf), sum(edf1), sum(edf2), the single-model
## anova(b) tables (pTerms.table, s.table); for pairs of nested fits anova(b0, b1,
## test = "Chisq").

suppressPackageStartupMessages({
  library(mgcv)
  library(jsonlite)
})

levels_of <- fromJSON("data/factor_levels.json", simplifyVector = FALSE)

load_data <- function(name, rows = NULL, derived = NULL) {
  d <- read.csv(file.path("data", paste0(name, ".csv")))
  for (col in names(levels_of[[name]])) {
    spec <- levels_of[[name]][[col]]
    d[[col]] <- factor(as.character(d[[col]]), levels = unlist(spec$levels), ordered = isTRUE(spec$ordered))
  }
  if (!is.null(rows)) d <- d[seq_len(rows), ]
  for (nm in names(derived)) d[[nm]] <- eval(parse(text = derived[[nm]]), d)
  d
}

cases <- list(
  gamsim_gaussian = list(data = "gamsim_re", rows = 400, family = "gaussian",
    formula = "y ~ s(x0, bs = \"cr\") + s(x1, bs = \"cr\") + s(x2, bs = \"cr\")"),
  gamsim_gaussian_small = list(data = "gamsim_re", rows = 400, family = "gaussian",
    formula = "y ~ s(x0, bs = \"cr\") + s(x2, bs = \"cr\")"),
  gamsim_tp = list(data = "gamsim_re", rows = 400, family = "gaussian",
    formula = "y ~ s(x0, bs = \"cr\") + s(x2)"),
  gamsim_te = list(data = "gamsim_re", rows = 400, family = "gaussian",
    formula = "y ~ te(x0, x1) + s(x2, bs = \"cr\")"),
  sleep_re = list(data = "sleepstudy", family = "gaussian",
    formula = "Reaction ~ Days + s(Subject, bs = \"re\") + s(Subject, Days, bs = \"re\")"),
  grouse_factor = list(data = "grouseticks", family = "gaussian", derived = list(lticks = "log(TICKS + 1)"),
    formula = "lticks ~ YEAR + HEIGHT + s(LOCATION, bs = \"re\")"),
  gamsim_binomial = list(data = "gamsim_re", rows = 400, family = "binomial",
    derived = list(yb = "as.numeric(y > 8)"),
    formula = "yb ~ s(x0, bs = \"cr\") + s(x1, bs = \"cr\") + s(x2, bs = \"cr\")"),
  gamsim_binomial_small = list(data = "gamsim_re", rows = 400, family = "binomial",
    derived = list(yb = "as.numeric(y > 8)"),
    formula = "yb ~ s(x0, bs = \"cr\") + s(x2, bs = \"cr\")"),
  cbpp_re = list(data = "cbpp", family = "binomial",
    formula = "cbind(incidence, size - incidence) ~ period + s(herd, bs = \"re\")")
)

nested <- list(
  gaussian = c("gamsim_gaussian_small", "gamsim_gaussian"),
  binomial = c("gamsim_binomial_small", "gamsim_binomial")
)

table_out <- function(t) {
  if (is.null(t) || nrow(t) == 0) return(NULL)
  out <- lapply(colnames(t), function(cn) unname(as.numeric(t[, cn])))
  names(out) <- colnames(t)
  list(rows = rownames(t), columns = out)
}

fits <- list()
out <- list(R = R.version.string, mgcv = as.character(packageVersion("mgcv")), cases = list(), nested = list())
for (nm in names(cases)) {
  cs <- cases[[nm]]
  d <- load_data(cs$data, cs$rows, cs$derived)
  b <- gam(as.formula(cs$formula), data = d, family = cs$family, method = "REML")
  fits[[nm]] <- b
  ll <- logLik(b)
  a <- anova(b)
  printed <- capture.output(print(a))
  out$cases[[nm]] <- list(
    data = cs$data, rows = if (is.null(cs$rows)) NULL else cs$rows, derived = cs$derived,
    formula = cs$formula, family = cs$family,
    edf = unname(summary(b)$edf), sp = unname(b$sp), scale = b$scale, score = unname(b$gcv.ubre),
    loglik = as.numeric(ll), df = attr(ll, "df"), aic = AIC(b), bic = BIC(b),
    sum_edf = sum(b$edf), sum_edf1 = sum(b$edf1), sum_edf2 = if (is.null(b$edf2)) NULL else sum(b$edf2),
    edf2 = if (is.null(b$edf2)) NULL else unname(b$edf2),
    ptable = table_out(a$pTerms.table), stable = table_out(a$s.table), residual_df = a$residual.df,
    printed = printed
  )
}
for (nm in names(nested)) {
  pair <- nested[[nm]]
  a <- anova(fits[[pair[1]]], fits[[pair[2]]], test = "Chisq")
  out$nested[[nm]] <- list(models = pair, table = list(
    resid_df = a[["Resid. Df"]], resid_dev = a[["Resid. Dev"]], df = a[["Df"]],
    deviance = a[["Deviance"]], p = a[["Pr(>Chi)"]]),
    printed = capture.output(print(a)))
}
## predict.gam: type = "terms" (with se.fit), "lpmatrix", exclude =, and new factor levels
d <- load_data("gamsim_re", 2000, NULL)
pf <- "y ~ x1 + s(x0, bs = \"cr\") + s(x2, bs = \"cr\") + s(g, bs = \"re\")"
b <- gam(as.formula(pf), data = d, method = "REML")
rows <- c(1, 2, 50, 200, 1403)
nd <- d[rows, ]
pt <- predict(b, nd, type = "terms", se.fit = TRUE)
nd_new <- nd
nd_new$g <- as.character(nd_new$g)
nd_new$g[2] <- "g999"
new_warning <- NULL
p_new <- withCallingHandlers(predict(b, nd_new), warning = function(w) {
  new_warning <<- conditionMessage(w); invokeRestart("muffleWarning")})
out$predict <- list(formula = pf, rows = rows, coef = unname(coef(b)),
  terms = table_out(pt$fit), terms_se = table_out(pt$se.fit), constant = unname(attr(predict(b, nd, type = "terms"), "constant")),
  exclude_link = unname(predict(b, nd, exclude = "s(g)")),
  exclude_terms = colnames(predict(b, nd, type = "terms", exclude = "s(g)")),
  lpmatrix = unname(predict(b, nd, type = "lpmatrix")),
  lpmatrix_exclude = unname(predict(b, nd, type = "lpmatrix", exclude = "s(x2)")),
  new_level_link = unname(p_new), new_level_warning = new_warning)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/reference/gam_toolkit_reference.json")
