# Reference values from lme4 (and glmmTMB, for exact-Hessian standard errors)
# for pymlm's glmer tests.
# Run from the project root:  Rscript tests/reference/make_glmer_reference.R
# Writes tests/reference/glmer_reference.json (R and package versions inside)
# and the small simulated data sets tests/reference/glmer_*.csv it fits.
#
# Per case: the call (formula, family, link, nAGQ, weights, data file), lme4's
# estimates and criteria, heads of ranef (with conditional variances), fitted
# values and the four kinds of residuals, predictions on a few new rows, the
# value of lme4's deviance function at the optimum and at a perturbed point,
# the printed fit and summary, and glmmTMB's fit of the same model where
# glmmTMB has the family. Printed lines are at R's default width of 80.
# A case's "data" names its file: data/<name>.csv (a bundled data set) or
# tests/reference/<name>.csv (glmer_*, simulated here).
suppressPackageStartupMessages({library(lme4); library(glmmTMB); library(jsonlite)})
stopifnot(getOption("width") == 80)

source("tests/reference/load_data.R")  # load_data(name): data/<name>.csv with R's levels

## ---- small simulated data sets, written next to this script -------------
write_data <- function(d, name) {
  write.csv(d, file.path("tests/reference", paste0("glmer_", name, ".csv")), row.names = FALSE)
  invisible(d)
}
read_data <- function(name, factors) {
  d <- read.csv(file.path("tests/reference", paste0("glmer_", name, ".csv")), stringsAsFactors = FALSE)
  for (col in names(factors)) d[[col]] <- factor(d[[col]], levels = factors[[col]])
  d
}
lev <- function(prefix, k) sprintf("%s%02d", prefix, seq_len(k))

# Bernoulli: 0/1, a two-level factor (first level = failure) and a logical
set.seed(101)
G <- 40; m <- 6
d <- data.frame(g = rep(lev("g", G), each = m), x = round(rnorm(G * m), 4))
eta <- -0.3 + 0.7 * d$x + rnorm(G, sd = 0.9)[rep(seq_len(G), each = m)]
d$y <- rbinom(G * m, 1, plogis(eta))
d$yf <- c("no", "yes")[d$y + 1]
d$yl <- d$y == 1
write_data(d, "bernoulli")

# Bernoulli with no group effect: lme4's fit is singular (theta = 0)
set.seed(116)
G <- 15; m <- 8
d <- data.frame(g = rep(lev("g", G), each = m), x = round(rnorm(G * m), 4))
d$y <- rbinom(G * m, 1, plogis(0.2 + 0.5 * d$x))
write_data(d, "singular")

# Poisson counts with an exposure (offset log(t))
set.seed(102)
G <- 30; m <- 8
d <- data.frame(g = rep(lev("g", G), each = m), x = round(runif(G * m, -1, 1), 4),
                t = round(runif(G * m, 0.5, 4), 3))
eta <- log(d$t) + 0.4 + 0.6 * d$x + rnorm(G, sd = 0.5)[rep(seq_len(G), each = m)]
d$y <- rpois(G * m, exp(eta))
write_data(d, "poisson_offset")

# Gamma and inverse Gaussian responses (log link), positive continuous
set.seed(103)
G <- 20; m <- 10
d <- data.frame(g = rep(lev("g", G), each = m), x = round(runif(G * m, 0, 2), 4))
mu <- exp(1 + 0.5 * d$x + rnorm(G, sd = 0.4)[rep(seq_len(G), each = m)])
d$y <- round(rgamma(G * m, shape = 4, scale = mu / 4), 5)
# inverse Gaussian by Michael, Schucany and Haas (1976), dispersion phi = 0.2
phi <- 0.2
nu <- rnorm(G * m)^2
x1 <- mu + mu^2 * phi * nu / 2 - mu / 2 * sqrt(4 * mu * phi * nu + (mu * phi * nu)^2)
d$yig <- round(ifelse(runif(G * m) <= mu / (mu + x1), x1, mu^2 / x1), 5)
write_data(d, "positive")

