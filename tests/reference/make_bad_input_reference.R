## What lme4 and mgcv do with the bad inputs of tests/test_bad_input.py.
##
## Run from the project root:  Rscript tests/reference/make_bad_input_reference.R
## Writes tests/reference/bad_input_lme4.json: for each case, whether R fits
## or stops, its error, warnings and messages, and the figures the tests
## compare with (pymlm's own messages are checked by the tests, not these).
## The data are the bundled data/sleepstudy.csv, read as the tests read it.

suppressPackageStartupMessages({
  library(lme4)
  library(mgcv)
  library(jsonlite)
})

json_path <- "tests/reference/bad_input_lme4.json"
ss <- read.csv("data/sleepstudy.csv")
ss$Subject <- factor(ss$Subject)

## Run expr; collect its value, error, warnings and messages.
outcome <- function(expr) {
  warnings <- character()
  messages <- character()
  value <- tryCatch(
    withCallingHandlers(expr,
      warning = function(w) {
        warnings <<- c(warnings, conditionMessage(w))
        invokeRestart("muffleWarning")
      },
      message = function(m) {
        messages <<- c(messages, trimws(conditionMessage(m)))
        invokeRestart("muffleMessage")
      }),
    error = function(e) structure(list(conditionMessage(e)), class = "failed"))
  failed <- inherits(value, "failed")
  list(fits = !failed, error = if (failed) value[[1]] else NULL,
       warnings = I(warnings), messages = I(messages),
       value = if (failed) NULL else value)
}

lmer_figures <- function(m) {
  list(theta = unname(getME(m, "theta")), theta_names = names(getME(m, "theta")),
       fixef = as.list(fixef(m)), sigma = sigma(m), reml_criterion = unname(REMLcrit(m)),
       cnms = lapply(getME(m, "cnms"), I))
}

cases <- list()

## over-parametrized random structures lme4 fits without a word about them
cases$duplicate_bar <- outcome(
  lmer_figures(lmer(Reaction ~ Days + (1 | Subject) + (1 | Subject), ss)))
ss$f <- factor(ss$Days %% 3)
cases$double_bar_factor <- outcome(
  lmer_figures(lmer(Reaction ~ f + (f || Subject), ss)))

## lme4's checkNlevels / checkZdims (on by default)
ss$one <- factor("a")
cases$one_level <- outcome(lmer(Reaction ~ Days + (1 | one), ss))
ss$obs <- factor(seq_len(nrow(ss)))
cases$levels_equal_rows <- outcome(lmer(Reaction ~ Days + (1 | obs), ss))
cases$too_many_re <- outcome(lmer(Reaction ~ Days + (Days | Subject), ss[ss$Days < 2, ]))
cases$re_smooth_one_level <- outcome(gam(Reaction ~ Days + s(one, bs = "re"), data = ss))

## badly scaled covariates: lme4's check.scaleX warns; a random slope on
## x * 1e12 stops, x * 1e12 as a fixed effect only is fitted
ss$x12 <- ss$Days * 1e12
cases$scaled_slope_1e12 <- outcome(lmer(Reaction ~ x12 + (x12 | Subject), ss))
cases$scaled_fixed_1e12 <- outcome(lmer_figures(lmer(Reaction ~ x12 + (1 | Subject), ss)))

## numerical edge cases in the data
cases$constant_response <- outcome({
  m <- lmer(Reaction ~ Days + (1 | Subject), transform(ss, Reaction = 3))
  list(sigma = sigma(m))
})
bad <- ss
bad$Reaction[1] <- -Inf
cases$infinite_response <- outcome(lmer(Reaction ~ Days + (1 | Subject), bad))
ss$w <- 1
ss$w[1] <- Inf
cases$infinite_weight <- outcome(lmer(Reaction ~ Days + (1 | Subject), ss, weights = w))

## a date-time covariate: model.matrix uses its seconds since 1970
ss$when <- as.POSIXct("2020-01-01", tz = "UTC") + ss$Days * 86400
cases$datetime_covariate <- outcome(lmer_figures(lmer(Reaction ~ when + (1 | Subject), ss)))
cases$days_covariate <- outcome(lmer_figures(lmer(Reaction ~ Days + (1 | Subject), ss)))

## formulas
cases$smooth_in_lmer <- outcome(lmer(Reaction ~ s(Days) + (1 | Subject), ss))
cases$two_tildes <- outcome(lmer(Reaction ~ Days ~ x12 + (1 | Subject), ss))

out <- list(
  generated_by = "tests/reference/make_bad_input_reference.R",
  R_version = R.version.string,
  packages = list(lme4 = as.character(packageVersion("lme4")),
                  mgcv = as.character(packageVersion("mgcv")),
                  Matrix = as.character(packageVersion("Matrix")),
                  jsonlite = as.character(packageVersion("jsonlite"))),
  data = "data/sleepstudy.csv",
  cases = cases)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE), json_path)
