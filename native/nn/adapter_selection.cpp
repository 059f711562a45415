#include "nn/adapter_selection.h"

#include <algorithm>

namespace peft::nn {

std::vector<RowRange> adapter_rows(const AdapterSelection& selection, const std::string& name, int64_t m) {
  std::vector<RowRange> ranges;
  if (!selection.enabled || m <= 0) return ranges;
  if (selection.per_row.empty()) {
    if (std::find(selection.active.begin(), selection.active.end(), name) != selection.active.end()) ranges.push_back({0, m});
    return ranges;
  }
  const int64_t step = selection.rows_per_item;
  for (size_t b = 0; b < selection.per_row.size(); ++b) {
    if (selection.per_row[b] != name) continue;
    const int64_t begin = static_cast<int64_t>(b) * step, end = std::min(m, begin + step);
    if (begin >= end) continue;
    if (!ranges.empty() && ranges.back().second == begin)
      ranges.back().second = end;
    else
      ranges.push_back({begin, end});
  }
  return ranges;
}

}  // namespace peft::nn
