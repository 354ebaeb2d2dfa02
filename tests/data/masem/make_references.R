#!/usr/bin/env Rscript
# lavaan 0.6-14 / metafor 3.8 references for MASEM (tests/test_meta_masem.py):
#
# * stage 1, fixed effects: lavaan's multi-group model with equal correlations (each group
#   Sigma_g = D_g P D_g: factors f_x =~ NA*x with unit variances, zero residual variances, the
#   factor covariances labelled equal across groups), fitted by ML to the correlation
#   matrices; estimates, their covariance matrix, the chi-square and fit measures;
# * the asymptotic covariance of one sample's correlations: the same model with one group
#   (lavaan), and metafor's rcalc() (Olkin & Siotani; rcalc divides by n - 1);
# * stage 1, random effects: metafor's rma.mv(yi, V, mods = ~ 0 + pair, random = ~ pair |
#   study, struct = "DIAG", method = "ML") with V from the sample-size weighted mean
#   correlation matrix (metaSEM's acov = "weighted") or each sample's own (acov =
#   "individual"); two samples miss correlations (study 6 did not measure conf, study 17
#   reported only the correlations with perf), which the fixed-effects model cannot use;
# * stage 2: lavaan's WLS on the pooled matrix of the fixed-effects stage 1 with its
#   asymptotic covariance V: a continuous model with std.lv = TRUE whose residual variances
#   are constrained to 1 - communality, sample.cov = the pooled matrix, WLS.V = the inverse
#   of V / (N - 1) for the correlations (weight 1 for the variances, whose residuals are 0),
#   so lavaan's (N - 1) (s - sigma)' WLS.V (s - sigma) is metaSEM's (r - rho)' V^-1 (r - rho).
#   lavaan counts the p variances as statistics: its df are p more than the correlation
#   structure's (metaSEM's) df.
#
# Data: metadat::dat.craft2003 (Craft et al. 2003: 10 samples, correlations of performance
# and three anxiety/confidence scales; written to craft2003.json) and wai_correlations.json
# (make_data.py: six simulated WAI-SR samples, 12 items).
# Usage (from this folder): Rscript make_references.R  -> masem_references.json (about 10 minutes:
# metafor estimates the 66 tau2 of the WAI items slowly)
suppressPackageStartupMessages({
  library(lavaan)
  library(metafor)
  library(jsonlite)
})

vechs_pairs <- function(p) {  # column by column below the diagonal (lavaan / metaSEM vechs)
  out <- NULL
  for (j in seq_len(p)) for (i in seq_len(p)) if (i > j) out <- rbind(out, c(i, j))
  out
}

# ---------------------------------------------------------------- data
craft <- metadat::dat.craft2003
craft_vars <- c("perf", "acog", "asom", "conf")
craft_studies <- unique(craft$study)
craft_list <- lapply(craft_studies, function(s) {
  d <- craft[craft$study == s, ]
  R <- diag(4)
  dimnames(R) <- list(craft_vars, craft_vars)
  for (k in seq_len(nrow(d))) {
    a <- as.character(d$var1[k]); b <- as.character(d$var2[k])
    R[a, b] <- d$ri[k]
    R[b, a] <- d$ri[k]
  }
  list(study = paste0("study_", s), n = d$ni[1], R = unname(R))
})
writeLines(toJSON(list(variables = craft_vars, source = "metadat::dat.craft2003",
                       studies = craft_list), auto_unbox = TRUE, digits = NA, pretty = TRUE,
                  na = "null"),
           "craft2003.json")
wai <- fromJSON("wai_correlations.json", simplifyVector = FALSE)
as_set <- function(js) {
  vars <- unlist(js$variables)
  mats <- lapply(js$studies, function(s) {
    m <- matrix(unlist(lapply(s$R, function(row) sapply(row, function(x) if (is.null(x)) NA else x))),
                length(vars), byrow = TRUE)
    dimnames(m) <- list(vars, vars)
    m
  })
  list(vars = vars, mats = mats, n = sapply(js$studies, function(s) s$n))
}
craft_set <- as_set(fromJSON("craft2003.json", simplifyVector = FALSE))
wai_set <- as_set(wai)

