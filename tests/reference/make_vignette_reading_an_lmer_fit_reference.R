# Reference values from lme4 for the vignette vignettes/reading-an-lmer-fit.md.
# Run from the project root:
#   Rscript tests/reference/make_vignette_reading_an_lmer_fit_reference.R
# Writes tests/reference/vignette_reading_an_lmer_fit.json (R and package versions inside).
#
# sleepstudy, a random intercept (1 | Subject) and random intercepts and slopes
# (Days | Subject), each fitted by REML and by ML; lme4's anova() of the two
# REML fits (which refits them by ML); the conditional modes with their
# conditional sds (ranef(condVar = TRUE)); the per-subject least-squares lines
# (lmList).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})

source("tests/reference/load_data.R")

fit_block <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  list(formula = paste(deparse(formula(m)), collapse = " "), REML = isREML(m),
       REMLcrit = if (isREML(m)) REMLcrit(m) else NULL,
       deviance = if (isREML(m)) NULL else deviance(m),
       logLik = as.numeric(logLik(m)),
       fixef = as.list(fixef(m)), fixef_se = as.list(sqrt(diag(as.matrix(vcov(m))))),
       theta = I(unname(getME(m, "theta"))), sigma = sigma(m),
       sdcor = unname(vc$sdcor), sdcor_names = paste(vc$grp, vc$var1, vc$var2),
       is_singular = isSingular(m))
}

ranef_block <- function(m) {
  re <- ranef(m, condVar = TRUE)$Subject
  pv <- attr(re, "postVar")
  k <- ncol(re)
  list(level = rownames(re),
       modes = lapply(as.list(re), unname),
       cond_sd = lapply(seq_len(k), function(j) sqrt(pv[j, j, ])),
       terms = I(colnames(re)))
}

sleep <- load_data("sleepstudy")
out <- list()
f_int <- Reaction ~ Days + (1 | Subject)
f_slp <- Reaction ~ Days + (Days | Subject)
m_int <- lmer(f_int, sleep, REML = TRUE)
m_slp <- lmer(f_slp, sleep, REML = TRUE)
out$intercept_reml <- fit_block(m_int)
out$slopes_reml <- fit_block(m_slp)
out$intercept_ml <- fit_block(lmer(f_int, sleep, REML = FALSE))
out$slopes_ml <- fit_block(lmer(f_slp, sleep, REML = FALSE))

a <- suppressMessages(anova(m_int, m_slp))
out$anova <- list(models = rownames(a), npar = unname(a$npar), AIC = unname(a$AIC),
                  BIC = unname(a$BIC), logLik = unname(a$logLik),
                  deviance = unname(a$deviance), Chisq = unname(a$Chisq),
                  Df = unname(a$Df), p = unname(a[["Pr(>Chisq)"]]))

out$ranef_slopes <- ranef_block(m_slp)
out$ranef_intercept <- ranef_block(m_int)

ols <- coef(lmList(Reaction ~ Days | Subject, sleep))
out$lmlist <- list(level = rownames(ols), intercept = unname(ols[, 1]), slope = unname(ols[, 2]))

out$versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                     Matrix = as.character(packageVersion("Matrix")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/reference/vignette_reading_an_lmer_fit.json")
