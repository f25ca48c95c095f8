// GELU with the tanh approximation (PyTorch's gelu(approximate='tanh')), overflow-free on every driver:
// gelu(x) = 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3), written as x * S with
// S = (1 + tanh(u)) / 2 = sigmoid(2u), which avoids the cancellation of 1 + tanh(u) for x << 0.
// The argument of the exponentials is bounded: for |x| >= 10, |2u| >= 87.4 and S is 1 (x > 0) or below 2e-38
// (x < 0) in float, so x is clamped to +-10 there; exp(+-87.4) stays below FLT_MAX, and no x^3 overflows.
#ifndef VKL_GELU_GLSL
#define VKL_GELU_GLSL
const float GELU_K = 0.7978845608028654; // sqrt(2/pi)
const float GELU_C = 0.044715;

// S = sigmoid(2u) and T = 1 - S = sigmoid(-2u), each from its own exponential (no 1 - S cancellation).
vec2 gelu_st(float x) {
    float xc = clamp(x, -10.0, 10.0);
    float z = 2.0 * GELU_K * (xc + GELU_C * xc * xc * xc);
    return vec2(1.0 / (1.0 + exp(-z)), 1.0 / (1.0 + exp(z)));
}

float gelu_tanh(float x) {
    if (x <= -10.0) return 0.0; // |exact| < 2e-37
    return x * gelu_st(x).x;
}

// d gelu / dx = S + x S T dz/dx with dz/dx = 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2).
float gelu_tanh_grad(float x) {
    if (x <= -10.0) return 0.0;
    if (x >= 10.0) return 1.0;
    vec2 st = gelu_st(x);
    return st.x + x * st.x * st.y * (2.0 * GELU_K * (1.0 + 3.0 * GELU_C * x * x));
}
#endif
