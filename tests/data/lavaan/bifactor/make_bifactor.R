#!/usr/bin/env Rscript
# lavaan 0.6-14 / semTools 0.5-6 references for the bifactor indices (issue 17, part 2); the
# tests never call R. Usage (from the repository root):
#   Rscript tests/data/lavaan/bifactor/make_bifactor.R
# Writes tests/data/lavaan/bifactor/bifactor_indices.json next to this script.
# Data: tests/data/lavaan/esem/bifactor_sim.csv (make_data.py there), WAI-SR key.
# omega_total, omega_h and omega_hs are semTools::compRelSEM(obs.var = FALSE, return.total =
# TRUE) of the bifactor model fitted to the standardized items (ML is scale invariant and
# reproduces the item variances, so this is the reliability of the sum of standardized items,
# Rodriguez, Reise & Haviland 2016): "total" is omega_total, the general factor's omega is
# omega_h and a specific factor's is omega_hs. ecv, puc and h are computed below by their
# formulas from lavaan's standardized loadings (std.all).
suppressPackageStartupMessages({ library(lavaan); library(semTools); library(jsonlite) })
here <- "tests/data/lavaan"
bif <- read.csv(file.path(here, "esem", "bifactor_sim.csv"))
key <- list(bond = c(3, 5, 7, 9), task = c(1, 2, 10, 12), goal = c(4, 6, 8, 11))
items <- sprintf("wai_%02d", 1:12)
groups <- lapply(key, function(k) sprintf("wai_%02d", k))
model <- paste(c(paste("general =~", paste(items, collapse = " + ")),
                 sapply(names(groups), function(f) paste(f, "=~", paste(groups[[f]], collapse = " + ")))),
               collapse = "\n")

indices <- function(L, general, groups) {
  # L: standardized loadings (items x factors, rows named by item)
  common <- sum(L^2)
  h <- sapply(colnames(L), function(f) { l2 <- L[, f]^2; 1 / (1 + 1 / sum(l2 / (1 - l2))) })
  n <- nrow(L); within <- sum(sapply(groups, function(g) length(g) * (length(g) - 1)))
  list(ecv = sum(L[, general]^2) / common, puc = 1 - within / (n * (n - 1)), h = as.list(h))
}
std_loadings <- function(fit) {
  s <- standardizedSolution(fit)
  s <- s[s$op == "=~", ]
  L <- matrix(0, 12, 4, dimnames = list(items, c("general", names(groups))))
  for (k in seq_len(nrow(s))) L[s$rhs[k], s$lhs[k]] <- s$est.std[k]
  L
}

out <- list()
for (est in c("ML", "MLR")) {
  fit <- cfa(model, bif, estimator = est, orthogonal = TRUE)
  fit_z <- cfa(model, as.data.frame(scale(bif)), estimator = est, orthogonal = TRUE)
  rel <- compRelSEM(fit_z, obs.var = FALSE, return.total = TRUE)
  out[[paste0("bifactor_", tolower(est))]] <- c(
    list(model = model, estimator = est, orthogonal = TRUE,
         compRelSEM = as.list(rel), fit = as.list(fitMeasures(fit, c("npar", "chisq", "df")))),
    indices(std_loadings(fit), "general", groups))
}
# WLSMV on the items cut into five categories: indices on the latent-response scale
# (compRelSEM with ord.scale = FALSE)
cuts <- c(-Inf, -1.2, -0.4, 0.4, 1.2, Inf)
bif_cat <- as.data.frame(lapply(bif, function(x) as.integer(cut(x, cuts))))
write.csv(bif_cat, file.path(here, "bifactor", "bifactor_sim_5cat.csv"), row.names = FALSE)
fit <- cfa(model, bif_cat, estimator = "WLSMV", ordered = items, orthogonal = TRUE)
rel <- compRelSEM(fit, obs.var = FALSE, ord.scale = FALSE, return.total = TRUE)
out$bifactor_wlsmv <- c(
  list(model = model, estimator = "WLSMV", orthogonal = TRUE, compRelSEM = as.list(rel),
       fit = as.list(fitMeasures(fit, c("npar", "chisq", "df")))),
  indices(std_loadings(fit), "general", groups))
out$software <- sprintf("lavaan %s, semTools %s, R %s", packageVersion("lavaan"),
                        packageVersion("semTools"), getRversion())
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           file.path(here, "bifactor", "bifactor_indices.json"))
cat("done\n")
