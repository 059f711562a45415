#include "kernels/backend_compare.h"

#include <cmath>
#include <functional>

#include "core/error.h"
#include "kernels/moe.h"
#include "kernels/rope.h"

namespace peft::kernels {

namespace {

// splitmix64: the same inputs for the backend and the reference.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * static_cast<float>(next() >> 40) / 16777216.0f; }
};

using Values = std::vector<float>;

Values random(Rng& rng, int64_t n, float lo = -1, float hi = 1) {
  Values v(static_cast<size_t>(n));
  for (float& x : v) x = rng.uniform(lo, hi);
  return v;
}

std::vector<int32_t> random_ids(Rng& rng, int64_t n, int32_t below) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = static_cast<int32_t>(rng.next() % static_cast<uint64_t>(below));
  return ids;
}

std::vector<uint16_t> to_bf16(const Values& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
  return out;
}

// The outputs of one run, concatenated.
Values join(std::initializer_list<const Values*> parts) {
  Values out;
  for (const Values* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

MatrixRef f32_matrix(const Values& v, int64_t ld, bool trans) { return {v.data(), DType::F32, ld, trans}; }

// A random 4-bit [rows, cols] weight (random codes and block scales: every code is exercised).
struct RandomQuant4 {
  std::vector<uint8_t> packed;
  Values absmax;
  Quant4Tensor view;
  RandomQuant4(Rng& rng, int64_t rows, int64_t cols, int64_t blocksize) {
    const int64_t n = rows * cols;
    packed.resize(static_cast<size_t>((n + 1) / 2));
    for (uint8_t& b : packed) b = static_cast<uint8_t>(rng.next() & 0xff);
    absmax = random(rng, quant_blocks(n, blocksize), 0.1f, 2.0f);
    view = Quant4Tensor{packed.data(), quant4_code(Quant4Type::NF4), blocksize, n, {}};
    view.scales.absmax = absmax.data();
  }
};

// A [rows, cols] weight in a ggml block format: random values through llama.cpp's quantizer.
struct RandomGgml {
  std::vector<uint8_t> bytes;
  GgmlQuantTensor view;
  RandomGgml(Rng& rng, GgmlType type, int64_t rows, int64_t cols) {
    const Values w = random(rng, rows * cols);
    bytes.resize(static_cast<size_t>(rows * ggml_row_bytes(type, cols)));
    ggml_quantize_rows(type, w.data(), rows, cols, bytes.data());
    view = GgmlQuantTensor{type, bytes.data(), rows, cols};
  }
};

struct Case {
  const char* op;       // the Backend entry it exercises
  const char* variant;  // "" or what distinguishes it from the op's other cases
  std::function<Values(const Context&, Rng&)> run;  // inputs from rng → outputs
};

std::vector<Case> gemm_cases() {
  const int64_t M = 33, N = 45, K = 70;
  return {
      {"gemm", "f32_nn",
       [=](const Context& c, Rng& r) {
         Values a = random(r, M * K), b = random(r, K * N), y(static_cast<size_t>(M * N));
         c.gemm(M, N, K, f32_matrix(a, K, false), f32_matrix(b, N, false), y.data(), N, 1.0f, false);
         return y;
       }},
      {"gemm", "f32_nt_accumulate",
       [=](const Context& c, Rng& r) {
         Values a = random(r, M * K), b = random(r, N * K), y = random(r, M * N);
         c.gemm(M, N, K, f32_matrix(a, K, false), f32_matrix(b, K, true), y.data(), N, 0.5f, true);
         return y;
       }},
      {"gemm", "f32_tn",
       [=](const Context& c, Rng& r) {
         Values a = random(r, K * M), b = random(r, K * N), y(static_cast<size_t>(M * N));
         c.gemm(M, N, K, f32_matrix(a, M, true), f32_matrix(b, N, false), y.data(), N, 1.0f, false);
         return y;
       }},
      {"gemm", "bf16_nt",
       [=](const Context& c, Rng& r) {
         Values a = random(r, M * K), y(static_cast<size_t>(M * N));
         std::vector<uint16_t> b = to_bf16(random(r, N * K));
         c.gemm(M, N, K, f32_matrix(a, K, false), MatrixRef{b.data(), DType::BF16, K, true}, y.data(), N, 1.0f, false);
         return y;
       }},
  };
}

std::vector<Case> adapter_cases() {
  const int64_t m = 37, n = 45, k = 70, rank = 8;
  return {
      {"lora_branch_forward", "",
       [=](const Context& c, Rng& r) {
         Values x = random(r, m * k), a = random(r, rank * k), b = random(r, n * rank), y = random(r, m * n);
         Values xa(static_cast<size_t>(m * rank));
         c.lora_branch_forward(m, n, k, rank, x.data(), DType::F32, a.data(), b.data(), 2.0f, xa.data(), y.data(), n, true);
         return join({&xa, &y});
       }},
      {"lora_branch_backward", "",
       [=](const Context& c, Rng& r) {
         Values dy = random(r, m * n), x = random(r, m * k), xa = random(r, m * rank), a = random(r, rank * k);
         Values b = random(r, n * rank), dx = random(r, m * k), g(static_cast<size_t>(m * rank));
         Values da(static_cast<size_t>(rank * k)), db(static_cast<size_t>(n * rank));
         c.lora_branch_backward(m, n, k, rank, dy.data(), x.data(), DType::F32, xa.data(), a.data(), b.data(), 2.0f,
                                g.data(), da.data(), db.data(), dx.data(), true);
         return join({&g, &da, &db, &dx});
       }},
      {"dora_combine_forward", "",
       [=](const Context& c, Rng& r) {
         Values mag = random(r, n, 0.5f, 2), norm = random(r, n, 0.5f, 2), base = random(r, m * n);
         Values lora = random(r, m * n), y = random(r, m * n);
         c.dora_combine_forward(m, n, mag.data(), norm.data(), base.data(), lora.data(), y.data());
         return y;
       }},
      {"dora_combine_backward", "",
       [=](const Context& c, Rng& r) {
         Values mag = random(r, n, 0.5f, 2), norm = random(r, n, 0.5f, 2), dy = random(r, m * n);
         Values base = random(r, m * n), lora = random(r, m * n), gm = random(r, n);
         Values d_lora(static_cast<size_t>(m * n)), d_base(static_cast<size_t>(m * n));
         c.dora_combine_backward(m, n, mag.data(), norm.data(), dy.data(), base.data(), lora.data(), d_lora.data(),
                                 d_base.data(), gm.data());
         return join({&d_lora, &d_base, &gm});
       }},
  };
}

std::vector<Case> quant4_cases() {
  const int64_t M = 9, N = 40, K = 128;
  std::vector<Case> cases;
  for (DType compute : {DType::F32, DType::BF16}) {
    const bool bf16 = compute == DType::BF16;
    cases.push_back({"quant4_matmul", bf16 ? "bf16" : "f32", [=](const Context& c, Rng& r) {
                       RandomQuant4 w(r, N, K, 64);
                       Values x = random(r, M * K), y = random(r, M * N);
                       c.quant4_matmul(M, N, K, f32_matrix(x, K, false), w.view, y.data(), N, 1.0f, true, compute);
                       return y;
                     }});
    cases.push_back({"quant4_matmul_dx", bf16 ? "bf16" : "f32", [=](const Context& c, Rng& r) {
                       RandomQuant4 w(r, N, K, 64);
                       Values dy = random(r, M * N), dx(static_cast<size_t>(M * K));
                       c.quant4_matmul_dx(M, N, K, dy.data(), w.view, dx.data(), 1.0f, false, compute);
                       return dx;
                     }});
  }
  cases.push_back({"dequantize4_rows", "", [=](const Context& c, Rng& r) {
                     RandomQuant4 w(r, N, K, 64);
                     Values out(static_cast<size_t>(7 * K));
                     c.dequantize4_rows(w.view, K, 3, 10, out.data());
                     return out;
                   }});
  return cases;
}

std::vector<Case> lora_batch_cases() {
  // Three adapters of ranks 4, 8 and 16; segments of 1 and 2 rows (matrix-vector), 9 rows (GEMM),
  // and rows with no adapter.
  const int64_t m = 16, n = 40, k = 72;
  return {{"lora_batch_forward", "", [=](const Context& c, Rng& r) {
             Values x = random(r, m * k), y = random(r, m * n);
             std::vector<Values> factors;
             std::vector<LoraAdapterRef> adapters;
             for (int64_t rank : {4, 8, 16}) {
               factors.push_back(random(r, rank * k));
               factors.push_back(random(r, n * rank));
             }
             for (size_t i = 0; i < 3; ++i)
               adapters.push_back({factors[2 * i].data(), factors[2 * i + 1].data(), int64_t{4} << i, 0.5f + 0.25f * i});
             const LoraSegment segments[] = {{0, 1, 2}, {1, 2, 0}, {3, 1, -1}, {4, 9, 1}, {13, 1, 0}, {14, 2, 2}};
             c.lora_batch_forward(m, n, k, x.data(), k, adapters.data(), 3, segments, 6, y.data(), n);
             return y;
           }}};
}

std::vector<Case> ggml_cases() {
  std::vector<Case> cases;
  // Wide (column panels) and tall (row panels) weights, in the K-quants' 256 blocks and Q8_0's 32.
  struct Shape3 {
    GgmlType type;
    int64_t M, N, K;
    DType compute;
    const char* variant;
  };
  for (const Shape3& s : {Shape3{GgmlType::Q4_K, 9, 40, 512, DType::F32, "q4_k wide"},
                          Shape3{GgmlType::Q6_K, 7, 300, 256, DType::F32, "q6_k tall"},
                          Shape3{GgmlType::Q8_0, 5, 24, 96, DType::BF16, "q8_0 bf16"}}) {
    cases.push_back({"ggml_matmul", s.variant, [=](const Context& c, Rng& r) {
                       RandomGgml w(r, s.type, s.N, s.K);
                       Values x = random(r, s.M * s.K), y = random(r, s.M * s.N);
                       c.ggml_matmul(s.M, f32_matrix(x, s.K, false), w.view, y.data(), s.N, 1.0f, true, s.compute);
                       return y;
                     }});
    cases.push_back({"ggml_matmul_dx", s.variant, [=](const Context& c, Rng& r) {
                       RandomGgml w(r, s.type, s.N, s.K);
                       Values dy = random(r, s.M * s.N), dx(static_cast<size_t>(s.M * s.K));
                       c.ggml_matmul_dx(s.M, dy.data(), w.view, dx.data(), 1.0f, false, s.compute);
                       return dx;
                     }});
  }
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                        GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                        GgmlType::IQ4_NL, GgmlType::IQ4_XS}) {
    cases.push_back({"ggml_dequantize_rows", ggml_block_format(type).name, [=](const Context& c, Rng& r) {
                       RandomGgml w(r, type, 12, 512);
                       Values out(static_cast<size_t>(8 * 512));
                       c.ggml_dequantize_rows(w.view, 3, 11, out.data());
                       return out;
                     }});
  }
  return cases;
}

