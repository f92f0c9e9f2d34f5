/*
 * graph-private.h — the inference graph Eosin builds from an ONNX model:
 * tensors (weights, activations) and nodes in execution order, with every
 * shape known. onnx-load.c builds it, graph.c checks, sorts and folds
 * BatchNormalization, graph-shape.c infers the shapes; the backends
 * (backend.h) run it.
 */
#pragma once

#include "nn/eosin-nn.h"
#include "eosin.h" /* EOSIN_ERROR and its codes */

#include <string.h>

G_BEGIN_DECLS

#define EOSIN_MAX_DIMS 6
#define EOSIN_MAX_NODE_INPUTS 128 /* DenseNet concatenates up to 33 */

typedef enum {
  EOSIN_OP_CONV,
  EOSIN_OP_CONV_TRANSPOSE,
  EOSIN_OP_BATCH_NORM,
  EOSIN_OP_RELU,
  EOSIN_OP_CLIP,
  EOSIN_OP_SIGMOID,
  EOSIN_OP_HARD_SIGMOID,
  EOSIN_OP_HARD_SWISH,
  EOSIN_OP_MUL,
  EOSIN_OP_ADD,
  EOSIN_OP_CONCAT,
  EOSIN_OP_MAX_POOL,
  EOSIN_OP_AVERAGE_POOL,
  EOSIN_OP_GLOBAL_AVERAGE_POOL,
  EOSIN_OP_GEMM,
  EOSIN_OP_MATMUL,
  EOSIN_OP_FLATTEN,
  EOSIN_OP_RESHAPE,
  EOSIN_OP_SOFTMAX,
  EOSIN_OP_RESIZE,
  EOSIN_OP_PAD,
  EOSIN_OP_IDENTITY,
  EOSIN_OP_CONSTANT,
  EOSIN_OP_DROPOUT,
  EOSIN_OP_COUNT
} EosinOpType;

/* The ONNX op_type of @op ("Conv", ...). */
const char *_eosin_op_name(EosinOpType op);
/* The op for an ONNX op_type, or -1 when Eosin does not support it. */
int _eosin_op_from_name(const char *name);

typedef struct {
  char *name;
  int ndim;
  int64_t dims[EOSIN_MAX_DIMS];
  bool shape_known;
  float *data;      /* constant values (initializer / Constant), owned; NULL otherwise */
  int64_t *idata;   /* int64 constants (Reshape shapes, Pad pads), owned */
  int producer;     /* node index, -1 for graph inputs and constants */
  int consumers;    /* number of node inputs reading it */
  bool is_input, is_output;
} EosinTensor;

/* Attributes of every supported op, with ONNX's defaults filled in. */
typedef struct {
  int64_t kernel[2], strides[2], dilations[2], pads[4]; /* pads: top, left, bottom, right */
  int64_t group;
  int64_t output_padding[2];
  int64_t axis;          /* Concat, Softmax, Flatten */
  float alpha, beta;     /* Gemm, HardSigmoid */
  float epsilon;         /* BatchNormalization */
  float clip_min, clip_max;
  int64_t trans_a, trans_b;
  int64_t ceil_mode, count_include_pad;
  char mode[16];         /* Resize: nearest | linear; Pad: constant */
  char coord_mode[32];   /* Resize coordinate_transformation_mode */
  char nearest_mode[24]; /* Resize nearest_mode */
  /* Resize: the H and W scales an output coordinate is mapped back by
   * (x_in = f(x_out, 1/scale)): the given scales, or out/in from sizes.
   * Not out/in in general: floor(in * scale) rounds the size, not the map. */
  float resize_scale[2];
} EosinAttrs;

typedef struct {
  EosinOpType op;
  char *name;            /* ONNX node name or "<op_type>#<index>" */
  int n_in, in[EOSIN_MAX_NODE_INPUTS];  /* tensor indices; -1 for an omitted optional input */
  int out;               /* the (first) output tensor; extra outputs are ignored */
  EosinAttrs a;
  bool removed;          /* folded away (BatchNormalization into Conv) */
} EosinNode;

struct _EosinModel {
  char *path;
  int64_t opset;
  GPtrArray *tensors;    /* EosinTensor *, owned */
  GArray *nodes;         /* EosinNode, in execution order after _eosin_graph_prepare */
  GHashTable *by_name;   /* tensor name -> index + 1 */
  int input, output;     /* the image input and the first graph output */
  int batch;             /* the batch size symbolic dims were resolved to */
  int folded_bn;         /* BatchNormalizations folded into convolutions */
};

/* Elements of @t: the product of its dims (1 for a scalar). */
static inline int64_t _eosin_tensor_numel(const EosinTensor *t) {
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++)
    n *= t->dims[d];
  return n;
}

/* Sets @t's shape to the first @ndim of @dims and marks it known. */
static inline void _eosin_tensor_set_shape(EosinTensor *t, int ndim, const int64_t *dims) {
  t->ndim = ndim;
  memcpy(t->dims, dims, ndim * sizeof(int64_t));
  t->shape_known = true;
}

/* Bounds on computed shapes: overflow guards, far above any real network. */
#define EOSIN_GRAPH_MAX_DIM (INT64_C(1) << 31)
#define EOSIN_GRAPH_MAX_ELEMENTS (INT64_C(1) << 34)

/* Sets an EOSIN_ERROR_MODEL error "model PATH: node NAME (OP): MESSAGE";
 * returns false. */
bool _eosin_node_error(GError **err, const EosinModel *m, const EosinNode *n, const char *fmt,
                       ...) G_GNUC_PRINTF(4, 5);

/* Infers the shape of @n's output from its inputs' (graph-shape.c: one
 * rule per op), checking the op's constant inputs and resolving what the
 * backends read from the attributes (negative axes, Clip's bounds,
 * Resize's scales, Pad's pads). */
bool _eosin_graph_infer_shape(EosinModel *m, EosinNode *n, GError **err);

/* Adds (or finds) the tensor @name; returns its index. */
int _eosin_graph_tensor(EosinModel *m, const char *name);

/* Checks every node's inputs exist, sorts the nodes into execution order
 * (an error names a node on a cycle), infers every shape and folds each
 * BatchNormalization that only follows a Conv into it. */
bool _eosin_graph_prepare(EosinModel *m, GError **err);

G_END_DECLS
