// Log-domain Sinkhorn iterations for alignlib.align.ot.sinkhorn_log, float64, one batch item per
// thread. With K = -C / eps (B, n, m) and its transpose Kt (B, m, n):
//   g_j = -eps LSE_i(Kt_ji + log a_i + f_i / eps),   f_i = -eps LSE_j(K_ij + log b_j + g_j / eps),
// then the column marginals' L1 error of the plan P_ij = exp(log a_i + log b_j + f_i / eps + g_j / eps + K_ij).
// Each log-sum-exp is a max pass and a sum pass over one contiguous row, vectorised (exp_vec).
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "vector_math.h"

namespace {

using alignlib::exp_vec;

constexpr double NEG_INF = -std::numeric_limits<double>::infinity();

// out_r = -eps * LSE_c(rows[r, c] + log_w[c] + v[c] / eps) for each of `count` rows of `width` columns.
void lse_update(const double* rows, const double* log_w, const double* v, double* out, int64_t count,
                int64_t width, double eps, double* shift) {
  for (int64_t c = 0; c < width; ++c) shift[c] = log_w[c] + v[c] / eps;
  for (int64_t r = 0; r < count; ++r) {
    const double* row = rows + r * width;
    double top = NEG_INF;
    for (int64_t c = 0; c < width; ++c) top = std::max(top, row[c] + shift[c]);
    if (top == NEG_INF) {  // every column without mass: torch.logsumexp's -inf
      out[r] = -eps * NEG_INF;
      continue;
    }
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < width; ++c) sum += exp_vec(row[c] + shift[c] - top);
    out[r] = -eps * (top + std::log(sum));
  }
}

// sum_j |sum_i P_ij - b_j| for one item.
double column_error(const double* K, const double* log_a, const double* log_b, const double* f, const double* g,
                    const double* b, int64_t n, int64_t m, double eps, double* column) {
  for (int64_t j = 0; j < m; ++j) column[j] = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (log_a[i] == NEG_INF) continue;  // a padded row carries no mass
    const double row_part = log_a[i] + f[i] / eps;
    const double* row = K + i * m;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) {
      const double exponent = row_part + log_b[j] + g[j] / eps + row[j];
      column[j] += exponent == NEG_INF ? 0.0 : exp_vec(exponent);
    }
  }
  double error = 0.0;
  for (int64_t j = 0; j < m; ++j) error += std::abs(column[j] - b[j]);
  return error;
}

}  // namespace

// dims: B, n, m. With `first`, f = update_f(g) before the iterations; then `steps` times g =
// update_g(f), f = update_f(g), in place. Returns the largest column error over the batch.
extern "C" double sinkhorn_steps_f64(const double* K, const double* Kt, const double* log_a, const double* log_b,
                                     const double* b, double* f, double* g, const int64_t* dims, double eps,
                                     int64_t first, int64_t steps, int threads) {
  const int64_t B = dims[0], n = dims[1], m = dims[2];
  std::vector<double> errors(B);
#pragma omp parallel num_threads(threads)
  {
    std::vector<double> scratch(std::max(n, m));
#pragma omp for schedule(static)
    for (int64_t k = 0; k < B; ++k) {
      const double* Kk = K + k * n * m;
      const double* Ktk = Kt + k * n * m;
      const double *la = log_a + k * n, *lb = log_b + k * m;
      double *fk = f + k * n, *gk = g + k * m;
      if (first) lse_update(Kk, lb, gk, fk, n, m, eps, scratch.data());
      for (int64_t s = 0; s < steps; ++s) {
        lse_update(Ktk, la, fk, gk, m, n, eps, scratch.data());
        lse_update(Kk, lb, gk, fk, n, m, eps, scratch.data());
      }
      errors[k] = column_error(Kk, la, lb, fk, gk, b + k * m, n, m, eps, scratch.data());
    }
  }
  double worst = 0.0;
  for (double e : errors) worst = std::isnan(e) || e > worst ? e : worst;  // a NaN item is reported
  return worst;
}