std::vector<Case> norm_cases() {
  const int64_t rows = 7, dim = 67;
  return {
      {"rmsnorm_forward", "",
       [=](const Context& c, Rng& r) {
         Values x = random(r, rows * dim), w = random(r, dim), y(static_cast<size_t>(rows * dim)), rstd(rows);
         c.rmsnorm_forward(rows, dim, x.data(), w.data(), 1e-5f, y.data(), rstd.data());
         return join({&y, &rstd});
       }},
      {"rmsnorm_backward", "",
       [=](const Context& c, Rng& r) {
         Values dy = random(r, rows * dim), x = random(r, rows * dim), w = random(r, dim), rstd = random(r, rows, 0.5f, 2);
         Values dx(static_cast<size_t>(rows * dim)), dw = random(r, dim);
         c.rmsnorm_backward(rows, dim, dy.data(), x.data(), w.data(), rstd.data(), dx.data(), dw.data(), true);
         return join({&dx, &dw});
       }},
      {"layernorm_forward", "",
       [=](const Context& c, Rng& r) {
         Values x = random(r, rows * dim), w = random(r, dim), b = random(r, dim);
         Values y(static_cast<size_t>(rows * dim)), mean(rows), rstd(rows);
         c.layernorm_forward(rows, dim, x.data(), w.data(), b.data(), 1e-5f, y.data(), mean.data(), rstd.data());
         return join({&y, &mean, &rstd});
       }},
      {"layernorm_backward", "",
       [=](const Context& c, Rng& r) {
         Values dy = random(r, rows * dim), x = random(r, rows * dim), w = random(r, dim);
         Values mean = random(r, rows, -0.1f, 0.1f), rstd = random(r, rows, 0.5f, 2);
         Values dx(static_cast<size_t>(rows * dim)), dw = random(r, dim), db = random(r, dim);
         c.layernorm_backward(rows, dim, dy.data(), x.data(), w.data(), mean.data(), rstd.data(), dx.data(), dw.data(),
                              db.data(), true);
         return join({&dx, &dw, &db});
       }},
  };
}

