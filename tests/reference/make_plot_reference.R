## Reference values for tests/plot: what lme4's and mgcv's plots draw.
##
## Run from the project root:  Rscript tests/reference/make_plot_reference.R
## Writes tests/reference/plot_reference.json with
## - k_check: mgcv's k.check table (k', edf, k-index, p-value with n.rep = 400)
##   for gam fits of tests/reference/smooth_cases_data.csv, and the p-value
##   of the same randomization test with n.rep = 20000 (its expectation, to
##   compare p-values statistically);
## - plot_gam: the curves plot.gam computes (x, fit, se as drawn, i.e. times
##   se.mult) for 1-D, factor-by, 2-D and tensor smooths, with seWithMean
##   FALSE and TRUE, and the partial residuals;
## - vis_gam: the grid and linear predictor vis.gam draws (other covariates
##   at mgcv's variable.summary values);
## - lme4: dotplot(ranef(condVar = TRUE)) level order, lmList coefficients
##   (the unshrunk per-group estimates), the profile of sleepstudy with
##   lme4's densityplot(profile) densities, the qqmath(m) quartile line;
## - density: stats::density of a fixed vector (bandwidth bw.nrd0).
## Takes about half a minute.

suppressPackageStartupMessages({
  library(mgcv)
  library(lme4)
  library(jsonlite)
})
pdf(NULL)

out_dir <- "tests/reference"
d <- read.csv(file.path(out_dir, "smooth_cases_data.csv"))
d$fac <- factor(d$fac)
d$g <- factor(d$g)

versions <- list(
  R = R.version.string,
  mgcv = as.character(packageVersion("mgcv")),
  lme4 = as.character(packageVersion("lme4")),
  jsonlite = as.character(packageVersion("jsonlite"))
)

fam <- function(name) switch(name, gaussian = gaussian(), poisson = poisson(), binomial = binomial())

## ---- k.check ----------------------------------------------------------
k_cases <- list(
  cr_ps = list(formula = y ~ s(x, bs = "cr") + s(z, bs = "ps"), family = "gaussian"),
  low_k = list(formula = y ~ s(x, bs = "cr", k = 4) + s(z, bs = "cr", k = 4), family = "gaussian"),
  tp2 = list(formula = y ~ s(x, z, k = 20), family = "gaussian"),
  te = list(formula = y ~ te(x, z), family = "gaussian"),
  by_fac = list(formula = y ~ fac + s(x, by = fac, bs = "cr", k = 6), family = "gaussian"),
  tp_re = list(formula = y ~ s(x) + s(z, bs = "cr") + s(g, bs = "re"), family = "gaussian"),
  fs = list(formula = y ~ s(z) + s(x, fac, bs = "fs", k = 5), family = "gaussian"),
  poisson = list(formula = yc ~ s(x, bs = "cr") + s(z, bs = "cr"), family = "poisson")
)
tab <- function(kt) lapply(seq_len(nrow(kt)), function(i)
  list(term = rownames(kt)[i], k = kt[i, 1], edf = kt[i, 2], k_index = kt[i, 3], p_value = kt[i, 4]))
k_out <- list()
for (nm in names(k_cases)) {
  kc <- k_cases[[nm]]
  b <- gam(kc$formula, data = d, family = fam(kc$family), method = "REML")
  set.seed(1)
  kt <- mgcv:::k.check(b, n.rep = 400)
  set.seed(2)
  kt_big <- mgcv:::k.check(b, n.rep = 20000)
  k_out[[nm]] <- list(formula = paste(deparse(kc$formula), collapse = ""), family = kc$family,
                      n_rep = 400, table = tab(kt), p_value_20000 = as.numeric(kt_big[, 4]))
}

