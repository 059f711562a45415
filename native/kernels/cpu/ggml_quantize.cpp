// ggml_quantize_row: what llama-quantize writes without an importance matrix (ggml_quantize_chunk),
// for the block formats of ggml_quant.h, reproduced byte for byte so that our GGUF files match
// llama.cpp's. For every type but IQ4_NL that is the reference quantizer (quantize_row_*_ref of
// ggml-quants.c); for IQ4_NL it is quantize_iq4_nl, which tries 7 more scales each way than the _ref
// and re-picks the levels for the chosen scale.
// Bit exactness rests on ggml's float arithmetic in ggml's order and precision: f32 everywhere, the
// same operand order in every sum and product, the same rounding helpers (nearest_int's magic-number
// trick, roundf, C's truncating casts), no FMA contraction, and scales read back through f16 where
// ggml reads them back. peft::f32_to_f16 / f16_to_f32 agree with ggml's converters on every value
// that can occur here (checked exhaustively: they differ only in NaN payloads, and arithmetic on
// finite inputs makes only the default NaN).
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/ggml_quant.h"

// A fused multiply-add rounds once where ggml rounds twice, which changes levels; keep contraction
// off even if this file is ever built with FMA enabled (-march=native and the like).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace peft::kernels {

namespace {

constexpr int kQK = 32;                  // elements per block of the legacy formats and IQ4_NL
constexpr int kQK_K = kGgmlSuperBlock;   // elements per super-block
constexpr float kGroupMaxEps = 1e-15f;   // ggml's GROUP_MAX_EPS: a group below it is all zero

// IQ4_NL / IQ4_XS's 16 levels (ggml-common.h's kvalues_iq4nl), ascending.
constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// The blocks as ggml-common.h lays them out; built on the stack and copied out, since the output
// bytes need not be aligned for them.
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ2_K { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; };
struct BlockQ3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
struct BlockIQ4_NL { uint16_t d; uint8_t qs[16]; };
struct BlockIQ4_XS { uint16_t d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; };
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
                  sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockIQ4_NL) == 18,
              "32-element block sizes");
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
                  sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockIQ4_XS) == 136,
              "super-block sizes");

inline uint16_t to_f16(float f) { return f32_to_f16(f); }
inline float from_f16(uint16_t h) { return f16_to_f32(h); }