std::vector<Case> attention_cases() {
  std::vector<Case> cases;
  for (bool inverse : {false, true})
    cases.push_back({"rope_apply", inverse ? "inverse" : "", [=](const Context& c, Rng& r) {
                       const RopeShape s{2, 5, 3, 16};
                       Values x = random(r, 2 * 5 * 3 * 16), y(x.size());
                       std::vector<int32_t> pos = random_ids(r, 2 * 5, 4096);
                       std::vector<double> inv_freq(8);
                       rope_inv_freq(16, 10000.0, nullptr, inv_freq.data());
                       c.rope_apply(s, x.data(), pos.data(), inv_freq.data(), inverse, y.data());
                       return y;
                     }});
  struct Setup {
    const char* name;
    AttentionShape shape;
    bool causal, padded;
    int64_t window;
    float softcap;
  };
  const Setup setups[] = {
      {"causal_gqa", {2, 9, 9, 4, 2, 16}, true, false, 0, 0},
      {"window_softcap_padded", {2, 9, 12, 4, 2, 16}, true, true, 4, 5.0f},
      {"bidirectional", {1, 6, 6, 2, 2, 32}, false, true, 0, 0},
  };
  for (const Setup& st : setups) {
    auto inputs = [st](Rng& r, Values& q, Values& k, Values& v, std::vector<uint8_t>& valid) {
      const AttentionShape& s = st.shape;
      q = random(r, s.batch * s.q_len * s.q_heads * s.head_dim);
      k = random(r, s.batch * s.kv_len * s.kv_heads * s.head_dim);
      v = random(r, s.batch * s.kv_len * s.kv_heads * s.head_dim);
      valid.assign(static_cast<size_t>(s.batch * s.kv_len), 1);
      if (st.padded) valid[0] = 0;
    };
    auto mask = [st](const std::vector<uint8_t>& valid) {
      return AttentionMask{st.causal, st.padded ? valid.data() : nullptr, st.window, st.softcap};
    };
    cases.push_back({"attention_forward", st.name, [=](const Context& c, Rng& r) {
                       Values q, k, v;
                       std::vector<uint8_t> valid;
                       inputs(r, q, k, v, valid);
                       const AttentionShape& s = st.shape;
                       Values out(q.size()), lse(static_cast<size_t>(s.batch * s.q_heads * s.q_len));
                       c.attention_forward(s, mask(valid), 0.25f, q.data(), k.data(), v.data(), out.data(), lse.data());
                       return join({&out, &lse});
                     }});
    cases.push_back({"attention_backward", st.name, [=](const Context& c, Rng& r) {
                       Values q, k, v;
                       std::vector<uint8_t> valid;
                       inputs(r, q, k, v, valid);
                       const AttentionShape& s = st.shape;
                       Values out(q.size()), lse(static_cast<size_t>(s.batch * s.q_heads * s.q_len));
                       // The forward's outputs come from the reference kernel so both runs see the same.
                       attention_forward(s, mask(valid), 0.25f, q.data(), k.data(), v.data(), out.data(), lse.data());
                       Values dout = random(r, static_cast<int64_t>(q.size()));
                       Values dq(q.size()), dk(k.size()), dv(v.size());
                       c.attention_backward(s, mask(valid), 0.25f, q.data(), k.data(), v.data(), out.data(), dout.data(),
                                            lse.data(), dq.data(), dk.data(), dv.data());
                       return join({&dq, &dk, &dv});
                     }});
  }
  return cases;
}

