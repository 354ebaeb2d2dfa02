#!/usr/bin/env Rscript
# lavaan 0.6-14 fitMeasures(fit, "all") where the shipped references lack a case (issue 16):
# ML with FIML on incomplete data (the FIML-corrected robust indices, lavaan's version V6) and
# the same across two groups.
# Usage (from the repository root): Rscript tests/data/lavaan/fit_measures/make_fit_measures.R
suppressPackageStartupMessages({ library(lavaan); library(jsonlite) })
here <- "tests/data/lavaan"
out_dir <- file.path(here, "fit_measures")
wai <- read.csv(file.path(here, "wai_sr_sim", "wai_sr_sim_missing.csv"), stringsAsFactors = FALSE)
wai$site <- as.character(wai$site)
model <- paste(readLines(file.path(here, "wai_sr_sim", "wai_sr.lav")), collapse = "\n")
block <- function(fit) list(converged = lavInspect(fit, "converged"),
                            fit = as.list(fitMeasures(fit)))
out <- list(meta = list(lavaan = as.character(packageVersion("lavaan")), model = model,
                        data = "wai_sr_sim/wai_sr_sim_missing.csv"),
            ml_fiml = block(cfa(model, wai, missing = "ml")),
            ml_fiml_site = block(cfa(model, wai, missing = "ml", group = "site")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           file.path(out_dir, "lavaan_fit_measures.json"))
cat("done\n")
