# Reference values from lme4 for pymlm's lmer diagnostics (hatvalues, Cook's
# distance, influence with group deletion, rePCA, isSingular, VarCorr printing).
# Run from the project root:  Rscript tests/reference/lmer_diag.R
# Writes tests/reference/lmer_diag.json (R and package versions inside).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
source("tests/reference/load_data.R")

sleep <- load_data("sleepstudy")
pen <- load_data("Penicillin")
m1 <- lmer(Reaction ~ Days + (Days | Subject), sleep)
m2 <- lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleep)
m3 <- lmer(diameter ~ (1 | plate) + (1 | sample), pen)

sleep$w <- 1 + (sleep$Days %% 3)
mw <- lmer(Reaction ~ Days + (Days | Subject), sleep, weights = w)
inf <- influence(m1, groups = "Subject")
inf_obs <- influence(m2, obs = TRUE)
pca <- function(m) lapply(rePCA(m), function(x) list(sdev = unname(x$sdev),
                                                    prop = unname(summary(x)$importance[2, ]),
                                                    cumprop = unname(summary(x)$importance[3, ])))
vc_text <- function(m, comp) capture.output(print(VarCorr(m), comp = comp))

# predict(se.fit = TRUE) as lme4 >= 1.1-38 defines it (the installed lme4 may predate it):
# sqrt(diag(A Cmat A')) with A = [Z X] and Cmat the joint error covariance of (b, beta),
# sigma^2 [Lambda 0; 0 I] C^{-1} [Lambda' 0; 0 I], C the coefficient matrix of the
# penalized system; formed densely here from getME().
se_fit <- function(m, rows) {
  Z <- as.matrix(getME(m, "Z")); X <- getME(m, "X"); Lam <- t(as.matrix(getME(m, "Lambdat")))
  q <- ncol(Z); p <- ncol(X)
  A <- cbind(Z %*% Lam, X)
  C <- crossprod(A) + diag(c(rep(1, q), rep(0, p)))
  Ar <- A[rows, , drop = FALSE]
  cond <- sigma(m) * sqrt(rowSums(Ar * t(solve(C, t(Ar)))))
  pop <- sqrt(rowSums((X[rows, , drop = FALSE] %*% as.matrix(vcov(m))) * X[rows, , drop = FALSE]))
  list(rows = rows, fit = unname(predict(m)[rows]), se = unname(cond), fit0 = unname(predict(m, re.form = NA)[rows]),
       se0 = unname(pop))
}

out <- list(
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))),
  m1 = list(
    hat = unname(hatvalues(m1)),
    cooks = unname(cooks.distance(m1)),
    infl_fixef = unname(inf[["fixed.effects[-Subject]"]]),
    infl_groups = rownames(inf[["fixed.effects[-Subject]"]]),
    infl_dfbeta = unname(dfbeta(inf)),
    infl_dfbetas = unname(dfbetas(inf)),
    infl_cooks = unname(cooks.distance(inf)),
    infl_varcov = unname(inf[["var.cov.comps[-Subject]"]]),
    rePCA = pca(m1),
    vc_both = vc_text(m1, c("Variance", "Std.Dev.")),
    vc_var = vc_text(m1, "Variance"),
    vc_sd = vc_text(m1, "Std.Dev."),
    singular = isSingular(m1), singular_big = isSingular(m1, tol = 0.5),
    se_fit = se_fit(m1, c(1, 2, 10, 11, 57, 180))
  ),
  m2 = list(
    hat = unname(hatvalues(m2)), cooks = unname(cooks.distance(m2)),
    infl_obs_fixef = unname(inf_obs[["fixed.effects[-case]"]])[1:12, ],
    infl_obs_cooks = unname(cooks.distance(inf_obs))[1:12],
    rePCA = pca(m2), vc_both = vc_text(m2, c("Variance", "Std.Dev."))
  ),
  weighted = list(hat = unname(hatvalues(mw)), cooks = unname(cooks.distance(mw))),
  m3 = list(hat = unname(hatvalues(m3)), se_fit = se_fit(m3, c(1, 2, 30, 144)), rePCA = pca(m3), vc_both = vc_text(m3, c("Variance", "Std.Dev.")),
            vc_var = vc_text(m3, "Variance"))
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/lmer_diag.json")
