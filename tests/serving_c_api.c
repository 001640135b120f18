/* Loads a SavedModel through TensorFlow's C API, as TF Serving's C++ loader does, and runs requests by
 * tensor name in a session. No Python runs in this process.
 *
 * usage: serving_c_api EXPORT_DIR OP_LIBRARIES REQUEST OUTPUT [REQUEST OUTPUT]...
 *
 * OP_LIBRARIES: a text file, one shared-library path a line, each loaded with TF_LoadLibrary first
 *   (TF Serving links tensorflow-text's ops into its binary; we load the same ops as libraries).
 * REQUEST (little-endian): u32 input count; per input: str tensor name, u32 batch, batch x str;
 *   u32 output count; per output: str tensor name.  A str is a u32 byte length, then the bytes.
 * OUTPUT (little-endian): per output: u32 TF_DataType, u32 rank, rank x i64 dims, u64 byte size, bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorflow/c/c_api.h"
#include "tensorflow/c/tf_tstring.h"

static void die(const char *what, const char *detail) {
  fprintf(stderr, "serving_c_api: %s: %s\n", what, detail);
  exit(1);
}

static void check(TF_Status *status, const char *what) {
  if (TF_GetCode(status) != TF_OK) die(what, TF_Message(status));
}

static void read_exact(FILE *f, void *buffer, size_t size) {
  if (size && fread(buffer, 1, size, f) != size) die("request", "truncated file");
}

static uint32_t read_u32(FILE *f) {
  uint32_t value;
  read_exact(f, &value, sizeof value);
  return value;
}

static char *read_str(FILE *f, uint32_t *size) {
  *size = read_u32(f);
  char *bytes = malloc((size_t)*size + 1);
  if (!bytes) die("request", "out of memory");
  read_exact(f, bytes, *size);
  bytes[*size] = '\0';
  return bytes;
}

/* "StatefulPartitionedCall_2:1" -> the graph operation and output index. */
static TF_Output resolve(TF_Graph *graph, const char *tensor_name) {
  char op_name[1024];
  const char *colon = strrchr(tensor_name, ':');
  size_t length = colon ? (size_t)(colon - tensor_name) : strlen(tensor_name);
  if (length >= sizeof op_name) die("tensor name too long", tensor_name);
  memcpy(op_name, tensor_name, length);
  op_name[length] = '\0';
  TF_Operation *operation = TF_GraphOperationByName(graph, op_name);
  if (!operation) die("no such operation in the graph", tensor_name);
  TF_Output output = {operation, colon ? atoi(colon + 1) : 0};
  return output;
}

static void load_op_libraries(const char *list_path) {
  FILE *list = fopen(list_path, "r");
  if (!list) die("cannot open op library list", list_path);
  char path[4096];
  while (fgets(path, sizeof path, list)) {
    path[strcspn(path, "\r\n")] = '\0';
    if (!path[0]) continue;
    TF_Status *status = TF_NewStatus();
    TF_Library *library = TF_LoadLibrary(path, status);
    check(status, path);
    (void)library; /* kept loaded for the life of the process, as a server does */
    TF_DeleteStatus(status);
  }
  fclose(list);
}

