// Attention in blocks of query rows (the flash-attention schedule without its online rescaling: a
// block's scores against every key it can see fit in a [rows, S] scratch, never T x S): scores and
// products run through the blocked GEMM (and so through its SIMD variants), the softmax row by row.
// The forward keeps only each row's log-sum-exp; the backward recomputes the probabilities from it.
// The forward splits over (batch, query head, query block). The backward splits over (batch, kv
// head), so that dk and dv, which every query head of a group adds into, have one writer each.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/variants.h"
#include "kernels/gemm.h"

namespace peft::kernels {

namespace {

constexpr int64_t kQueryBlock = 64;  // query rows per block: [64, S] f32 scores stay in L2 for S up to ~2K
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void check(const AttentionShape& s, const AttentionMask& m) {
  PEFT_CHECK(m.softcap >= 0 && std::isfinite(m.softcap), ErrorCode::Argument,
             "Expected a finite, non-negative attention soft-cap but received " + std::to_string(m.softcap));
  PEFT_CHECK(m.window >= 0 && (m.window == 0 || m.causal), ErrorCode::Argument,
             "Expected a non-negative sliding window, and one only with a causal mask, but received " +
                 std::to_string(m.window));
  PEFT_CHECK(s.batch >= 0 && s.q_len >= 0 && s.kv_len >= s.q_len && s.head_dim >= 1 && s.kv_heads >= 1 &&
                 s.q_heads >= s.kv_heads && s.q_heads % s.kv_heads == 0,
             ErrorCode::Shape,
             "Expected kv_len >= q_len and query heads a multiple of kv heads for attention but received T=" +
                 std::to_string(s.q_len) + " S=" + std::to_string(s.kv_len) + " Hq=" + std::to_string(s.q_heads) +
                 " Hkv=" + std::to_string(s.kv_heads));
}

// Keys visible to query t: [begin, end) minus padding.
inline int64_t visible_end(const AttentionShape& s, const AttentionMask& m, int64_t t) {
  return m.causal ? t + (s.kv_len - s.q_len) + 1 : s.kv_len;
}
inline int64_t visible_begin(const AttentionShape& s, const AttentionMask& m, int64_t t) {
  return m.causal && m.window > 0 ? std::max<int64_t>(0, visible_end(s, m, t) - m.window) : 0;
}

// One block of query rows of one head: where its rows, keys and values live.
struct Block {
  int64_t b, h, hk, t0, rows, keys;  // keys: the block's last row sees [0, keys)
};

Block make_block(const AttentionShape& s, const AttentionMask& m, int64_t b, int64_t h, int64_t t0) {
  const int64_t rows = std::min(kQueryBlock, s.q_len - t0);
  return Block{b, h, h / (s.q_heads / s.kv_heads), t0, rows, visible_end(s, m, t0 + rows - 1)};
}

// scores [rows, keys] = scale · q_block · k[0:keys]ᵀ, with the keys a row cannot see set to -inf.
void block_scores(const AttentionShape& s, const AttentionMask& m, float scale, const Block& blk, const float* q,
                  const float* k, float* scores) {
  const int64_t D = s.head_dim, q_row = s.q_heads * D, kv_row = s.kv_heads * D;
  const float* qp = q + (blk.b * s.q_len + blk.t0) * q_row + blk.h * D;
  const float* kp = k + blk.b * s.kv_len * kv_row + blk.hk * D;
  if (blk.rows == 1 && D < 16) {
    // A head narrower than one vector (stories260K's D = 8): plain loops; the vector loops would
    // spend a horizontal sum on every key.
    for (int64_t j = 0; j < blk.keys; ++j) {
      const float* kj = kp + j * kv_row;
      float sum = 0;
      for (int64_t d = 0; d < D; ++d) sum += qp[d] * kj[d];
      scores[j] = scale * sum;
    }
  } else if (blk.rows == 1) {
    // Decoding: one query row. The small-M loops directly, as gemm would pick them, without its
    // dispatch (a served batch makes one such call per request, head and layer).
    cpu::active_gemv_spans().dot_rows_f32(1, blk.keys, D, qp, D, kp, kv_row, scores, blk.keys, scale, false);
  } else {
    gemm(blk.rows, blk.keys, D, MatrixRef{qp, DType::F32, q_row, false}, MatrixRef{kp, DType::F32, kv_row, true}, scores, blk.keys,
         scale, false);
  }
  if (m.softcap > 0) {
    const float inv = 1.0f / m.softcap;
    for (int64_t i = 0; i < blk.rows * blk.keys; ++i) scores[i] = m.softcap * std::tanh(scores[i] * inv);
  }
  const uint8_t* valid = m.key_valid ? m.key_valid + blk.b * s.kv_len : nullptr;
  for (int64_t i = 0; i < blk.rows; ++i) {
    float* row = scores + i * blk.keys;
    for (int64_t j = visible_end(s, m, blk.t0 + i); j < blk.keys; ++j) row[j] = kNegInf;
    const int64_t begin = std::min(visible_begin(s, m, blk.t0 + i), blk.keys);
    for (int64_t j = 0; j < begin; ++j) row[j] = kNegInf;
    if (valid)
      for (int64_t j = 0; j < blk.keys; ++j)
        if (!valid[j]) row[j] = kNegInf;
  }
}

}  // namespace

void attention_forward(const AttentionShape& s, const AttentionMask& mask, float scale, const float* q, const float* k,
                       const float* v, float* out, float* lse) {
  check(s, mask);
  const int64_t D = s.head_dim, q_row = s.q_heads * D, kv_row = s.kv_heads * D;
  const int64_t blocks = (s.q_len + kQueryBlock - 1) / kQueryBlock;
  const cpu::LayerSpans& sp = cpu::active_layer_spans();  // vector max / exp loops
  parallel_for(s.batch * s.q_heads * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(std::min(kQueryBlock, s.q_len) * s.kv_len));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / (s.q_heads * blocks), h = task / blocks % s.q_heads, qb = task % blocks;
      const Block blk = make_block(s, mask, b, h, qb * kQueryBlock);
      float* p = scores.data();
      block_scores(s, mask, scale, blk, q, k, p);
      // Softmax of each row in place; a row that sees no key gets lse = -inf and zero weights.
      for (int64_t i = 0; i < blk.rows; ++i) {
        float* row = p + i * blk.keys;
        const float max = sp.max(row, blk.keys);
        float* lse_i = lse + (b * s.q_heads + h) * s.q_len + blk.t0 + i;
        if (max == kNegInf) {
          std::memset(row, 0, sizeof(float) * blk.keys);
          *lse_i = kNegInf;
          continue;
        }
        const double sum = sp.sum_exp(row, max, blk.keys);  // exp(-inf) = 0 for hidden keys
        sp.scaled_exp(row, max, static_cast<float>(1.0 / sum), row, blk.keys);
        *lse_i = max + static_cast<float>(std::log(sum));
      }
      // out rows = P · v[0:keys]
      const float* vp = v + b * s.kv_len * kv_row + blk.hk * D;
      float* op = out + (b * s.q_len + blk.t0) * q_row + h * D;
      if (blk.rows == 1 && D < 16) {
        float acc[16] = {};
        for (int64_t j = 0; j < blk.keys; ++j)
          for (int64_t d = 0; d < D; ++d) acc[d] += p[j] * vp[j * kv_row + d];
        std::memcpy(op, acc, sizeof(float) * D);
      } else if (blk.rows == 1)
        cpu::active_gemv_spans().axpy_rows_f32(1, D, blk.keys, p, blk.keys, vp, kv_row, op, q_row, 1.0f, false);
      else
        gemm(blk.rows, D, blk.keys, MatrixRef{p, DType::F32, blk.keys, false}, MatrixRef{vp, DType::F32, kv_row, false}, op, q_row, 1.0f,
             false);
    }
  });
}

