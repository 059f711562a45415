#include "binding/op_runner.h"

#include <map>

#include "core/error.h"

namespace peft::binding {

OpPlan::~OpPlan() { release(); }

const std::shared_ptr<Tensor>& OpPlan::reads(const std::shared_ptr<Tensor>& t) {
  if (t) uses_.push_back({t, false});
  return t;
}

const std::shared_ptr<Tensor>& OpPlan::writes(const std::shared_ptr<Tensor>& t) {
  if (t) uses_.push_back({t, true});
  return t;
}

void OpPlan::acquire() {
  // One lease per storage: written if any use writes it.
  std::map<Storage*, Use> by_storage;
  for (const Use& u : uses_) {
    auto [it, inserted] = by_storage.emplace(u.tensor->storage().get(), u);
    if (!inserted) it->second.write = it->second.write || u.write;
  }
  for (auto& [storage, use] : by_storage) {
    try {
      storage->acquire(use.write, use.write ? "(an output)" : "(an input)");
    } catch (...) {
      release();
      throw;
    }
    held_.push_back(use);
  }
}

void OpPlan::release() {
  for (const Use& u : held_) u.tensor->storage()->release(u.write);
  held_.clear();
}

Napi::Value run_sync(Napi::Env env, std::unique_ptr<OpPlan> plan) {
  plan->acquire();
  plan->execute();
  plan->release();
  return plan->result(env);
}

namespace {

class OpWorker : public Napi::AsyncWorker {
 public:
  OpWorker(Napi::Env env, std::unique_ptr<OpPlan> plan)
      : Napi::AsyncWorker(env, "peft-native"), plan_(std::move(plan)), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      plan_->execute();
    } catch (const peft::Error& e) {
      fail(e.code_name(), e.what());
    } catch (const std::bad_alloc&) {
      fail("E_MEMORY", "Out of memory");
    } catch (const std::exception& e) {
      fail("E_INTERNAL", std::string("Internal error: ") + e.what());
    }
  }

  // Settles the promise on the JS thread. A worker_thread can be terminated while this call ran, or
  // even while the promise is being settled: its environment then runs no JS, so the promise is left
  // unsettled (nobody can observe it). Nothing may throw out of here: it would end the whole process.
  void OnWorkComplete(Napi::Env env, napi_status status) override {
    plan_->release();
    if (status != napi_cancelled && js_reachable(env)) {
      try {
        Napi::HandleScope scope(env);
        settle(env);
      } catch (const Napi::Error&) {
        // The environment began shutting down while settling (see above).
      }
    }
    Destroy();
  }

 private:
  void settle(Napi::Env env) {
    if (!code_.empty()) {
      deferred_.Reject(make_error(env, code_.c_str(), message_).Value());
      return;
    }
    try {
      deferred_.Resolve(plan_->result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void fail(const char* code, const std::string& message) {
    code_ = code;
    message_ = message;
    SetError(message);
  }

  std::unique_ptr<OpPlan> plan_;
  Napi::Promise::Deferred deferred_;
  std::string code_;
  std::string message_;
};

}  // namespace

Napi::Value run_async(Napi::Env env, std::unique_ptr<OpPlan> plan) {
  plan->acquire();
  auto* worker = new OpWorker(env, std::move(plan));  // deletes itself after OnOK/OnError
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace peft::binding