static void run_request(TF_Session *session, TF_Graph *graph, const char *request_path, const char *output_path) {
  FILE *request = fopen(request_path, "rb");
  if (!request) die("cannot open request", request_path);
  uint32_t input_count = read_u32(request);
  TF_Output *inputs = calloc(input_count, sizeof *inputs);
  TF_Tensor **input_values = calloc(input_count, sizeof *input_values);
  for (uint32_t i = 0; i < input_count; ++i) {
    uint32_t size;
    char *name = read_str(request, &size);
    inputs[i] = resolve(graph, name);
    free(name);
    uint32_t batch = read_u32(request);
    int64_t dims[1] = {batch};
    TF_Tensor *tensor = TF_AllocateTensor(TF_STRING, dims, 1, (size_t)batch * sizeof(TF_TString));
    TF_TString *strings = (TF_TString *)TF_TensorData(tensor);
    for (uint32_t j = 0; j < batch; ++j) {
      char *text = read_str(request, &size);
      TF_StringInit(&strings[j]);
      TF_StringCopy(&strings[j], text, size);
      free(text);
    }
    input_values[i] = tensor;
  }
  uint32_t output_count = read_u32(request);
  TF_Output *outputs = calloc(output_count, sizeof *outputs);
  TF_Tensor **output_values = calloc(output_count, sizeof *output_values);
  for (uint32_t i = 0; i < output_count; ++i) {
    uint32_t size;
    char *name = read_str(request, &size);
    outputs[i] = resolve(graph, name);
    free(name);
  }
  fclose(request);

  TF_Status *status = TF_NewStatus();
  TF_SessionRun(session, NULL, inputs, input_values, (int)input_count, outputs, output_values, (int)output_count,
                NULL, 0, NULL, status);
  check(status, "TF_SessionRun");
  TF_DeleteStatus(status);

  FILE *out = fopen(output_path, "wb");
  if (!out) die("cannot write output", output_path);
  for (uint32_t i = 0; i < output_count; ++i) {
    TF_Tensor *tensor = output_values[i];
    uint32_t dtype = (uint32_t)TF_TensorType(tensor), rank = (uint32_t)TF_NumDims(tensor);
    fwrite(&dtype, sizeof dtype, 1, out);
    fwrite(&rank, sizeof rank, 1, out);
    for (uint32_t d = 0; d < rank; ++d) {
      int64_t dim = TF_Dim(tensor, (int)d);
      fwrite(&dim, sizeof dim, 1, out);
    }
    if (dtype == TF_STRING) {  /* each element: uint32 length, then its bytes */
      const TF_TString *strings = (const TF_TString *)TF_TensorData(tensor);
      int64_t count = TF_TensorElementCount(tensor);
      for (int64_t j = 0; j < count; ++j) {
        uint32_t length = (uint32_t)TF_StringGetSize(&strings[j]);
        fwrite(&length, sizeof length, 1, out);
        fwrite(TF_StringGetDataPointer(&strings[j]), 1, length, out);
      }
    } else {
      uint64_t byte_size = TF_TensorByteSize(tensor);
      fwrite(&byte_size, sizeof byte_size, 1, out);
      fwrite(TF_TensorData(tensor), 1, byte_size, out);
    }
    TF_DeleteTensor(tensor);
  }
  if (fclose(out) != 0) die("cannot write output", output_path);
  for (uint32_t i = 0; i < input_count; ++i) TF_DeleteTensor(input_values[i]);
  free(inputs), free(input_values), free(outputs), free(output_values);
}

int main(int argc, char **argv) {
  if (argc < 5 || (argc - 3) % 2 != 0) {
    fprintf(stderr, "usage: %s EXPORT_DIR OP_LIBRARIES REQUEST OUTPUT [REQUEST OUTPUT]...\n", argv[0]);
    return 2;
  }
  load_op_libraries(argv[2]);

  TF_Status *status = TF_NewStatus();
  TF_Graph *graph = TF_NewGraph();
  TF_SessionOptions *options = TF_NewSessionOptions();
  TF_Buffer *meta_graph_def = TF_NewBuffer();
  const char *tags[] = {"serve"};
  TF_Session *session = TF_LoadSessionFromSavedModel(options, NULL, argv[1], tags, 1, graph, meta_graph_def, status);
  check(status, "TF_LoadSessionFromSavedModel");

  for (int i = 3; i < argc; i += 2) run_request(session, graph, argv[i], argv[i + 1]);

  TF_CloseSession(session, status);
  check(status, "TF_CloseSession");
  TF_DeleteSession(session, status);
  TF_DeleteBuffer(meta_graph_def);
  TF_DeleteSessionOptions(options);
  TF_DeleteGraph(graph);
  TF_DeleteStatus(status);
  return 0;
}
