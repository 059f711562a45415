// The decision thresholds of bitsandbytes' 4-bit quantizers (its dQuantizeNF4 / dQuantizeFP4 trees),
// as published: the midpoints between neighbouring sorted code values, to float precision (a few
// differ from the exact midpoint in the last bits; these are the ones bitsandbytes compares with).
// Plain constants only: every variant file may include this without sharing any code.
#pragma once

namespace peft::kernels::cpu {

// NF4, ascending: code = number of thresholds t with x > t (the tree's answer; NaN gives 0).
constexpr float kNf4Thresholds[15] = {
    -0.8480964004993439f, -0.6106329262256622f,  -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f,  0.2035212516784668f,   0.2920137718319893f,  0.3893125355243683f,
    0.5016634166240692f,  0.6427869200706482f,   0.8614784181118011f,
};

// FP4 on |x|, ascending: rank = number of thresholds t with |x| > t; the code is
// kFp4RankToCode[rank], plus 8 (the sign bit) when x < 0.
constexpr float kFp4Thresholds[7] = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f,
                                     0.4166667f,  0.583333f,  0.8333333f};
// Codes in ascending magnitude: 0, 0.0625, 2, 3, 4, 6, 8, 12 (÷ 12) are codes 0, 1, 6, 7, 4, 5, 2, 3.
constexpr int kFp4RankToCode[8] = {0, 1, 6, 7, 4, 5, 2, 3};

}  // namespace peft::kernels::cpu
