# Reference values for single-model anova (types 1-3, Satterthwaite and
# Kenward-Roger), ranova and drop1: lmerTest / lme4 / pbkrtest.
# Run from the repository root: Rscript tests/reference/lmertest_reference.R
suppressPackageStartupMessages({library(lmerTest); library(jsonlite)})
set.seed(15)
ng <- 12
d <- expand.grid(rep = 1:4, B = c("b1", "b2"), A = c("a1", "a2", "a3"), g = sprintf("g%02d", 1:ng))
d$x <- round(rnorm(nrow(d), 5, 2), 2)
u0 <- rnorm(ng, 0, 2); u1 <- rnorm(ng, 0, 0.4)
gi <- as.integer(factor(d$g))
eff <- c(a1 = 0, a2 = 1.5, a3 = -1)[as.character(d$A)] + 0.8 * (d$B == "b2") +
  0.6 * (d$A == "a2" & d$B == "b2") + 0.3 * d$x + 0.2 * (d$A == "a3") * d$x
d$y <- round(10 + eff + u0[gi] + u1[gi] * d$x + rnorm(nrow(d), 0, 1.2), 3)
d <- d[-sample(nrow(d), 60), c("y", "A", "B", "x", "g")]   # unbalanced
write.csv(d, "tests/reference/lmertest_data.csv", row.names = FALSE)
d <- read.csv("tests/reference/lmertest_data.csv", stringsAsFactors = TRUE)

tab <- function(a) {
  a <- as.data.frame(a)
  c(list(rows = rownames(a)), lapply(as.list(a), function(v) unname(as.numeric(v))))
}
f <- y ~ A * B + x + A:x + (1 + x | g)
m <- lmer(f, d, REML = TRUE)
out <- list(formula = deparse(f), R = R.version.string,
            lmerTest = as.character(packageVersion("lmerTest")),
            lme4 = as.character(packageVersion("lme4")),
            pbkrtest = as.character(packageVersion("pbkrtest")),
            fixef = unname(fixef(m)), theta = unname(getME(m, "theta")))
for (ty in 1:3) for (ddf in c("Satterthwaite", "Kenward-Roger"))
  out[[sprintf("anova_type%d_%s", ty, ddf)]] <- tab(anova(m, type = ty, ddf = ddf))
out$anova_print <- capture.output(print(anova(m)))
out$ranova <- tab(ranova(m))
out$ranova_print <- capture.output(print(ranova(m)))
out$drop1_satterthwaite <- tab(drop1(m))
m_ml <- update(m, REML = FALSE)
out$drop1_chisq <- tab(drop1(m, ddf = "lme4", test = "Chisq"))
out$drop1_chisq_ml <- tab(drop1(m_ml, ddf = "lme4", test = "Chisq"))
out$drop1_chisq_print <- capture.output(print(drop1(m, ddf = "lme4", test = "Chisq")))
# a second model: random intercept only (ranova drops to lm), numeric-only term
f2 <- y ~ A + x + (1 | g)
m2 <- lmer(f2, d)
out$m2_formula <- deparse(f2)
out$m2_anova_type3_Satterthwaite <- tab(anova(m2, type = 3))
out$m2_ranova <- tab(ranova(m2))
# marginal means by hand: equal weights over B, x at its mean (emmeans' defaults)
X <- model.matrix(m); b <- fixef(m); V <- as.matrix(vcov(m))
xbar <- mean(d$x)
grid <- expand.grid(A = levels(d$A), B = levels(d$B), x = xbar)
Xg <- model.matrix(~ A * B + x + A:x, grid)
Lm <- t(sapply(levels(d$A), function(a) colMeans(Xg[grid$A == a, , drop = FALSE])))
em <- lapply(seq_len(nrow(Lm)), function(i) contest1D(m, Lm[i, ], confint = TRUE))
out$emm_A <- list(rows = levels(d$A), L = unname(Lm),
                  estimate = sapply(em, function(r) r$Estimate), SE = sapply(em, function(r) r$`Std. Error`),
                  df = sapply(em, function(r) r$df), lower = sapply(em, function(r) r$lower),
                  upper = sapply(em, function(r) r$upper))
if (requireNamespace("emmeans", quietly = TRUE)) {
  e <- as.data.frame(emmeans::emmeans(m, "A", lmer.df = "satterthwaite"))
  out$emmeans_A <- list(rows = as.character(e$A), emmean = e$emmean, SE = e$SE, df = e$df,
                        lower = e$lower.CL, upper = e$upper.CL,
                        emmeans = as.character(packageVersion("emmeans")))
  pr <- as.data.frame(emmeans::contrast(emmeans::emmeans(m, "A", lmer.df = "satterthwaite"), "pairwise", adjust = "none"))
  out$emmeans_A_pairs <- list(rows = as.character(pr$contrast), estimate = pr$estimate, SE = pr$SE,
                              df = pr$df, t = pr$t.ratio, p = pr$p.value)
}
# an ordered factor (contr.poly): Type III hypotheses mapped from treatment coding
set.seed(1)
ck <- cake[-sample(nrow(cake), 40), c("angle", "recipe", "temperature", "replicate")]
write.csv(ck, "tests/reference/lmertest_cake.csv", row.names = FALSE)
mc <- lmer(angle ~ recipe * temperature + (1 | recipe:replicate), ck)
for (ty in 1:3) out[[sprintf("cake_type%d", ty)]] <- tab(anova(mc, type = ty))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/lmertest_reference.json")
