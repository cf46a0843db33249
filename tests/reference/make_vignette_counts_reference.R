## lme4 and mgcv values checked by vignettes/counts-and-proportions.md.
##
## Run from the project root:
##   Rscript tests/reference/make_vignette_counts_reference.R
## Writes (in about 20 seconds)
## - tests/reference/vignette_counts.csv: a small simulated Bernoulli set,
##   sim_bin(G = 400, m = 5) of the project's GLMM generator (true model
##   y ~ x + (1 + x | g): intercept -0.5, slope 0.8, sd 1 and 0.5, corr 0.3),
##   whose 5-row clusters are where nAGQ = 0 is biased;
## - tests/reference/vignette_counts.json: for cbpp, grouseticks and the
##   simulated set, lme4's glmer fits with nAGQ = 0, 1 and 25 (25 only for a
##   single scalar random-effects term): fixed effects, their standard errors
##   and Wald intervals (confint(method = "Wald")), theta, logLik (lme4's,
##   which omits the saturated model's log-likelihood for nAGQ > 1) and the
##   median of 5 fit times; and mgcv's gam(..., family = binomial,
##   method = "REML") of cbpp with s(herd, bs = "re").

suppressPackageStartupMessages({
  library(lme4)
  library(mgcv)
  library(jsonlite)
})
source("tests/reference/load_data.R")
source("/work/shared/tools/glmm_sim.R")

versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                 mgcv = as.character(packageVersion("mgcv")))

sim <- sim_bin(G = 400L, m = 5L, seed = 20261202L)
write.csv(sim, "tests/reference/vignette_counts.csv", row.names = FALSE)
sim <- read.csv("tests/reference/vignette_counts.csv")
sim$g <- factor(sim$g, levels = as.character(1:400))

timed <- function(expr, reps = 5L) {
  expr <- substitute(expr)
  env <- parent.frame()
  fit <- NULL
  t <- vapply(seq_len(reps), function(i) {
    s <- proc.time()[["elapsed"]]
    fit <<- eval(expr, env)
    proc.time()[["elapsed"]] - s
  }, numeric(1))
  list(fit = fit, seconds = median(t))
}

glmer_out <- function(formula, data, family, nAGQ) {
  r <- timed(glmer(formula, data = data, family = family, nAGQ = nAGQ))
  m <- r$fit
  ci <- confint(m, method = "Wald", parm = "beta_")
  list(nAGQ = nAGQ, fixef = as.list(fixef(m)),
       fixef_se = as.list(setNames(sqrt(diag(as.matrix(vcov(m)))), names(fixef(m)))),
       wald = list(lower = as.list(ci[, 1]), upper = as.list(ci[, 2])),
       theta = as.numeric(getME(m, "theta")), theta_names = names(getME(m, "theta")),
       logLik = as.numeric(logLik(m)), seconds = r$seconds,
       messages = m@optinfo$conv$lme4$messages)
}

cases <- list(
  cbpp = list(formula = cbind(incidence, size - incidence) ~ period + (1 | herd),
              data = load_data("cbpp"), family = binomial, nAGQ = c(0L, 1L, 25L)),
  grouseticks = list(formula = TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD),
                     data = load_data("grouseticks"), family = poisson, nAGQ = c(0L, 1L, 25L)),
  sim_intercept = list(formula = y ~ x + (1 | g), data = sim, family = binomial, nAGQ = c(0L, 1L, 25L)),
  sim_slopes = list(formula = y ~ x + (1 + x | g), data = sim, family = binomial, nAGQ = c(0L, 1L))
)
out <- list(r_versions = versions)
for (name in names(cases)) {
  cs <- cases[[name]]
  fits <- lapply(cs$nAGQ, function(k) glmer_out(cs$formula, cs$data, cs$family, k))
  names(fits) <- paste0("nAGQ", cs$nAGQ)
  out[[name]] <- list(formula = paste(deparse(cs$formula), collapse = ""), fits = fits)
}

cbpp <- load_data("cbpp")
r <- timed(gam(cbind(incidence, size - incidence) ~ period + s(herd, bs = "re"), data = cbpp,
               family = binomial, method = "REML"))
g <- r$fit
vc <- gam.vcomp(g, rescale = FALSE)
out$cbpp$gam <- list(
  formula = "cbind(incidence, size - incidence) ~ period + s(herd, bs = \"re\")",
  fixef = as.list(coef(g)[1:4]), fixef_se = as.list(sqrt(diag(g$Vp))[1:4]),
  sd_herd = as.numeric(vc[1, "std.dev"]), edf_herd = as.numeric(summary(g)$s.table[1, "edf"]),
  score = as.numeric(g$gcv.ubre), seconds = r$seconds)

write_json(out, "tests/reference/vignette_counts.json", digits = 15, auto_unbox = TRUE,
           null = "null", pretty = FALSE)
cat("wrote tests/reference/vignette_counts.json\n")
