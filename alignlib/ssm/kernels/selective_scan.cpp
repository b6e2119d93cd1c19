// The fused CPU selective scan: forward and backward one (batch, channel) row at a time, with the
// row's N states in one small buffer that stays in registers and L1, so each state element costs
// one exp and a handful of vectorised flops and is never written out as a (B, D, N, L) tensor.
// Plain C ABI, loaded by alignlib/ssm/selective_scan.py through ctypes.
//
// Layouts (all contiguous): u, delta, y, grad_u, grad_delta (B, D, L); A (D, N); a selective B
// or C is passed time-major as (B, L, N), a time-invariant one as (D, N); last_state (B, D, N);
// checkpoints (B, D, L / chunk, N), the state before each chunk of `chunk` steps.
//
// Work is split into tasks (batch b, block of `block` channels) that OpenMP threads pick up in turn.
// Reductions over channels (the gradients of a selective B or C) go to one buffer per task,
// (B, D / block, L, N), summed by the caller, so the result does not depend on the thread count.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "vector_math.h"

namespace {

using alignlib::exp_vec;

struct Shape {
  int64_t batch, channels, states, length, chunk, block, b_selective, c_selective;
  int64_t chunks() const { return (length + chunk - 1) / chunk; }
  int64_t blocks() const { return (channels + block - 1) / block; }
};

template <typename T>
struct Scan {
  Shape s;
  const T *u, *delta, *A, *B, *C;
  T* checkpoints;  // written by the forward (may be null there), read by the backward
  // forward outputs
  T *y, *last_state;
  // backward inputs and outputs
  const T *grad_y, *grad_last;
  T *grad_u, *grad_delta, *grad_A, *grad_B, *grad_C;

  const T* B_row(int64_t b, int64_t d) const { return s.b_selective ? B + b * s.length * s.states : B + d * s.states; }
  const T* C_row(int64_t b, int64_t d) const { return s.c_selective ? C + b * s.length * s.states : C + d * s.states; }
  int64_t B_step() const { return s.b_selective ? s.states : 0; }
  int64_t C_step() const { return s.c_selective ? s.states : 0; }

  void forward_row(int64_t b, int64_t d, T* h) const {
    const int64_t N = s.states, L = s.length, row = b * s.channels + d;
    const T *u_r = u + row * L, *dt_r = delta + row * L, *A_r = A + d * N;
    const T *B_r = B_row(b, d), *C_r = C_row(b, d);
    const int64_t b_step = B_step(), c_step = C_step();
    T* y_r = y + row * L;
    T* ckpt = checkpoints ? checkpoints + row * s.chunks() * N : nullptr;
    std::fill(h, h + N, T(0));
    for (int64_t t = 0; t < L; ++t) {
      if (ckpt && t % s.chunk == 0) std::copy(h, h + N, ckpt + (t / s.chunk) * N);
      const T dt = dt_r[t], du = dt * u_r[t];
      const T *B_t = B_r + t * b_step, *C_t = C_r + t * c_step;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t n = 0; n < N; ++n) {
        const T hn = exp_vec(dt * A_r[n]) * h[n] + du * B_t[n];
        h[n] = hn;
        acc += C_t[n] * hn;
      }
      y_r[t] = acc;
    }
    if (last_state) std::copy(h, h + N, last_state + row * N);
  }

  // The reverse pass, chunk by chunk from the last: recompute the chunk's decays and states from
  // its checkpoint into `decay` (chunk, N) and `states` (chunk + 1, N), then walk it backwards
  // with the adjoint g_t = dy_t C_t + exp(delta_{t+1} A) g_{t+1} in `carry` (N).
  void backward_row(int64_t b, int64_t d, T* decay, T* states, T* carry) const {
    const int64_t N = s.states, L = s.length, K = s.chunk, row = b * s.channels + d;
    const T *u_r = u + row * L, *dt_r = delta + row * L, *A_r = A + d * N, *gy_r = grad_y + row * L;
    const T *B_r = B_row(b, d), *C_r = C_row(b, d);
    const int64_t b_step = B_step(), c_step = C_step();
    // gradient of a selective B / C: this task's (L, N) buffer, one row per step; of a
    // time-invariant one: this row's (N) slot, the same every step
    const int64_t task = b * s.blocks() + d / s.block;
    T* gB_r = s.b_selective ? grad_B + task * L * N : grad_B + row * N;
    T* gC_r = s.c_selective ? grad_C + task * L * N : grad_C + row * N;
    T *gA_r = grad_A + row * N, *gu_r = grad_u + row * L, *gdt_r = grad_delta + row * L;
    const T* ckpt = checkpoints + row * s.chunks() * N;
    if (grad_last) std::copy(grad_last + row * N, grad_last + (row + 1) * N, carry);
    else std::fill(carry, carry + N, T(0));
    for (int64_t c = s.chunks() - 1; c >= 0; --c) {
      const int64_t first = c * K, steps = std::min(K, L - first);
      std::copy(ckpt + c * N, ckpt + (c + 1) * N, states);
      for (int64_t k = 0; k < steps; ++k) {
        const int64_t t = first + k;
        const T dt = dt_r[t], du = dt * u_r[t];
        const T* B_t = B_r + t * b_step;
        const T* prev = states + k * N;
        T *next = states + (k + 1) * N, *a = decay + k * N;
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) {
          a[n] = exp_vec(dt * A_r[n]);
          next[n] = a[n] * prev[n] + du * B_t[n];
        }
      }
      for (int64_t k = steps - 1; k >= 0; --k) {
        const int64_t t = first + k;
        const T dt = dt_r[t], ut = u_r[t], dy = gy_r[t], dtu = dt * ut;
        const T *B_t = B_r + t * b_step, *C_t = C_r + t * c_step;
        T *gB_t = gB_r + t * b_step, *gC_t = gC_r + t * c_step;
        const T *prev = states + k * N, *h = states + (k + 1) * N, *a = decay + k * N;
        T grad_dA = 0, grad_drive = 0;  // sum_n g A h_{t-1} e^{dt A}, sum_n g B
#pragma omp simd reduction(+ : grad_dA, grad_drive)
        for (int64_t n = 0; n < N; ++n) {
          const T g = dy * C_t[n] + carry[n];
          gC_t[n] += dy * h[n];
          const T x = g * prev[n] * a[n];
          grad_dA += x * A_r[n];
          gA_r[n] += x * dt;
          grad_drive += g * B_t[n];
          gB_t[n] += g * dtu;
          carry[n] = a[n] * g;
        }
        gu_r[t] = grad_drive * dt;
        gdt_r[t] = grad_dA + grad_drive * ut;
      }
    }
  }
};