std::vector<Case> activation_cases() {
  const int64_t n = 1000;
  using Gated = void (Context::*)(int64_t, const float*, const float*, float*) const;
  using GatedBack = void (Context::*)(int64_t, const float*, const float*, const float*, float*, float*) const;
  using Plain = void (Context::*)(int64_t, const float*, float*) const;
  using PlainBack = void (Context::*)(int64_t, const float*, const float*, float*) const;
  std::vector<Case> cases;
  auto gated = [&](const char* fwd_name, Gated fwd, const char* back_name, GatedBack back) {
    cases.push_back({fwd_name, "", [=](const Context& c, Rng& r) {
                       Values g = random(r, n, -6, 6), u = random(r, n), h(static_cast<size_t>(n));
                       (c.*fwd)(n, g.data(), u.data(), h.data());
                       return h;
                     }});
    cases.push_back({back_name, "", [=](const Context& c, Rng& r) {
                       Values dh = random(r, n), g = random(r, n, -6, 6), u = random(r, n);
                       Values dg(static_cast<size_t>(n)), du(static_cast<size_t>(n));
                       (c.*back)(n, dh.data(), g.data(), u.data(), dg.data(), du.data());
                       return join({&dg, &du});
                     }});
  };
  auto plain = [&](const char* fwd_name, Plain fwd, const char* back_name, PlainBack back) {
    cases.push_back({fwd_name, "", [=](const Context& c, Rng& r) {
                       Values x = random(r, n, -6, 6), y(static_cast<size_t>(n));
                       (c.*fwd)(n, x.data(), y.data());
                       return y;
                     }});
    cases.push_back({back_name, "", [=](const Context& c, Rng& r) {
                       Values dy = random(r, n), x = random(r, n, -6, 6), dx(static_cast<size_t>(n));
                       (c.*back)(n, dy.data(), x.data(), dx.data());
                       return dx;
                     }});
  };
  gated("swiglu_forward", &Context::swiglu_forward, "swiglu_backward", &Context::swiglu_backward);
  gated("geglu_forward", &Context::geglu_forward, "geglu_backward", &Context::geglu_backward);
  plain("gelu_tanh_forward", &Context::gelu_tanh_forward, "gelu_tanh_backward", &Context::gelu_tanh_backward);
  plain("gelu_erf_forward", &Context::gelu_erf_forward, "gelu_erf_backward", &Context::gelu_erf_backward);
  const std::pair<Pointwise, const char*> kinds[] = {
      {Pointwise::Relu, "relu"}, {Pointwise::GeluTanh, "gelu_tanh"}, {Pointwise::Silu, "silu"}, {Pointwise::Tanh, "tanh"}};
  for (const auto& [kind, name] : kinds) {
    const Pointwise a = kind;
    cases.push_back({"pointwise_forward", name, [=](const Context& c, Rng& r) {
                       Values x = random(r, n, -6, 6), y(static_cast<size_t>(n));
                       c.pointwise_forward(a, n, x.data(), y.data());
                       return y;
                     }});
    cases.push_back({"pointwise_backward", name, [=](const Context& c, Rng& r) {
                       Values dy = random(r, n), x = random(r, n, -6, 6), dx(static_cast<size_t>(n));
                       c.pointwise_backward(a, n, dy.data(), x.data(), dx.data());
                       return dx;
                     }});
  }
  cases.push_back({"softcap_forward", "", [=](const Context& c, Rng& r) {
                     Values x = random(r, 5 * 72, -80, 80);
                     c.softcap_forward(5, 70, 72, 30.0f, x.data());
                     return x;
                   }});
  cases.push_back({"softcap_backward", "", [=](const Context& c, Rng& r) {
                     Values y = random(r, 5 * 72, -29, 29), dy = random(r, 5 * 72);
                     c.softcap_backward(5, 70, 72, 30.0f, y.data(), dy.data());
                     return dy;
                   }});
  return cases;
}