# ---------------------------------------------------------------- stage 1: fixed effects
fem_syntax <- function(vars) {
  lines <- c()
  for (v in vars) lines <- c(lines, sprintf("f_%s =~ NA*%s", v, v), sprintf("f_%s ~~ 1*f_%s", v, v),
                             sprintf("%s ~~ 0*%s", v, v))
  pr <- vechs_pairs(length(vars))
  for (k in seq_len(nrow(pr))) {
    a <- vars[pr[k, 1]]; b <- vars[pr[k, 2]]
    lines <- c(lines, sprintf("f_%s ~~ r%d*f_%s", b, k, a))
  }
  paste(lines, collapse = "\n")
}
fem <- function(set) {
  vars <- set$vars
  fit <- lavaan(fem_syntax(vars), sample.cov = set$mats, sample.nobs = as.list(set$n),
                likelihood = "normal", information = "expected")
  pe <- parameterEstimates(fit)
  k <- nrow(vechs_pairs(length(vars)))
  labels <- paste0("r", seq_len(k))
  est <- sapply(labels, function(l) pe$est[pe$label == l][1])
  V <- vcov(fit)
  V <- V[labels, labels]  # one column per distinct label
  fm <- fitMeasures(fit, c("chisq", "df", "pvalue", "baseline.chisq", "baseline.df", "cfi",
                           "tli", "rmsea", "rmsea.ci.lower", "rmsea.ci.upper", "srmr"))
  list(estimate = unname(est), se = unname(sqrt(diag(V))), acov = unname(V),
       fit = as.list(fm), ntotal = sum(set$n))
}
complete <- sapply(craft_set$mats, function(m) !anyNA(m))  # lavaan needs complete matrices
craft_fem <- fem(list(vars = craft_set$vars, mats = craft_set$mats[complete], n = craft_set$n[complete]))
craft_fem$studies <- sapply(craft_list, function(s) s$study)[complete]
wai_fem <- fem(wai_set)

# one sample: lavaan's asymptotic covariance of its correlations, and metafor's rcalc
one <- list(vars = craft_set$vars, mats = list(craft_set$mats[[1]]), n = craft_set$n[1])
one_fit <- lavaan(fem_syntax(one$vars), sample.cov = one$mats[[1]], sample.nobs = one$n,
                  likelihood = "normal", information = "expected")
one_labels <- paste0("r", 1:6)
d1 <- craft[craft$study == craft_studies[1], ]
rc <- rcalc(ri ~ var1 + var2 | study, ni = ni, data = d1)
pair_names <- apply(vechs_pairs(4), 1, function(ij) c(craft_vars[ij[1]], craft_vars[ij[2]]))
rc_names <- paste(as.character(rc$dat$var1), as.character(rc$dat$var2), sep = ".")
# rcalc's rows in the vechs order of craft_vars (its var1.var2 names may be either way round)
rc_order <- sapply(seq_len(ncol(pair_names)), function(k) {
  a <- pair_names[1, k]; b <- pair_names[2, k]
  which(rc_names == paste(a, b, sep = ".") | rc_names == paste(b, a, sep = "."))
})
single <- list(
  n = one$n,
  lavaan_acov = unname(vcov(one_fit)[one_labels, one_labels]),
  rcalc_V = unname(as.matrix(rc$V)[rc_order, rc_order])
)

