## mgcv and lme4 values checked by vignettes/gamms-the-mgcv-way.md.
##
## Run from the project root:
##   Rscript tests/reference/make_vignette_gamms_reference.R
## Writes tests/reference/vignette_gamms.json (about 2 minutes, most of it the
## 20000 permutations of k.check):
## - sleepstudy: mgcv's gam(Reaction ~ Days + s(Subject, bs = "re"), REML)
##   (fixed effects, edf, -REML score, scale, gam.vcomp, the predicted random
##   effects) and lme4's lmer(Reaction ~ Days + (1 | Subject)) (REML
##   criterion, variance components, fixed effects, conditional modes);
## - gamsim_re (data/gamsim_re.csv): bam(discrete = TRUE) of the bench model,
##   its k.check table on all 20000 rows (subsample = n, so the k-index is
##   not random; p-values with n.rep = 400 and with n.rep = 20000, the
##   latter close to the p-value's expectation) and the curves plot.gam
##   draws (x, fit, se = 2 standard errors, seWithMean = FALSE).
## The gam / bam / bam(discrete = TRUE) fits of gamsim_re themselves are in
## tests/reference/gam_gamsim_re.json (tests/reference/gam_reference.R).

suppressPackageStartupMessages({
  library(mgcv)
  library(lme4)
  library(jsonlite)
})
pdf(NULL)

versions <- list(
  R = R.version.string,
  mgcv = as.character(packageVersion("mgcv")),
  lme4 = as.character(packageVersion("lme4")),
  jsonlite = as.character(packageVersion("jsonlite"))
)

## ---- sleepstudy: s(Subject, bs = "re") and (1 | Subject) ----------------
ss <- read.csv("data/sleepstudy.csv")
ss$Subject <- factor(ss$Subject)
g <- gam(Reaction ~ Days + s(Subject, bs = "re"), data = ss, method = "REML")
vc <- gam.vcomp(g, rescale = FALSE)
se <- sqrt(diag(g$Vp))
re_coef <- coef(g)[grep("^s\\(Subject\\)", names(coef(g)))]
gam_out <- list(
  formula = "Reaction ~ Days + s(Subject, bs = \"re\")",
  fixef = as.list(coef(g)[1:2]),
  fixef_se = as.list(se[1:2]),
  edf = as.list(setNames(summary(g)$s.table[, "edf"], rownames(summary(g)$s.table))),
  score = as.numeric(g$gcv.ubre),
  scale = g$sig2,
  vcomp_sd = as.list(setNames(vc[, "std.dev"], rownames(vc))),
  ranef = list(level = levels(ss$Subject), value = as.numeric(re_coef))
)
l <- lmer(Reaction ~ Days + (1 | Subject), data = ss, REML = TRUE)
vcl <- as.data.frame(VarCorr(l))
lmer_out <- list(
  formula = "Reaction ~ Days + (1 | Subject)",
  REMLcrit = as.numeric(REMLcrit(l)),
  fixef = as.list(fixef(l)),
  fixef_se = as.list(setNames(sqrt(diag(as.matrix(vcov(l)))), names(fixef(l)))),
  varcorr = lapply(seq_len(nrow(vcl)), function(i)
    list(grp = vcl$grp[i], vcov = vcl$vcov[i], sdcor = vcl$sdcor[i])),
  ranef = list(level = rownames(ranef(l)$Subject), value = ranef(l)$Subject[[1]])
)

## ---- gamsim_re: k.check and plot.gam of bam(discrete = TRUE) -------------
d <- read.csv("data/gamsim_re.csv")
d$g <- factor(d$g, levels = sprintf("g%03d", 1:200))
form <- y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr") + s(g, bs = "re")
b <- bam(form, data = d, method = "fREML", discrete = TRUE)
set.seed(1)
kt <- mgcv:::k.check(b, subsample = nrow(d), n.rep = 400)
set.seed(2)
kt_big <- mgcv:::k.check(b, subsample = nrow(d), n.rep = 20000)
k_out <- lapply(seq_len(nrow(kt)), function(i)
  list(term = rownames(kt)[i], k = kt[i, 1], edf = kt[i, 2], k_index = kt[i, 3],
       p_value = kt[i, 4], p_value_20000 = kt_big[i, 4]))
p <- plot(b, pages = 1, select = NULL, seWithMean = FALSE)
curves <- lapply(1:4, function(i) list(label = b$smooth[[i]]$label, x = as.numeric(p[[i]]$x),
                                      fit = as.numeric(p[[i]]$fit), se = as.numeric(p[[i]]$se)))

out <- list(
  r_versions = versions,
  sleepstudy = list(gam = gam_out, lmer = lmer_out),
  gamsim_re = list(formula = paste(deparse(form), collapse = ""), fitter = "bam(discrete = TRUE, method = \"fREML\")",
                   score = as.numeric(b$gcv.ubre), scale = b$sig2, k_check = k_out,
                   plot_gam = curves)
)
write_json(out, "tests/reference/vignette_gamms.json", digits = 15, auto_unbox = TRUE,
           null = "null", pretty = FALSE)
cat("wrote tests/reference/vignette_gamms.json\n")
