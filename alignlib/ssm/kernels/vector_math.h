// Vectorisable exp and log for the kernels beside this file: no libm call, so GCC vectorises the
// loops that use them (-O3 -march=native -fno-trapping-math).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace alignlib {

// exp(x) for the range the kernels meet, written so the compiler vectorises it (no libm
// call): x = n ln2 + r with |r| <= ln2 / 2, exp(r) by a Taylor polynomial accurate to the last
// bit, 2^n put into the exponent bits. x is clamped so that 2^n stays a normal number.
inline float exp_vec(float x) {
  x = std::min(std::max(x, -86.5f), 88.0f);
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + shifter;
  const float n = t - shifter;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t tb, sb, pb;
  std::memcpy(&tb, &t, sizeof tb);
  std::memcpy(&sb, &shifter, sizeof sb);
  std::memcpy(&pb, &p, sizeof pb);
  pb += (tb - sb) << 23;
  float out;
  std::memcpy(&out, &pb, sizeof out);
  return out;
}

inline double exp_vec(double x) {
  x = std::min(std::max(x, -707.0), 709.0);
  const double shifter = 6755399441055744.0;  // 1.5 * 2^52
  const double t = x * 1.4426950408889634074 + shifter;
  const double n = t - shifter;
  const double r = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;  // 1 / 13!
  const double inv[12] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
                          1.0 / 40320.0,     1.0 / 5040.0,     1.0 / 720.0,     1.0 / 120.0,
                          1.0 / 24.0,        1.0 / 6.0,        0.5,             1.0};
  for (double c : inv) p = p * r + c;
  p = p * r + 1.0;
  int64_t tb, sb, pb;
  std::memcpy(&tb, &t, sizeof tb);
  std::memcpy(&sb, &shifter, sizeof sb);
  std::memcpy(&pb, &p, sizeof pb);
  pb += (tb - sb) << 52;
  double out;
  std::memcpy(&out, &pb, sizeof out);
  return out;
}

// log(x) for a positive normal x: x = 2^e m with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s) with
// s = (m - 1) / (m + 1), |s| <= 0.172, by its odd series to the last bit; e ln 2 added in two parts.
inline float log_vec(float x) {
  int32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  int32_t e = ((bits >> 23) & 0xff) - 127;
  bits = (bits & 0x7fffff) | 0x3f800000;  // the mantissa, as a float in [1, 2)
  float m;
  std::memcpy(&m, &bits, sizeof m);
  const bool high = m > 1.41421356f;
  m = high ? 0.5f * m : m;
  e += high;
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  float p = 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  p = p * s2 + 1.0f;
  const float n = static_cast<float>(e);
  return (2.0f * s * p + n * -2.12194440e-4f) + n * 0.693359375f;
}

inline double log_vec(double x) {
  int64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  int64_t e = ((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & 0xfffffffffffffLL) | 0x3ff0000000000000LL;
  double m;
  std::memcpy(&m, &bits, sizeof m);
  const bool high = m > 1.4142135623730951;
  m = high ? 0.5 * m : m;
  e += high;
  const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
  double p = 1.0 / 21.0;
  for (double c : {1.0 / 19.0, 1.0 / 17.0, 1.0 / 15.0, 1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0,
                   1.0 / 3.0, 1.0})
    p = p * s2 + c;
  const double n = static_cast<double>(e);
  return (2.0 * s * p + n * 1.90821492927058770002e-10) + n * 6.93147180369123816490e-01;
}

}  // namespace alignlib
