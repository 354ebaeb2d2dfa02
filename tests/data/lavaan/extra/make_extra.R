#!/usr/bin/env Rscript
# Extra lavaan 0.6-14 reference numbers for tests/sem (written while developing; tests never call R).
# Usage (from the repository root): Rscript tests/data/lavaan/extra/make_extra.R
# Writes tests/data/lavaan/extra/*.json next to this script.
suppressPackageStartupMessages({ library(lavaan); library(jsonlite); library(semTools) })
here <- "tests/data/lavaan"
out_dir <- file.path(here, "extra")
hz <- read.csv(file.path(here, "holzinger1939", "holzinger1939.csv"), stringsAsFactors = FALSE)
wai <- read.csv(file.path(here, "wai_sr_sim", "wai_sr_sim.csv"), stringsAsFactors = FALSE)
wai$site <- as.character(wai$site)
hz_model <- paste(readLines(file.path(here, "holzinger1939", "holzinger.lav")), collapse = "\n")
wai_model <- paste(readLines(file.path(here, "wai_sr_sim", "wai_sr.lav")), collapse = "\n")

pe <- function(fit) {
  p <- parameterEstimates(fit, remove.nonfree = FALSE)
  keep <- intersect(c("lhs", "op", "rhs", "group", "label", "est", "se", "z", "pvalue",
                      "ci.lower", "ci.upper"), names(p))
  p[, keep]
}
std <- function(fit) {
  s <- standardizedSolution(fit, type = "std.all")
  keep <- intersect(c("lhs", "op", "rhs", "group", "est.std", "se", "ci.lower", "ci.upper"), names(s))
  s[, keep]
}
block <- function(fit) list(converged = lavInspect(fit, "converged"),
                            fit = as.list(fitMeasures(fit)), parameters = pe(fit),
                            standardized = std(fit))
write <- function(x, name) writeLines(toJSON(x, auto_unbox = TRUE, digits = NA, na = "null",
                                             dataframe = "rows", pretty = TRUE),
                                      file.path(out_dir, name))
lrt <- function(...) { t <- as.data.frame(lavTestLRT(...)); t <- cbind(model = rownames(t), t)
  names(t) <- sub("^Pr\\(>Chisq\\)$", "Pr_gt_Chisq", gsub(" ", "_", names(t))); rownames(t) <- NULL; t }

# 1. modification indices (ML and MLR), holzinger and wai
for (est in c("ML", "MLR")) {
  f <- cfa(hz_model, hz, estimator = est)
  mi <- modindices(f, sort. = TRUE)
  write(list(model = hz_model, estimator = est, modindices = mi[, c("lhs", "op", "rhs", "mi", "epc", "sepc.all")]),
        sprintf("holzinger_modindices_%s.json", tolower(est)))
}
# 2. strict invariance ladder, ML (holzinger by school; wai by site) and MLR (wai by site)
ladder <- function(model, dat, group, est) {
  fits <- list(
    configural = cfa(model, dat, group = group, estimator = est),
    metric = cfa(model, dat, group = group, estimator = est, group.equal = "loadings"),
    scalar = cfa(model, dat, group = group, estimator = est, group.equal = c("loadings", "intercepts")),
    strict = cfa(model, dat, group = group, estimator = est,
                 group.equal = c("loadings", "intercepts", "residuals")))
  res <- lapply(fits, function(f) list(fit = as.list(fitMeasures(f)), parameters = pe(f)))
  res$lrt <- lrt(fits$configural, fits$metric, fits$scalar, fits$strict,
                 model.names = names(fits))
  # partial invariance: score tests of the scalar model's equality constraints
  sc <- lavTestScore(fits$scalar)
  res$score_scalar <- list(uni = as.data.frame(sc$uni),
                           partable = parTable(fits$scalar)[, c("lhs", "op", "rhs", "group", "plabel", "label")])
  res
}
write(list(model = hz_model, estimator = "ML", group = "school", invariance = ladder(hz_model, hz, "school", "ML")),
      "holzinger_invariance_strict_ml.json")
write(list(model = wai_model, estimator = "ML", group = "site", invariance = ladder(wai_model, wai, "site", "ML")),
      "wai_invariance_strict_ml.json")
write(list(model = wai_model, estimator = "MLR", group = "site", invariance = ladder(wai_model, wai, "site", "MLR")),
      "wai_invariance_strict_mlr.json")
# 3. competing models on wai: one factor, two factor, bifactor (orthogonal), second order
items <- sprintf("wai_%02d", 1:12)
models <- list(
  one_factor = paste("general =~", paste(items, collapse = " + ")),
  two_factor = "bond =~ wai_03 + wai_05 + wai_07 + wai_09\ngoal_task =~ wai_04 + wai_06 + wai_08 + wai_11 + wai_01 + wai_02 + wai_10 + wai_12",
  bifactor = paste0("general =~ ", paste(items, collapse = " + "), "\n", wai_model),
  second_order = paste0(wai_model, "\ngeneral =~ bond + task + goal"))
comp <- list()
for (nm in names(models)) for (est in c("ML", "MLR")) {
  f <- if (nm == "bifactor") cfa(models[[nm]], wai, estimator = est, orthogonal = TRUE) else
    cfa(models[[nm]], wai, estimator = est)
  comp[[paste(nm, est, sep = "_")]] <- c(list(model = models[[nm]], orthogonal = nm == "bifactor"), block(f))
}
f3 <- cfa(wai_model, wai, estimator = "MLR"); f2 <- cfa(models$two_factor, wai, estimator = "MLR")
f1 <- cfa(models$one_factor, wai, estimator = "MLR")
comp$lrt_mlr <- lrt(f3, f2, f1, model.names = c("three", "two", "one"))
f3m <- cfa(wai_model, wai); f2m <- cfa(models$two_factor, wai); f1m <- cfa(models$one_factor, wai)
comp$lrt_ml <- lrt(f3m, f2m, f1m, model.names = c("three", "two", "one"))
comp$htmt <- as.data.frame(htmt(wai_model, wai))
write(comp, "wai_competing_models.json")
# 4. std.lv, correlated residuals, labels and fixed values on holzinger
hz2 <- "visual =~ x1 + a*x2 + a*x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9\nx7 ~~ x8\nx1 ~~ 0.2*x4"
write(list(std_lv = c(list(model = hz_model), block(cfa(hz_model, hz, std.lv = TRUE))),
           syntax = c(list(model = hz2), block(cfa(hz2, hz)))), "holzinger_syntax.json")
cat("done\n")
