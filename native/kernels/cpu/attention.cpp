// Attention, one query row at a time: scores against every visible key, a stable softmax, then the
// weighted sum of values. Work is split over (batch, kv head) groups so that the backward's dk and
// dv, which all query heads of a group add into, are written by one thread only.
#include "kernels/attention.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace peft::kernels {

namespace {

inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Keys visible to query t: [0, end) minus padding.
inline int64_t visible_end(const AttentionShape& s, const AttentionMask& m, int64_t t) {
  return m.causal ? t + (s.kv_len - s.q_len) + 1 : s.kv_len;
}

void check(const AttentionShape& s) {
  PEFT_CHECK(s.batch >= 0 && s.q_len >= 0 && s.kv_len >= s.q_len && s.head_dim >= 1 && s.kv_heads >= 1 &&
                 s.q_heads >= s.kv_heads && s.q_heads % s.kv_heads == 0,
             ErrorCode::Shape,
             "Expected kv_len >= q_len and query heads a multiple of kv heads for attention but received T=" +
                 std::to_string(s.q_len) + " S=" + std::to_string(s.kv_len) + " Hq=" + std::to_string(s.q_heads) +
                 " Hkv=" + std::to_string(s.kv_heads));
}

}  // namespace

void attention_forward(const AttentionShape& s, const AttentionMask& mask, float scale, const float* q, const float* k,
                       const float* v, float* out, float* lse) {
  check(s);
  const int64_t D = s.head_dim, group = s.q_heads / s.kv_heads;
  const int64_t q_row = s.q_heads * D, kv_row = s.kv_heads * D;
  parallel_for(s.batch * s.kv_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> p(static_cast<size_t>(s.kv_len));
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / s.kv_heads, hk = bg % s.kv_heads;
      const uint8_t* valid = mask.key_valid ? mask.key_valid + b * s.kv_len : nullptr;
      for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
        for (int64_t t = 0; t < s.q_len; ++t) {
          const float* qt = q + (b * s.q_len + t) * q_row + h * D;
          float* ot = out + (b * s.q_len + t) * q_row + h * D;
          const int64_t send = visible_end(s, mask, t);
          float max = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < send; ++j) {
            if (valid && !valid[j]) continue;
            p[j] = scale * dot(qt, k + (b * s.kv_len + j) * kv_row + hk * D, D);
            if (p[j] > max) max = p[j];
          }
          std::memset(ot, 0, sizeof(float) * D);
          float* lse_t = lse + (b * s.q_heads + h) * s.q_len + t;
          if (max == -std::numeric_limits<float>::infinity()) {  // no visible key
            *lse_t = max;
            continue;
          }
          double sum = 0;
          for (int64_t j = 0; j < send; ++j) {
            if (valid && !valid[j]) continue;
            p[j] = std::exp(p[j] - max);
            sum += p[j];
          }
          const float inv = static_cast<float>(1.0 / sum);
          for (int64_t j = 0; j < send; ++j) {
            if (valid && !valid[j]) continue;
            const float w = p[j] * inv;
            const float* vj = v + (b * s.kv_len + j) * kv_row + hk * D;
            for (int64_t d = 0; d < D; ++d) ot[d] += w * vj[d];
          }
          *lse_t = max + static_cast<float>(std::log(sum));
        }
      }
    }
  });
}

void attention_backward(const AttentionShape& s, const AttentionMask& mask, float scale, const float* q,
                        const float* k, const float* v, const float* out, const float* dout, const float* lse,
                        float* dq, float* dk, float* dv) {
  check(s);
  const int64_t D = s.head_dim, group = s.q_heads / s.kv_heads;
  const int64_t q_row = s.q_heads * D, kv_row = s.kv_heads * D;
  parallel_for(s.batch * s.kv_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> dscore(static_cast<size_t>(s.kv_len));
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / s.kv_heads, hk = bg % s.kv_heads;
      const uint8_t* valid = mask.key_valid ? mask.key_valid + b * s.kv_len : nullptr;
      for (int64_t j = 0; j < s.kv_len; ++j) {
        std::memset(dk + (b * s.kv_len + j) * kv_row + hk * D, 0, sizeof(float) * D);
        std::memset(dv + (b * s.kv_len + j) * kv_row + hk * D, 0, sizeof(float) * D);
      }
      for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
        for (int64_t t = 0; t < s.q_len; ++t) {
          const int64_t row = (b * s.q_len + t) * q_row + h * D;
          const float* qt = q + row;
          const float* dot_t = dout + row;
          float* dqt = dq + row;
          std::memset(dqt, 0, sizeof(float) * D);
          const float l = lse[(b * s.q_heads + h) * s.q_len + t];
          if (l == -std::numeric_limits<float>::infinity()) continue;  // saw no key: no gradient
          // dS_j = p_j (dP_j − Σ_i p_i dP_i), with dP_j = dout·v_j and Σ_i p_i dP_i = dout·out.
          const float row_term = dot(dot_t, out + row, D);
          const int64_t send = visible_end(s, mask, t);
          for (int64_t j = 0; j < send; ++j) {
            if (valid && !valid[j]) continue;
            const float* kj = k + (b * s.kv_len + j) * kv_row + hk * D;
            const float* vj = v + (b * s.kv_len + j) * kv_row + hk * D;
            const float p = std::exp(scale * dot(qt, kj, D) - l);
            float* dvj = dv + (b * s.kv_len + j) * kv_row + hk * D;
            for (int64_t d = 0; d < D; ++d) dvj[d] += p * dot_t[d];
            dscore[j] = p * (dot(dot_t, vj, D) - row_term) * scale;
          }
          for (int64_t j = 0; j < send; ++j) {
            if (valid && !valid[j]) continue;
            const float g = dscore[j];
            const float* kj = k + (b * s.kv_len + j) * kv_row + hk * D;
            float* dkj = dk + (b * s.kv_len + j) * kv_row + hk * D;
            for (int64_t d = 0; d < D; ++d) {
              dqt[d] += g * kj[d];
              dkj[d] += g * qt[d];
            }
          }
        }
      }
    }
  });
}

}  // namespace peft::kernels