# ---------------------------------------------------------------- stage 1: random effects
long_data <- function(set) {
  pr <- vechs_pairs(length(set$vars))
  rows <- NULL
  for (g in seq_along(set$mats)) {
    for (k in seq_len(nrow(pr))) {
      a <- set$vars[pr[k, 1]]; b <- set$vars[pr[k, 2]]
      if (is.na(set$mats[[g]][a, b])) next  # a correlation the sample did not report
      rows <- rbind(rows, data.frame(study = g, pair = k, a = a, b = b,
                                     yi = set$mats[[g]][a, b], ni = set$n[g]))
    }
  }
  rows
}
olkin_siotani <- function(R, n, pr) {  # written out independently of the Python code
  k <- nrow(pr)
  out <- matrix(0, k, k)
  for (u in 1:k) for (v in 1:k) {
    i <- pr[u, 1]; j <- pr[u, 2]; h <- pr[v, 1]; m <- pr[v, 2]
    out[u, v] <- 0.5 * R[i, j] * R[h, m] * (R[i, h]^2 + R[i, m]^2 + R[j, h]^2 + R[j, m]^2) +
      R[i, h] * R[j, m] + R[i, m] * R[j, h] - R[i, j] * R[i, h] * R[i, m] -
      R[i, j] * R[j, h] * R[j, m] - R[i, h] * R[j, h] * R[h, m] - R[i, m] * R[j, m] * R[h, m]
  }
  out / n
}
rem <- function(set, acov = "weighted") {
  dat <- long_data(set)
  p <- length(set$vars)
  pr <- vechs_pairs(p)
  if (acov == "weighted") {  # n-weighted mean of the available correlations
    num <- matrix(0, p, p); den <- matrix(0, p, p)
    for (g in seq_along(set$mats)) {
      m <- set$mats[[g]]
      seen <- !is.na(m)
      m[!seen] <- 0
      num <- num + set$n[g] * m
      den <- den + set$n[g] * seen
    }
    base <- lapply(seq_along(set$mats), function(g) num / den)
  } else {
    base <- lapply(set$mats, function(m) {  # as metaSEM: missing correlations as 0
      diag(m)[is.na(diag(m))] <- 1
      m[is.na(m)] <- 0
      m
    })
  }
  V <- lapply(seq_along(set$mats), function(g) {
    full <- olkin_siotani(base[[g]], set$n[g], pr)
    keep <- dat$pair[dat$study == g]
    full[keep, keep, drop = FALSE]
  })
  fit <- rma.mv(yi, bdiag(V), mods = ~ 0 + factor(pair), random = ~ factor(pair) | study,
                struct = "DIAG", method = "ML", data = dat,
                control = list(iter.max = 10000, eval.max = 20000))
  list(estimate = as.numeric(fit$b), se = as.numeric(fit$se), acov = unname(fit$vb),
       tau2 = as.numeric(fit$tau2), QE = as.numeric(fit$QE), QEdf = fit$k - fit$p,
       loglik = as.numeric(logLik(fit)))
}
library(Matrix)
bdiag <- function(blocks) as.matrix(Matrix::bdiag(blocks))
cat("craft rem\n")
craft_rem <- rem(craft_set, "weighted")
craft_rem_individual <- rem(craft_set, "individual")
cat("wai rem\n")
wai_rem <- rem(wai_set, "weighted")