std::vector<Case> embedding_loss_cases() {
  const int64_t n = 11, vocab = 17, dim = 33;
  return {
      {"embedding_forward", "",
       [=](const Context& c, Rng& r) {
         std::vector<int32_t> ids = random_ids(r, n, vocab);
         Values table = random(r, vocab * dim), out(static_cast<size_t>(n * dim));
         c.embedding_forward(n, vocab, dim, ids.data(), table.data(), out.data());
         return out;
       }},
      {"embedding_backward", "",
       [=](const Context& c, Rng& r) {
         std::vector<int32_t> ids = random_ids(r, n, vocab);
         Values dout = random(r, n * dim), grad = random(r, vocab * dim);
         c.embedding_backward(n, vocab, dim, dout.data(), ids.data(), grad.data(), true);
         return grad;
       }},
      {"cross_entropy", "",
       [=](const Context& c, Rng& r) {
         const int64_t rows = 6, words = 100;
         Values logits = random(r, rows * words, -8, 8), row_loss(rows), dlogits(static_cast<size_t>(rows * words));
         std::vector<int32_t> labels = random_ids(r, rows, static_cast<int32_t>(words));
         labels[2] = -100;
         const CrossEntropyResult res =
             c.cross_entropy(rows, words, logits.data(), labels.data(), -100, 5.0, row_loss.data(), dlogits.data());
         Values total{static_cast<float>(res.loss_sum), static_cast<float>(res.count)};
         return join({&row_loss, &dlogits, &total});
       }},
  };
}

