// Folded Shuffle Attention as one OpenVINO op, "sanet.SAGate" in ONNX: inputs y, identity
// [N, C, H, W] and alpha, beta, cw [1, C, 1, 1]; attribute eps; output
// relu(identity + y * sigmoid(a*y + b)), one statistics pass and one gated pass per plane
// (the loops of model/csrc/sa_plane.h, as the PyTorch kernel). A measured, dropped route:
// bench/openvino_sa_op.py builds it against the openvino wheel and times it.
#include <openvino/core/extension.hpp>
#include <openvino/core/op_extension.hpp>
#include <openvino/core/parallel.hpp>
#include <openvino/frontend/onnx/extension/op.hpp>
#include <openvino/op/op.hpp>

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define SANET_X86 1
#endif

#include "../model/csrc/sa_plane.h"

namespace sanet {

class SAGate : public ov::op::Op {
 public:
  OPENVINO_OP("SAGate", "sanet");

  SAGate() = default;
  SAGate(const ov::OutputVector& args, float eps) : Op(args), eps_(eps) {
    constructor_validate_and_infer_types();
  }

  void validate_and_infer_types() override {
    set_output_type(0, get_input_element_type(0), get_input_partial_shape(0));
  }

  std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& args) const override {
    return std::make_shared<SAGate>(args, eps_);
  }

  bool visit_attributes(ov::AttributeVisitor& visitor) override {
    visitor.on_attribute("eps", eps_);
    return true;
  }

  bool has_evaluate() const override { return get_input_element_type(0) == ov::element::f32; }

  bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override {
    const ov::Shape shape = inputs[0].get_shape();
    outputs[0].set_shape(shape);
    const size_t n = shape[0], c = shape[1], hw = shape[2] * shape[3];
    const float* y = inputs[0].data<const float>();
    const float* id = inputs[1].data<const float>();
    const float *alpha = inputs[2].data<const float>(), *beta = inputs[3].data<const float>(),
                *cw = inputs[4].data<const float>();
    float* out = outputs[0].data<float>();
    const float eps = eps_;
    ov::parallel_nt(0, [&](int ithr, int nthr) {
#ifdef SANET_X86
      const unsigned int csr = _mm_getcsr();
      _mm_setcsr(csr | 0x8040);  // FTZ | DAZ: the exp polynomial's tiny values stay fast
#endif
      size_t begin = 0, end = 0;
      ov::splitter(n * c, nthr, ithr, begin, end);
      for (size_t p = begin; p < end; ++p) {
        const size_t ch = p % c;
        sa_plane(y + p * hw, id + p * hw, out + p * hw, static_cast<int64_t>(hw), alpha[ch],
                 beta[ch], cw[ch], eps);
      }
#ifdef SANET_X86
      _mm_setcsr(csr);
#endif
    });
    return true;
  }

 private:
  float eps_ = 1e-5f;
};

}  // namespace sanet

OPENVINO_CREATE_EXTENSIONS(std::vector<ov::Extension::Ptr>(
    {std::make_shared<ov::OpExtension<sanet::SAGate>>(),
     std::make_shared<ov::frontend::onnx::OpExtension<sanet::SAGate>>(
         "SAGate", "sanet", std::map<std::string, std::string>{{"eps", "eps"}})}));
