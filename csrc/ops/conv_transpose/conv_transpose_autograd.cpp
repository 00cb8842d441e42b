// Autograd for conv_transpose2d_crop and conv_transpose2d_crop_cat, in C++ (one kernel for every
// device). A Python torch.library.register_autograd kernel runs Python on every call, even under
// torch.no_grad(): ~20 us, more than the margin of a 0.15 ms layer (FCN-8s' upscore2), and the
// Python backward cost ~0.25 ms per step there. Here forward redispatches below autograd and
// backward is ATen's convolution_backward (itself differentiable, so double backward works).
//
// The out= op has no autograd kernel: fastseg/ops/conv_transpose.py decides (see its docstring).
#include <array>
#include <initializer_list>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

namespace fastseg {
namespace conv_transpose {

bool& output_for_backward() {
  thread_local bool value = false;
  return value;
}

namespace {

// Sets output_for_backward() for the duration of one op call (conv_transpose_ops.h: new_output).
class OutputForBackward {
 public:
  explicit OutputForBackward(bool on) : old_(output_for_backward()) { output_for_backward() = on; }
  ~OutputForBackward() { output_for_backward() = old_; }

 private:
  bool old_;
};

bool records(std::initializer_list<const at::Tensor*> tensors) {
  if (!at::GradMode::is_enabled()) return false;
  for (const at::Tensor* t : tensors) {
    if (t != nullptr && t->defined() && t->requires_grad()) return true;
  }
  return false;
}

// The ops below autograd (the device kernels).
const auto& crop_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastseg::conv_transpose2d_crop", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                         c10::IntArrayRef, c10::IntArrayRef, c10::IntArrayRef, int64_t,
                                         c10::SymIntArrayRef, c10::SymIntArrayRef)>();
  return op;
}

const auto& crop_cat_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastseg::conv_transpose2d_crop_cat", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                         const at::Tensor&, c10::IntArrayRef, c10::IntArrayRef, c10::IntArrayRef,
                                         int64_t, c10::SymIntArrayRef, c10::SymIntArrayRef, c10::SymIntArrayRef)>();
  return op;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Concrete ints of a saved SymInt list, taken in the backward only: the forward saves the sizes as
// they come (symbolic under torch.export / torch.compile with dynamic shapes), so tracing the
// forward never specialises them; the backward kernels need numbers.
std::vector<int64_t> saved_ints(const c10::IValue& v) {
  std::vector<int64_t> out;
  for (const auto& s : v.toSymIntVector()) out.push_back(s.guard_int(__FILE__, __LINE__));
  return out;
}

// Gradients of the cropped transposed convolution for (input, weight, bias) from the crop's
// gradient: ATen's convolution_backward over an output frame that is the crop itself where
// padding / output_padding can express it (balanced margins: no copy), else the smallest frame
// around it, with the gradient zero-padded to that frame.
std::array<at::Tensor, 3> conv_backward(at::Tensor grad, const at::Tensor& input, const at::Tensor& weight,
                                        bool has_bias, const std::vector<int64_t>& stride,
                                        const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation,
                                        int64_t groups, const std::vector<int64_t>& crop,
                                        std::array<bool, 3> needs) {
  const std::array<bool, 3> mask{needs[0], needs[1], needs[2] && has_bias};
  if (!mask[0] && !mask[1] && !mask[2]) return {};
  std::vector<int64_t> pad(2), out_pad(2), extra(4);
  for (int i = 0; i < 2; ++i) {
    const int64_t in = input.sym_size(2 + i).guard_int(__FILE__, __LINE__);
    const int64_t k = weight.sym_size(2 + i).guard_int(__FILE__, __LINE__);
    const int64_t n_out = grad.sym_size(2 + i).guard_int(__FILE__, __LINE__);
    const int64_t full0 = (in - 1) * stride[i] + dilation[i] * (k - 1) + 1;  // the padding-0 frame
    const int64_t lead = crop[i] + padding[i], trail = full0 - lead - n_out;
    if (lead >= trail && lead - trail < std::max(stride[i], dilation[i])) {
      pad[i] = lead, out_pad[i] = lead - trail;
    } else {
      pad[i] = std::min(lead, trail), out_pad[i] = 0;
    }
    extra[2 * i] = lead - pad[i];
    extra[2 * i + 1] = std::max<int64_t>(0, trail + out_pad[i] - pad[i]);
  }
  if (extra[0] || extra[1] || extra[2] || extra[3]) {
    grad = at::constant_pad_nd(grad, {extra[2], extra[3], extra[0], extra[1]});
  }
  std::optional<std::vector<c10::SymInt>> bias_sizes;
  if (has_bias) bias_sizes = std::vector<c10::SymInt>{weight.sym_size(1) * groups};
  auto to_sym = [](const std::vector<int64_t>& v) { return std::vector<c10::SymInt>(v.begin(), v.end()); };
  auto [gi, gw, gb] = at::convolution_backward_symint(
      grad, input, weight, bias_sizes ? std::optional<c10::SymIntArrayRef>(*bias_sizes) : std::nullopt,
      to_sym(stride), to_sym(pad), to_sym(dilation), true, to_sym(out_pad), c10::SymInt(groups), mask);
  return {mask[0] ? gi : at::Tensor(), mask[1] ? gw : at::Tensor(), mask[2] ? gb : at::Tensor()};
}

