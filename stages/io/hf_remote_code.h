// The Python that lets transformers load upcycle's own layout (`export --format bam`, alias
// native): configuration_bam.py and modeling_bam.py from stages/io/hf_bam/, compiled in at build
// time so an export needs no source tree. No LibTorch.
#pragma once

namespace upcycle::stages {

extern const char* const kBamConfigurationPy;  ///< configuration_bam.py
extern const char* const kBamModelingPy;       ///< modeling_bam.py

}  // namespace upcycle::stages
