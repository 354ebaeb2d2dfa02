#!/usr/bin/env Rscript
# Reference KMO, Bartlett and EFA (psych 2.2.9, GPArotation 2022.10-2) for holzinger1939.csv x1..x9.
# Usage: Rscript psych_efa.R holzinger1939.csv psych_efa.json
suppressPackageStartupMessages({library(psych); library(GPArotation); library(jsonlite)})
argv <- commandArgs(trailingOnly = TRUE)
dat <- read.csv(argv[1])
x <- dat[, paste0("x", 1:9)]
k <- KMO(x)
b <- cortest.bartlett(cor(x), n = nrow(x))
f <- fa(x, nfactors = 3, fm = "minres", rotate = "oblimin")
L <- unclass(f$loadings)
out <- list(
  meta = list(R_version = R.version.string, psych_version = as.character(packageVersion("psych")),
              GPArotation_version = as.character(packageVersion("GPArotation")), data = basename(argv[1]),
              call = "fa(x, nfactors = 3, fm = 'minres', rotate = 'oblimin'); KMO(x); cortest.bartlett(cor(x), n)"),
  kmo = list(overall = k$MSA, per_item = as.list(k$MSAi)),
  bartlett = list(chisq = b$chisq, df = b$df, p_value = b$p.value),
  efa = list(factor_names = colnames(L), items = rownames(L),
             loadings = lapply(seq_len(nrow(L)), function(i) as.numeric(L[i, ])),
             phi = lapply(seq_len(nrow(f$Phi)), function(i) as.numeric(f$Phi[i, ])),
             communalities = as.numeric(f$communality),
             ss_loadings = as.numeric(f$Vaccounted["SS loadings", ]),
             rms = f$rms, pca_eigenvalues = as.numeric(f$e.values))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), argv[2])
cat("wrote", argv[2], "\n")
