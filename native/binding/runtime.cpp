// Runtime introspection and control: instruction set, CPU features, thread pool size.
#include <napi.h>

#include "binding/args.h"
#include "binding/errors.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/tensor.h"
#include "core/profile.h"
#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/backend_compare.h"
#include "kernels/isa.h"
#include "kernels/cpu/panel_matmul.h"

namespace peft::binding {

namespace {

Napi::Value get_isa(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), kernels::isa_name(kernels::active_isa()));
  });
}

Napi::Value set_isa(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    kernels::set_isa(kernels::parse_isa(to_string(arg(info, 0), "isa")));
    return info.Env().Undefined();
  });
}

Napi::Value supported_isas(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto isas = kernels::supported_isas();
    Napi::Array out = Napi::Array::New(info.Env(), isas.size());
    for (size_t i = 0; i < isas.size(); ++i) out.Set(static_cast<uint32_t>(i), kernels::isa_name(isas[i]));
    return out;
  });
}

Napi::Value backends_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto all = kernels::backends();
    Napi::Array out = Napi::Array::New(info.Env(), all.size());
    for (size_t i = 0; i < all.size(); ++i) out.Set(static_cast<uint32_t>(i), all[i]->name);
    return out;
  });
}

// compareBackendOps(backend, isa, seed) → { ops: number, results: [{ op, maxAbs, refScale, outputs }] }
Napi::Value compare_backend_ops(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const kernels::Backend& backend = kernels::find_backend(to_string(arg(info, 0), "backend"));
    const kernels::Isa isa = kernels::parse_isa(to_string(arg(info, 1), "isa"));
    const double seed = to_number(arg(info, 2), "seed");
    const auto results = kernels::compare_backend_ops(backend, isa, static_cast<uint64_t>(seed));
    Napi::Env env = info.Env();
    Napi::Array list = Napi::Array::New(env, results.size());
    for (size_t i = 0; i < results.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("op", results[i].op);
      o.Set("maxAbs", results[i].max_abs);
      o.Set("refScale", results[i].ref_scale);
      o.Set("outputs", static_cast<double>(results[i].outputs));
      list.Set(static_cast<uint32_t>(i), o);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("ops", kernels::backend_op_count());
    out.Set("results", list);
    return out;
  });
}

Napi::Value cpu_features_js(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const CpuFeatures& f = cpu_features();
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("avx2", f.avx2);
    out.Set("fma", f.fma);
    out.Set("f16c", f.f16c);
    out.Set("avx512f", f.avx512f);
    out.Set("avx512bw", f.avx512bw);
    out.Set("avx512vl", f.avx512vl);
    out.Set("avx512dq", f.avx512dq);
    out.Set("avx512bf16", f.avx512bf16);
    out.Set("physicalCores", physical_core_count());
    return out;
  });
}

Napi::Value num_threads(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), ThreadPool::instance().size()); });
}

Napi::Value set_num_threads(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int64_t n = to_int(arg(info, 0), "threads");
    PEFT_CHECK(n >= 1 && n <= 1024, ErrorCode::Range,
               "Expected a thread count between 1 and 1024 but received " + std::to_string(n));
    ThreadPool::instance().resize(static_cast<int>(n));
    return info.Env().Undefined();
  });
}

// The external memory V8 has been told about (all addons of this isolate), in bytes.
Napi::Value external_memory(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int64_t total = 0;
    napi_adjust_external_memory(info.Env(), 0, &total);
    return Napi::Number::New(info.Env(), static_cast<double>(total));
  });
}

// Live native tensor storages of the whole process (every worker thread's too), for leak checks.
Napi::Value live_storages(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Storage::LiveCounts c = Storage::live();
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("storages", Napi::Number::New(info.Env(), static_cast<double>(c.storages)));
    out.Set("bytes", Napi::Number::New(info.Env(), static_cast<double>(c.bytes)));
    out.Set("views", Napi::Number::New(info.Env(), static_cast<double>(c.views)));
    return out;
  });
}

// setProfiling(on): turns the per-phase timers of native/core/profile.h on or off.
Napi::Value set_profiling(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Value on = arg(info, 0);
    if (!on.IsBoolean()) fail_argument("Expected a boolean for on but received " + describe(on));
    profile::set_enabled(on.As<Napi::Boolean>().Value());
    return info.Env().Undefined();
  });
}

// profile() -> { [phase]: { ns, calls } }: the time summed per phase since the last resetProfile().
Napi::Value profile_totals(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const profile::Totals t = profile::totals();
    Napi::Object out = Napi::Object::New(info.Env());
    for (int i = 0; i < profile::kPhaseCount; ++i) {
      Napi::Object phase = Napi::Object::New(info.Env());
      phase.Set("ns", Napi::Number::New(info.Env(), static_cast<double>(t.ns[i])));
      phase.Set("calls", Napi::Number::New(info.Env(), static_cast<double>(t.calls[i])));
      out.Set(profile::phase_name(static_cast<profile::Phase>(i)), phase);
    }
    return out;
  });
}

Napi::Value reset_profile(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    profile::reset();
    return info.Env().Undefined();
  });
}

// init(PeftError): registers the error class, then applies PEFT_ISA (which may throw E_UNSUPPORTED).
Napi::Value init(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Value cls = arg(info, 0);
    if (!cls.IsFunction()) fail_argument("Expected the PeftError class for init but received " + describe(cls));
    addon_data(info.Env()).error_class = Napi::Persistent(cls.As<Napi::Function>());
    kernels::init_isa_from_env();
    return info.Env().Undefined();
  });
}

}  // namespace

void register_runtime(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, init));
  exports.Set("getIsa", Napi::Function::New(env, get_isa));
  exports.Set("setIsa", Napi::Function::New(env, set_isa));
  exports.Set("supportedIsas", Napi::Function::New(env, supported_isas));
  exports.Set("backends", Napi::Function::New(env, backends_js));
  exports.Set("compareBackendOps", Napi::Function::New(env, compare_backend_ops));
  exports.Set("cpuFeatures", Napi::Function::New(env, cpu_features_js));
  exports.Set("externalMemory", Napi::Function::New(env, external_memory));
  exports.Set("liveStorages", Napi::Function::New(env, live_storages));
  exports.Set("numThreads", Napi::Function::New(env, num_threads));
  exports.Set("setPanelFloats", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return guarded(info, [&]() -> Napi::Value {
                  return Napi::Number::New(info.Env(), static_cast<double>(kernels::cpu::set_panel_floats(to_int(arg(info, 0), "floats"))));
                });
              }));
  exports.Set("setNumThreads", Napi::Function::New(env, set_num_threads));
  exports.Set("setProfiling", Napi::Function::New(env, set_profiling));
  exports.Set("profile", Napi::Function::New(env, profile_totals));
  exports.Set("resetProfile", Napi::Function::New(env, reset_profile));
}

}  // namespace peft::binding
