/* Host side of the transformer ops (forward and backward): embedding gather, RMSNorm, RoPE, causal GQA attention,
 * SwiGLU / GEGLU, soft-capping, scaling, elementwise adds, cross-entropy. All activations are fp32, row-major;
 * every op splits its work so that no binding exceeds the device's maxStorageBufferRange. Each op has a scalar
 * twin in src/ref/nn.h. */
#ifndef VKLORA_OPS_NN_H
#define VKLORA_OPS_NN_H

#include "ops/ops.h"

/* A tensor inside a buffer: `buf` + byte `offset` (a multiple of 4). buf == NULL means "absent" where an argument
 * is optional. Shapes are passed separately. */
typedef struct vkl_tview {
    const vkl_buffer *buf;
    uint64_t offset;
} vkl_tview;

static inline vkl_tview vkl_tv(const vkl_buffer *b, uint64_t offset) { return (vkl_tview){b, offset}; }
static inline vkl_tview vkl_tv_none(void) { return (vkl_tview){NULL, 0}; }

/* Every op below records into the current command buffer when vk->recording, else submits and waits itself. */

/* out[i, :] = dequant(table row ids[i]) for i < n_ids; table is `type` with rows of n elements (GGUF layout,
 * n a multiple of the block size); ids int32 (validated by the caller to be < the row count; an id outside 0..table_rows-1 yields a row of zeros).
 * table must extend to the next multiple of 4 bytes after its last row (the shader reads whole words). */
vkl_status vkl_op_get_rows(vkl_vk *vk, vkl_op_cache *c, uint32_t type, vkl_tview table, uint64_t table_rows,
                           vkl_tview ids, vkl_tview out, uint32_t n_ids, uint32_t n, vkl_err *err);

/* y[r, :] = x[r, :] * rstd[r] * w[:], rstd[r] = 1/sqrt(mean(x[r,:]^2) + eps). rstd is written when present
 * (the backward needs it). y may alias x. */
vkl_status vkl_op_rmsnorm(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, vkl_tview w, vkl_tview y, vkl_tview rstd,
                          uint32_t rows, uint32_t n, float eps, vkl_err *err);
/* Backward: given dy, x, w, rstd: dx (= or +=, see accumulate) and dw += sum over rows (dw optional). */
vkl_status vkl_op_rmsnorm_back(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, vkl_tview w, vkl_tview rstd, vkl_tview dy,
                               vkl_tview dx, bool accumulate, vkl_tview dw, uint32_t rows, uint32_t n,
                               vkl_err *err);

/* RoPE in place on x viewed as [rows, n_heads, head_dim]; row r has position pos[r] (int32). The first rope_dim
 * dims of each head rotate (the rest pass through): normal layout pairs (2i, 2i+1), NeoX layout pairs
 * (i, i + rope_dim/2); pair i turns by theta_i = pos * f_i with f_i from a frequency table, so every variant is
 * one op: plain f_i = base^(-2i/rope_dim), Llama 3 / longrope factors (f_i / factor_i), linear scaling
 * (f_i * scale), YaRN (its ramp-mixed f_i and attention factor as mscale), per-layer bases (one table each). */
typedef struct vkl_rope_params {
    uint32_t rope_dim; /* dims rotated per head: even, <= head_dim */
    bool neox;         /* pairs (i, i + rope_dim/2) instead of (2i, 2i+1) */
    vkl_tview freqs;   /* rope_dim/2 pairs of floats (hi, lo): f_i = hi + lo as a float-float; theta_i = pos * f_i */
    float mscale;      /* cos and sin are multiplied by it (YaRN's attention factor); 1 otherwise */
} vkl_rope_params;
/* inverse = the transpose (the backward): rotate by -theta, still multiplied by mscale. */
vkl_status vkl_op_rope(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, vkl_tview pos, uint32_t rows, uint32_t n_heads,
                       uint32_t head_dim, const vkl_rope_params *rp, bool inverse, vkl_err *err);
