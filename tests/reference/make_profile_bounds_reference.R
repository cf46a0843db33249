# Reference profile intervals at the edge of the parameter space, for
# tests/inference/test_profile_bounds.py.
# Run from the project root:  Rscript tests/reference/make_profile_bounds_reference.R
# Writes tests/reference/profile_bounds_reference.json (R and package versions inside).
#
# Cases whose profile stops at a bound before it reaches the level on one side:
# correlations whose profile stays below the cutoff up to -1 or 1 (smoothly, flat
# against the bound, or with a dip where lme4's inner optimization stopped at a
# local optimum), correlations estimated at -1 or 1, a correlation estimated near
# -1, a slope on a two-level factor, sds estimated at 0 (Dyestuff2; both sds of
# a correlated term, whose correlation is then undefined). The
# sleepstudy cases are subsets of its subjects (levels listed in each case, in
# the data's level order); `late` is the factor Days >= 5 (levels early, late).
#
# Per case: lme4's ML estimates (the profile is of the ML deviance),
# confint(profile(m), level = ...) at 0.95, 0.8 and 0.99 (NA where lme4 reads no
# interval; where confint() fails, each parameter alone and the error), the
# warnings of profile() and of each confint() call, and the profile of the
# parameter of interest (value and zeta on lme4's grid).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})

source("tests/reference/load_data.R")  # load_data(name): data/<name>.csv with R's levels

# the value of expr, its warnings and messages, and its error (value NULL) if it fails
collect <- function(expr) {
  warns <- character(0)
  msgs <- character(0)
  err <- NULL
  value <- tryCatch(withCallingHandlers(expr, warning = function(w) {
    warns <<- c(warns, conditionMessage(w))
    invokeRestart("muffleWarning")
  }, message = function(m) {
    msgs <<- c(msgs, trimws(conditionMessage(m)))
    invokeRestart("muffleMessage")
  }), error = function(e) {
    err <<- conditionMessage(e)
    NULL
  })
  list(value = value, warnings = unique(warns), messages = unique(msgs), error = err)
}

# confint(pr, level): where it fails (lme4 cannot read one parameter's profile),
# each parameter alone, NA for the one that fails
confint_each <- function(pr, level) {
  ci <- collect(confint(pr, level = level))
  if (is.null(ci$error)) return(ci)
  parms <- levels(pr$.par)
  rows <- lapply(parms, function(p) {
    one <- collect(confint(pr, parm = p, level = level))
    list(ci = if (is.null(one$value)) c(NA_real_, NA_real_) else one$value[1, ], one = one)
  })
  value <- do.call(rbind, lapply(rows, `[[`, "ci"))
  rownames(value) <- parms
  ci$value <- value
  ci$warnings <- unique(c(ci$warnings, unlist(lapply(rows, function(r) r$one$warnings))))
  ci$error_parm <- parms[vapply(rows, function(r) !is.null(r$one$error), logical(1))]
  ci
}

interval_list <- function(ci) {
  lapply(seq_len(nrow(ci)), function(i) list(parm = rownames(ci)[i], lower = unname(ci[i, 1]),
                                             upper = unname(ci[i, 2])))
}

one_case <- function(formula, data, focus, note, subjects = NULL, focus_only = FALSE) {
  fit <- collect(lmer(formula, data = data, REML = TRUE))
  m <- fit$value
  mml <- refitML(m)
  vc <- as.data.frame(VarCorr(mml))
  res <- list(formula = deparse(formula), REML = TRUE, note = note, focus = focus,
              fit_warnings = c(fit$warnings, fit$messages), is_singular_ml = isSingular(mml),
              ml_sdcor = vc$sdcor, ml_fixef = unname(fixef(mml)))
  if (!is.null(subjects)) res$subjects <- subjects
  t0 <- proc.time()[["elapsed"]]
  pr <- collect(profile(m))
  res$profile_seconds <- proc.time()[["elapsed"]] - t0
  res$profile_warnings <- pr$warnings
  for (level in c(0.95, 0.8, 0.99)) {
    ci <- confint_each(pr$value, level)
    key <- paste0("confint_", sprintf("%g", 100 * level))
    res[[key]] <- interval_list(ci$value)
    res[[paste0(key, "_warnings")]] <- ci$warnings
    if (!is.null(ci$error)) {
      res[[paste0(key, "_error")]] <- ci$error
      res[[paste0(key, "_error_parm")]] <- ci$error_parm
    }
  }
  sub <- pr$value[pr$value$.par == focus, ]
  res$focus_trace <- list(value = unname(sub[[focus]]), zeta = unname(sub$.zeta))
  if (focus_only) {
    # the focus parameter profiled alone (lme4 profiles the others from a start
    # on the bound, and reads none of them)
    pf <- collect(profile(m, which = focus))
    res$focus_profile_warnings <- pf$warnings
    for (level in c(0.95, 0.8, 0.99)) {
      ci <- confint_each(pf$value, level)
      key <- paste0("focus_confint_", sprintf("%g", 100 * level))
      res[[key]] <- interval_list(ci$value)
      res[[paste0(key, "_warnings")]] <- ci$warnings
    }
  }
  res
}

sleep <- load_data("sleepstudy")
sleep$late <- factor(ifelse(sleep$Days >= 5, "late", "early"), levels = c("early", "late"))
subjects <- function(first, last) levels(sleep$Subject)[first:last]
sleep_subset <- function(s) droplevels(sleep[sleep$Subject %in% s, ])

slope <- Reaction ~ Days + (Days | Subject)
cases <- list(
  cor_short = list(slope, 1, 4, "the correlation's profile reaches 1 below the cutoff: upper end 1, no warning"),
  cor_dip = list(slope, 10, 14, paste("the correlation's profile dips at -0.97 (a local optimum of the inner",
                                      "optimization) and stays below the cutoff up to 1")),
  cor_flat = list(slope, 11, 13, paste("the correlation's profile is flat from 0.72 to 1 (the slope sd is 0",
                                       "there) below the cutoff")),
  cor_at_one = list(slope, 5, 10, "the ML estimate of the correlation is 1"),
  cor_at_minus_one = list(slope, 3, 5, paste("the ML estimate of the correlation is -1 (lme4 reads no",
                                             "interval of the variance parameters: NA)")),
  cor_near_minus_one = list(slope, 15, 18, "the ML estimate of the correlation is -0.95"),
  factor_slope = list(Reaction ~ late + (late | Subject), 11, 16,
                      "a slope on a two-level factor; its correlation's profile is flat against -1"),
  sds_at_zero = list(slope, 5, 7, paste("both sds are estimated at 0, so their correlation is undefined",
                                       "(lme4 takes 0) and its profile flat: lme4 cannot read it"))
)
out <- list()
for (name in names(cases)) {
  cs <- cases[[name]]
  s <- subjects(cs[[2]], cs[[3]])
  out[[name]] <- one_case(cs[[1]], sleep_subset(s), ".sig02", cs[[4]], subjects = s,
                          focus_only = name == "cor_at_minus_one")
}
out$dyestuff2 <- one_case(Yield ~ 1 + (1 | Batch), load_data("Dyestuff2"), ".sig01",
                          "the ML estimate of the batch sd is 0 (a singular fit): a one-sided interval")

out$versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                     Matrix = as.character(packageVersion("Matrix")),
                     jsonlite = as.character(packageVersion("jsonlite")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/reference/profile_bounds_reference.json")
