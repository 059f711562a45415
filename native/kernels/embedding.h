// Embedding lookup and its backward. Ids outside [0, vocab) throw E_RANGE (naming the id, its index
// and the vocabulary size) before anything is written.
#pragma once
#include <cstdint>

namespace peft::kernels {

// ids: [n] i32; table: [vocab, dim] f32. Output: out: [n, dim].
void embedding_forward(int64_t n, int64_t vocab, int64_t dim, const int32_t* ids, const float* table, float* out);

// dout: [n, dim]; ids: [n]. grad_table: [vocab, dim]: rows of repeated ids add up; with accumulate
// the gradient is added to grad_table, otherwise grad_table is overwritten.
void embedding_backward(int64_t n, int64_t vocab, int64_t dim, const float* dout, const int32_t* ids,
                        float* grad_table, bool accumulate);

}  // namespace peft::kernels