/* Host helper: write n = rope_dim/2 float-float pairs of the double frequencies f[i] into out[2n]
 * (out[2i] = (float)f[i], out[2i+1] = (float)(f[i] - out[2i])). */
void vkl_rope_pack_freqs(const double *f, uint32_t n, float *out);
/* Host helper: the plain table f[i] = freq_base^(-2i/rope_dim), i < rope_dim/2. */
void vkl_rope_freqs_base(double freq_base, uint32_t rope_dim, double *f);

/* Causal grouped-query attention for n_seq sequences.
 * q:   [n_seq, T, n_head, D]      (query t of sequence b is row b*T + t)
 * k,v: [n_seq, S, n_head_kv, D]   (S >= kv_len rows per sequence: a KV cache or the training activations)
 * out: [n_seq, T, n_head, D]
 * lse: [n_seq, n_head, T] logsumexp of the final scores per query (written when present; the backward needs it)
 * seg: int32 [n_seq, T], optional: the first key a query may see (packing boundaries); 0 when absent.
 * Query t sits at absolute position p = pos0 + t and sees keys seg[b,t] .. p, and with a sliding window only
 * the last `window` of them: key j when p - j < window as well (window 1 = the query's own position). Head h
 * reads KV head h / (n_head / n_head_kv). The score of key j is s = scale * q.k_j (scale = 1/sqrt(D) normally),
 * soft-capped when softcap > 0: s = softcap * tanh(s / softcap) (Gemma 2's attn_logit_softcapping), then the
 * softmax over the visible keys; lse is the logsumexp of those final (capped) scores. window = 0 and
 * softcap = 0 (a zero-initialised shape) mean neither. D <= 256; pos0 + T <= S. A query whose range is empty
 * (seg > pos0 + t) gets out = 0 and lse = -inf. The work is split by whole sequences: one sequence's q (and k/v)
 * must fit one binding (maxStorageBufferRange; 128 MiB on lavapipe), else VKL_ERR_INPUT. llvmpipe stops an
 * invocation after 65535 loop iterations: the tile kernels (D % 4 == 0, 16-byte aligned tensors) walk one key (or
 * query) per iteration, so up to ~65k of them; the scalar kernels walk slices of keys (queries), one dispatch each,
 * and the forward merges its slices through lse, which it then needs; the flash kernels (one workgroup per block
 * of queries or keys) are not sliced: past the limit they fall back to the tile or scalar kernels. The kernels walk
 * only the keys inside the window, so a short window also keeps long contexts under that limit.
 * Kernel variants (VKLORA_ATTN=auto|tile|scalar|flash|coopmat; src/ops/nn.c's attn_pick): CPU devices run the tile
 * kernels (scalar where tile cannot), GPUs the FlashAttention-2 kernels: "coopmat" (block products on cooperative
 * matrices, f16 operands, f32 accumulation and softmax) where the device has a usable shape and this build the
 * shaders, else "flash" (f32 block products from shared memory). Each dispatch is recorded with
 * vkl_op_variant_used("attention" / "attention_back", variant). */
typedef struct vkl_attn_shape {
    uint32_t n_seq, T, S, n_head, n_head_kv, D, pos0;
    float scale;
    uint32_t window; /* sliding window in positions (Gemma 2/3 local layers, Mistral); 0 = none */
    float softcap;   /* attention-logit soft-capping; 0 = off, else > 0 and finite */
} vkl_attn_shape;
vkl_status vkl_op_attention(vkl_vk *vk, vkl_op_cache *c, const vkl_attn_shape *s, vkl_tview q, vkl_tview k,
                            vkl_tview v, vkl_tview seg, vkl_tview out, vkl_tview lse, vkl_err *err);
/* Backward (recomputes the probabilities from q, k and lse, with the same window and softcap; the capped
 * score's gradient is multiplied by 1 - tanh^2): dq = ; dk, dv += (GQA heads sum into their KV head). lse is
 * required. delta, optional scratch of lse's shape [n_seq, n_head, T] (its contents afterwards unspecified): the
 * tile kernels then compute Di = dOi.Oi once, in the dq pass, instead of in every dk/dv step. */
