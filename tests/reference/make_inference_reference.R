# Reference intervals and denominator degrees of freedom from lme4 and lmerTest
# for pymlm's inference tests.
# Run from the project root:  Rscript tests/reference/make_inference_reference.R
# Writes tests/reference/inference_reference.json (R and package versions inside).
#
# Per case: lme4's profile intervals (confint(profile(m))) at two levels and the
# profile traces (parameter value and zeta on lme4's grid, for every profiled
# parameter); parametric bootstrap percentile intervals (confint(m,
# method = "boot", nsim = 2000)); lmerTest's Satterthwaite and Kenward-Roger
# df and p-values of the fixed effects.
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(jsonlite)})

source("tests/reference/load_data.R")  # load_data(name): data/<name>.csv with R's levels

interval_list <- function(ci) {
  lapply(seq_len(nrow(ci)), function(i) list(parm = rownames(ci)[i], lower = unname(ci[i, 1]),
                                             upper = unname(ci[i, 2])))
}

traces <- function(pr) {
  out <- list()
  for (p in levels(pr$.par)) {
    sub <- pr[pr$.par == p, ]
    out[[p]] <- list(value = unname(sub[[p]]), zeta = unname(sub$.zeta))
  }
  out
}

ddf_table <- function(m, ddf) {
  s <- summary(m, ddf = ddf)$coefficients
  list(term = rownames(s), estimate = unname(s[, "Estimate"]), se = unname(s[, "Std. Error"]),
       df = unname(s[, "df"]), t = unname(s[, "t value"]), p = unname(s[, "Pr(>|t|)"]))
}

one_case <- function(formula, data, REML = TRUE, boot = FALSE, profile = TRUE) {
  m <- lmerTest::lmer(formula, data = data, REML = REML)
  # lme4's optimum: lmerTest's df are evaluated there (sensitive to where the optimizer stopped)
  res <- list(formula = deparse(formula), REML = REML, is_singular = isSingular(m),
              theta = unname(getME(m, "theta")), sigma = sigma(m), fixef = unname(fixef(m)),
              deviance = if (REML) REMLcrit(m) else deviance(m))
  if (profile) {
    t0 <- proc.time()[["elapsed"]]
    warns <- character(0)
    pr <- withCallingHandlers(profile(m),
                              warning = function(w) {warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning")})
    res$profile_seconds <- proc.time()[["elapsed"]] - t0
    res$profile_warnings <- warns
    res$profile <- interval_list(confint(pr, level = 0.95))
    res$profile_90 <- interval_list(confint(pr, level = 0.90))
    res$profile_traces <- traces(pr)
  }
  if (boot) {
    set.seed(20240601)
    t0 <- proc.time()[["elapsed"]]
    ci <- suppressWarnings(suppressMessages(confint(m, method = "boot", nsim = 2000, boot.type = "perc")))
    res$boot_seconds <- proc.time()[["elapsed"]] - t0
    res$boot_nsim <- 2000
    res$boot <- interval_list(ci)
  }
  res$satterthwaite <- ddf_table(m, "Satterthwaite")
  # lmerTest: Kenward-Roger is defined for REML fits only
  if (REML) res$kenward_roger <- ddf_table(m, "Kenward-Roger")
  res
}

sleep <- load_data("sleepstudy")
sleep$Days2 <- sleep$Days^2
# an unbalanced subset: every fifth row (first, sixth, ...) dropped
sleep_unbal <- sleep[-seq(1, nrow(sleep), by = 5), ]
pen <- load_data("Penicillin")
pastes <- load_data("Pastes")
dye2 <- load_data("Dyestuff2")

out <- list()
out$sleepstudy <- one_case(Reaction ~ Days + (Days | Subject), sleep, boot = TRUE)
out$sleepstudy_ml <- one_case(Reaction ~ Days + (Days | Subject), sleep, REML = FALSE)
out$penicillin <- one_case(diameter ~ 1 + (1 | plate) + (1 | sample), pen, boot = TRUE)
out$pastes <- one_case(strength ~ 1 + (1 | batch/cask), pastes)
out$dyestuff2 <- one_case(Yield ~ 1 + (1 | Batch), dye2, profile = TRUE)
out$sleepstudy_uncorr <- one_case(Reaction ~ Days + (Days || Subject), sleep)
out$sleepstudy_unbalanced <- one_case(Reaction ~ Days + Days2 + (Days | Subject), sleep_unbal, profile = FALSE)
out$sleepstudy_unbalanced$data_note <- "sleepstudy with Days2 = Days^2, rows 1, 6, 11, ... (1-based) dropped"

out$versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                     lmerTest = as.character(packageVersion("lmerTest")),
                     pbkrtest = as.character(packageVersion("pbkrtest")),
                     Matrix = as.character(packageVersion("Matrix")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/reference/inference_reference.json")