void save_geometry(AutogradContext* ctx, c10::IntArrayRef stride, c10::IntArrayRef padding,
                   c10::IntArrayRef dilation, int64_t groups, c10::SymIntArrayRef crop, bool has_bias) {
  ctx->saved_data["stride"] = stride.vec();
  ctx->saved_data["padding"] = padding.vec();
  ctx->saved_data["dilation"] = dilation.vec();
  ctx->saved_data["groups"] = groups;
  ctx->saved_data["crop"] = c10::IValue(crop);
  ctx->saved_data["has_bias"] = has_bias;
}

// needs_input_grad(i) counts only the tensors given: with no bias, skip is input 2, not 3.
bool needs_grad(AutogradContext* ctx, size_t i) { return ctx->needs_input_grad(i); }

std::array<at::Tensor, 3> backward_from(AutogradContext* ctx, const at::Tensor& grad) {
  const auto saved = ctx->get_saved_variables();
  const bool has_bias = ctx->saved_data["has_bias"].toBool();
  return conv_backward(grad, saved[0], saved[1], has_bias,
                       ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
                       ctx->saved_data["dilation"].toIntVector(), ctx->saved_data["groups"].toInt(),
                       saved_ints(ctx->saved_data["crop"]),
                       {needs_grad(ctx, 0), needs_grad(ctx, 1), has_bias && needs_grad(ctx, 2)});
}

class ConvTransposeCrop : public torch::autograd::Function<ConvTransposeCrop> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                            c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                            c10::SymIntArrayRef crop, c10::SymIntArrayRef output_size) {
    at::AutoDispatchBelowADInplaceOrView below;
    save_geometry(ctx, stride, padding, dilation, groups, crop, bias.has_value() && bias->defined());
    ctx->save_for_backward({input, weight});
    return crop_op().call(input, weight, bias, stride, padding, dilation, groups, crop, output_size);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto [gi, gw, gb] = backward_from(ctx, grads[0]);
    return {gi, gw, gb, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class ConvTransposeCropCat : public torch::autograd::Function<ConvTransposeCropCat> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, const at::Tensor& skip, c10::IntArrayRef stride,
                            c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                            c10::SymIntArrayRef crop, c10::SymIntArrayRef output_size,
                            c10::SymIntArrayRef skip_crop) {
    at::AutoDispatchBelowADInplaceOrView below;
    save_geometry(ctx, stride, padding, dilation, groups, crop, bias.has_value() && bias->defined());
    ctx->saved_data["skip_shape"] = c10::IValue(skip.sym_sizes());
    ctx->saved_data["skip_crop"] = c10::IValue(skip_crop);
    ctx->saved_data["output_size"] = c10::IValue(output_size);
    ctx->save_for_backward({input, weight});
    return crop_cat_op().call(input, weight, bias, skip, stride, padding, dilation, groups, crop, output_size,
                              skip_crop);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor& grad = grads[0];
    const auto skip_shape = saved_ints(ctx->saved_data["skip_shape"]);
    const auto sc = saved_ints(ctx->saved_data["skip_crop"]);
    const auto size = saved_ints(ctx->saved_data["output_size"]);
    const int64_t cs = skip_shape[1];
    auto [gi, gw, gb] = backward_from(ctx, grad.narrow(1, cs, grad.size(1) - cs));
    at::Tensor gs;
    if (needs_grad(ctx, ctx->saved_data["has_bias"].toBool() ? 3 : 2)) {  // skip
      gs = at::constant_pad_nd(grad.narrow(1, 0, cs),
                               {sc[1], skip_shape[3] - sc[1] - size[1], sc[0], skip_shape[2] - sc[0] - size[0]});
    }
    return {gi, gw, gb, gs, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

at::Tensor crop_autograd(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                         c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                         c10::SymIntArrayRef crop, c10::SymIntArrayRef output_size) {
  const bool record = records({&input, &weight, bias ? &*bias : nullptr});
  if (!record) {  // inference: no autograd node, and no saved geometry that would specialise SymInts
    at::AutoDispatchBelowADInplaceOrView below;
    return crop_op().call(input, weight, bias, stride, padding, dilation, groups, crop, output_size);
  }
  OutputForBackward scope(true);
  return ConvTransposeCrop::apply(input, weight, bias, stride, padding, dilation, groups, crop, output_size);
}

at::Tensor crop_cat_autograd(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                             const at::Tensor& skip, c10::IntArrayRef stride, c10::IntArrayRef padding,
                             c10::IntArrayRef dilation, int64_t groups, c10::SymIntArrayRef crop,
                             c10::SymIntArrayRef output_size, c10::SymIntArrayRef skip_crop) {
  const bool record = records({&input, &weight, bias ? &*bias : nullptr, &skip});
  if (!record) {  // as in crop_autograd
    at::AutoDispatchBelowADInplaceOrView below;
    return crop_cat_op().call(input, weight, bias, skip, stride, padding, dilation, groups, crop, output_size,
                              skip_crop);
  }
  OutputForBackward scope(true);
  return ConvTransposeCropCat::apply(input, weight, bias, skip, stride, padding, dilation, groups, crop, output_size,
                                     skip_crop);
}

}  // namespace
}  // namespace conv_transpose
}  // namespace fastseg

TORCH_LIBRARY_IMPL(fastseg, Autograd, m) {
  m.impl("conv_transpose2d_crop", &fastseg::conv_transpose::crop_autograd);
  m.impl("conv_transpose2d_crop_cat", &fastseg::conv_transpose::crop_cat_autograd);
}