vkl_status vkl_op_attention_back(vkl_vk *vk, vkl_op_cache *c, const vkl_attn_shape *s, vkl_tview q, vkl_tview k,
                                 vkl_tview v, vkl_tview seg, vkl_tview out, vkl_tview lse, vkl_tview dout,
                                 vkl_tview dq, vkl_tview dk, vkl_tview dv, vkl_tview delta, vkl_err *err);

/* h = silu(g) * u over n elements (h may alias g or u). */
vkl_status vkl_op_swiglu(vkl_vk *vk, vkl_op_cache *c, vkl_tview g, vkl_tview u, vkl_tview h, uint64_t n,
                         vkl_err *err);
/* dg = dh * u * silu'(g), du = dh * silu(g) (may alias g and u respectively). */
vkl_status vkl_op_swiglu_back(vkl_vk *vk, vkl_op_cache *c, vkl_tview g, vkl_tview u, vkl_tview dh, vkl_tview dg,
                              vkl_tview du, uint64_t n, vkl_err *err);

/* GELU(tanh)-gated FFN (Gemma): h = gelu_tanh(g) * u over n elements with gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi)
 * (x + 0.044715 x^3))), PyTorch's gelu(approximate='tanh'); finite for every finite input (h may alias g or u). */
vkl_status vkl_op_geglu(vkl_vk *vk, vkl_op_cache *c, vkl_tview g, vkl_tview u, vkl_tview h, uint64_t n,
                        vkl_err *err);
/* dg = dh * u * gelu_tanh'(g), du = dh * gelu_tanh(g) (may alias g and u respectively). */
vkl_status vkl_op_geglu_back(vkl_vk *vk, vkl_op_cache *c, vkl_tview g, vkl_tview u, vkl_tview dh, vkl_tview dg,
                             vkl_tview du, uint64_t n, vkl_err *err);

/* Soft-capping (Gemma 2 logits): y = cap * tanh(x / cap) over n elements, cap > 0 (y may alias x). */
vkl_status vkl_op_softcap(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, vkl_tview y, uint64_t n, float cap,
                          vkl_err *err);
/* Backward from the capped output y: dx = dy * (1 - (y/cap)^2) (dx may alias dy). */
vkl_status vkl_op_softcap_back(vkl_vk *vk, vkl_op_cache *c, vkl_tview y, vkl_tview dy, vkl_tview dx, uint64_t n,
                               float cap, vkl_err *err);

/* y = s * x over n elements (y may alias x); its own backward. */
vkl_status vkl_op_scale(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, vkl_tview y, uint64_t n, float s, vkl_err *err);
/* y[r, :] = factors[r] * x[r, :] over rows of n elements, factors float [rows] (y may alias x); its own
 * backward (attention temperature scaling of q by position). */
vkl_status vkl_op_scale_rows(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, vkl_tview factors, vkl_tview y,
                             uint32_t rows, uint32_t n, vkl_err *err);

/* y = a + alpha * b over n elements (y may alias a or b). */
vkl_status vkl_op_add(vkl_vk *vk, vkl_op_cache *c, vkl_tview a, vkl_tview b, float alpha, vkl_tview y, uint64_t n,
                      vkl_err *err);

/* Cross-entropy over logits [rows, V] with int32 targets (target < 0: ignored row; target >= V: nll NaN and a
 * zero gradient row, so a bad target shows in the loss).
 * nll[r] = logsumexp(logits[r]) - logits[r, target] (0 for ignored rows), written when present.
 * When dlogits is present: dlogits[r] = (softmax(logits[r]) - onehot(target)) * grad_scale (0 rows for ignored
 * targets); dlogits may alias logits. */
vkl_status vkl_op_cross_entropy(vkl_vk *vk, vkl_op_cache *c, vkl_tview logits, vkl_tview targets, uint32_t rows,
                                uint32_t V, vkl_tview nll, vkl_tview dlogits, float grad_scale, vkl_err *err);

#endif