# ---------------------------------------------------------------- stage 2
lav_stage2 <- function(model, loads, pooled, acov, vars, nobs) {
  # loads: item -> loading labels (their squares sum to the communality: orthogonal factors
  # or one factor per item)
  ov <- lavNames(lavaanify(model), "ov")
  p <- length(ov)
  idx <- match(ov, vars)
  R <- pooled[idx, idx]
  dimnames(R) <- list(ov, ov)
  pr_full <- vechs_pairs(length(vars))
  key <- function(i, j) paste(max(i, j), min(i, j))
  full_pos <- setNames(seq_len(nrow(pr_full)), apply(pr_full, 1, function(x) key(x[1], x[2])))
  pr <- vechs_pairs(p)
  sub <- sapply(seq_len(nrow(pr)), function(k) full_pos[[key(idx[pr[k, 1]], idx[pr[k, 2]])]])
  V <- acov[sub, sub]
  vi <- lav_matrix_vech_idx(p, diagonal = TRUE)
  off <- which(((vi - 1) %% p) != ((vi - 1) %/% p))
  W <- diag(length(vi)); W[off, off] <- solve(V) / (nobs - 1)
  G <- diag(length(vi)) * 1e-8; G[off, off] <- V * (nobs - 1)
  cons <- sapply(ov, function(v) sprintf("%s ~~ e_%s*%s\ne_%s == 1 - %s", v, v, v, v,
                                         paste0(loads[[v]], "^2", collapse = " - ")))
  fit <- cfa(paste(model, paste(cons, collapse = "\n"), sep = "\n"), sample.cov = R,
             sample.nobs = nobs, estimator = "WLS", std.lv = TRUE, WLS.V = W, NACOV = G,
             se = "standard", control = list(rel.tol = 1e-12))
  pe <- parameterEstimates(fit)
  pe <- pe[pe$op %in% c("=~", "~~") & !(pe$op == "~~" & pe$lhs == pe$rhs & pe$lhs %in% ov), ]
  pe <- pe[!(pe$op == "~~" & pe$lhs == pe$rhs), ]
  list(chisq = as.numeric(fitMeasures(fit, "chisq")), df_lavaan = as.numeric(fitMeasures(fit, "df")),
       parameters = data.frame(lhs = pe$lhs, op = pe$op, rhs = pe$rhs, est = pe$est, se = pe$se))
}
items <- wai_set$vars
factors <- list(bond = c("wai_03", "wai_05", "wai_07", "wai_09"),
                task = c("wai_01", "wai_02", "wai_10", "wai_12"),
                goal = c("wai_04", "wai_06", "wai_08", "wai_11"))
lab <- function(f, v) paste0("l_", f, "_", v)
measure <- function(f, vs) sprintf("%s =~ %s", f, paste0(lab(f, vs), "*", vs, collapse = " + "))
one_item <- function(f_of) setNames(lapply(items, function(v) lab(f_of(v), v)), items)
factor_of <- function(v) names(factors)[sapply(factors, function(x) v %in% x)]
gt <- c(factors$goal, factors$task)
stage2_models <- list(
  one_factor = list(
    model = measure("general", items),
    loads = one_item(function(v) "general")),
  two_factor = list(
    model = paste(measure("bond", factors$bond), measure("goal_task", gt), sep = "\n"),
    loads = one_item(function(v) if (v %in% factors$bond) "bond" else "goal_task")),
  correlated = list(
    model = paste(sapply(names(factors), function(f) measure(f, factors[[f]])), collapse = "\n"),
    loads = one_item(factor_of)),
  bifactor = list(
    model = paste(c(measure("general", items),
                    sapply(names(factors), function(f) measure(f, factors[[f]])),
                    apply(combn(c("general", names(factors)), 2), 2,
                          function(x) sprintf("%s ~~ 0*%s", x[1], x[2]))), collapse = "\n"),
    loads = setNames(lapply(items, function(v) c(lab("general", v), lab(factor_of(v), v))), items))
)
pooled <- diag(length(items))
pr <- vechs_pairs(length(items))
for (k in seq_len(nrow(pr))) {
  pooled[pr[k, 1], pr[k, 2]] <- wai_fem$estimate[k]
  pooled[pr[k, 2], pr[k, 1]] <- wai_fem$estimate[k]
}
stage2 <- lapply(stage2_models, function(m) lav_stage2(m$model, m$loads, pooled, wai_fem$acov,
                                                         items, wai_fem$ntotal))

out <- list(
  meta = list(lavaan_version = as.character(packageVersion("lavaan")),
              metafor_version = as.character(packageVersion("metafor")),
              R_version = R.version.string),
  craft = list(fixed = craft_fem, random_weighted = craft_rem,
               random_individual = craft_rem_individual,
               single_sample = single),
  wai = list(fixed = wai_fem, random_weighted = wai_rem, stage2 = stage2)
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(15), na = "null", dataframe = "rows"),
           "masem_references.json")
cat("wrote masem_references.json\n")
