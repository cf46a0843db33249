# load_data(name): a bundled data set (data/<name>.csv) with the factor columns and
# level orders of data/factor_levels.json, as pymlm.datasets.load() reads it.
# Sourced by the reference scripts, run from the project root:
#   source("tests/reference/load_data.R")
suppressPackageStartupMessages(library(jsonlite))

load_data <- local({
  levels_json <- fromJSON("data/factor_levels.json", simplifyVector = FALSE)
  function(name) {
    d <- read.csv(file.path("data", paste0(name, ".csv")), stringsAsFactors = FALSE)
    spec <- levels_json[[name]]
    for (col in names(spec)) {
      d[[col]] <- factor(as.character(d[[col]]), levels = unlist(spec[[col]]$levels),
                         ordered = isTRUE(spec[[col]]$ordered))
    }
    d
  }
})
