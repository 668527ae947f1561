// One (sample, channel) plane of folded Shuffle Attention: relu(identity + y * sigmoid(a*y+b)),
// a and b from the plane's mean and variance (model/folding.py). Shared by the PyTorch kernel
// (sa_fused.cpp) and the OpenVINO op of bench/openvino_sa_op.cpp. The exponential is a vectorisable
// polynomial (a few ulp), so the loops compile to SIMD without calls into libm.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace sanet {

// exp(x) for x in [-87, 88]: 2^n * p(r), r = x - n ln2 (Cody-Waite), degree-6 Taylor/minimax.
inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  // branch-free clamp
  // round to nearest by the 1.5 * 2^23 trick: no libm call, so the loop vectorises
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// `out` may be `identity` (the PyTorch kernel works in place).
inline void sa_plane(const float* y, const float* identity, float* out, int64_t hw, float alpha,
                     float beta, float cw, float eps) {
  float sum = 0.0f, sumsq = 0.0f;
  if (alpha == 0.0f) {  // a channel-branch channel: its gate is one number per plane
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < hw; ++i) sum += y[i];
    const float gate = 1.0f / (1.0f + exp_approx(-(beta + cw * (sum / static_cast<float>(hw)))));
#pragma omp simd
    for (int64_t i = 0; i < hw; ++i) {
      const float o = identity[i] + y[i] * gate;
      out[i] = o > 0.0f ? o : 0.0f;
    }
    return;
  }
#pragma omp simd reduction(+ : sum, sumsq)
  for (int64_t i = 0; i < hw; ++i) {
    sum += y[i];
    sumsq += y[i] * y[i];
  }
  const float mean = sum / static_cast<float>(hw);
  const float var = std::max(sumsq / static_cast<float>(hw) - mean * mean, 0.0f);
  const float a = alpha / std::sqrt(var + eps);
  const float b = beta + mean * (cw - a);
#pragma omp simd
  for (int64_t i = 0; i < hw; ++i) {
    const float gate = 1.0f / (1.0f + exp_approx(-(a * y[i] + b)));
    const float o = identity[i] + y[i] * gate;
    out[i] = o > 0.0f ? o : 0.0f;
  }
}

}  // namespace sanet