# crossed binomial: subjects x items, Bernoulli
set.seed(104)
S <- 30; I <- 20
d <- expand.grid(item = lev("i", I), subj = lev("s", S), stringsAsFactors = FALSE)[, c("subj", "item")]
d$x <- rep(c(-0.5, 0.5), length.out = nrow(d))
eta <- 0.2 + 0.8 * d$x + rnorm(S, sd = 0.8)[match(d$subj, lev("s", S))] +
  rnorm(I, sd = 0.5)[match(d$item, lev("i", I))]
d$y <- rbinom(nrow(d), 1, plogis(eta))
write_data(d, "crossed")

# nested Poisson: plots within sites
set.seed(105)
d <- expand.grid(obs = 1:5, plot = c("a", "b", "c", "d"), site = lev("s", 10), stringsAsFactors = FALSE)
d <- d[, c("site", "plot", "obs")]
d$x <- round(rnorm(nrow(d)), 4)
sp <- paste(d$site, d$plot)
eta <- 1 + 0.3 * d$x + rnorm(10, sd = 0.6)[match(d$site, lev("s", 10))] +
  rnorm(40, sd = 0.4)[match(sp, unique(sp))]
d$y <- rpois(nrow(d), exp(eta))
d$obs <- NULL
write_data(d, "nested")

# a vector random effect: the simulated Bernoulli model with 200 groups
source("/work/shared/tools/glmm_sim.R")
d <- sim_bin(G = 200L)
d$x <- signif(d$x, 8)
write_data(d, "sim_bin")

bernoulli <- read_data("bernoulli", list(g = lev("g", 40), yf = c("no", "yes")))
singular <- read_data("singular", list(g = lev("g", 15)))
poisson_offset <- read_data("poisson_offset", list(g = lev("g", 30)))
positive <- read_data("positive", list(g = lev("g", 20)))
crossed <- read_data("crossed", list(subj = lev("s", 30), item = lev("i", 20)))
nested <- read_data("nested", list(site = lev("s", 10), plot = c("a", "b", "c", "d")))
sim_bin200 <- read_data("sim_bin", list(g = as.character(1:200)))
cbpp <- load_data("cbpp")
grouseticks <- load_data("grouseticks")

## ---- what is recorded per fit ---------------------------------------------
printed <- function(x) {
  out <- character()
  tc <- textConnection("out", "w", local = TRUE)
  sink(tc)
  sink(tc, type = "message")
  print(x)
  sink(type = "message")
  sink()
  close(tc)
  out
}
head_n <- 8
vec <- function(x) unname(as.numeric(x))

ranef_block <- function(m, nlev = 5) {
  rr <- ranef(m, condVar = TRUE)
  res <- list()
  for (g in names(rr)) {
    df <- rr[[g]]
    pv <- attr(df, "postVar")
    n <- min(nlev, nrow(df))
    res[[g]] <- lapply(seq_len(n), function(i)
      list(level = rownames(df)[i], modes = as.list(df[i, , drop = FALSE]),
           condVar = matrix(pv[, , i], nrow = dim(pv)[1])))
  }
  res
}

coef_block <- function(m, nlev = 3) {
  cc <- coef(m)
  lapply(cc, function(df) lapply(seq_len(min(nlev, nrow(df))), function(i)
    c(list(level = rownames(df)[i]), as.list(df[i, , drop = FALSE]))))
}

# lme4's deviance function of the fitted model: with nAGQ = 0 it takes theta
# (beta from PIRLS), otherwise c(theta, beta); values at the optimum and at a
# point 5% (theta) and 0.05 (beta) away
devfun_block <- function(m, call) {
  nAGQ <- m@devcomp$dims[["nAGQ"]]
  call$devFunOnly <- TRUE
  df <- suppressWarnings(eval(call, globalenv()))
  th <- getME(m, "theta")
  be <- fixef(m)
  shift <- 0.05 * rep(c(1, -1), length.out = length(be))
  if (nAGQ == 0) {
    pt_opt <- th
    pt <- th * 1.05 + 0.01
  } else {
    pt_opt <- c(th, be)
    pt <- c(th * 1.05 + 0.01, be + shift)
  }
  list(args = if (nAGQ == 0) "theta" else "theta_beta", at_opt = vec(pt_opt), value_at_opt = df(pt_opt),
       at = vec(pt), value = df(pt))
}