// Runs body(task) for every task on `threads` OpenMP threads. Loaded into a PyTorch process, the
// library binds to PyTorch's own libgomp (same soname), so it shares torch's worker threads
// instead of competing with them.
template <typename F>
void parallel_tasks(int64_t tasks, int threads, const F& body) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t task = 0; task < tasks; ++task) body(task);
}

template <typename T>
void for_each_row(const Scan<T>& scan, int threads, bool backward) {
  const Shape& s = scan.s;
  parallel_tasks(s.batch * s.blocks(), threads, [&](int64_t task) {
    const int64_t b = task / s.blocks(), first = (task % s.blocks()) * s.block;
    const int64_t last = std::min(s.channels, first + s.block);
    std::vector<T> scratch(backward ? (2 * s.chunk + 2) * s.states : s.states);
    for (int64_t d = first; d < last; ++d) {
      if (backward)
        scan.backward_row(b, d, scratch.data(), scratch.data() + s.chunk * s.states,
                          scratch.data() + (2 * s.chunk + 1) * s.states);
      else
        scan.forward_row(b, d, scratch.data());
    }
  });
}

Shape shape_of(const int64_t* dims) {
  return Shape{dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6], dims[7]};
}

template <typename T>
void forward(const T* u, const T* delta, const T* A, const T* B, const T* C, T* y, T* last_state,
             T* checkpoints, const int64_t* dims, int threads) {
  Scan<T> scan{shape_of(dims), u, delta, A, B, C, checkpoints, y, last_state,
               nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
  for_each_row(scan, threads, false);
}

template <typename T>
void backward(const T* u, const T* delta, const T* A, const T* B, const T* C, T* checkpoints,
              const T* grad_y, const T* grad_last, T* grad_u, T* grad_delta, T* grad_A, T* grad_B,
              T* grad_C, const int64_t* dims, int threads) {
  Scan<T> scan{shape_of(dims), u, delta, A, B, C, checkpoints, nullptr, nullptr,
               grad_y, grad_last, grad_u, grad_delta, grad_A, grad_B, grad_C};
  for_each_row(scan, threads, true);
}

}  // namespace

// dims: batch, channels, states, length, chunk, block, B selective (0/1), C selective (0/1).
// The backward expects grad_A (B, D, N) and the gradients of B and C (see the top) zero-filled.
extern "C" {
void selective_scan_forward_f32(const float* u, const float* delta, const float* A, const float* B,
                                const float* C, float* y, float* last_state, float* checkpoints,
                                const int64_t* dims, int threads) {
  forward(u, delta, A, B, C, y, last_state, checkpoints, dims, threads);
}
void selective_scan_forward_f64(const double* u, const double* delta, const double* A, const double* B,
                                const double* C, double* y, double* last_state, double* checkpoints,
                                const int64_t* dims, int threads) {
  forward(u, delta, A, B, C, y, last_state, checkpoints, dims, threads);
}
void selective_scan_backward_f32(const float* u, const float* delta, const float* A, const float* B,
                                 const float* C, float* checkpoints, const float* grad_y,
                                 const float* grad_last, float* grad_u, float* grad_delta, float* grad_A,
                                 float* grad_B, float* grad_C, const int64_t* dims, int threads) {
  backward(u, delta, A, B, C, checkpoints, grad_y, grad_last, grad_u, grad_delta, grad_A, grad_B, grad_C,
           dims, threads);
}
void selective_scan_backward_f64(const double* u, const double* delta, const double* A, const double* B,
                                 const double* C, double* checkpoints, const double* grad_y,
                                 const double* grad_last, double* grad_u, double* grad_delta,
                                 double* grad_A, double* grad_B, double* grad_C, const int64_t* dims,
                                 int threads) {
  backward(u, delta, A, B, C, checkpoints, grad_y, grad_last, grad_u, grad_delta, grad_A, grad_B, grad_C,
           dims, threads);
}
}
