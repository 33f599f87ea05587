# cmake -DIN=file -DOUT=file.inc -P EmbedText.cmake: IN's text as a C++ raw string literal.
file(READ ${IN} UPCYCLE_TEXT)
file(WRITE ${OUT} "R\"upcycle_embed(${UPCYCLE_TEXT})upcycle_embed\"\n")
