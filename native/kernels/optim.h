// Fused optimizer steps over many tensors in one call, with PyTorch's semantics.
// Parameters, gradients and optimizer state are f32.
#pragma once
#include <cstdint>

namespace peft::kernels {

// One tensor's slices for an optimizer step. state0/state1 may be null when the method has none.
struct ParamSlot {
  float* param;       // [size]
  const float* grad;  // [size]
  float* state0;      // AdamW: exp_avg; SGD: momentum buffer
  float* state1;      // AdamW: exp_avg_sq
  int64_t size;
};

struct AdamWHyper {
  float lr;
  float beta1;
  float beta2;
  float eps;
  float weight_decay;
  int64_t step;  // 1 on the first step
};

struct SgdHyper {
  float lr;
  float momentum;
  float dampening;
  float weight_decay;
  bool nesterov;
  bool first_step;  // initialises the momentum buffer to the gradient, as PyTorch does
};

// AdamW (Loshchilov & Hutter): decoupled weight decay first, then bias-corrected moments.
void adamw_step(const ParamSlot* slots, int n_slots, const AdamWHyper& h);
// SGD with optional momentum, dampening, Nesterov and L2 weight decay.
void sgd_step(const ParamSlot* slots, int n_slots, const SgdHyper& h);
// Global L2 norm of all gradients; when it exceeds max_norm, scales every gradient by
// max_norm / (norm + 1e-6). Returns the norm before clipping. grads are written through.
double clip_grad_norm(float* const* grads, const int64_t* sizes, int n, double max_norm);

}  // namespace peft::kernels
