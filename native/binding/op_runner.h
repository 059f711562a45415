// A native operation in the three phases an N-API call needs: its constructor reads the arguments
// on the JS thread; execute() does the work with no JS access (on the JS thread for the sync
// entry, on a libuv worker for the async one); result() builds the JS value on the JS thread.
// Tensors an op reads or writes are leased for its whole run, so a tensor that a pending async call
// writes cannot be read, written or disposed meanwhile (E_BUSY), and vice versa.
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "binding/errors.h"
#include "core/tensor.h"

namespace peft::binding {

class OpPlan {
 public:
  virtual ~OpPlan();
  virtual void execute() = 0;
  virtual Napi::Value result(Napi::Env env) = 0;

  void acquire();  // throws E_BUSY, holding nothing, on conflict
  void release();

 protected:
  const std::shared_ptr<Tensor>& reads(const std::shared_ptr<Tensor>& t);
  const std::shared_ptr<Tensor>& writes(const std::shared_ptr<Tensor>& t);

 private:
  struct Use {
    std::shared_ptr<Tensor> tensor;
    bool write;
  };
  std::vector<Use> uses_;
  std::vector<Use> held_;
};

Napi::Value run_sync(Napi::Env env, std::unique_ptr<OpPlan> plan);
Napi::Value run_async(Napi::Env env, std::unique_ptr<OpPlan> plan);  // a Promise

// Exports Plan as `name` (synchronous) and `name + "Async"` (Promise, off the event loop).
template <typename Plan>
void export_op(Napi::Env env, Napi::Object exports, const std::string& name) {
  exports.Set(name, Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return guarded(info, [&] { return run_sync(info.Env(), std::make_unique<Plan>(info)); });
              }));
  exports.Set(name + "Async", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return guarded(info, [&] { return run_async(info.Env(), std::make_unique<Plan>(info)); });
              }));
}

}  // namespace peft::binding