# glmmTMB's fit of the same model (Laplace, exact Hessian of the marginal
# likelihood for the standard errors)
tmb_block <- function(formula, data_name, family, weights = NULL) {
  call <- bquote(glmmTMB(.(formula), data = .(as.name(data_name)), family = .(family)))
  if (!is.null(weights)) call$weights <- as.name(weights)
  tryCatch({
    t <- eval(call, globalenv())
    v <- vcov(t)$cond
    vc <- VarCorr(t)$cond
    list(fixef = as.list(fixef(t)$cond), fixef_se = as.list(sqrt(diag(v))), vcov = unname(v),
         logLik = as.numeric(logLik(t)), AIC = AIC(t), BIC = BIC(t),
         sigma = sigma(t), family = stats::family(t)$family,
         sd = lapply(vc, function(s) vec(attr(s, "stddev"))),
         pdHess = isTRUE(t$sdr$pdHess))
  }, error = function(e) list(error = conditionMessage(e)))
}

fit_block <- function(m, newdata) {
  vc <- as.data.frame(VarCorr(m))
  fam <- stats::family(m)
  out <- list(
    formula = paste(deparse(formula(m)), collapse = " "),
    family = fam$family, link = fam$link,
    nAGQ = m@devcomp$dims[["nAGQ"]],
    nobs = nobs(m),
    ngroups = as.list(ngrps(m)),
    fixef = as.list(fixef(m)),
    fixef_se = as.list(sqrt(diag(as.matrix(vcov(m))))),
    vcov = unname(as.matrix(vcov(m))),
    theta = vec(getME(m, "theta")),
    theta_names = names(getME(m, "theta")),
    sigma = sigma(m),
    varcorr = lapply(seq_len(nrow(vc)), function(i) as.list(vc[i, ])),
    logLik = as.numeric(logLik(m)),
    df = attr(logLik(m), "df"),
    AIC = AIC(m), BIC = BIC(m),
    deviance = deviance(m),
    minus2loglik = -2 * as.numeric(logLik(m)),
    df_resid = df.residual(m),
    is_singular = isSingular(m),
    u_head = head(vec(getME(m, "u")), head_n),
    ranef = ranef_block(m),
    coef = coef_block(m),
    fitted_head = head(vec(fitted(m)), head_n),
    eta_head = head(vec(predict(m, type = "link")), head_n),
    residuals_head = list(
      deviance = head(vec(residuals(m, type = "deviance")), head_n),
      pearson = head(vec(residuals(m, type = "pearson")), head_n),
      response = head(vec(residuals(m, type = "response")), head_n),
      working = head(vec(residuals(m, type = "working")), head_n)),
    residuals_sumsq = list(
      deviance = sum(residuals(m, type = "deviance")^2),
      pearson = sum(residuals(m, type = "pearson")^2)),
    print = printed(m),
    summary = printed(summary(m)),
    # the whole fit, to rebuild lme4's optimum without refitting: u and b in
    # lme4's layout, per grouping factor the conditional variances (levels
    # first), and the response, prior weights and offset as lme4 holds them
    full = list(
      u = vec(getME(m, "u")), b = vec(getME(m, "b")),
      condVar = lapply(ranef(m, condVar = TRUE), function(df) {
        pv <- attr(df, "postVar")
        lapply(seq_len(dim(pv)[3]), function(i) matrix(pv[, , i], nrow = dim(pv)[1]))
      }),
      y = vec(m@resp$y), prior_weights = vec(m@resp$weights), offset = vec(m@resp$offset),
      eta = vec(m@resp$eta), mu = vec(m@resp$mu))
  )
  if (!is.null(newdata)) {
    out$newdata <- newdata
    out$predict <- list(
      link = vec(predict(m, newdata = newdata, type = "link", allow.new.levels = TRUE)),
      response = vec(predict(m, newdata = newdata, type = "response", allow.new.levels = TRUE)),
      link_fixed = vec(predict(m, newdata = newdata, type = "link", re.form = NA)),
      response_fixed = vec(predict(m, newdata = newdata, type = "response", re.form = NA)))
  }
  out
}

