# Reference values from lme4 for pymlm's lmer tests.
# Run from the project root:  Rscript tests/reference/make_lmer_reference.R
# Writes tests/reference/lmer_reference.json (R and package versions inside).
suppressPackageStartupMessages({library(lme4); library(jsonlite); library(lmerTest)})

source("tests/reference/load_data.R")  # load_data(name): data/<name>.csv with R's levels

fit_summary <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  out <- list(
    formula = paste(deparse(formula(m)), collapse = " "),
    REML = isREML(m),
    fixef = as.list(fixef(m)),
    fixef_se = as.list(sqrt(diag(as.matrix(vcov(m))))),
    theta = unname(getME(m, "theta")),
    sigma = sigma(m),
    logLik = as.numeric(logLik(m)),
    deviance_ml = if (isREML(m)) deviance(m, REML = FALSE) else deviance(m),
    REMLcrit = if (isREML(m)) REMLcrit(m) else NULL,
    AIC = AIC(m), BIC = BIC(m), df_resid = df.residual(m),
    varcorr = lapply(seq_len(nrow(vc)), function(i) as.list(vc[i, ])),
    fitted_head = unname(head(fitted(m), 10)),
    resid_head = unname(head(residuals(m), 10)),
    is_singular = isSingular(m),
    nobs = nobs(m)
  )
  out
}

ranef_block <- function(m, nlev = 5) {
  rr <- ranef(m, condVar = TRUE)
  res <- list()
  for (g in names(rr)) {
    df <- rr[[g]]
    pv <- attr(df, "postVar")
    n <- min(nlev, nrow(df))
    rows <- list()
    for (i in seq_len(n)) {
      v <- if (is.list(pv)) NULL else pv[, , i, drop = FALSE]
      rows[[i]] <- list(level = rownames(df)[i], modes = as.list(df[i, , drop = FALSE]),
                        postVar = if (is.null(v)) NULL else matrix(v, nrow = dim(pv)[1]))
    }
    res[[g]] <- rows
  }
  res
}

coef_block <- function(m, nlev = 5) {
  cc <- coef(m)
  lapply(cc, function(df) lapply(seq_len(min(nlev, nrow(df))), function(i)
    c(list(level = rownames(df)[i]), as.list(df[i, , drop = FALSE]))))
}

out <- list()
sleep <- load_data("sleepstudy")
m <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleep)
m_ml <- update(m, REML = FALSE)
m0 <- lme4::lmer(Reaction ~ 1 + (Days | Subject), sleep)
nd <- data.frame(Days = c(0, 5, 9, 2), Subject = c("308", "309", "999", "372"))
out$sleepstudy <- list(
  fit = fit_summary(m),
  ranef = ranef_block(m),
  coef = coef_block(m),
  newdata = nd,
  predict_all = unname(predict(m, newdata = nd, allow.new.levels = TRUE)),
  predict_none = unname(predict(m, newdata = nd, re.form = NA)),
  anova = {
    a <- suppressMessages(anova(m0, m))
    list(npar = a$npar, AIC = a$AIC, BIC = a$BIC, logLik = a$logLik, deviance = a$deviance,
         Chisq = a$Chisq, Df = a$Df, p = a[["Pr(>Chisq)"]])
  }
)

# precision weights and an offset
sleep$w <- 1 + (sleep$Days %% 3)
sleep$off <- 0.5 * sleep$Days
mw <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleep, weights = w)
mo <- lme4::lmer(Reaction ~ Days + offset(off) + (1 | Subject), sleep)
out$weighted <- fit_summary(mw)
out$offset <- fit_summary(mo)

# a rank-deficient fixed-effects matrix: Days2 = 2 * Days is dropped
sleep$Days2 <- 2 * sleep$Days
mr <- suppressMessages(lme4::lmer(Reaction ~ Days + Days2 + (1 | Subject), sleep))
out$rank_deficient <- c(fit_summary(mr), list(kept = colnames(getME(mr, "X"))))

pen <- load_data("Penicillin")
mp <- lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), pen)
ndp <- data.frame(plate = c("a", "b", "x"), sample = c("A", "F", "C"))
out$penicillin <- list(
  fit = fit_summary(mp), ranef = ranef_block(mp),
  newdata = ndp,
  predict_plate = unname(predict(mp, newdata = ndp, re.form = ~ (1 | plate))),
  predict_all = unname(predict(mp, newdata = ndp))
)

pas <- load_data("Pastes")
mpa <- lme4::lmer(strength ~ 1 + (1 | batch/cask), pas)
mpa_ml <- update(mpa, REML = FALSE)
out$pastes <- list(fit = fit_summary(mpa), fit_ml = fit_summary(mpa_ml), ranef = ranef_block(mpa))

# Satterthwaite degrees of freedom (lmerTest) for the same models
sat <- function(m) {
  s <- summary(lmerTest::as_lmerModLmerTest(m), ddf = "Satterthwaite")$coefficients
  list(term = rownames(s), df = unname(s[, "df"]), p = unname(s[, "Pr(>|t|)"]))
}
out$satterthwaite <- list(sleepstudy = sat(m), sleepstudy_ml = sat(m_ml), penicillin = sat(mp), pastes = sat(mpa))

out$versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                     lmerTest = as.character(packageVersion("lmerTest")),
                     Matrix = as.character(packageVersion("Matrix")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/reference/lmer_reference.json")
cat("wrote tests/reference/lmer_reference.json\n")
