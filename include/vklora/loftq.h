/* LoftQ initialisation (Li et al. 2023, PEFT's loftq_init): alternately quantize W - s·B·A with the real GGUF
 * quantizer and fit s·B·A to the quantization residual W - Q by a rank-r SVD, so training starts from the deployed Q. */
#ifndef VKLORA_LOFTQ_H
#define VKLORA_LOFTQ_H

#include <stdio.h>

#include "vklora/common.h"
#include "vklora/lora.h"
#include "vklora/model.h"

/* How the rank-r SVD is computed. AUTO takes EXACT (LAPACK dgesdd of the whole matrix) when m·n·min(m, n) is at
 * most 2^27 (512 x 512 and below) or when the sketch would not be much thinner than the matrix, else RANDOMIZED
 * (Halko, Martinsson, Tropp 2011: Gaussian sketch of r + max(10, r/2) columns, 4 subspace iterations re-orthonormalised
 * by QR, then dgesdd of the small projected matrix). The environment variable VKL_LOFTQ_SVD=exact|randomized
 * overrides AUTO in vkl_loftq_matrix, so the fallback can be forced and compared. */
typedef enum { VKL_SVD_AUTO = 0, VKL_SVD_EXACT = 1, VKL_SVD_RANDOMIZED = 2 } vkl_svd_method;

/* The r leading singular triplets of M (m x n, row-major): U (m x r), S (r, descending), Vt (r x n), all row-major,
 * so that U diag(S) Vt is M's best rank-r approximation (exactly for EXACT, approximately for RANDOMIZED). seed
 * keys the random sketch. 1 <= r <= min(m, n). */
vkl_status vkl_lowrank_svd(const float *M, uint32_t m, uint32_t n, uint32_t r, vkl_svd_method method, uint64_t seed,
                           float *U, float *S, float *Vt, vkl_err *err);

/* The quantized type LoftQ deploys for `bits` and a row of `in` elements: 4 -> Q4_K when in % 256 == 0, else Q4_0
 * (in % 32 == 0); 8 -> Q8_0 (in % 32 == 0). -1 when no type fits (bits other than 4/8, or rows not a multiple of 32).
 * PEFT uses NF4 / an 8-bit normal-float grid; vklora uses the llama.cpp types it will run with instead. */
int vkl_loftq_qtype(int bits, uint64_t in);

/* Whether this build has LoftQ (LAPACK is optional at build time, meson -Dloftq=auto|enabled|disabled): without it
 * vkl_lowrank_svd, vkl_loftq_matrix and vkl_loftq_init_model refuse with VKL_ERR_INPUT and a message saying so. */
bool vkl_loftq_available(void);

/* LoftQ on one weight W (out x in, row-major, finite). For `iters` rounds: quantize X (X = W in the first round,
 * W - s·B·A after) to `qtype` with vkl_ref_quantize, Q = its dequantization, then set s·B·A to the rank-r SVD of
 * W - Q with sqrt(S_i / s) on each side: B = U sqrt(S/s) (out x r), A = sqrt(S/s) Vt (r x in). PEFT puts sqrt(S)
 * on each side and ignores s, which only agrees when s = 1; dividing by s keeps W ≈ Q + s·B·A for any alpha.
 * Outputs: q_bytes (out rows of qtype, the last round's quantization: dequantizes to the Q the adapter was fitted
 * to), A, B, res_before = ||W - Q0||_F (plain quantization of W) and res_after = ||W - (Q + s·B·A)||_F.
 * Rounds after the first need not lower res_after: the GGUF quantizers choose block scales from the data, so
 * quantizing W - s·B·A is not an exact projection (typically they change it by well under 1%). */
vkl_status vkl_loftq_matrix(const float *W, uint32_t out, uint32_t in, uint32_t r, float scale, uint32_t qtype,
                            uint32_t iters, uint64_t seed, void *q_bytes, float *A, float *B, double *res_before,
                            double *res_after, vkl_err *err);

/* One adapted projection's new base weight: `rows` x `cols` of `type`, laid out as GGUF stores it. */
typedef struct vkl_loftq_weight {
    uint32_t layer, module;       /* the LoRA slot (module = vkl_target_module bit number) */
    uint32_t type;                /* ggml type of bytes (vkl_loftq_qtype of the bits and cols) */
    uint64_t rows, cols;          /* out, in */
    void *bytes;                  /* owned */
    uint64_t size;                /* bytes */
    double res_before, res_after; /* ||W - Q||_F with plain quantization, ||W - (Q + s·B·A)||_F after LoftQ */
} vkl_loftq_weight;

typedef struct vkl_loftq_result {
    uint32_t n;                 /* == the lora's n_slots, in slot order */
    vkl_loftq_weight *weights;
} vkl_loftq_result;

/* LoftQ for every slot of `l`: decodes the base weight from the GGUF mapping (w->t->data; it must be F32, F16 or
 * BF16, since LoftQ needs the full-precision weight), writes A and B into l->params and returns the quantized
 * replacement of each adapted weight in *out (free with vkl_loftq_result_free). bits 4 or 8, iters 1..64. With
 * `report`, prints one line per slot: "layer L module NAME (TYPE): ||W-Q|| = x -> ||W-(Q+sBA)|| = y". */
vkl_status vkl_loftq_init_model(const vkl_model *m, vkl_lora *l, int bits, int iters, FILE *report,
                                vkl_loftq_result **out, vkl_err *err);
void vkl_loftq_result_free(vkl_loftq_result *res);

#endif
