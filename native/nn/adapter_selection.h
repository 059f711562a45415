// Which adapters a forward pass applies, and to which rows. Usually every row gets the active
// adapters; a mixed batch names one adapter (or "__base__" for none) per batch row.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace peft::nn {

struct BatchLora;  // nn/batch_lora.h

inline constexpr const char* kBaseAdapter = "__base__";

struct AdapterSelection {
  bool enabled = true;                // false: the base model alone (adapters disabled)
  std::vector<std::string> active;    // applied to every row when per_row is empty
  std::vector<std::string> per_row;   // one adapter name per batch row: a mixed batch
  int64_t rows_per_item = 1;          // rows of an [m, features] activation per batch row (sequence length)
  bool train = false;                 // dropout runs: a training forward of a model in training mode
  bool dropout = true;                // the model is in training mode (PeftModel.train()); false after eval()
  uint64_t seed = 0;                  // dropout stream of this forward
  const BatchLora* batch = nullptr;   // served adapters per group of rows (inference only), or null
};

using RowRange = std::pair<int64_t, int64_t>;  // [begin, end)

// The row ranges of an m-row activation that adapter `name` applies to (adjacent rows merged).
std::vector<RowRange> adapter_rows(const AdapterSelection& selection, const std::string& name, int64_t m);

}  // namespace peft::nn