# data_name: a data frame in the global environment (the name the printed
# fit shows after "Data:"); family: the family as R code; weights: a column
cases <- list()
add_case <- function(name, formula, data_name, file, family, nAGQ = 1L, weights = NULL,
                     newdata = NULL, tmb_family = NULL, nb = FALSE) {
  environment(formula) <- globalenv()
  call <- if (nb) {
    bquote(glmer.nb(.(formula), data = .(as.name(data_name))))
  } else {
    bquote(glmer(.(formula), data = .(as.name(data_name)), family = .(family), nAGQ = .(nAGQ)))
  }
  if (!is.null(weights)) call$weights <- as.name(weights)
  t0 <- proc.time()[["elapsed"]]
  m <- suppressWarnings(eval(call, globalenv()))
  secs <- proc.time()[["elapsed"]] - t0
  res <- c(list(data = file, weights = weights, call = paste(deparse(call), collapse = " "),
                fit_seconds = secs, warnings = m@optinfo$conv$lme4$messages),
           fit_block(m, newdata))
  if (nb) {
    res$nb_theta <- getME(m, "glmer.nb.theta")
    # lme4's deviance function at the final shape
    call <- bquote(glmer(.(formula), data = .(as.name(data_name)),
                         family = MASS::negative.binomial(.(res$nb_theta))))
  }
  res$devfun <- devfun_block(m, call)
  if (!is.null(tmb_family)) res$glmmTMB <- tmb_block(formula, data_name, tmb_family, weights)
  cases[[name]] <<- res
  cat(name, "fitted in", secs, "s\n")
  invisible(m)
}

## ---- the cases ------------------------------------------------------------
nd_cbpp <- data.frame(period = factor(c("1", "2", "3", "4"), levels = levels(cbpp$period)),
                      herd = factor(c("1", "5", "15", "99"), levels = c(levels(cbpp$herd), "99")),
                      size = c(10, 20, 5, 12), incidence = c(1, 2, 0, 3))
f_cbpp <- cbind(incidence, size - incidence) ~ period + (1 | herd)
m_cbpp <- add_case("cbpp_laplace", f_cbpp, "cbpp", "cbpp", quote(binomial), newdata = nd_cbpp,
                   tmb_family = quote(binomial))
add_case("cbpp_agq25", f_cbpp, "cbpp", "cbpp", quote(binomial), nAGQ = 25L, newdata = nd_cbpp)
add_case("cbpp_nagq0", f_cbpp, "cbpp", "cbpp", quote(binomial), nAGQ = 0L, newdata = nd_cbpp)
add_case("cbpp_proportion_weights", incidence / size ~ period + (1 | herd), "cbpp", "cbpp", quote(binomial),
         weights = "size", newdata = nd_cbpp, tmb_family = quote(binomial))

add_case("cbpp_null", cbind(incidence, size - incidence) ~ 1 + (1 | herd), "cbpp", "cbpp", quote(binomial))

# likelihood-ratio test of period, and a refit on a new response
m0_cbpp <- glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd), data = cbpp, family = binomial)
m1_cbpp <- m_cbpp
a <- anova(m0_cbpp, m1_cbpp)
cases$cbpp_anova <- list(
  formulas = c(paste(deparse(formula(m0_cbpp)), collapse = " "), paste(deparse(formula(m1_cbpp)), collapse = " ")),
  npar = a$npar, AIC = a$AIC, BIC = a$BIC, logLik = a$logLik, deviance = a$deviance,
  Chisq = a$Chisq, Df = a$Df, p = a[["Pr(>Chisq)"]], print = printed(a))
