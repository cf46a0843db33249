## mgcv's select = TRUE fit checked by vignettes/gamms-the-mgcv-way.md (section "Removing a term").
##
## Run from the project root:  Rscript tests/reference/gam_vignette_select_reference.R
## Fits the first 2000 rows of data/gamsim_re.csv with and without select = TRUE and
## writes tests/reference/gam_vignette_select.json (edf per smooth, score).

suppressPackageStartupMessages({
  library(mgcv)
  library(jsonlite)
})

d <- read.csv("data/gamsim_re.csv")[1:2000, ]
form <- y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr")
out <- list(r_versions = list(R = R.version.string, mgcv = as.character(packageVersion("mgcv"))),
            formula = paste(deparse(form), collapse = ""), fits = list())
for (sel in c(FALSE, TRUE)) {
  m <- gam(form, data = d, method = "REML", select = sel)
  st <- summary(m)$s.table
  out$fits[[if (sel) "select" else "plain"]] <- list(
    edf = unname(st[, "edf"]), terms = rownames(st), p_value = unname(st[, "p-value"]),
    score = as.numeric(m$gcv.ubre), sp = unname(m$sp))
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/gam_vignette_select.json")
