#!/usr/bin/env Rscript
# lavaan 0.6-14 references for the model syntax of issue 16: defined parameters (:=) with
# delta-method SEs, inequality constraints, group-specific labels c(a, b)*x and std.lv.
# Usage (from the repository root): Rscript tests/data/lavaan/syntax/make_syntax.R
suppressPackageStartupMessages({ library(lavaan); library(jsonlite) })
here <- "tests/data/lavaan"
out_dir <- file.path(here, "syntax")
hz <- read.csv(file.path(here, "holzinger1939", "holzinger1939.csv"), stringsAsFactors = FALSE)
wai <- read.csv(file.path(here, "wai_sr_sim", "wai_sr_sim.csv"), stringsAsFactors = FALSE)
wai$site <- as.character(wai$site)
wai_model <- paste(readLines(file.path(here, "wai_sr_sim", "wai_sr.lav")), collapse = "\n")

pe <- function(fit) {
  p <- parameterEstimates(fit, remove.nonfree = FALSE)
  p[, intersect(c("lhs", "op", "rhs", "group", "label", "est", "se", "z", "pvalue",
                  "ci.lower", "ci.upper"), names(p))]
}
std <- function(fit) {
  s <- standardizedSolution(fit, type = "std.all")
  s[, intersect(c("lhs", "op", "rhs", "group", "label", "est.std", "se"), names(s))]
}
block <- function(model, fit, ...) c(list(model = model, options = list(...)),
  list(converged = lavInspect(fit, "converged"), fit = as.list(fitMeasures(fit)),
       parameters = pe(fit), standardized = std(fit)))

hz_def <- paste("visual =~ x1 + l2*x2 + l3*x3", "textual =~ x4 + l5*x5 + l6*x6",
                "speed =~ x7 + x8 + x9", "ratio := l2 / l3", "gap := l5 - l6",
                "prod := l2 * l3 + exp(l5) / 10", sep = "\n")
hz_ineq <- paste("visual =~ x1 + l2*x2 + l3*x3", "textual =~ x4 + x5 + x6",
                 "speed =~ x7 + x8 + x9", "l3 > 0.9", "l2 < 2", sep = "\n")
hz_group <- paste("visual =~ x1 + c(a, b)*x2 + c(a, c)*x3", "textual =~ x4 + x5 + x6",
                  "speed =~ x7 + c(s8, s8)*x8 + x9", "diff := b - c", sep = "\n")
wai_def <- paste(wai_model, "tb := task ~~ goal", sep = "\n")
wai_lab <- gsub("task =~ wai_01 \\+ wai_02", "task =~ wai_01 + t2*wai_02", wai_model)
wai_lab <- paste(wai_lab, "half := t2 / 2", sep = "\n")
wai_group <- gsub("task =~ wai_01 \\+ wai_02", "task =~ wai_01 + c(a, b)*wai_02", wai_model)
wai_group <- paste(wai_group, "diff := a - b", sep = "\n")
wai_ineq <- gsub("task =~ wai_01 \\+ wai_02", "task =~ wai_01 + t2*wai_02", wai_model)
wai_ineq <- paste(wai_ineq, "t2 > 1.2", sep = "\n")

out <- list(
  meta = list(lavaan = as.character(packageVersion("lavaan"))),
  defined_ml = block(hz_def, cfa(hz_def, hz)),
  defined_mlr = block(hz_def, cfa(hz_def, hz, estimator = "MLR"), estimator = "MLR"),
  inequality_ml = block(hz_ineq, cfa(hz_ineq, hz)),
  group_labels_ml = block(hz_group, cfa(hz_group, hz, group = "school"), group = "school"),
  std_lv_group_ml = block(paste(readLines(file.path(here, "holzinger1939", "holzinger.lav")),
                                collapse = "\n"),
                          cfa(paste(readLines(file.path(here, "holzinger1939", "holzinger.lav")),
                                    collapse = "\n"), hz, group = "school", std.lv = TRUE),
                          group = "school", std.lv = TRUE),
  std_lv_metric_ml = block(paste(readLines(file.path(here, "holzinger1939", "holzinger.lav")),
                                 collapse = "\n"),
                           cfa(paste(readLines(file.path(here, "holzinger1939", "holzinger.lav")),
                                     collapse = "\n"), hz, group = "school", std.lv = TRUE,
                               group.equal = c("loadings", "intercepts")),
                           group = "school", std.lv = TRUE,
                           group.equal = c("loadings", "intercepts")),
  std_lv_wlsmv = block(wai_model, cfa(wai_model, wai, ordered = TRUE, estimator = "WLSMV",
                                      std.lv = TRUE), estimator = "WLSMV", std.lv = TRUE),
  defined_wlsmv = block(wai_lab, cfa(wai_lab, wai, ordered = TRUE, estimator = "WLSMV"),
                        estimator = "WLSMV"),
  inequality_wlsmv = block(wai_ineq, cfa(wai_ineq, wai, ordered = TRUE, estimator = "WLSMV"),
                           estimator = "WLSMV"),
  inequality_mlr = block(wai_ineq, cfa(wai_ineq, wai, estimator = "MLR"), estimator = "MLR"),
  group_labels_wlsmv = block(wai_group, cfa(wai_group, wai, ordered = TRUE, estimator = "WLSMV",
                                            group = "site"), estimator = "WLSMV", group = "site"))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", dataframe = "rows",
                  pretty = TRUE), file.path(out_dir, "lavaan_syntax.json"))
cat("done\n")
