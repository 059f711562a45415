#include "model/adapter_host.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace peft::model {

AdapterHost::AdapterHost(HostDims dims) : dims_(std::move(dims)) {
  for (int64_t l = 0; l < dims_.layers; ++l) {
    attn_sites_.push_back(std::make_unique<nn::BottleneckSite>(dims_.hidden));
    mlp_sites_.push_back(std::make_unique<nn::BottleneckSite>(dims_.hidden));
  }
}

AdapterHost::~AdapterHost() = default;

double AdapterHost::train_loss(const Tensor& ids, const Tensor* key_valid, const Tensor& labels, bool accumulate) {
  const Tensor logits = forward(ids, key_valid, true);
  return loss_backward(logits, labels, accumulate);
}

void AdapterHost::set_checkpointing(bool on) {
  PEFT_CHECK(!on, ErrorCode::Unsupported, "Activation checkpointing is not available for this architecture yet");
}

nn::Param& AdapterHost::parameter(const std::string& name) const {
  auto it = params_.find(name);
  PEFT_CHECK(it != params_.end(), ErrorCode::Argument, "The model has no parameter named " + name);
  return *it->second;
}

nn::Linear& AdapterHost::linear(const std::string& module) const {
  auto it = linears_.find(module);
  PEFT_CHECK(it != linears_.end(), ErrorCode::Argument,
             "The model has no linear layer named " + module + " (see linears())");
  return *it->second;
}

int AdapterHost::module_depth(const std::string& module) const {
  auto it = module_depths_.find(module);
  return it == module_depths_.end() ? 0 : it->second;
}

const Tensor& AdapterHost::weight(const std::string& name) const { return *parameter(name).value; }
const float* AdapterHost::weight_f32(const std::string& name) const { return weight(name).data_as<float>(); }

void AdapterHost::add_lora(const std::string& module, const std::string& adapter, nn::LoraWeights w) {
  nn::Linear& lin = linear(module);
  const std::string a = module + ".lora_A." + adapter + ".weight", b = module + ".lora_B." + adapter + ".weight";
  const std::string mag = module + ".lora_magnitude_vector." + adapter + ".weight";
  // An A already registered (another module's, shared: see the binding's shareA) keeps its name.
  const bool shared_a = w.a && params_.count(w.a->name) && params_.at(w.a->name) == w.a;
  PEFT_CHECK(!shared_a || !w.magnitude, ErrorCode::Unsupported, "DoRA cannot share lora_A between modules (" + module + ")");
  for (const std::string& n : {a, b, mag})
    PEFT_CHECK(!params_.count(n), ErrorCode::Config, "The model already has a parameter " + n);
  if (w.a && !shared_a) w.a->name = a;
  if (w.b) w.b->name = b;
  if (w.magnitude) w.magnitude->name = mag;
  for (const nn::ParamPtr& param : {w.a, w.b, w.magnitude})
    if (param) param->depth = std::max(param->depth, module_depth(module));
  nn::LoraWeights copy = w;
  lin.add_lora(adapter, std::move(copy));
  for (const nn::ParamPtr& param : {w.a, w.b, w.magnitude})
    if (param && !(shared_a && param == w.a)) params_[param->name] = param;
}

void AdapterHost::add_ia3(const std::string& module, const std::string& adapter, nn::Ia3Weights w) {
  nn::Linear& lin = linear(module);
  const std::string name = module + ".ia3_l." + adapter;
  PEFT_CHECK(!params_.count(name), ErrorCode::Config, "The model already has a parameter " + name);
  if (w.scale) {
    w.scale->name = name;
    w.scale->depth = module_depth(module);
  }
  nn::Ia3Weights copy = w;
  lin.add_ia3(adapter, std::move(copy));
  params_[name] = w.scale;
}

void AdapterHost::add_prompt(const std::string& adapter, std::shared_ptr<Tensor> prompt) {
  PEFT_CHECK(prompt && prompt->dtype() == DType::F32 && prompt->ndim() == 2 && prompt->dim(1) == dims_.hidden &&
                 prompt->dim(0) >= 1 && prompt->is_contiguous(),
             ErrorCode::Shape,
             "Expected virtual token embeddings of shape [tokens, " + std::to_string(dims_.hidden) + "] f32 but received " +
                 (prompt ? std::string(dtype_name(prompt->dtype())) + " " + shape_to_string(prompt->shape()) : "none"));
  PEFT_CHECK(!prompts_.count(adapter), ErrorCode::Config, "The model already has a prompt adapter named " + adapter);
  auto param = std::make_shared<nn::Param>("prompt_embeddings." + adapter, std::move(prompt));
  param->trainable = true;
  prompts_[adapter] = param;
  params_[param->name] = param;
}

