"""Exact decoding for upcycle's SentencePiece tokenizers in transformers.

upcycle exports its SentencePiece model (tokenizer.model) for transformers' SentencePieceBackend,
which encodes exactly as upcycle does. Its decode, in transformers 5.24, joins the pieces as text:
byte-fallback pieces come out as "<0x0A>" and the ends of the text are stripped. This subclass
decodes with the sentencepiece library itself, so decode(encode(text)) == text. tokenizer_config.json
names it in auto_map; AutoTokenizer uses it with trust_remote_code=True (without, it falls back to
SentencePieceBackend). Written by upcycle; part of the project (stages/io/hf_bam/).
"""
from transformers.tokenization_utils_sentencepiece import SentencePieceBackend


class UpcycleSentencePieceTokenizer(SentencePieceBackend):
    def _decode(self, token_ids, skip_special_tokens=False, **kwargs):
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        if skip_special_tokens:
            special = set(self.all_special_ids)
            token_ids = [i for i in token_ids if i not in special]
        return self.sp_model.decode(list(token_ids))
