// The routing of a sparse mixture of experts (Mixtral): the router's softmax and top-k choice, the
// gather of each expert's rows and the weighted scatter of its outputs, and their backward.
#pragma once
#include <cstdint>

namespace peft::kernels {

// scores: [m, E] the router's outputs, replaced by their softmax (f64 sums). chosen: [m, K] each
// row's K best experts, best first (ties: the lower index); weights: [m, K] their probabilities,
// divided by the K's sum when `normalize`.
void moe_route(int64_t m, int64_t E, int64_t K, bool normalize, float* scores, int32_t* chosen, float* weights);
// The gradient of the router's scores from d_weight [m, K] (of the routing weights): d_scores [m, E].
// probs, chosen, weights: moe_route's outputs.
void moe_route_backward(int64_t m, int64_t E, int64_t K, bool normalize, const float* probs, const int32_t* chosen,
                        const float* weights, const double* d_weight, float* d_scores);
// dst[r, :] = src[rows[r], :] for r < n; src: [*, H], dst: [n, H].
void gather_rows(int64_t n, int64_t H, const int64_t* rows, const float* src, float* dst);
// dst[rows[r], :] += scale[r] · src[r, :] (scale null: 1); src: [n, H], dst: [*, H]; rows distinct.
void scatter_add_rows(int64_t n, int64_t H, const int64_t* rows, const float* scale, const float* src, float* dst);
// For r < n: out[r, :] = scale[r] · g[rows[r], :] and dot[r] = Σ_h g[rows[r], h] · y[r, h] (f64);
// g: [*, H], y, out: [n, H]. An expert's backward: its output's gradient and its weight's.
void gather_rows_scaled_dot(int64_t n, int64_t H, const int64_t* rows, const float* scale, const float* g,
                            const float* y, float* out, double* dot);

}  // namespace peft::kernels
