# Printed summaries from lme4, lmerTest and mgcv, line by line, for pymlm's
# tests of LmerSummary and GamSummary (tests/results/test_lmer_summary.py,
# tests/results/test_gam_summary.py).
#
# Run from the project root:  Rscript tests/reference/make_summary_reference.R
# Writes tests/reference/summary_print.json: per case the engine, formula,
# data set, options and the printed lines (print(x) of x <- summary(m), with
# messages lme4 prints through message() kept in place), plus the R and
# package versions. The lines are as R prints them at the default width of
# 80 in a UTF-8 session. The gam fit of gamsim_re takes about two minutes.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(mgcv)
  library(jsonlite)
})
stopifnot(getOption("width") == 80, l10n_info()[["UTF-8"]])

source("tests/reference/load_data.R")  # load_data(name): data/<name>.csv with R's levels

# printed output and message() text, in the order R writes them; the
# summary is printed as x, the name lme4 quotes in its p > 12 note
capture_print <- function(object, ...) {
  out <- character()
  tc <- textConnection("out", "w", local = TRUE)
  sink(tc)
  sink(tc, type = "message")
  x <- object
  print(x, ...)
  sink(type = "message")
  sink()
  close(tc)
  out
}

sleepstudy <- load_data("sleepstudy")
Penicillin <- load_data("Penicillin")
Pastes <- load_data("Pastes")
Dyestuff2 <- load_data("Dyestuff2")
cbpp <- load_data("cbpp")
gamsim_re <- load_data("gamsim_re")
sleepstudy2 <- sleepstudy
sleepstudy2$Days2 <- 2 * sleepstudy2$Days

cases <- list()
add_lmer <- function(name, formula, data, REML = TRUE, ddf = NULL, correlation = NULL) {
  fit <- function() {
    if (is.null(ddf)) {
      eval(bquote(lme4::lmer(.(formula), data = .(as.name(data)), REML = .(REML))))
    } else {
      eval(bquote(lmerTest::lmer(.(formula), data = .(as.name(data)), REML = .(REML))))
    }
  }
  m <- suppressMessages(suppressWarnings(fit()))
  # correlation = TRUE: summary(m, correlation = TRUE) printed with correlation = TRUE
  s <- if (!is.null(ddf)) summary(m, ddf = ddf) else if (isTRUE(correlation)) summary(m, correlation = TRUE) else
    summary(m)
  cases[[name]] <<- list(engine = "lmer", formula = paste(deparse(formula), collapse = " "),
                         data = data, REML = REML, ddf = ddf, correlation = correlation,
                         lines = capture_print(s, correlation = correlation))
}

add_lmer("sleepstudy_reml", Reaction ~ Days + (Days | Subject), "sleepstudy")
add_lmer("sleepstudy_ml", Reaction ~ Days + (Days | Subject), "sleepstudy", REML = FALSE)
add_lmer("penicillin_crossed", diameter ~ 1 + (1 | plate) + (1 | sample), "Penicillin")
add_lmer("pastes_nested", strength ~ 1 + (1 | batch/cask), "Pastes")
add_lmer("pastes_sample", strength ~ 1 + (1 | batch) + (1 | sample), "Pastes")
add_lmer("dyestuff2_singular", Yield ~ 1 + (1 | Batch), "Dyestuff2")
add_lmer("sleepstudy_uncorrelated", Reaction ~ Days + (Days || Subject), "sleepstudy")
add_lmer("pastes_p12", strength ~ batch + cask + (1 | sample), "Pastes")
add_lmer("sleepstudy_p18", Reaction ~ Subject + (0 + Days | Subject), "sleepstudy")
add_lmer("sleepstudy_p18_correlation", Reaction ~ Subject + (0 + Days | Subject), "sleepstudy",
         correlation = TRUE)
add_lmer("sleepstudy_rank_deficient", Reaction ~ Days + Days2 + (1 | Subject), "sleepstudy2")
add_lmer("sleepstudy_satterthwaite", Reaction ~ Days + (Days | Subject), "sleepstudy", ddf = "Satterthwaite")
add_lmer("sleepstudy_ml_satterthwaite", Reaction ~ Days + (Days | Subject), "sleepstudy", REML = FALSE,
         ddf = "Satterthwaite")
add_lmer("penicillin_kenward_roger", diameter ~ 1 + (1 | plate) + (1 | sample), "Penicillin",
         ddf = "Kenward-Roger")

# lme4's anova: the message "refitting model(s) with ML" comes first, as R
# writes it when anova() is called
anova_cases <- list(anova_two = c("m0", "m1"), anova_three = c("m2", "m0", "m1"))
m0 <- lme4::lmer(Reaction ~ 1 + (Days | Subject), data = sleepstudy)
m1 <- lme4::lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy)
m2 <- lme4::lmer(Reaction ~ Days + (1 | Subject), data = sleepstudy)
for (name in names(anova_cases)) {
  mods <- anova_cases[[name]]
  cl <- as.call(c(list(as.name("anova")), lapply(mods, as.name)))
  out <- character()
  tc <- textConnection("out", "w", local = TRUE)
  sink(tc)
  sink(tc, type = "message")
  print(eval(cl))
  sink(type = "message")
  sink()
  close(tc)
  cases[[name]] <- list(engine = "anova", models = mods, data = "sleepstudy",
                        formulas = vapply(mods, function(m) paste(deparse(formula(get(m))), collapse = " "), ""),
                        lines = out)
}

# mgcv: formulas made at top level, so that print.formula shows no environment
gam_cases <- list(
  cbpp_binomial_gam = list(
    formula = cbind(incidence, size - incidence) ~ period + s(herd, bs = "re"), data = "cbpp",
    fit = function(f) gam(f, data = cbpp, family = binomial, method = "REML"),
    engine = "gam", family = "binomial", discrete = FALSE),
  gamsim_re_bam_discrete = list(
    formula = y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr") +
      s(g, bs = "re"), data = "gamsim_re",
    fit = function(f) bam(f, data = gamsim_re, method = "fREML", discrete = TRUE),
    engine = "bam", family = "gaussian", discrete = TRUE),
  gamsim_re_gam = list(
    formula = y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr") +
      s(g, bs = "re"), data = "gamsim_re",
    fit = function(f) gam(f, data = gamsim_re, method = "REML"),
    engine = "gam", family = "gaussian", discrete = FALSE)
)
for (name in names(gam_cases)) {
  g <- gam_cases[[name]]
  f <- g$formula
  environment(f) <- globalenv()
  t0 <- proc.time()[["elapsed"]]
  b <- g$fit(f)
  cat(name, "fitted in", proc.time()[["elapsed"]] - t0, "s\n")
  cases[[name]] <- list(engine = g$engine, formula = paste(deparse(f), collapse = " "), data = g$data,
                        family = g$family, discrete = g$discrete, lines = capture_print(summary(b)))
}

out <- list(
  r_versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                    lmerTest = as.character(packageVersion("lmerTest")),
                    mgcv = as.character(packageVersion("mgcv")),
                    pbkrtest = as.character(packageVersion("pbkrtest")),
                    jsonlite = as.character(packageVersion("jsonlite"))),
  width = getOption("width"),
  cases = cases
)
write_json(out, "tests/reference/summary_print.json", auto_unbox = TRUE, pretty = TRUE, null = "null")