// ggml's nearest_int: round half to even through the f32 adder, valid for |f| <= 2^22; outside that
// it still yields ggml's (meaningless but deterministic) bits, so no range check.
inline int nearest_int(float f) {
  const float v = f + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// C's float -> integer truncation as ggml's x86 build executes it (cvttss2si): INT32_MIN for NaN and
// out-of-range values, which C and C++ leave undefined. Only reachable when a scale's inverse overflows.
inline int32_t trunc_to_int(float v) {
  if (!(v >= -2147483648.0f && v < 2147483648.0f)) return INT32_MIN;
  return static_cast<int32_t>(v);
}

template <typename T>
inline T min_of(T a, T b) { return a < b ? a : b; }
template <typename T>
inline T max_of(T a, T b) { return a > b ? a : b; }

// x: [n] f32 -> out: [n / kBlock · sizeof(Block)] bytes, quantize_block(x: [kBlock] f32, Block&) per
// block. Each block starts zeroed: that stands in for ggml's memsets before it ORs bits in.
template <typename Block, int kBlock, typename Fn>
void for_each_block(const float* x, int64_t n, uint8_t* out, Fn quantize_block) {
  const int64_t nb = n / kBlock;
  for (int64_t i = 0; i < nb; ++i) {
    Block b;
    std::memset(&b, 0, sizeof b);
    quantize_block(x + i * kBlock, b);
    std::memcpy(out + i * static_cast<int64_t>(sizeof(Block)), &b, sizeof b);
  }
}

// ---- legacy 32-element formats ----

// x: [32] f32 -> the element of largest magnitude, the first of equals (ggml's strict < scan).
inline float max_by_magnitude(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// x: [32] f32. Symmetric 4-bit: the largest-magnitude value maps to -8.
void q4_0_block(const float* x, BlockQ4_0& b) {
  const float d = max_by_magnitude(x) / -8;
  const float id = d ? 1.0f / d : 0.0f;
  b.d = to_f16(d);
  for (int j = 0; j < kQK / 2; ++j) {
    // ggml truncates x·id + 8.5 to int8 first, then clamps; keep both steps.
    const int8_t q0 = static_cast<int8_t>(trunc_to_int(x[j] * id + 8.5f));
    const int8_t q1 = static_cast<int8_t>(trunc_to_int(x[kQK / 2 + j] * id + 8.5f));
    const uint8_t xi0 = static_cast<uint8_t>(min_of<int>(15, q0));
    const uint8_t xi1 = static_cast<uint8_t>(min_of<int>(15, q1));
    b.qs[j] = static_cast<uint8_t>(xi0 | xi1 << 4);
  }
}

// x: [32] f32 -> (min, max) as ggml scans them.
inline void min_max(const float* x, float& min, float& max) {
  min = FLT_MAX;
  max = -FLT_MAX;
  for (int j = 0; j < kQK; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
}

// x: [32] f32. Asymmetric 4-bit: 15 steps from the minimum.
void q4_1_block(const float* x, BlockQ4_1& b) {
  float min, max;
  min_max(x, min, max);
  const float d = (max - min) / 15;
  const float id = d ? 1.0f / d : 0.0f;
  b.d = to_f16(d);
  b.m = to_f16(min);
  for (int j = 0; j < kQK / 2; ++j) {
    const int8_t q0 = static_cast<int8_t>(trunc_to_int((x[j] - min) * id + 0.5f));
    const int8_t q1 = static_cast<int8_t>(trunc_to_int((x[kQK / 2 + j] - min) * id + 0.5f));
    const uint8_t xi0 = static_cast<uint8_t>(min_of<int>(15, q0));
    const uint8_t xi1 = static_cast<uint8_t>(min_of<int>(15, q1));
    b.qs[j] = static_cast<uint8_t>(xi0 | xi1 << 4);
  }
}

// x: [32] f32. Symmetric 5-bit: the largest-magnitude value maps to -16; the fifth bits go to qh.
void q5_0_block(const float* x, BlockQ5_0& b) {
  const float d = max_by_magnitude(x) / -16;
  const float id = d ? 1.0f / d : 0.0f;
  b.d = to_f16(d);
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const int8_t q0 = static_cast<int8_t>(trunc_to_int(x[j] * id + 16.5f));
    const int8_t q1 = static_cast<int8_t>(trunc_to_int(x[kQK / 2 + j] * id + 16.5f));
    const uint8_t xi0 = static_cast<uint8_t>(min_of<int>(31, q0));
    const uint8_t xi1 = static_cast<uint8_t>(min_of<int>(31, q1));
    b.qs[j] = static_cast<uint8_t>((xi0 & 0x0f) | (xi1 & 0x0f) << 4);
    qh |= ((xi0 & 0x10u) >> 4) << j;
    qh |= ((xi1 & 0x10u) >> 4) << (j + kQK / 2);
  }
  std::memcpy(b.qh, &qh, 4);  // little-endian, as ggml's memcpy stores it on x86
}

// x: [32] f32. Asymmetric 5-bit: 31 steps from the minimum; no clamp, as in ggml.
void q5_1_block(const float* x, BlockQ5_1& b) {
  float min, max;
  min_max(x, min, max);
  const float d = (max - min) / 31;
  const float id = d ? 1.0f / d : 0.0f;
  b.d = to_f16(d);
  b.m = to_f16(min);
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const uint8_t xi0 = static_cast<uint8_t>(trunc_to_int((x[j] - min) * id + 0.5f));
    const uint8_t xi1 = static_cast<uint8_t>(trunc_to_int((x[kQK / 2 + j] - min) * id + 0.5f));
    b.qs[j] = static_cast<uint8_t>((xi0 & 0x0f) | (xi1 & 0x0f) << 4);
    qh |= ((xi0 & 0x10u) >> 4) << j;
    qh |= ((xi1 & 0x10u) >> 4) << (j + kQK / 2);
  }
  std::memcpy(b.qh, &qh, 4);
}

// x: [32] f32. Symmetric 8-bit, rounded half away from zero (roundf).
void q8_0_block(const float* x, BlockQ8_0& b) {
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = max_of(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d ? 1.0f / d : 0.0f;
  b.d = to_f16(d);
  for (int j = 0; j < kQK; ++j) b.qs[j] = static_cast<int8_t>(trunc_to_int(std::round(x[j] * id)));
}

// ---- K-quant helpers (ggml-quants.c's make_*_quants) ----

// x, weights: [n] f32 -> L: [n] levels in [0, nmax], returns the scale and sets *the_min (a value to
// subtract, >= 0). A weighted least-squares fit of scale and min over nstep + 1 trial inverse scales;
// use_mad scores by weighted absolute error instead of squared. Laux: [n] scratch.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(max_of(0, min_of(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = max_of(0, min_of(nmax, l));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// x: [n] f32 -> L: [n] levels in [0, 2·nmax), returns the (signed) scale. Symmetric, weighted by x²,
// refined by up to 5 passes of moving single levels while that improves the fit (make_q3_quants).
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {  // levels 0, not nmax: ggml's all-zero group
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = max_of(-nmax, min_of(nmax - 1, l));
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = max_of(-nmax, min_of(nmax - 1, new_l));
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// x: [n] f32 -> L: [n] levels in [0, 2·nmax), returns the (signed) scale. Symmetric, weighted by x²
// (ggml's rmse_type 1 without importance weights), the best of 19 trial inverse scales (make_qx_quants).
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = max_of(-nmax, min_of(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = max_of(-nmax, min_of(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + max_of(-nmax, min_of(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// q: [12] packed 6-bit scales and mins (Q4_K / Q5_K) -> sub-block j's scale and min.
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t& d, uint8_t& m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = static_cast<uint8_t>((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
    m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// scales, mins: [8] f32 -> q: [12], the 6-bit packing of Q4_K / Q5_K. Levels are taken as uint8
// before the clamp to 63, as ggml does.
void pack_scales_mins_k4(const float* scales, const float* mins, float max_scale, float max_min, uint8_t* q) {
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < kQK_K / 32; ++j) {
    uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
    uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    ls = min_of<uint8_t>(63, ls);
    lm = min_of<uint8_t>(63, lm);
    if (j < 4) {
      q[j] = ls;
      q[j + 4] = lm;
    } else {
      q[j + 4] = static_cast<uint8_t>((ls & 0xf) | ((lm & 0xf) << 4));
      q[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      q[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
}

// x: [256] f32 -> (scales, mins): [8] f32 and L: [256] levels in [0, nmax] by make_qkx2_quants on
// each 32-element sub-block, weighted by the sub-block's RMS plus |x| (Q4_K / Q5_K). Returns the
// largest scale and min.
void fit_k4_sub_blocks(const float* x, int nmax, float rmin, float rdelta, int nstep, float* scales, float* mins,
                       uint8_t* L, float& max_scale, float& max_min) {
  float weights[32];
  uint8_t Laux[32];
  max_scale = 0;
  max_min = 0;
  for (int j = 0; j < kQK_K / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
}

// x: [256] f32, q: [12] packed scales, (d, dmin) as stored -> L: [256] levels in [0, nmax] against the
// f16-rounded scales; sub-blocks whose scale rounds to 0 keep their fitted levels, as in ggml.
void requantize_k4(const float* x, const uint8_t* q, uint16_t d16, uint16_t dmin16, int nmax, uint8_t* L) {
  for (int j = 0; j < kQK_K / 32; ++j) {
    uint8_t sc, m;
    get_scale_min_k4(j, q, sc, m);
    const float d = from_f16(d16) * sc;
    if (!d) continue;
    const float dm = from_f16(dmin16) * m;
    for (int ii = 0; ii < 32; ++ii) {
      int l = nearest_int((x[32 * j + ii] + dm) / d);
      l = max_of(0, min_of(nmax, l));
      L[32 * j + ii] = static_cast<uint8_t>(l);
    }
  }
}

// ---- K-quants ----

// L: [256] levels in [0, 3] -> qs: [64], Q2_K's and Q3_K's layout: in each half of 128 elements, byte
// l holds elements l, l + 32, l + 64 and l + 96 in bits 0-1, 2-3, 4-5 and 6-7.
template <typename Level>
void pack_2bit(const Level* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128) {
    for (int l = 0; l < 32; ++l) {
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
  }
}

// x: [256] f32. 16 sub-blocks of 16, 2-bit levels with a 4-bit scale and min each.
void q2_k_block(const float* x, BlockQ2_K& b) {
  uint8_t L[kQK_K];
  uint8_t Laux[16];
  float weights[16];
  float mins[kQK_K / 16];
  float scales[kQK_K / 16];
  const float q4scale = 15.f;
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQK_K / 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  if (max_scale > 0) {
    const float iscale = q4scale / max_scale;
    for (int j = 0; j < kQK_K / 16; ++j) b.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
    b.d = to_f16(max_scale / q4scale);
  } else {
    for (int j = 0; j < kQK_K / 16; ++j) b.scales[j] = 0;
    b.d = to_f16(0.f);
  }
  if (max_min > 0) {
    const float iscale = q4scale / max_min;
    for (int j = 0; j < kQK_K / 16; ++j) {
      const int l = nearest_int(iscale * mins[j]);
      b.scales[j] = static_cast<uint8_t>(b.scales[j] | (l << 4));
    }
    b.dmin = to_f16(max_min / q4scale);
  } else {
    b.dmin = to_f16(0.f);
  }
  for (int j = 0; j < kQK_K / 16; ++j) {
    const float d = from_f16(b.d) * (b.scales[j] & 0xf);
    if (!d) continue;
    const float dm = from_f16(b.dmin) * (b.scales[j] >> 4);
    for (int ii = 0; ii < 16; ++ii) {
      int l = nearest_int((x[16 * j + ii] + dm) / d);
      l = max_of(0, min_of(3, l));
      L[16 * j + ii] = static_cast<uint8_t>(l);
    }
  }
  pack_2bit(L, b.qs);
}

// x: [256] f32. 16 sub-blocks of 16, symmetric 3-bit levels (high bit in hmask), 6-bit signed scales.
void q3_k_block(const float* x, BlockQ3_K& b) {
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  float max_scale = 0, amax = 0;
  for (int j = 0; j < kQK_K / 16; ++j) {
    scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
    const float scale = std::fabs(scales[j]);
    if (scale > amax) {
      amax = scale;
      max_scale = scales[j];
    }
  }
  std::memset(b.scales, 0, 12);
  if (max_scale) {
    const float iscale = -32.f / max_scale;
    for (int j = 0; j < kQK_K / 16; ++j) {
      // ggml keeps the level in an int8 from the start (nearest_int's int truncated), then clamps.
      int8_t l = static_cast<int8_t>(nearest_int(iscale * scales[j]));
      l = static_cast<int8_t>(max_of<int>(-32, min_of<int>(31, l)) + 32);
      if (j < 8) {
        b.scales[j] = l & 0xf;
      } else {
        b.scales[j - 8] = static_cast<uint8_t>(b.scales[j - 8] | ((l & 0xf) << 4));
      }
      l = static_cast<int8_t>(l >> 4);
      b.scales[j % 4 + 8] = static_cast<uint8_t>(b.scales[j % 4 + 8] | (l << (2 * (j / 4))));
    }
    b.d = to_f16(1 / iscale);
  } else {
    b.d = to_f16(0.f);
  }
  for (int j = 0; j < kQK_K / 16; ++j) {
    int8_t sc = static_cast<int8_t>(j < 8 ? b.scales[j] & 0xf : b.scales[j - 8] >> 4);
    sc = static_cast<int8_t>((sc | (((b.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
    const float d = from_f16(b.d) * sc;
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii) {
      int l = nearest_int(x[16 * j + ii] / d);
      l = max_of(-4, min_of(3, l));
      L[16 * j + ii] = static_cast<int8_t>(l + 4);
    }
  }
  // Bit k of hmask[m] is the high bit of element 32·k + m.
  int m = 0;
  uint8_t hm = 1;
  for (int j = 0; j < kQK_K; ++j) {
    if (L[j] > 3) {
      b.hmask[m] = static_cast<uint8_t>(b.hmask[m] | hm);
      L[j] = static_cast<int8_t>(L[j] - 4);
    }
    if (++m == kQK_K / 8) {
      m = 0;
      hm = static_cast<uint8_t>(hm << 1);
    }
  }
  pack_2bit(L, b.qs);
}

// x: [256] f32. 8 sub-blocks of 32, 4-bit levels with a 6-bit scale and min each.
void q4_k_block(const float* x, BlockQ4_K& b) {
  uint8_t L[kQK_K];
  float mins[kQK_K / 32];
  float scales[kQK_K / 32];
  float max_scale, max_min;
  fit_k4_sub_blocks(x, 15, -1.f, 0.1f, 20, scales, mins, L, max_scale, max_min);
  pack_scales_mins_k4(scales, mins, max_scale, max_min, b.scales);
  b.d = to_f16(max_scale / 63.f);
  b.dmin = to_f16(max_min / 63.f);
  requantize_k4(x, b.scales, b.d, b.dmin, 15, L);
  uint8_t* q = b.qs;
  for (int j = 0; j < kQK_K; j += 64) {
    for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    q += 32;
  }
}

// x: [256] f32. As Q4_K with 5-bit levels, the fifth bits in qh.
void q5_k_block(const float* x, BlockQ5_K& b) {
  uint8_t L[kQK_K];
  float mins[kQK_K / 32];
  float scales[kQK_K / 32];
  float max_scale, max_min;
  fit_k4_sub_blocks(x, 31, -0.5f, 0.1f, 15, scales, mins, L, max_scale, max_min);
  pack_scales_mins_k4(scales, mins, max_scale, max_min, b.scales);
  b.d = to_f16(max_scale / 63.f);
  b.dmin = to_f16(max_min / 63.f);
  requantize_k4(x, b.scales, b.d, b.dmin, 31, L);
  uint8_t* ql = b.qs;
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < kQK_K; n += 64) {
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j];
      if (l1 > 15) {
        l1 -= 16;
        b.qh[j] |= m1;
      }
      int l2 = L[n + j + 32];
      if (l2 > 15) {
        l2 -= 16;
        b.qh[j] |= m2;
      }
      ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
    m1 = static_cast<uint8_t>(m1 << 2);
    m2 = static_cast<uint8_t>(m2 << 2);
    ql += 32;
  }
}

// x: [256] f32. 16 sub-blocks of 16, symmetric 6-bit levels, 8-bit signed scales.
void q6_k_block(const float* x, BlockQ6_K& b) {
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < kQK_K / 16; ++ib) {
    const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
    scales[ib] = scale;
    const float abs_scale = std::fabs(scale);
    if (abs_scale > max_abs_scale) {
      max_abs_scale = abs_scale;
      max_scale = scale;
    }
  }
  if (max_abs_scale < kGroupMaxEps) return;  // the all-zero block (b arrives zeroed; f16 0 is 0x0000)
  const float iscale = -128.f / max_scale;
  b.d = to_f16(1 / iscale);
  for (int ib = 0; ib < kQK_K / 16; ++ib) {
    b.scales[ib] = static_cast<int8_t>(min_of(127, nearest_int(iscale * scales[ib])));
  }
  for (int j = 0; j < kQK_K / 16; ++j) {
    const float d = from_f16(b.d) * b.scales[j];
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii) {
      int l = nearest_int(x[16 * j + ii] / d);
      l = max_of(-32, min_of(31, l));
      L[16 * j + ii] = static_cast<int8_t>(l + 32);
    }
  }
  uint8_t* ql = b.ql;
  uint8_t* qh = b.qh;
  for (int j = 0; j < kQK_K; j += 128) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t q1 = L[j + l + 0] & 0xf;
      const uint8_t q2 = L[j + l + 32] & 0xf;
      const uint8_t q3 = L[j + l + 64] & 0xf;
      const uint8_t q4 = L[j + l + 96] & 0xf;
      ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
      ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
      qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                   ((L[j + l + 96] >> 4) << 6));
    }
    ql += 64;
    qh += 32;
  }
}

// ---- non-linear 4-bit (IQ4_NL, IQ4_XS) ----

// The index of the level of kIq4nlValues nearest to x, ties to the upper one; the bisection and the
// float comparison of distances are ggml's (their rounding decides near-ties). NaN picks 15.
int best_index_iq4nl(float x) {
  const int8_t* val = kIq4nlValues;
  if (x <= val[0]) return 0;
  if (x >= val[15]) return 15;
  int ml = 0, mu = 15;
  while (mu - ml > 1) {
    const int mav = (ml + mu) / 2;
    if (x < val[mav]) {
      mu = mav;
    } else {
      ml = mav;
    }
  }
  return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

// xb, weight: [32] f32 -> Lb: [32] level indices (when not all zero), returns the block's scale
// (0 for an all-zero block). The first guess maps the largest-magnitude value to the end level;
// for ntry > 0 inverse scales (itry - 127) / max, itry in [-ntry, ntry], are tried too and the best
// weighted least-squares fit kept. ggml's quantize_row_iq4_nl_impl's per-block search.
float iq4_block_scale(const float* xb, const float* weight, int ntry, uint8_t* Lb) {
  const int8_t* values = kIq4nlValues;
  float amax = 0, max = 0;
  for (int j = 0; j < 32; ++j) {
    const float ax = std::fabs(xb[j]);
    if (ax > amax) {
      amax = ax;
      max = xb[j];
    }
  }
  if (amax < kGroupMaxEps) {
    // The ggml we match (node-llama-cpp's build) leaves Lb as the stack held it, so those bytes are
    // undefined there; current llama.cpp zeroes them, and so do we.
    std::memset(Lb, 0, 32);
    return 0;
  }
  float d = ntry > 0 ? -max / values[0] : max / values[0];
  float id = 1 / d;
  float sumqx = 0, sumq2 = 0;
  for (int j = 0; j < 32; ++j) {
    const int l = best_index_iq4nl(id * xb[j]);
    Lb[j] = static_cast<uint8_t>(l);
    const float q = values[l];
    const float w = weight[j];
    sumqx += w * q * xb[j];
    sumq2 += w * q * q;
  }
  d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
  float best = d * sumqx;
  for (int itry = -ntry; itry <= ntry; ++itry) {
    id = (itry + values[0]) / max;
    sumqx = sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
      const int l = best_index_iq4nl(id * xb[j]);
      const float q = values[l];
      const float w = weight[j];
      sumqx += w * q * xb[j];
      sumq2 += w * q * q;
    }
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

// L: [32·k] level indices -> q4: [16·k], element j of each 32 in the low nibble, j + 16 in the high.
inline void pack_iq4(const uint8_t* L, int k, uint8_t* q4) {
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < 16; ++j) q4[16 * i + j] = static_cast<uint8_t>(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
  }
}

// x: [32] f32. quantize_iq4_nl (llama-quantize's IQ4_NL, not the _ref): weights x², 7 trial scales
// each way, then every level re-picked for the chosen (unrounded) scale; an all-zero block takes
// the level nearest 0 everywhere.
void iq4_nl_block(const float* x, BlockIQ4_NL& b) {
  float weight[32];
  uint8_t L[32];
  for (int j = 0; j < 32; ++j) weight[j] = x[j] * x[j];
  const float scale = iq4_block_scale(x, weight, 7, L);
  b.d = to_f16(scale);
  const float id = scale ? 1 / scale : 0.f;
  for (int j = 0; j < 32; ++j) L[j] = static_cast<uint8_t>(best_index_iq4nl(id * x[j]));
  pack_iq4(L, 1, b.qs);
}

// x: [256] f32. quantize_row_iq4_xs_ref: 8 sub-blocks of 32 fitted as IQ4_NL with 7 trial scales
// each, their scales then quantized to 6 bits against d = -max_scale / 32 (unrounded) and every
// sub-block's levels re-picked for its quantized scale.
void iq4_xs_block(const float* x, BlockIQ4_XS& b) {
  float weight[32];
  float scales[kQK_K / 32];
  uint8_t L[kQK_K];
  float max_scale = 0, amax_scale = 0;
  for (int ib = 0; ib < kQK_K / 32; ++ib) {
    const float* xb = x + 32 * ib;
    for (int j = 0; j < 32; ++j) weight[j] = xb[j] * xb[j];
    scales[ib] = iq4_block_scale(xb, weight, 7, L + 32 * ib);
    const float abs_d = std::fabs(scales[ib]);
    if (abs_d > amax_scale) {
      amax_scale = abs_d;
      max_scale = scales[ib];
    }
  }
  const float d = -max_scale / 32;
  b.d = to_f16(d);
  const float id = d ? 1 / d : 0.f;
  for (int ib = 0; ib < kQK_K / 32; ++ib) {
    int l = nearest_int(id * scales[ib]);
    l = max_of(-32, min_of(31, l));
    const float dl = d * l;
    const float idl = dl ? 1 / dl : 0.f;
    const float* xb = x + 32 * ib;
    for (int j = 0; j < 32; ++j) L[32 * ib + j] = static_cast<uint8_t>(best_index_iq4nl(idl * xb[j]));
    l += 32;
    const uint8_t l_l = static_cast<uint8_t>(l & 0xf);
    const uint8_t l_h = static_cast<uint8_t>(l >> 4);
    if (ib % 2 == 0) {
      b.scales_l[ib / 2] = l_l;
    } else {
      b.scales_l[ib / 2] = static_cast<uint8_t>(b.scales_l[ib / 2] | (l_l << 4));
    }
    b.scales_h = static_cast<uint16_t>(b.scales_h | (l_h << 2 * (ib % 8)));
  }
  pack_iq4(L, kQK_K / 32, b.qs);
}

}  // namespace

void ggml_quantize_row(GgmlType type, const float* x, int64_t n, uint8_t* blocks) {
  switch (type) {
    case GgmlType::Q4_0: return for_each_block<BlockQ4_0, kQK>(x, n, blocks, q4_0_block);
    case GgmlType::Q4_1: return for_each_block<BlockQ4_1, kQK>(x, n, blocks, q4_1_block);
    case GgmlType::Q5_0: return for_each_block<BlockQ5_0, kQK>(x, n, blocks, q5_0_block);
    case GgmlType::Q5_1: return for_each_block<BlockQ5_1, kQK>(x, n, blocks, q5_1_block);
    case GgmlType::Q8_0: return for_each_block<BlockQ8_0, kQK>(x, n, blocks, q8_0_block);
    case GgmlType::Q2_K: return for_each_block<BlockQ2_K, kQK_K>(x, n, blocks, q2_k_block);
    case GgmlType::Q3_K: return for_each_block<BlockQ3_K, kQK_K>(x, n, blocks, q3_k_block);
    case GgmlType::Q4_K: return for_each_block<BlockQ4_K, kQK_K>(x, n, blocks, q4_k_block);
    case GgmlType::Q5_K: return for_each_block<BlockQ5_K, kQK_K>(x, n, blocks, q5_k_block);
    case GgmlType::Q6_K: return for_each_block<BlockQ6_K, kQK_K>(x, n, blocks, q6_k_block);
    case GgmlType::IQ4_NL: return for_each_block<BlockIQ4_NL, kQK>(x, n, blocks, iq4_nl_block);
    case GgmlType::IQ4_XS: return for_each_block<BlockIQ4_XS, kQK_K>(x, n, blocks, iq4_xs_block);
  }
  PEFT_CHECK(false, ErrorCode::Unsupported,
             "No ggml quantizer for ggml type id " + std::to_string(static_cast<uint32_t>(type)));
}

}  // namespace peft::kernels