void AdapterHost::add_bottleneck(int64_t layer, const std::string& site, const std::string& adapter,
                                nn::BottleneckWeights w) {
  PEFT_CHECK(layer >= 0 && layer < dims_.layers, ErrorCode::Range,
             "Expected a layer index in [0, " + std::to_string(dims_.layers) + ") but received " + std::to_string(layer));
  PEFT_CHECK(site == "attn" || site == "mlp", ErrorCode::Argument,
             "Expected \"attn\" or \"mlp\" for the adapter site but received \"" + site + "\"");
  const std::string pre = dims_.layer_prefix + std::to_string(layer) + "." + site + "_adapter.";
  const std::pair<nn::ParamPtr*, std::string> named[] = {{&w.down_w, "adapter_down." + adapter + ".weight"},
                                                         {&w.down_b, "adapter_down." + adapter + ".bias"},
                                                         {&w.up_w, "adapter_up." + adapter + ".weight"},
                                                         {&w.up_b, "adapter_up." + adapter + ".bias"}};
  for (const auto& [param, suffix] : named) {
    PEFT_CHECK(*param != nullptr, ErrorCode::Argument, "A bottleneck adapter needs " + suffix);
    PEFT_CHECK(!params_.count(pre + suffix), ErrorCode::Config, "The model already has a parameter " + pre + suffix);
    (*param)->name = pre + suffix;
    (*param)->depth = module_depth(dims_.layer_prefix + std::to_string(layer) + "." + site + "_adapter");
  }
  (site == "attn" ? attn_sites_ : mlp_sites_)[static_cast<size_t>(layer)]->add(adapter, w);
  for (const auto& [param, suffix] : named) params_[(*param)->name] = *param;
}

void AdapterHost::add_prefix(const std::string& adapter, std::shared_ptr<Tensor> kv) {
  const int64_t width = dims_.layers * 2 * dims_.kv_dim;
  PEFT_CHECK(kv && kv->dtype() == DType::F32 && kv->ndim() == 2 && kv->dim(1) == width && kv->dim(0) >= 1 &&
                 kv->is_contiguous(),
             ErrorCode::Shape,
             "Expected prefix keys and values of shape [tokens, " + std::to_string(width) + "] f32 but received " +
                 (kv ? std::string(dtype_name(kv->dtype())) + " " + shape_to_string(kv->shape()) : "none"));
  PEFT_CHECK(!prefixes_.count(adapter) && !prompts_.count(adapter), ErrorCode::Config,
             "The model already has a prompt adapter named " + adapter);
  auto param = std::make_shared<nn::Param>("prefix_kv." + adapter, std::move(kv));
  param->trainable = true;
  param->depth = module_depth("prefix_kv");
  prefixes_[adapter] = param;
  params_[param->name] = param;
}

void AdapterHost::add_embedding_lora(const std::string& adapter, nn::EmbeddingLora w) {
  PEFT_CHECK(w.a && w.b, ErrorCode::Argument, "LoRA on the embeddings needs A and B");
  const Shape& as = w.a->value->shape();
  PEFT_CHECK(as.size() == 2 && as[1] == dims_.vocab && as[0] >= 1 && w.a->value->dtype() == DType::F32, ErrorCode::Shape,
             "Expected lora_embedding_A of shape [r, " + std::to_string(dims_.vocab) + "] f32 but received " +
                 shape_to_string(as));
  PEFT_CHECK(w.b->value->shape() == Shape({dims_.hidden, as[0]}) && w.b->value->dtype() == DType::F32, ErrorCode::Shape,
             "Expected lora_embedding_B of shape " + shape_to_string({dims_.hidden, as[0]}) + " f32 but received " +
                 shape_to_string(w.b->value->shape()));
  PEFT_CHECK(!embedding_lora_.count(adapter), ErrorCode::Config, dims_.embed_module + " already has an adapter named " + adapter);
  w.a->name = dims_.embed_module + ".lora_embedding_A." + adapter;
  w.b->name = dims_.embed_module + ".lora_embedding_B." + adapter;
  for (const nn::ParamPtr& p : {w.a, w.b})
    PEFT_CHECK(!params_.count(p->name), ErrorCode::Config, "The model already has a parameter " + p->name);
  params_[w.a->name] = w.a;
  params_[w.b->name] = w.b;
  embedding_lora_[adapter] = std::move(w);
}

