/*
 * A reference from another tool: quantizes a GGUF model with llama.cpp's own llama_model_quantize
 * (what the llama-quantize tool runs), from the libllama that node-llama-cpp ships, so tests can
 * compare the files we write with llama.cpp's: which type each tensor gets, and its bytes.
 *
 *   llama-quantize <libllama.so> <in.gguf> <out.gguf> <ftype>
 *
 * <ftype> is llama.cpp's llama_ftype number (7 Q8_0, 15 Q4_K_M, 17 Q5_K_M, 18 Q6_K, 1 F16, ...).
 * Exit status 2 with a message on stderr for any failure.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama_model_quantize_params begins { int32_t nthread; enum llama_ftype ftype; ... }: only those two
   are set here. The rest keep llama.cpp's defaults; the buffer is larger than the struct has ever been. */
typedef struct {
  int32_t nthread;
  int32_t ftype;
  unsigned char rest[1024];
} quantize_params;

typedef quantize_params (*default_params_fn)(void);
typedef uint32_t (*quantize_fn)(const char* in, const char* out, const quantize_params* params);

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: llama-quantize <libllama.so> <in.gguf> <out.gguf> <ftype>\n");
    return 2;
  }
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "llama-quantize: cannot load %s\n", dlerror());
    return 2;
  }
  default_params_fn defaults = (default_params_fn)dlsym(lib, "llama_model_quantize_default_params");
  quantize_fn quantize = (quantize_fn)dlsym(lib, "llama_model_quantize");
  if (!defaults || !quantize) {
    fprintf(stderr, "llama-quantize: the library lacks llama_model_quantize\n");
    return 2;
  }
  quantize_params params = defaults();
  params.nthread = 1;
  params.ftype = atoi(argv[4]);
  const uint32_t rc = quantize(argv[2], argv[3], &params);
  if (rc != 0) {
    fprintf(stderr, "llama-quantize: llama_model_quantize returned %u\n", rc);
    return 2;
  }
  return 0;
}