succ <- pmin(cbpp$size, cbpp$incidence + 1)
mr <- refit(m_cbpp, newresp = cbind(succ, cbpp$size - succ))
cases$cbpp_refit <- list(newresp_successes = succ, fixef = as.list(fixef(mr)), theta = vec(getME(mr, "theta")),
                         logLik = as.numeric(logLik(mr)))

nd_gt <- data.frame(YEAR = factor(c("95", "96", "97"), levels = levels(grouseticks$YEAR)),
                    HEIGHT = c(440, 470, 500),
                    BROOD = factor(c("501", "502", "503"), levels = levels(grouseticks$BROOD)),
                    INDEX = factor(c("1", "2", "3"), levels = levels(grouseticks$INDEX)),
                    LOCATION = factor(c("32", "32", "36"), levels = levels(grouseticks$LOCATION)))
add_case("grouseticks_poisson", TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION),
         "grouseticks", "grouseticks", quote(poisson), newdata = nd_gt, tmb_family = quote(poisson))

nd_off <- data.frame(x = c(-0.5, 0, 0.8), t = c(1, 2, 3), g = c("g01", "g02", "new"))
add_case("poisson_offset", y ~ x + offset(log(t)) + (1 | g), "poisson_offset", "glmer_poisson_offset",
         quote(poisson), newdata = nd_off, tmb_family = quote(poisson))

nd_bern <- data.frame(x = c(-1, 0, 1.5), g = c("g01", "g02", "new"))
add_case("bernoulli_01", y ~ x + (1 | g), "bernoulli", "glmer_bernoulli", quote(binomial), newdata = nd_bern,
         tmb_family = quote(binomial))
add_case("bernoulli_factor", yf ~ x + (1 | g), "bernoulli", "glmer_bernoulli", quote(binomial),
         newdata = nd_bern)
add_case("bernoulli_logical", yl ~ x + (1 | g), "bernoulli", "glmer_bernoulli", quote(binomial))
add_case("bernoulli_singular", y ~ x + (1 | g), "singular", "glmer_singular", quote(binomial))

nd_pos <- data.frame(x = c(0.2, 1, 1.8), g = c("g01", "g02", "new"))
add_case("gamma_log", y ~ x + (1 | g), "positive", "glmer_positive", quote(Gamma(link = "log")),
         newdata = nd_pos, tmb_family = quote(Gamma(link = "log")))
add_case("inverse_gaussian_log", yig ~ x + (1 | g), "positive", "glmer_positive",
         quote(inverse.gaussian(link = "log")), newdata = nd_pos)

add_case("glmer_nb_grouseticks", TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD), "grouseticks", "grouseticks",
         NULL, nb = TRUE, newdata = nd_gt, tmb_family = quote(nbinom2))

nd_cr <- data.frame(x = c(-0.5, 0.5), subj = c("s01", "s02"), item = c("i01", "new"))
add_case("crossed_binomial", y ~ x + (1 | subj) + (1 | item), "crossed", "glmer_crossed", quote(binomial),
         newdata = nd_cr, tmb_family = quote(binomial))
nd_ne <- data.frame(x = c(0, 1), site = c("s01", "s02"), plot = c("a", "b"))
add_case("nested_poisson", y ~ x + (1 | site/plot), "nested", "glmer_nested", quote(poisson), newdata = nd_ne,
         tmb_family = quote(poisson))

nd_sim <- data.frame(x = c(-1, 0, 1), g = c("1", "2", "new"))
add_case("sim_bin_slopes", y ~ x + (1 + x | g), "sim_bin200", "glmer_sim_bin", quote(binomial),
         newdata = nd_sim, tmb_family = quote(binomial))

out <- list(
  cases = cases,
  width = getOption("width"),
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  glmmTMB = as.character(packageVersion("glmmTMB")),
                  TMB = as.character(packageVersion("TMB")),
                  Matrix = as.character(packageVersion("Matrix")))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/reference/glmer_reference.json")
cat("wrote tests/reference/glmer_reference.json\n")
