#!/usr/bin/env Rscript
# lavaan 0.6-14 references for ESEM (efa() blocks with rotation); the tests never call R.
# Usage (from the repository root): Rscript tests/data/lavaan/esem/make_esem.R
# Writes tests/data/lavaan/esem/lavaan_esem.json next to this script. Data: the Holzinger &
# Swineford (1939) file and the simulated WAI-SR file of the sibling folders, and the simulated
# bifactor data of this folder (make_data.py).
# Defaults as lavaan: geomin (epsilon 0.001), oblique, std.ov, 30 random starts, GPA with
# gpa.tol 1e-5, factors ordered by the Asparouhov & Muthen (2009) index, SEs "bordered".
# Target rotations: NA where the key puts an item on a factor (a partially specified target,
# lavaan's "pst"), 0 elsewhere; order.lv.by = "none" so that the factors keep the target's
# order. "tight" cases repeat a fit with gpa.tol 1e-7 (lavaan's own rotation error removed);
# "nostd" rotates the raw loadings (std.ov = FALSE).
suppressPackageStartupMessages({ library(lavaan); library(jsonlite) })
here <- "tests/data/lavaan"
out_file <- file.path(here, "esem", "lavaan_esem.json")
hz <- read.csv(file.path(here, "holzinger1939", "holzinger1939.csv"), stringsAsFactors = FALSE)
wai <- read.csv(file.path(here, "wai_sr_sim", "wai_sr_sim.csv"), stringsAsFactors = FALSE)
bif <- read.csv(file.path(here, "esem", "bifactor_sim.csv"))
set.seed(20240517)

pe <- function(fit) {
  p <- parameterEstimates(fit, remove.nonfree = FALSE)
  keep <- intersect(c("lhs", "op", "rhs", "efa", "est", "se", "z", "pvalue", "ci.lower", "ci.upper"),
                    names(p))
  p[, keep]
}
std <- function(fit) {
  s <- standardizedSolution(fit, type = "std.all")
  s[, intersect(c("lhs", "op", "rhs", "est.std", "se"), names(s))]
}
case <- function(model, data, estimator = "ML", rotation = "geomin", args = list(), ...) {
  fit <- cfa(model, data, estimator = estimator, rotation = rotation, rotation.args = args, ...)
  ra <- args; if (!is.null(ra$target)) ra$target <- unname(ra$target)
  list(model = model, estimator = estimator, rotation = rotation, rotation_args = ra,
       converged = lavInspect(fit, "converged"), npar = fitMeasures(fit, "npar"),
       fit = as.list(fitMeasures(fit)), parameters = pe(fit), standardized = std(fit))
}

hz9 <- paste(sprintf("x%d", 1:9), collapse = " + ")
hz_esem <- paste0('efa("efa")*f1 + efa("efa")*f2 + efa("efa")*f3 =~ ', hz9)
hz_mixed <- paste('efa("ab")*f1 + efa("ab")*f2 =~ x1 + x2 + x3 + x4 + x5 + x6',
                  'speed =~ x7 + x8 + x9', sep = "\n")
# WAI-SR items grouped by the key (Hatcher & Gillaspy 2006): bond, task, goal
key <- list(bond = c(3, 5, 7, 9), task = c(1, 2, 10, 12), goal = c(4, 6, 8, 11))
items <- sprintf("wai_%02d", unlist(key))
wai_esem <- paste0('efa("esem")*bond + efa("esem")*task + efa("esem")*goal =~ ',
                   paste(items, collapse = " + "))
wai_bif <- paste0('efa("esem")*general + efa("esem")*bond + efa("esem")*task + efa("esem")*goal =~ ',
                  paste(items, collapse = " + "))
target <- matrix(0, 12, 3, dimnames = list(items, names(key)))
for (f in names(key)) target[sprintf("wai_%02d", key[[f]]), f] <- NA
bif_target <- cbind(general = NA, target)

out <- list(
  hz_geomin_ml = case(hz_esem, hz),
  hz_geomin_ml_tight = case(hz_esem, hz, args = list(gpa.tol = 1e-7)),
  hz_oblimin_ml = case(hz_esem, hz, rotation = "oblimin"),
  hz_geomin_mlr = case(hz_esem, hz, estimator = "MLR"),
  hz_geomin_orthogonal_ml = case(hz_esem, hz, args = list(orthogonal = TRUE)),
  hz_geomin_nostd_ml = case(hz_esem, hz, args = list(std.ov = FALSE)),
  hz_mixed_ml = case(hz_mixed, hz),
  wai_geomin_ml = case(wai_esem, wai),
  wai_target_ml = case(wai_esem, wai, rotation = "target",
                       args = list(target = target, order.lv.by = "none")),
  wai_geomin_wlsmv = case(wai_esem, wai, estimator = "WLSMV", ordered = items),
  bifactor_esem_target_ml = case(wai_bif, bif, rotation = "target",
                                 args = list(target = bif_target, orthogonal = TRUE,
                                             order.lv.by = "none")),
  bifactor_esem_target_mlr = case(wai_bif, bif, estimator = "MLR", rotation = "target",
                                  args = list(target = bif_target, orthogonal = TRUE,
                                              order.lv.by = "none"))
)
out$software <- sprintf("lavaan %s, R %s", packageVersion("lavaan"), getRversion())
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", dataframe = "rows",
                  pretty = TRUE), out_file)
cat("wrote", out_file, "\n")
