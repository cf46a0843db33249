## Inverse Gaussian GLMM reference: lme4's glmer and glmmTMB on simulated positive data.
## Run from the repository root: Rscript tests/reference/glmer_invgauss.R
## Writes tests/reference/glmer_invgauss.csv and tests/reference/glmer_invgauss.json.
suppressMessages({library(lme4); library(jsonlite)})
has_tmb <- suppressWarnings(requireNamespace("glmmTMB", quietly = TRUE))
set.seed(20261203)
G <- 40; m <- 8
g <- factor(rep(sprintf("g%02d", seq_len(G)), each = m))
x <- round(runif(G * m), 4)
b <- rnorm(G, sd = 0.3)
mu <- exp(0.5 + 0.8 * x + b[g])
## inverse Gaussian draws (Michael, Schucany & Haas), shape lambda = 1 / dispersion
lambda <- 4
nu <- rnorm(G * m)^2
w <- mu + mu^2 * nu / (2 * lambda) - mu / (2 * lambda) * sqrt(4 * mu * lambda * nu + mu^2 * nu^2)
y <- ifelse(runif(G * m) <= mu / (mu + w), w, mu^2 / w)
d <- data.frame(y = round(y, 6), x = x, g = g)
write.csv(d, "tests/reference/glmer_invgauss.csv", row.names = FALSE)
out <- list()
## lme4 fails on these data with the canonical 1/mu^2 link (PIRLS NaN), so the log link only
for (link in c("log")) {
  st <- NULL
  m1 <- glmer(y ~ x + (1 | g), data = d, family = inverse.gaussian(link = link), start = st,
              control = glmerControl(optimizer = "bobyqa"))
  e <- list(link = link, fixef = as.list(fixef(m1)), fixef_se = as.list(sqrt(diag(as.matrix(vcov(m1))))),
            theta = unname(getME(m1, "theta")), sigma = sigma(m1),
            minus2loglik = -2 * as.numeric(logLik(m1)), deviance = deviance(m1))
  if (has_tmb && link == "log") {
    t1 <- tryCatch(glmmTMB::glmmTMB(y ~ x + (1 | g), data = d, family = inverse.gaussian(link = "log")),
                   error = function(err) NULL)
    if (!is.null(t1)) {
      e$glmmTMB <- list(fixef = as.list(glmmTMB::fixef(t1)$cond), minus2loglik = -2 * as.numeric(logLik(t1)),
                        sigma = sigma(t1), sd = unname(attr(glmmTMB::VarCorr(t1)$cond$g, "stddev")))
    }
  }
  out[[link]] <- e
}
out$versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                     glmmTMB = if (has_tmb) as.character(packageVersion("glmmTMB")) else NA)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/glmer_invgauss.json")
