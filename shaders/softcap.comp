#version 450
// Logit soft-capping (Gemma 2): y = cap * tanh(x / cap) elementwise, cap = p.alpha (y may alias x).
// The driver's tanh is avoided: Vulkan inherits its precision from sinh/cosh, which some drivers form as
// (e^a - e^-a) / (e^a + e^-a): NaN once e^a overflows and poor relative accuracy near 0. Here
// |a| < 0.625: an odd Taylor polynomial through a^19 (truncation < 1e-8 relative); else
// (1 - t) / (1 + t) with t = exp(-2|a|) <= 0.29 (no cancellation), with |a| clamped to 10 where tanh is 1 in float.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
#include "common/eltwise.glsl"
#include "common/grid.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };

float tanh_safe(float a) {
    float b = abs(a);
    if (b < 0.625) {
        float z = a * a;
        // tanh a = a (1 - z/3 + 2z^2/15 - 17z^3/315 + ...), coefficients of the Taylor series
        float q = -443861162.0 / 1856156927625.0;
        q = q * z + 6404582.0 / 10854718875.0;
        q = q * z - 929569.0 / 638512875.0;
        q = q * z + 21844.0 / 6081075.0;
        q = q * z - 1382.0 / 155925.0;
        q = q * z + 62.0 / 2835.0;
        q = q * z - 17.0 / 315.0;
        q = q * z + 2.0 / 15.0;
        q = q * z - 1.0 / 3.0;
        return a + a * (q * z);
    }
    float t = exp(-2.0 * min(b, 10.0));
    return sign(a) * ((1.0 - t) / (1.0 + t));
}

void main() {
    uint i = inv_linear();
    if (i >= p.n) return;
    float cap = p.alpha;
    y[p.b_off + i] = cap * tanh_safe(x[p.a_off + i] / cap);
}
