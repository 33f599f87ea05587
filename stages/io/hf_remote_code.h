// The Python that lets transformers load upcycle's own layout (`export --format bam`, alias
// native): configuration_bam.py and modeling_bam.py, and decode our SentencePiece tokenizers
// exactly: tokenization_upcycle.py; from stages/io/hf_bam/, compiled in at build time so an export
// needs no source tree. No LibTorch.
#pragma once

namespace upcycle::stages {

extern const char* const kBamConfigurationPy;  ///< configuration_bam.py
extern const char* const kBamModelingPy;       ///< modeling_bam.py
/// tokenization_upcycle.py: exact decoding of an exported SentencePiece tokenizer.
extern const char* const kTokenizationPy;

}  // namespace upcycle::stages