void attention_backward(const AttentionShape& s, const AttentionMask& mask, float scale, const float* q,
                        const float* k, const float* v, const float* out, const float* dout, const float* lse,
                        float* dq, float* dk, float* dv) {
  check(s, mask);
  const int64_t D = s.head_dim, group = s.q_heads / s.kv_heads;
  const int64_t q_row = s.q_heads * D, kv_row = s.kv_heads * D;
  const int64_t blocks = (s.q_len + kQueryBlock - 1) / kQueryBlock;
  const cpu::LayerSpans& sp = cpu::active_layer_spans();
  parallel_for(s.batch * s.kv_heads, 1, [&](int64_t begin, int64_t end) {
    const size_t block_floats = static_cast<size_t>(std::min(kQueryBlock, s.q_len) * s.kv_len);
    std::vector<float> probs(block_floats), dscores(block_floats), row_term(static_cast<size_t>(kQueryBlock));
    std::vector<float> cap_grad(mask.softcap > 0 ? block_floats : 0);  // 1 − tanh² of each capped score (0 where hidden)
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / s.kv_heads, hk = bg % s.kv_heads;
      for (int64_t j = 0; j < s.kv_len; ++j) {
        std::memset(dk + (b * s.kv_len + j) * kv_row + hk * D, 0, sizeof(float) * D);
        std::memset(dv + (b * s.kv_len + j) * kv_row + hk * D, 0, sizeof(float) * D);
      }
      float* dk_g = dk + b * s.kv_len * kv_row + hk * D;
      float* dv_g = dv + b * s.kv_len * kv_row + hk * D;
      const float* k_g = k + b * s.kv_len * kv_row + hk * D;
      const float* v_g = v + b * s.kv_len * kv_row + hk * D;
      for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
        for (int64_t qb = 0; qb < blocks; ++qb) {
          const Block blk = make_block(s, mask, b, h, qb * kQueryBlock);
          const int64_t first = (b * s.q_len + blk.t0) * q_row + h * D;  // the block's first row in q / out / dq
          float* p = probs.data();
          float* ds = dscores.data();
          // P = exp(scores − lse), recomputed; rows that saw no key have lse = -inf and get P = 0.
          block_scores(s, mask, scale, blk, q, k, p);
          if (mask.softcap > 0)
            for (int64_t i = 0; i < blk.rows * blk.keys; ++i) {
              const float t = p[i] / mask.softcap;
              cap_grad[static_cast<size_t>(i)] = std::isfinite(p[i]) ? 1.0f - t * t : 0.0f;
            }
          for (int64_t i = 0; i < blk.rows; ++i) {
            const float l = lse[(b * s.q_heads + h) * s.q_len + blk.t0 + i];
            float* row = p + i * blk.keys;
            if (l == kNegInf) {
              std::memset(row, 0, sizeof(float) * blk.keys);
              continue;
            }
            sp.scaled_exp(row, l, 1.0f, row, blk.keys);
          }
          // dP = dout · vᵀ; dS = P ∘ (dP − rowsum(dout ∘ out)) · scale
          const MatrixRef do_a{dout + first, DType::F32, q_row, false};
          gemm(blk.rows, blk.keys, D, do_a, MatrixRef{v_g, DType::F32, kv_row, true}, ds, blk.keys, 1.0f, false);
          for (int64_t i = 0; i < blk.rows; ++i) {
            const float* o = out + first + i * q_row;
            const float* g = dout + first + i * q_row;
            float t = 0;
            for (int64_t d = 0; d < D; ++d) t += g[d] * o[d];
            row_term[static_cast<size_t>(i)] = t;
          }
          for (int64_t i = 0; i < blk.rows; ++i) {
            const float* pr = p + i * blk.keys;
            float* dr = ds + i * blk.keys;
            for (int64_t j = 0; j < blk.keys; ++j) dr[j] = pr[j] * (dr[j] - row_term[static_cast<size_t>(i)]) * scale;
            if (mask.softcap > 0) {
              const float* cg = cap_grad.data() + i * blk.keys;
              for (int64_t j = 0; j < blk.keys; ++j) dr[j] *= cg[j];
            }
          }
          // dq rows = dS · k; dk += dSᵀ · q rows; dv += Pᵀ · dout rows
          gemm(blk.rows, D, blk.keys, MatrixRef{ds, DType::F32, blk.keys, false}, MatrixRef{k_g, DType::F32, kv_row, false},
               dq + first, q_row, 1.0f, false);
          gemm(blk.keys, D, blk.rows, MatrixRef{ds, DType::F32, blk.keys, true}, MatrixRef{q + first, DType::F32, q_row, false},
               dk_g, kv_row, 1.0f, true);
          gemm(blk.keys, D, blk.rows, MatrixRef{p, DType::F32, blk.keys, true}, do_a, dv_g, kv_row, 1.0f, true);
        }
      }
    }
  });
}

}  // namespace peft::kernels