bool AdapterHost::merge_embedding_lora(const std::string& adapter, bool merge) {
  auto it = embedding_lora_.find(adapter);
  if (it == embedding_lora_.end()) return false;
  nn::EmbeddingLora& w = it->second;
  PEFT_CHECK(w.merged != merge, ErrorCode::Config,
             "Adapter " + adapter + (merge ? " is already merged into" : " is not merged into") + " " + dims_.embed_module);
  PEFT_CHECK(!dims_.tied_head, ErrorCode::Unsupported,
             "Cannot merge LoRA on " + dims_.embed_module + ": the output head shares the table, so the merged model would differ");
  const int64_t r = w.a->value->dim(0), V = dims_.vocab, H = dims_.hidden;
  nn::Param& embed = parameter(dims_.embed_module + ".weight");
  PEFT_CHECK(embed.value->dtype() == DType::F32, ErrorCode::DType,
             "Cannot merge into the " + std::string(dtype_name(embed.value->dtype())) + " table " + embed.name + "; load the model in f32");
  float* table = embed.mutable_data();
  const float sign = merge ? w.scaling : -w.scaling;
  for (int64_t v = 0; v < V; ++v)
    for (int64_t h = 0; h < H; ++h) {
      float sum = 0;
      for (int64_t j = 0; j < r; ++j) sum += w.b->data()[h * r + j] * w.a->data()[j * V + v];
      table[v * H + h] += sign * sum;
    }
  w.merged = merge;
  return true;
}

nn::ParamPtr AdapterHost::active_prefix() const {
  if (!selection_.enabled || !selection_.per_row.empty()) return nullptr;
  for (const std::string& name : selection_.active) {
    auto it = prefixes_.find(name);
    if (it != prefixes_.end()) return it->second;
  }
  return nullptr;
}

int64_t AdapterHost::prefix_length() const {
  nn::ParamPtr prefix = active_prefix();
  return prefix ? prefix->value->dim(0) : 0;
}

void AdapterHost::delete_adapter(const std::string& adapter, bool keep_merged) {
  bool found = prompts_.erase(adapter) > 0;
  found = prefixes_.erase(adapter) > 0 || found;
  auto emb = embedding_lora_.find(adapter);
  if (emb != embedding_lora_.end()) {
    PEFT_CHECK(keep_merged || !emb->second.merged, ErrorCode::Config, "Unmerge adapter " + adapter + " before deleting it");
    embedding_lora_.erase(emb);
    found = true;
  }
  for (auto& [name, lin] : linears_) found = lin->remove_adapter(adapter, keep_merged) || found;
  for (auto* sites : {&attn_sites_, &mlp_sites_})
    for (auto& site : *sites) found = site->remove(adapter) || found;
  PEFT_CHECK(found, ErrorCode::Argument, "The model has no adapter named " + adapter);
  const std::string tag = "." + adapter;
  for (auto it = params_.begin(); it != params_.end();) {
    const std::string& n = it->first;
    const bool mine = n == "prompt_embeddings" + tag || n == "prefix_kv" + tag ||
                      n == dims_.embed_module + ".lora_embedding_A" + tag || n == dims_.embed_module + ".lora_embedding_B" + tag || n.find(".lora_A" + tag + ".weight") != std::string::npos ||
                      n.find(".lora_B" + tag + ".weight") != std::string::npos ||
                      n.find("_adapter.adapter_down" + tag + ".") != std::string::npos ||
                      n.find("_adapter.adapter_up" + tag + ".") != std::string::npos ||
                      n.find(".lora_magnitude_vector" + tag + ".weight") != std::string::npos ||
                      (n.size() > tag.size() && n.compare(n.size() - tag.size(), tag.size(), tag) == 0 &&
                       n.find(".ia3_l" + tag) != std::string::npos);
    it = mine ? params_.erase(it) : std::next(it);
  }
}

nn::ParamPtr AdapterHost::active_prompt() const {
  if (!selection_.enabled || !selection_.per_row.empty()) return nullptr;
  for (const std::string& name : selection_.active) {
    auto it = prompts_.find(name);
    if (it != prompts_.end()) return it->second;
  }
  return nullptr;
}

int64_t AdapterHost::prompt_length() const {
  nn::ParamPtr prompt = active_prompt();
  return prompt ? prompt->value->dim(0) : 0;
}

}  // namespace peft::model
