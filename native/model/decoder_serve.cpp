// Serving: many sequences in one forward pass. Each request has its own KV cache slot and its own
// adapter; its new tokens (a whole prompt, or one token while decoding) are a segment of the step's
// rows. The projections run once over all rows (each segment's adapter added by one multi-adapter
// call), attention runs per segment over its slot, and only each segment's last row reaches the head.
#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "core/profile.h"
#include "model/decoder.h"
#include "model/decoder_parts.h"

namespace peft::model {

namespace {

using nn::f32;
using nn::p;
using nn::TensorPtr;

}  // namespace

int64_t DecoderModel::serve_open(int64_t capacity) {
  const DecoderSpec& s = spec_;
  PEFT_CHECK(capacity >= 1, ErrorCode::Range, "Expected a slot of at least 1 position but received " + std::to_string(capacity));
  if (s.learned_positions)
    PEFT_CHECK(capacity <= s.learned_positions, ErrorCode::Range,
               "Expected at most " + std::to_string(s.learned_positions) + " positions (the learned position table's rows) but the slot asks for " +
                   std::to_string(capacity));
  ServeSlot slot;
  slot.capacity = capacity;
  for (int64_t l = 0; l < s.layers; ++l) {
    slot.k.push_back(f32(ctx_, {capacity, s.kv_heads, s.head_dim}));
    slot.v.push_back(f32(ctx_, {capacity, s.kv_heads, s.head_dim}));
  }
  const int64_t id = serve_.next_slot++;
  serve_.slots.emplace(id, std::move(slot));
  return id;
}

void DecoderModel::serve_close(int64_t slot) {
  PEFT_CHECK(serve_.slots.erase(slot) == 1, ErrorCode::Argument, "There is no open slot " + std::to_string(slot));
}

int64_t DecoderModel::serve_length(int64_t slot) const {
  auto it = serve_.slots.find(slot);
  PEFT_CHECK(it != serve_.slots.end(), ErrorCode::Argument, "There is no open slot " + std::to_string(slot));
  return it->second.length;
}

int64_t DecoderModel::serve_add_adapter(nn::BatchLoraAdapter adapter) {
  PEFT_CHECK(!adapter.empty(), ErrorCode::Argument, "Expected an adapter with at least one layer");
  for (const auto& [module, f] : adapter) {
    auto it = linears_.find(module);
    PEFT_CHECK(it != linears_.end(), ErrorCode::Config, "The model has no linear layer " + module + " for a served adapter");
    const nn::Linear& layer = *it->second;
    PEFT_CHECK(f.a && f.b && f.a->dtype() == DType::F32 && f.b->dtype() == DType::F32 && f.a->ndim() == 2 &&
                   f.b->ndim() == 2 && f.a->is_contiguous() && f.b->is_contiguous(),
               ErrorCode::Shape, "Expected contiguous f32 lora_A and lora_B matrices for " + module);
    const int64_t r = f.a->dim(0);
    PEFT_CHECK(r >= 1 && f.a->dim(1) == layer.in_features() && f.b->shape() == Shape({layer.out_features(), r}), ErrorCode::Shape,
               "Expected lora_A [r, " + std::to_string(layer.in_features()) + "] and lora_B [" + std::to_string(layer.out_features()) +
                   ", r] for " + module + " but received " + shape_to_string(f.a->shape()) + " and " + shape_to_string(f.b->shape()));
    PEFT_CHECK(std::isfinite(f.scale), ErrorCode::Range, "Expected a finite LoRA scale for " + module);
  }
  const int64_t id = serve_.next_adapter++;
  serve_.adapters.emplace(id, std::make_shared<const nn::BatchLoraAdapter>(std::move(adapter)));
  return id;
}

void DecoderModel::serve_remove_adapter(int64_t id) {
  PEFT_CHECK(serve_.adapters.erase(id) == 1, ErrorCode::Argument, "There is no served adapter " + std::to_string(id));
}

void DecoderModel::check_serve_step(const Tensor& ids, const std::vector<ServeSegment>& segments) const {
  PEFT_CHECK(ids.ndim() == 1 && ids.dtype() == DType::I32 && ids.dim(0) >= 1, ErrorCode::Shape,
             "Expected i32 ids of shape [M] for a serving step but received " + std::string(dtype_name(ids.dtype())) + " " +
                 shape_to_string(ids.shape()));
  PEFT_CHECK(!segments.empty(), ErrorCode::Argument, "Expected at least one segment in a serving step");
  PEFT_CHECK(spec_.experts == 0, ErrorCode::Unsupported, "Serving many sequences at once is not available for mixture-of-experts models");
  PEFT_CHECK(!active_prompt() && !active_prefix(), ErrorCode::Unsupported,
             "Serving many sequences at once does not take prompt or prefix tuning adapters; merge-free LoRA adapters only");
  PEFT_CHECK(selection_.per_row.empty(), ErrorCode::Unsupported, "Serving steps choose adapters per segment; clear the mixed-batch selection");
  std::set<int64_t> seen;
  int64_t total = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const ServeSegment& g = segments[i];
    const std::string which = "segments[" + std::to_string(i) + "]";
    auto it = serve_.slots.find(g.slot);
    PEFT_CHECK(it != serve_.slots.end(), ErrorCode::Argument, which + " names slot " + std::to_string(g.slot) + ", which is not open");
    PEFT_CHECK(seen.insert(g.slot).second, ErrorCode::Argument, which + " names slot " + std::to_string(g.slot) + " a second time");
    PEFT_CHECK(g.rows >= 1, ErrorCode::Range, which + " has " + std::to_string(g.rows) + " rows; expected at least 1");
    PEFT_CHECK(it->second.length + g.rows <= it->second.capacity, ErrorCode::Range,
               which + " would fill " + std::to_string(it->second.length + g.rows) + " positions of slot " + std::to_string(g.slot) +
                   ", which holds " + std::to_string(it->second.capacity));
    PEFT_CHECK(g.adapter == 0 || serve_.adapters.count(g.adapter), ErrorCode::Argument,
               which + " names adapter " + std::to_string(g.adapter) + ", which is not registered");
    total += g.rows;
  }
  PEFT_CHECK(total == ids.dim(0), ErrorCode::Shape,
             "Expected the segments' rows (" + std::to_string(total) + ") to equal the ids (" + std::to_string(ids.dim(0)) + ")");
}