std::vector<Case> moe_cases() {
  const int64_t m = 9, E = 5, K = 2, H = 33;
  const std::vector<int64_t> rows = {0, 2, 3, 7, 8};
  std::vector<Case> cases;
  for (bool normalize : {true, false}) {
    cases.push_back({"moe_route", normalize ? "normalized" : "", [=](const Context& c, Rng& r) {
                       Values scores = random(r, m * E, -3, 3), weights(static_cast<size_t>(m * K));
                       std::vector<int32_t> chosen(static_cast<size_t>(m * K));
                       c.moe_route(m, E, K, normalize, scores.data(), chosen.data(), weights.data());
                       Values picks(chosen.begin(), chosen.end());
                       return join({&scores, &weights, &picks});
                     }});
    cases.push_back({"moe_route_backward", normalize ? "normalized" : "", [=](const Context& c, Rng& r) {
                       Values probs = random(r, m * E, -3, 3), weights(static_cast<size_t>(m * K));
                       std::vector<int32_t> chosen(static_cast<size_t>(m * K));
                       moe_route(m, E, K, normalize, probs.data(), chosen.data(), weights.data());  // the reference's routing
                       std::vector<double> d_weight(static_cast<size_t>(m * K));
                       for (double& d : d_weight) d = r.uniform(-1, 1);
                       Values d_scores(static_cast<size_t>(m * E));
                       c.moe_route_backward(m, E, K, normalize, probs.data(), chosen.data(), weights.data(), d_weight.data(),
                                            d_scores.data());
                       return d_scores;
                     }});
  }
  cases.push_back({"gather_rows", "", [=](const Context& c, Rng& r) {
                     Values src = random(r, m * H), dst(rows.size() * H);
                     c.gather_rows(static_cast<int64_t>(rows.size()), H, rows.data(), src.data(), dst.data());
                     return dst;
                   }});
  for (bool scaled : {true, false})
    cases.push_back({"scatter_add_rows", scaled ? "scaled" : "", [=](const Context& c, Rng& r) {
                       Values src = random(r, static_cast<int64_t>(rows.size()) * H), scale = random(r, static_cast<int64_t>(rows.size()));
                       Values dst = random(r, m * H);
                       c.scatter_add_rows(static_cast<int64_t>(rows.size()), H, rows.data(), scaled ? scale.data() : nullptr,
                                          src.data(), dst.data());
                       return dst;
                     }});
  cases.push_back({"gather_rows_scaled_dot", "", [=](const Context& c, Rng& r) {
                     const auto n = static_cast<int64_t>(rows.size());
                     Values g = random(r, m * H), y = random(r, n * H), scale = random(r, n), out(static_cast<size_t>(n * H));
                     std::vector<double> dot(static_cast<size_t>(n));
                     c.gather_rows_scaled_dot(n, H, rows.data(), scale.data(), g.data(), y.data(), out.data(), dot.data());
                     Values dots(dot.begin(), dot.end());
                     return join({&out, &dots});
                   }});
  return cases;
}

