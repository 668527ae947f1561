// Fused folded Shuffle Attention for CPU: one statistics pass and one elementwise pass per
// (sample, channel) plane, the residual add and ReLU included, written in place into
// `identity`. The per-plane loops are in sa_plane.h (shared with the OpenVINO op that
// bench/openvino_sa_op.py measures).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define SANET_X86 1
#endif

#include "sa_plane.h"

namespace {

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
      sanet::sa_plane(yp + p * hw, op + p * hw, op + p * hw, hw, ap[ch], bp[ch], cp[ch], e);
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
