# Reference intervals from lme4 for the vignette
# vignettes/intervals-for-variance-components.md.
# Run from the project root:
#   Rscript tests/reference/make_vignette_intervals_for_variance_components_reference.R
# Writes tests/reference/vignette_intervals_for_variance_components.json (R and package
# versions inside).
#
# Three REML fits: sleepstudy (Days | Subject), Dyestuff and Dyestuff2 (1 | Batch).
# For each: the estimates on lme4's confint scale (sds, correlations, sigma, fixed
# effects); confint(method = "Wald"); the profile, profile(m), and its intervals
# at the 95% level and at the levels marked on lme4's zeta plot; a parametric
# bootstrap as confint(method = "boot") makes it (bootMer with lme4's own
# bootstrap function, percentile intervals) with nsim = 2000, and how many
# replicates had an sd of 0 (a singular refit: sd below 1e-4 sigma, lme4's
# isSingular tolerance on theta) or an undefined correlation. Elapsed seconds of
# each method on this machine.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})

source("tests/reference/load_data.R")

as_intervals <- function(ci) {
  list(parm = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]))
}

elapsed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  value <- expr
  list(value = value, seconds = proc.time()[["elapsed"]] - t0)
}

# the parameters confint(method = "boot") bootstraps: lme4's sd/cor scale, sigma, fixef
boot_fun <- function(x) {
  vc <- as.data.frame(VarCorr(x), order = "lower.tri")
  c(vc$sdcor, fixef(x))
}

zeta_levels <- c(0.5, 0.8, 0.9, 0.95, 0.99)

one_case <- function(formula, data, nsim = 2000) {
  m <- lmer(formula, data = data, REML = TRUE)
  res <- list(formula = paste(deparse(formula), collapse = " "), REML = TRUE,
              is_singular = isSingular(m), theta = unname(getME(m, "theta")),
              sigma = sigma(m), REMLcrit = REMLcrit(m))
  wald <- elapsed(confint(m, method = "Wald"))
  res$wald <- as_intervals(wald$value)
  res$wald_seconds <- wald$seconds
  warns <- character(0)
  pr <- elapsed(withCallingHandlers(profile(m), warning = function(w) {
    warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning")
  }))
  res$profile_seconds <- pr$seconds
  res$profile_warnings <- warns
  ci <- suppressWarnings(confint(pr$value, level = 0.95))
  res$profile <- as_intervals(ci)
  res$estimates <- as.list(setNames(boot_fun(m), rownames(ci)))
  res$profile_levels <- lapply(zeta_levels, function(l)
    c(list(level = l), as_intervals(suppressWarnings(confint(pr$value, level = l)))))
  set.seed(20261202)
  bb <- elapsed(suppressWarnings(suppressMessages(
    bootMer(m, FUN = boot_fun, nsim = nsim, use.u = FALSE, type = "parametric"))))
  res$boot_seconds <- bb$seconds
  res$boot_nsim <- nsim
  bci <- confint(bb$value, level = 0.95, type = "perc")
  rownames(bci) <- rownames(ci)
  res$boot <- as_intervals(bci)
  t <- bb$value$t
  colnames(t) <- rownames(ci)
  sigma_col <- which(rownames(ci) == ".sigma")
  sds <- grep("^\\.sig[0-9]", rownames(ci), value = TRUE)
  vc <- as.data.frame(VarCorr(m), order = "lower.tri")
  is_sd <- is.na(vc$var2[seq_along(sds)])
  res$boot_singular <- as.list(setNames(vapply(sds[is_sd], function(s)
    sum(t[, s] < 1e-4 * t[, sigma_col], na.rm = TRUE), numeric(1)), sds[is_sd]))
  # replicates with an undefined parameter (a correlation whose sd is 0)
  res$boot_with_na <- sum(!stats::complete.cases(t))
  res
}

out <- list()
out$sleepstudy <- one_case(Reaction ~ Days + (Days | Subject), load_data("sleepstudy"))
out$Dyestuff <- one_case(Yield ~ 1 + (1 | Batch), load_data("Dyestuff"))
out$Dyestuff2 <- one_case(Yield ~ 1 + (1 | Batch), load_data("Dyestuff2"))
out$versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                     Matrix = as.character(packageVersion("Matrix")),
                     boot = as.character(packageVersion("boot")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/reference/vignette_intervals_for_variance_components.json")
