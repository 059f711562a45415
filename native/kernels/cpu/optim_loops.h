// The fused optimizers' loops, written once: a scalar step per element (the reference, and every
// variant's tail) and vector loops over a register-traits type V that each variant file supplies.
// Everything is in an anonymous namespace on purpose: each variant file compiles its own copy with
// its own -m flags, so no wide-instruction copy can be shared with code that runs on every CPU.
#pragma once
#include <cstdint>

namespace peft::kernels::cpu {
namespace {

struct AdamWConsts {
  float decay;         // 1 - lr·wd
  float beta1, beta2;
  float step_size;     // lr / (1 - beta1^t)
  float inv_sqrt_bc2;  // 1 / sqrt(1 - beta2^t)
  float eps;
};

inline void adamw_element(float* p, const float* g, float* m, float* v, int64_t i, const AdamWConsts& c) {
  const float gi = g[i];
  const float mi = m[i] + (1.0f - c.beta1) * (gi - m[i]);
  const float vi = v[i] * c.beta2 + (1.0f - c.beta2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  p[i] = p[i] * c.decay - c.step_size * (mi / (__builtin_sqrtf(vi) * c.inv_sqrt_bc2 + c.eps));
}

struct SgdConsts {
  float lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
};

inline void sgd_element(float* p, const float* g, float* buf, int64_t i, const SgdConsts& c) {
  float d = g[i] + c.weight_decay * p[i];
  if (buf != nullptr) {
    const float b = c.first_step ? d : c.momentum * buf[i] + (1.0f - c.dampening) * d;
    buf[i] = b;
    d = c.nesterov ? d + c.momentum * b : b;
  }
  p[i] -= c.lr * d;
}

// V: kWidth, F (register), load, store, set1, add, sub, mul, div, sqrt, fmadd(a, b, c) = a·b + c,
// fnmadd(a, b, c) = c − a·b, and SquareSum (f64 accumulation of x² with add(F) and total()).
template <class V>
void adamw_loop(float* p, const float* g, float* m, float* v, int64_t n, const AdamWConsts& c) {
  using F = typename V::F;
  const F omb1 = V::set1(1.0f - c.beta1), b2 = V::set1(c.beta2), omb2 = V::set1(1.0f - c.beta2);
  const F decay = V::set1(c.decay), step = V::set1(c.step_size), ibc2 = V::set1(c.inv_sqrt_bc2), eps = V::set1(c.eps);
  int64_t i = 0;
  for (; i + V::kWidth <= n; i += V::kWidth) {
    const F gi = V::load(g + i);
    F mi = V::load(m + i);
    mi = V::fmadd(omb1, V::sub(gi, mi), mi);
    const F vi = V::fmadd(V::mul(omb2, gi), gi, V::mul(V::load(v + i), b2));
    V::store(m + i, mi);
    V::store(v + i, vi);
    const F denom = V::fmadd(V::sqrt(vi), ibc2, eps);
    V::store(p + i, V::fnmadd(step, V::div(mi, denom), V::mul(V::load(p + i), decay)));
  }
  for (; i < n; ++i) adamw_element(p, g, m, v, i, c);
}

template <class V>
void sgd_loop(float* p, const float* g, float* buf, int64_t n, const SgdConsts& c) {
  using F = typename V::F;
  const F wd = V::set1(c.weight_decay), lr = V::set1(c.lr), mom = V::set1(c.momentum), omd = V::set1(1.0f - c.dampening);
  int64_t i = 0;
  for (; i + V::kWidth <= n; i += V::kWidth) {
    const F pi = V::load(p + i);
    F d = V::fmadd(wd, pi, V::load(g + i));
    if (buf != nullptr) {
      const F b = c.first_step ? d : V::fmadd(mom, V::load(buf + i), V::mul(omd, d));
      V::store(buf + i, b);
      d = c.nesterov ? V::fmadd(mom, b, d) : b;
    }
    V::store(p + i, V::fnmadd(lr, d, pi));
  }
  for (; i < n; ++i) sgd_element(p, g, buf, i, c);
}

// Sum of squares in f64, so the norm of millions of values keeps full f32 precision.
template <class V>
double sum_squares_loop(const float* x, int64_t n) {
  typename V::SquareSum acc;
  int64_t i = 0;
  for (; i + V::kWidth <= n; i += V::kWidth) acc.add(V::load(x + i));
  double total = acc.total();
  for (; i < n; ++i) total += static_cast<double>(x[i]) * x[i];
  return total;
}

template <class V>
void scale_loop(float* x, int64_t n, float factor) {
  const typename V::F f = V::set1(factor);
  int64_t i = 0;
  for (; i + V::kWidth <= n; i += V::kWidth) V::store(x + i, V::mul(V::load(x + i), f));
  for (; i < n; ++i) x[i] *= factor;
}

// The OptimSpans entry points for a variant V.
template <class V>
struct OptimVariant {
  static void adamw(float* p, const float* g, float* m, float* v, int64_t n, float decay, float beta1, float beta2,
                    float step_size, float inv_sqrt_bc2, float eps) {
    adamw_loop<V>(p, g, m, v, n, AdamWConsts{decay, beta1, beta2, step_size, inv_sqrt_bc2, eps});
  }
  static void sgd(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float dampening,
                  float weight_decay, bool nesterov, bool first_step) {
    sgd_loop<V>(p, g, buf, n, SgdConsts{lr, momentum, dampening, weight_decay, nesterov, first_step});
  }
  static double sum_squares(const float* x, int64_t n) { return sum_squares_loop<V>(x, n); }
  static void scale(float* x, int64_t n, float factor) { scale_loop<V>(x, n, factor); }
};

}  // namespace
}  // namespace peft::kernels::cpu
