#!/usr/bin/env Rscript
# lavaan 0.6-14 reference for the standardized residual covariance of ordered items (issue 16):
# one factor, six 4-category items, a residual covariance y1 ~~ y2; ML (items as numbers) and
# WLSMV in the delta and theta parameterizations. The data are simulated here (seed below).
# Usage (from the repository root): Rscript tests/data/lavaan/std_residual/make_std_residual.R
suppressPackageStartupMessages({ library(lavaan); library(jsonlite) })
out_dir <- "tests/data/lavaan/std_residual"
set.seed(20260616)
n <- 500
lambda <- c(0.70, 0.60, 0.65, 0.70, 0.55, 0.60)
eta <- rnorm(n)
e <- matrix(rnorm(n * 6), n, 6)
# residual correlation 0.35 between the latent responses of y1 and y2
e[, 2] <- 0.35 * e[, 1] + sqrt(1 - 0.35^2) * e[, 2]
ystar <- outer(eta, lambda) + e %*% diag(sqrt(1 - lambda^2))
cuts <- list(c(-1.2, 0.0, 0.9), c(-1.0, 0.2, 1.1), c(-1.4, -0.2, 0.8),
             c(-0.9, 0.1, 1.2), c(-1.1, 0.3, 1.0), c(-1.3, -0.1, 0.7))
y <- sapply(1:6, function(j) findInterval(ystar[, j], cuts[[j]]) + 1L)
colnames(y) <- paste0("y", 1:6)
write.csv(as.data.frame(y), file.path(out_dir, "one_factor_4cat.csv"), row.names = FALSE)
dat <- read.csv(file.path(out_dir, "one_factor_4cat.csv"))
model <- "f =~ y1 + y2 + y3 + y4 + y5 + y6\ny1 ~~ y2"
pe <- function(fit) {
  p <- parameterEstimates(fit, remove.nonfree = FALSE)
  p[, intersect(c("lhs", "op", "rhs", "label", "est", "se", "z", "pvalue"), names(p))]
}
std <- function(fit) {
  s <- standardizedSolution(fit, type = "std.all")
  s[, intersect(c("lhs", "op", "rhs", "est.std", "se"), names(s))]
}
block <- function(fit) list(converged = lavInspect(fit, "converged"),
                            fit = as.list(fitMeasures(fit)), parameters = pe(fit),
                            standardized = std(fit))
out <- list(
  meta = list(lavaan = as.character(packageVersion("lavaan")), model = model, n = n,
              seed = 20260616),
  ml = block(cfa(model, dat)),
  wlsmv_delta = block(cfa(model, dat, ordered = TRUE, estimator = "WLSMV")),
  wlsmv_theta = block(cfa(model, dat, ordered = TRUE, estimator = "WLSMV",
                          parameterization = "theta")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", dataframe = "rows",
                  pretty = TRUE), file.path(out_dir, "lavaan_std_residual.json"))
cat("done\n")