std::vector<Case> elementwise_cases() {
  const int64_t m = 13, n = 70, n_all = 1000;
  return {
      {"convert", "f32_to_bf16",
       [=](const Context& c, Rng& r) {
         Values x = random(r, n_all, -100, 100);
         std::vector<uint16_t> h(x.size());
         c.convert(h.data(), DType::BF16, x.data(), DType::F32, n_all);
         Values out(x.size());
         for (size_t i = 0; i < h.size(); ++i) out[i] = bf16_to_f32(h[i]);
         return out;
       }},
      {"convert", "bf16_to_f32",
       [=](const Context& c, Rng& r) {
         std::vector<uint16_t> h = to_bf16(random(r, n_all, -100, 100));
         Values out(h.size());
         c.convert(out.data(), DType::F32, h.data(), DType::BF16, n_all);
         return out;
       }},
      {"scale_values", "",
       [=](const Context& c, Rng& r) {
         Values x = random(r, n_all);
         c.scale_values(n_all, 0.37f, x.data());
         return x;
       }},
      {"copy_values", "",
       [=](const Context& c, Rng& r) {
         Values x = random(r, n_all), y(x.size());
         c.copy_values(n_all, x.data(), y.data());
         return y;
       }},
      {"add_values", "",
       [=](const Context& c, Rng& r) {
         Values x = random(r, n_all), y = random(r, n_all);
         c.add_values(n_all, x.data(), y.data());
         return y;
       }},
      {"copy_columns", "",
       [=](const Context& c, Rng& r) {
         Values src = random(r, m * 3 * n), dst(static_cast<size_t>(m * n));
         c.copy_columns(m, n, 3 * n, n, src.data(), dst.data());
         return dst;
       }},
      {"place_columns", "",
       [=](const Context& c, Rng& r) {
         Values src = random(r, m * n), dst = random(r, m * 3 * n);
         c.place_columns(m, n, 3 * n, 2 * n, src.data(), dst.data());
         return dst;
       }},
      {"add_row_vector", "",
       [=](const Context& c, Rng& r) {
         Values b = random(r, n), y = random(r, m * (n + 2));
         c.add_row_vector(m, n, n + 2, b.data(), y.data());
         return y;
       }},
      {"add_column_sums", "",
       [=](const Context& c, Rng& r) {
         Values x = random(r, m * (n + 2)), acc = random(r, n);
         c.add_column_sums(m, n, n + 2, x.data(), acc.data());
         return acc;
       }},
      {"scale_columns", "",
       [=](const Context& c, Rng& r) {
         Values s = random(r, n), v = random(r, m * n);
         c.scale_columns(m, n, s.data(), v.data());
         return v;
       }},
      {"add_column_dots", "",
       [=](const Context& c, Rng& r) {
         Values u = random(r, m * n), v = random(r, m * n), g = random(r, n);
         c.add_column_dots(m, n, u.data(), v.data(), g.data());
         return g;
       }},
  };
}

std::vector<Case> all_cases() {
  std::vector<Case> all;
  for (auto&& group : {gemm_cases(), adapter_cases(), lora_batch_cases(), quant4_cases(), ggml_cases(), norm_cases(), attention_cases(),
                       activation_cases(), embedding_loss_cases(), moe_cases(), elementwise_cases()})
    all.insert(all.end(), group.begin(), group.end());
  return all;
}

// Restores the active instruction set on the way out, errors included.
class IsaScope {
 public:
  IsaScope() : saved_(active_isa()) {}
  ~IsaScope() { set_isa(saved_); }
  IsaScope(const IsaScope&) = delete;
  IsaScope& operator=(const IsaScope&) = delete;

 private:
  Isa saved_;
};

}  // namespace

int backend_op_count() {
  // Every member after the name and the allocator is an op's function pointer.
  return static_cast<int>((sizeof(Backend) - offsetof(Backend, gemm)) / sizeof(Backend::gemm));
}

std::vector<OpComparison> compare_backend_ops(const Backend& backend, Isa isa, uint64_t seed) {
  PEFT_CHECK(isa_supported(isa), ErrorCode::Unsupported, std::string("This CPU cannot run ") + isa_name(isa));
  IsaScope restore;
  const Context reference{&cpu_backend()}, tested{&backend};
  std::vector<OpComparison> out;
  for (const Case& c : all_cases()) {
    Rng r1{seed}, r2{seed};
    set_isa(Isa::Scalar);
    const Values want = c.run(reference, r1);
    set_isa(isa);
    const Values got = c.run(tested, r2);
    PEFT_CHECK(want.size() == got.size(), ErrorCode::Internal, std::string("Op ") + c.op + " gave outputs of two sizes");
    OpComparison cmp{std::string(c.op) + (*c.variant ? std::string("/") + c.variant : ""), 0, 0,
                     static_cast<int64_t>(want.size())};
    for (size_t i = 0; i < want.size(); ++i) {
      const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
      cmp.max_abs = std::isnan(d) ? INFINITY : std::max(cmp.max_abs, d);
      cmp.ref_scale = std::max(cmp.ref_scale, std::fabs(static_cast<double>(want[i])));
    }
    out.push_back(std::move(cmp));
  }
  return out;
}

}  // namespace peft::kernels
