// Monotone alignment's recursions (alignlib/align/monotone.py): the forward table `alpha` and,
// from it, the posterior through the backward recursion (`_forward` and `_posterior`). One batch
// item per task, frame after frame, the item's S chain states in small buffers. Each state costs a
// vectorised log-sum-exp of the two or three states a path can come from (or go on to), in place
// of the eight or so (B, S) PyTorch operations a frame costs in the loop.
// Plain C ABI, loaded by alignlib/align/monotone.py through ctypes.
//
// Layouts (all contiguous): scores, alpha, posterior (B, T, S), with `neg` already in the scores of
// the states that are not real; log_z (B,); frame_mask (B, T); start, end, skip, states (B, S);
// bool masks as one byte.
// `any_skip` is 1 when some state of the batch may be reached from two states back: then, as in
// the PyTorch loop, every state's log-sum takes a third term (`neg` where it cannot skip).
// Batch items are independent, so the result does not depend on the thread count.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "vector_math.h"

namespace {

using alignlib::exp_vec;
using alignlib::log_vec;

struct Shape {
  int64_t batch, frames, states, any_skip;
};

template <typename T>
inline T log_add_exp(T a, T b) {
  const T m = std::max(a, b);
  return m + log_vec(exp_vec(a - m) + exp_vec(b - m));
}

template <typename T>
inline T log_add_exp(T a, T b, T c) {
  const T m = std::max(std::max(a, b), c);
  return m + log_vec(exp_vec(a - m) + exp_vec(b - m) + exp_vec(c - m));
}

// alpha[i, j]: log-sum of the paths on state j at frame i, carried over padded frames.
template <typename T>
void forward_item(const T* scores, const uint8_t* frame_mask, const uint8_t* start, const uint8_t* skip, T* alpha,
                  const Shape& s, T neg) {
  const int64_t S = s.states;
  std::vector<T> first(S), buffer(S + 2, neg);
  T* previous = buffer.data() + 2;  // previous[-1] and previous[-2] stay neg
  for (int64_t j = 0; j < S; ++j) previous[j] = first[j] = start[j] ? T(0) : neg;
  bool seen = false;
  for (int64_t i = 0; i < s.frames; ++i) {
    const T* e = scores + i * S;
    T* out = alpha + i * S;
    if (!frame_mask[i]) {
      std::copy(previous, previous + S, out);
      continue;
    }
    if (!seen) {
      for (int64_t j = 0; j < S; ++j) out[j] = e[j] + first[j];
    } else if (s.any_skip) {
#pragma omp simd
      for (int64_t j = 0; j < S; ++j)
        out[j] = e[j] + log_add_exp(previous[j], previous[j - 1], skip[j] ? previous[j - 2] : neg);
    } else {
#pragma omp simd
      for (int64_t j = 0; j < S; ++j) out[j] = e[j] + log_add_exp(previous[j], previous[j - 1]);
    }
    seen = true;
    std::copy(out, out + S, previous);
  }
}

// The posterior exp(alpha + beta - log Z) of each real state at each real frame (0 elsewhere), with
// beta[i, j], the log-sum over the rest of a path on state j at frame i, kept for one frame only.
template <typename T>
void posterior_item(const T* scores, const uint8_t* frame_mask, const uint8_t* end, const uint8_t* skip,
                    const uint8_t* states, const T* alpha, T log_z, T* posterior, const Shape& s, T neg) {
  const int64_t S = s.states;
  std::vector<T> after(S), buffer(S + 2, neg), skip_from(S, 0);
  T* step = buffer.data();  // step[S] and step[S + 1] stay neg
  for (int64_t j = 0; j < S; ++j) after[j] = end[j] ? T(0) : neg;
  for (int64_t j = 0; j + 2 < S; ++j) skip_from[j] = skip[j + 2];  // state j may go on to j + 2
  for (int64_t i = s.frames - 1; i >= 0; --i) {
    const T* e = scores + i * S;
    const T* a = alpha + i * S;
    T* out = posterior + i * S;
    if (!frame_mask[i]) {
      std::fill(out, out + S, T(0));
      continue;
    }
#pragma omp simd
    for (int64_t j = 0; j < S; ++j) {
      const T x = a[j] + after[j] - log_z;  // below -80 the posterior is 0 (exp_vec would clamp it)
      out[j] = states[j] && x > T(-80) ? exp_vec(x) : T(0);
      step[j] = e[j] + after[j];
    }
    if (s.any_skip) {
#pragma omp simd
      for (int64_t j = 0; j < S; ++j) after[j] = log_add_exp(step[j], step[j + 1], skip_from[j] ? step[j + 2] : neg);
    } else {
#pragma omp simd
      for (int64_t j = 0; j < S; ++j) after[j] = log_add_exp(step[j], step[j + 1]);
    }
  }
}

// Each item's rows of (B, T, S), (B, T) and (B, S) tensors; OpenMP threads share the batch.
template <typename T, typename F>
void for_each_item(const Shape& s, int threads, const F& body) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t b = 0; b < s.batch; ++b) body(b * s.frames * s.states, b * s.frames, b * s.states);
}

}  // namespace

extern "C" {
#define ALIGNLIB_MONOTONE(T, suffix)                                                                           \
  void monotone_forward_##suffix(const T* scores, const uint8_t* frame_mask, const uint8_t* start,            \
                                 const uint8_t* skip, T* alpha, const int64_t* dims, double neg, int threads) { \
    const Shape s{dims[0], dims[1], dims[2], dims[3]};                                                         \
    for_each_item<T>(s, threads, [&](int64_t table, int64_t frame, int64_t state) {                            \
      forward_item<T>(scores + table, frame_mask + frame, start + state, skip + state, alpha + table, s,       \
                      static_cast<T>(neg));                                                                    \
    });                                                                                                        \
  }                                                                                                            \
  void monotone_posterior_##suffix(const T* scores, const uint8_t* frame_mask, const uint8_t* end,            \
                                   const uint8_t* skip, const uint8_t* states, const T* alpha, const T* log_z,  \
                                   T* posterior, const int64_t* dims, double neg, int threads) {               \
    const Shape s{dims[0], dims[1], dims[2], dims[3]};                                                         \
    for_each_item<T>(s, threads, [&](int64_t table, int64_t frame, int64_t state) {                            \
      posterior_item<T>(scores + table, frame_mask + frame, end + state, skip + state, states + state,         \
                        alpha + table, log_z[table / (s.frames * s.states)], posterior + table, s,             \
                        static_cast<T>(neg));                                                                  \
    });                                                                                                        \
  }
ALIGNLIB_MONOTONE(float, f32)
ALIGNLIB_MONOTONE(double, f64)
#undef ALIGNLIB_MONOTONE
}
