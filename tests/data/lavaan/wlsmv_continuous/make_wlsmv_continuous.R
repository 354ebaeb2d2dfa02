#!/usr/bin/env Rscript
# lavaan 0.6-14 reference for WLSMV (DWLS with robust SEs and the scaled-shifted test) on
# continuous items: HolzingerSwineford1939 x1-x9, the three-factor model, one group and
# two groups (school).
# Usage (from the repository root): Rscript tests/data/lavaan/wlsmv_continuous/make_wlsmv_continuous.R
suppressPackageStartupMessages({ library(lavaan); library(jsonlite) })
here <- "tests/data/lavaan"
out_dir <- file.path(here, "wlsmv_continuous")
hz <- read.csv(file.path(here, "holzinger1939", "holzinger1939.csv"), stringsAsFactors = FALSE)
model <- paste(readLines(file.path(here, "holzinger1939", "holzinger.lav")), collapse = "\n")
pe <- function(fit) {
  p <- parameterEstimates(fit, remove.nonfree = FALSE)
  p[, intersect(c("lhs", "op", "rhs", "group", "label", "est", "se", "z", "pvalue"), names(p))]
}
std <- function(fit) {
  s <- standardizedSolution(fit, type = "std.all")
  s[, intersect(c("lhs", "op", "rhs", "group", "est.std", "se"), names(s))]
}
block <- function(fit) list(converged = lavInspect(fit, "converged"),
                            meanstructure = lavInspect(fit, "meanstructure"),
                            fit = as.list(fitMeasures(fit)), parameters = pe(fit),
                            standardized = std(fit))
out <- list(meta = list(lavaan = as.character(packageVersion("lavaan")), model = model),
            single = block(cfa(model, hz, estimator = "WLSMV")),
            school = block(cfa(model, hz, estimator = "WLSMV", group = "school")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", dataframe = "rows",
                  pretty = TRUE), file.path(out_dir, "lavaan_wlsmv_continuous.json"))
cat("done\n")
