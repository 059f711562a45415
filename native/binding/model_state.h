// The state behind a native model object, and the lease that gives one call the model to itself
// (a second call while one runs is refused with E_BUSY; a disposed model with E_DISPOSED).
#pragma once
#include <atomic>
#include <memory>

#include "core/error.h"
#include "model/adapter_host.h"

namespace peft::binding {

struct ModelState {
  std::unique_ptr<model::AdapterHost> model;
  std::atomic<bool> busy{false};
};

// Marks the model busy for one call's lifetime.
class ModelLease {
 public:
  explicit ModelLease(std::shared_ptr<ModelState> s) : state_(std::move(s)) {
    bool expected = false;
    PEFT_CHECK(state_->busy.compare_exchange_strong(expected, true), ErrorCode::Busy,
               "The model is running another call; await it before starting a new one");
    if (!state_->model) {
      state_->busy.store(false);
      throw Error(ErrorCode::Disposed, "The model was disposed and cannot be used");
    }
  }
  ~ModelLease() { state_->busy.store(false); }
  model::AdapterHost& model() const { return *state_->model; }

 private:
  std::shared_ptr<ModelState> state_;
};

}  // namespace peft::binding
