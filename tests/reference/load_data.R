## load_data(name): a bundled data set (data/<name>.csv) with R's factor levels.
##
## Sourced by the reference scripts in this folder (run from the project root):
## every factor column of data/factor_levels.json gets its recorded level
## order (and ordered flag), so R sees the same factors lme4 ships.
## Needs jsonlite.

levels_json <- jsonlite::fromJSON("data/factor_levels.json", simplifyVector = FALSE)
load_data <- function(name) {
  d <- read.csv(file.path("data", paste0(name, ".csv")), stringsAsFactors = FALSE)
  spec <- levels_json[[name]]
  for (col in names(spec)) {
    d[[col]] <- factor(as.character(d[[col]]), levels = unlist(spec[[col]]$levels),
                       ordered = isTRUE(spec[[col]]$ordered))
  }
  d
}
