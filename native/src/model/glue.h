// glue.h: the few model-specific loops that are not ops (CARZero's word aggregation, averaging
// cross-attention maps, combining the two score directions). They run on the host through the
// context's thread pool; on a device context the buffers are staged through host memory (they
// are small: (Q, L, C) text states, (B, Q, P) maps, (B, Q) scores). A device kernel can replace
// any of them later without changing the graphs.
#pragma once
#include <cstdint>

#include "core/context.h"

namespace carzero::model {

// Spec 3.4. hsum (Q, Lh, C): the sum of the last n layers' hidden states for the first Lh <= L
// positions (every position past Lh must be kind 3); kinds (Q, L) host u8 (0 starts a word, 1
// continues it (##), 2 [SEP], 3 after it). Writes words (Q, L, C) (entries zero-padded to L) and
// sentence (Q, C) = sum over all L entries / L.
void aggregate_words(Context& ctx, const float* hsum, int64_t Lh, const uint8_t* kinds_host, float* words,
                     float* sentence, int64_t Q, int64_t L, int64_t C);
// Backward of aggregate_words: dhsum (Q, Lh, C) (=) from dwords (Q, L, C) and dsentence (Q, C):
// each token of a word's bank (and the [SEP] token) receives its entry's gradient plus
// dsentence / L when the entry counts in the sentence mean; other positions receive 0.
void aggregate_words_backward(Context& ctx, const float* dwords, const float* dsentence, int64_t Lh,
                              const uint8_t* kinds_host, float* dhsum, int64_t Q, int64_t L, int64_t C);
// Throws naming 'kinds' for values > 3 or a text not starting with kind 0.
void validate_kinds(const uint8_t* kinds_host, int64_t Q, int64_t L);

// avg (Nm, Nq, S-1) (+)= scale * sum over heads of probs (Nm, NH, Nq, S)[..., 1:] (the first
// memory entry dropped); first = true overwrites instead of accumulating.
void accumulate_attention(Context& ctx, const float* probs, float* avg, int64_t Nm, int64_t NH, int64_t Nq, int64_t S,
                          float scale, bool first);

// score (B, Q) = (i2t (B, Q) + t2i (Q, B)^T) / 2.
void combine_scores(Context& ctx, const float* i2t, const float* t2i, float* score, int64_t B, int64_t Q);

// Host copy of n bytes of device (or host) memory / the reverse.
void to_host(Context& ctx, void* dst, const void* src, size_t n);
void from_host(Context& ctx, void* dst, const void* src, size_t n);

}  // namespace carzero::model
