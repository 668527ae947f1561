// Fused folded Shuffle Attention for CPU: one statistics pass and one elementwise pass per
// (sample, channel) plane, the residual add and ReLU included, written in place into
// `identity`. Exact algebra of model/folding.py; the exponential is a vectorisable
// polynomial (a few ulp), so the loops compile to SIMD without calls into libm.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define SANET_X86 1
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

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

void plane(const float* y, float* out, int64_t hw, float alpha, float beta, float cw, float eps) {
  float sum = 0.0f, sumsq = 0.0f;
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
    const float o = out[i] + y[i] * gate;
    out[i] = o > 0.0f ? o : 0.0f;
  }
}

at::Tensor sa_fused(at::Tensor identity, const at::Tensor& y, const at::Tensor& alpha,
                    const at::Tensor& beta, const at::Tensor& cw, double eps) {
  TORCH_CHECK(y.dim() == 4 && identity.sizes() == y.sizes(), "sa_fused: shapes differ");
  TORCH_CHECK(y.scalar_type() == at::kFloat && identity.scalar_type() == at::kFloat,
              "sa_fused: float32 only");
  TORCH_CHECK(y.is_contiguous() && identity.is_contiguous(), "sa_fused: NCHW-contiguous only");
  const int64_t n = y.size(0), c = y.size(1), hw = y.size(2) * y.size(3);
  TORCH_CHECK(alpha.numel() == c && beta.numel() == c && cw.numel() == c, "sa_fused: params");
  const at::Tensor al = alpha.contiguous(), be = beta.contiguous(), cwc = cw.contiguous();
  const float* yp = y.const_data_ptr<float>();
  float* op = identity.mutable_data_ptr<float>();
  const float *ap = al.const_data_ptr<float>(), *bp = be.const_data_ptr<float>(),
              *cp = cwc.const_data_ptr<float>();
  const float e = static_cast<float>(eps);
  at::parallel_for(0, n * c, 1, [&](int64_t begin, int64_t end) {
    // Flush denormals to zero while in here: tiny intermediates of the exp polynomial
    // otherwise take the slow microcode path (10x on this loop). Restored on the way out.
#ifdef SANET_X86
    const unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);  // FTZ | DAZ
#endif
    for (int64_t p = begin; p < end; ++p) {
      const int64_t ch = p % c;
      plane(yp + p * hw, op + p * hw, hw, ap[ch], bp[ch], cp[ch], e);
    }
#ifdef SANET_X86
    _mm_setcsr(csr);
#endif
  });
  return identity;
}

}  // namespace

TORCH_LIBRARY(sanet, m) {
  m.def("sa_fused(Tensor(a!) identity, Tensor y, Tensor alpha, Tensor beta, Tensor cw, "
        "float eps) -> Tensor(a!)");
}

TORCH_LIBRARY_IMPL(sanet, CPU, m) { m.impl("sa_fused", &sa_fused); }
