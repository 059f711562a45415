/*
 * A reference from another tool: runs llama.cpp's own ggml quantizers and dequantizers
 * (quantize_row_<type>_ref / dequantize_row_<type> of the libggml-base.so that node-llama-cpp ships)
 * on a file of inputs, so tests can compare our kernels with ggml's bit for bit.
 *
 *   ggml-oracle <libggml-base.so> quantize   <type> <n> <in.f32> <out.bin>
 *   ggml-oracle <libggml-base.so> dequantize <type> <n> <in.bin> <out.f32>
 *   ggml-oracle <libggml-base.so> chunk      <type> <n> <in.f32> <out.bin>
 *
 * chunk runs ggml_quantize_chunk (what llama-quantize calls, no importance matrix) on rows of
 * GGML_ORACLE_ROW elements (default n); it differs from the _ref only for IQ4_NL.
 *
 * <type> is ggml's lower-case name (q4_0, q4_K, iq4_nl, ...); n is the element count (whole
 * blocks). quantize writes GGML_ORACLE_BYTES bytes (the environment variable: the block bytes
 * of n elements). Exit status 2 with a message on stderr for any failure.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*row_fn)(const void* x, void* y, int64_t k);
typedef size_t (*chunk_fn)(int type, const float* src, void* dst, int64_t start, int64_t nrows, int64_t n_per_row,
                           const float* imatrix);
typedef void (*init_fn)(int type);

/* ggml.h's type ids of the oracle's type names. */
static int type_id(const char* name) {
  static const char* names[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_nl", "iq4_xs"};
  static const int ids[] = {2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 20, 23};
  for (int i = 0; i < 12; ++i)
    if (strcmp(names[i], name) == 0) return ids[i];
  return -1;
}

static int fail(const char* what, const char* detail) {
  fprintf(stderr, "ggml-oracle: %s %s\n", what, detail ? detail : "");
  return 2;
}

static void* read_all(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  void* buf = malloc(n > 0 ? (size_t)n : 1);
  if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *size = (size_t)(n > 0 ? n : 0);
  return buf;
}

int main(int argc, char** argv) {
  if (argc != 7) return fail("usage:", "ggml-oracle <lib> quantize|dequantize <type> <n> <in> <out>");
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) return fail("cannot load", dlerror());
  const int chunk = strcmp(argv[2], "chunk") == 0;
  const int quantize = chunk || strcmp(argv[2], "quantize") == 0;
  if (!quantize && strcmp(argv[2], "dequantize") != 0) return fail("unknown mode", argv[2]);
  char symbol[64];
  snprintf(symbol, sizeof symbol, quantize ? "quantize_row_%s_ref" : "dequantize_row_%s", argv[3]);
  row_fn fn = chunk ? NULL : (row_fn)dlsym(lib, symbol);
  chunk_fn quantize_chunk = chunk ? (chunk_fn)dlsym(lib, "ggml_quantize_chunk") : NULL;
  init_fn quantize_init = chunk ? (init_fn)dlsym(lib, "ggml_quantize_init") : NULL;
  if (!chunk && !fn) return fail("no symbol", symbol);
  if (chunk && (!quantize_chunk || !quantize_init || type_id(argv[3]) < 0)) return fail("cannot run ggml_quantize_chunk for", argv[3]);
  const int64_t n = strtoll(argv[4], NULL, 10);
  size_t in_size = 0;
  void* in = read_all(argv[5], &in_size);
  if (!in) return fail("cannot read", argv[5]);
  if (quantize && in_size != (size_t)n * 4) return fail("input is not n floats:", argv[5]);
  /* The output is at most 4 bytes per element either way (every block format is smaller than f32). */
  const size_t out_cap = (size_t)n * 4;
  void* out = calloc(out_cap ? out_cap : 1, 1);
  if (chunk) {
    const char* row_env = getenv("GGML_ORACLE_ROW");
    const int64_t row = row_env ? strtoll(row_env, NULL, 10) : n;
    if (row <= 0 || n % row != 0) return fail("GGML_ORACLE_ROW", "must divide n");
    quantize_init(type_id(argv[3]));
    quantize_chunk(type_id(argv[3]), (const float*)in, out, 0, n / row, row, NULL);
  } else {
    fn(in, out, n);
  }
  size_t out_size = out_cap;
  if (quantize) {
    /* The caller knows the quantized size (rows of blocks); it comes in GGML_ORACLE_BYTES. */
    const char* size_env = getenv("GGML_ORACLE_BYTES");
    if (!size_env) return fail("GGML_ORACLE_BYTES", "must give the quantized size in bytes");
    out_size = (size_t)strtoull(size_env, NULL, 10);
    if (out_size > out_cap) return fail("GGML_ORACLE_BYTES", "is larger than 4 bytes per element");
  }
  FILE* f = fopen(argv[6], "wb");
  if (!f || fwrite(out, 1, out_size, f) != out_size) return fail("cannot write", argv[6]);
  fclose(f);
  return 0;
}