Tensor DecoderModel::serve_step(const Tensor& ids, const std::vector<ServeSegment>& segments) {
  check_serve_step(ids, segments);
  const DecoderSpec& s = spec_;
  const int64_t M = ids.dim(0), H = s.hidden, G = static_cast<int64_t>(segments.size());

  // Rows → the batch's adapters; positions continue each slot.
  nn::BatchLora batch, head_batch;
  std::map<int64_t, int32_t> adapter_index;
  std::vector<int32_t> positions(static_cast<size_t>(M));
  int64_t row = 0;
  for (int64_t i = 0; i < G; ++i) {
    const ServeSegment& g = segments[static_cast<size_t>(i)];
    int32_t index = -1;
    if (g.adapter) {
      auto [it, added] = adapter_index.emplace(g.adapter, static_cast<int32_t>(batch.adapters.size()));
      if (added) batch.adapters.push_back(serve_.adapters.at(g.adapter).get());
      index = it->second;
    }
    batch.segments.push_back({row, g.rows, index});
    head_batch.segments.push_back({i, 1, index});
    const int64_t start = serve_.slots.at(g.slot).length;
    if (s.learned_positions)
      PEFT_CHECK(start + g.rows <= s.learned_positions, ErrorCode::Range,
                 "Expected at most " + std::to_string(s.learned_positions) + " positions (the learned position table's rows) but slot " +
                     std::to_string(g.slot) + " would reach " + std::to_string(start + g.rows));
    for (int64_t t = 0; t < g.rows; ++t) positions[static_cast<size_t>(row + t)] = static_cast<int32_t>(start + t);
    row += g.rows;
  }
  head_batch.adapters = batch.adapters;

  nn::AttentionStep step;
  step.sel = selection_;
  step.sel.rows_per_item = M;
  step.sel.train = false;
  step.sel.batch = batch.adapters.empty() ? nullptr : &batch;
  step.batch = 1;
  step.seq = M;
  step.positions = positions.data();
  step.mask = kernels::AttentionMask{true, nullptr};
  step.layers = s.layers;

  TensorPtr x = f32(ctx_, {M, H});
  embed(ids, nullptr, step.sel, step.positions, 1, M, p(x));
  std::vector<nn::KvSegment> kv(static_cast<size_t>(G));
  for (int64_t l = 0; l < s.layers; ++l) {
    for (int64_t i = 0; i < G; ++i) {
      const ServeSegment& g = segments[static_cast<size_t>(i)];
      ServeSlot& slot = serve_.slots.at(g.slot);
      kv[static_cast<size_t>(i)] = nn::KvSegment{p(slot.k[static_cast<size_t>(l)]), p(slot.v[static_cast<size_t>(l)]), slot.length,
                                                 batch.segments[static_cast<size_t>(i)].row0, g.rows};
    }
    nn::KvSlot ragged;
    ragged.segments = &kv;
    nn::BlockCache lc;
    x = blocks_[static_cast<size_t>(l)].forward(ctx_, step, x, lc, &ragged);
  }
  // Only each segment's last row goes through the final norm and the head.
  TensorPtr last = f32(ctx_, {G, H});
  for (int64_t i = 0; i < G; ++i) {
    const kernels::LoraSegment& g = batch.segments[static_cast<size_t>(i)];
    ctx_.copy_values(H, p(x) + (g.row0 + g.rows - 1) * H, p(last) + i * H);
  }
  TensorPtr normed = f32(ctx_, {G, H});
  nn::NormCache final_cache;
  final_norm_.forward(ctx_, G, p(last), p(normed), final_cache);
  Tensor logits = Tensor::uninitialized(DType::F32, {G, s.vocab});
  nn::AdapterSelection head_sel = step.sel;
  head_sel.rows_per_item = G;
  head_sel.batch = head_batch.adapters.empty() ? nullptr : &head_batch;
  {
    PEFT_PROFILE_SCOPE(Head);
    linears_.at(s.names.head)->forward(ctx_, head_sel, G, p(normed), logits.data_as<float>(), nullptr);
  }
  if (s.final_softcap > 0) ctx_.softcap_forward(G, s.vocab, s.vocab, s.final_softcap, logits.data_as<float>());
  for (const ServeSegment& g : segments) serve_.slots.at(g.slot).length += g.rows;
  return logits;
}

}  // namespace peft::model