## ---- plot.gam ---------------------------------------------------------
pg_cases <- list(
  cr_ps = list(formula = y ~ s(x, bs = "cr") + s(z, bs = "ps"), family = "gaussian"),
  by_fac = list(formula = y ~ fac + s(x, by = fac, bs = "cr", k = 6), family = "gaussian"),
  te = list(formula = y ~ te(x, z), family = "gaussian"),
  tp2 = list(formula = y ~ s(x, z, k = 20), family = "gaussian"),
  binomial = list(formula = yb ~ s(x, bs = "cr") + s(z, bs = "cr"), family = "binomial")
)
pg_out <- list()
for (nm in names(pg_cases)) {
  pc <- pg_cases[[nm]]
  b <- gam(pc$formula, data = d, family = fam(pc$family), method = "REML")
  p0 <- plot(b, pages = 1, residuals = TRUE)
  p1 <- plot(b, pages = 1, seWithMean = TRUE)
  terms <- list()
  for (i in seq_along(p0)) {
    P <- p0[[i]]
    terms[[i]] <- list(label = b$smooth[[i]]$label, dim = b$smooth[[i]]$dim,
                       x = as.numeric(P[["x"]]), y = if (is.null(P[["y"]])) NULL else as.numeric(P[["y"]]),
                       fit = as.numeric(P[["fit"]]), se = as.numeric(P[["se"]]),
                       se_with_mean = as.numeric(p1[[i]][["se"]]),
                       p_resid = as.numeric(P[["p.resid"]]))
  }
  pg_out[[nm]] <- list(formula = paste(deparse(pc$formula), collapse = ""), family = pc$family,
                       terms = terms)
}

## ---- vis.gam ----------------------------------------------------------
b <- gam(y ~ fac + te(x, z) + tot, data = d, method = "REML")
n.grid <- 30
m1 <- seq(min(d$x), max(d$x), length = n.grid)
m2 <- seq(min(d$z), max(d$z), length = n.grid)
vs <- b$var.summary
newd <- data.frame(x = rep(m1, n.grid), z = rep(m2, rep(n.grid, n.grid)),
                   fac = rep(vs$fac, n.grid^2), tot = rep(vs$tot[2], n.grid^2))
fv <- predict(b, newd, se.fit = TRUE)
ex <- exclude.too.far(newd$x, newd$z, d$x, d$z, dist = 0.05)
vis_out <- list(formula = "y ~ fac + te(x, z) + tot", fac = as.character(vs$fac), tot = vs$tot[2],
                x = newd$x, z = newd$z, fit = as.numeric(fv$fit), se = as.numeric(fv$se.fit),
                too_far_0.05 = ex)

## ---- lme4 ---------------------------------------------------------------
fm <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
rr <- ranef(fm, condVar = TRUE)$Subject
order_levels <- levels(reorder(factor(rownames(rr)), rr[[1]], FUN = mean))
pen <- lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)
rp <- ranef(pen, condVar = TRUE)
pen_order <- lapply(rp, function(x) levels(reorder(factor(rownames(x)), x[[1]], FUN = mean)))
ll <- coef(lmList(Reaction ~ Days | Subject, sleepstudy))
pr <- profile(fm)
prdf <- as.data.frame(pr)
dd <- lme4:::dens(pr)
sr <- residuals(fm, type = "pearson", scaled = TRUE)
yq <- quantile(sr, c(0.25, 0.75), names = FALSE)
xq <- qnorm(c(0.25, 0.75))
slope <- diff(yq) / diff(xq)
lme4_out <- list(
  sleepstudy_order = order_levels,
  penicillin_order = pen_order,
  lmlist = list(level = rownames(ll), intercept = ll[[1]], Days = ll[[2]]),
  profile = list(zeta = prdf$.zeta, par = as.character(prdf$.par),
                 values = lapply(setNames(names(prdf)[2:7], names(prdf)[2:7]), function(v) prdf[[v]])),
  profile_density = list(par = as.character(dd$pnm), value = dd$pval, density = dd$density),
  qq_line = list(intercept = yq[1] - slope * xq[1], slope = slope)
)

## ---- density ------------------------------------------------------------
den <- density(sleepstudy$Reaction)
density_out <- list(x = sleepstudy$Reaction, bw = den$bw, grid = den$x, y = den$y)

write_json(list(r_versions = versions, k_check = k_out, plot_gam = pg_out, vis_gam = vis_out,
                lme4 = lme4_out, density = density_out),
           file.path(out_dir, "plot_reference.json"), digits = 15, auto_unbox = TRUE,
           null = "null", pretty = FALSE)
cat("wrote", file.path(out_dir, "plot_reference.json"), "\n")
