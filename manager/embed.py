"""Embed a file in C: embed.py INPUT OUTPUT SYMBOL.

Writes OUTPUT defining `const char SYMBOL[]` (the bytes, NUL-terminated)
and `const size_t SYMBOL_len` (without the NUL), so a program can serve a
file that is edited as itself in the source tree.
"""
import sys

src, out, sym = sys.argv[1:4]
data = open(src, "rb").read()
with open(out, "w") as f:
    f.write("/* Generated from %s by embed.py: edit that file. */\n" % src.rsplit("/", 1)[-1])
    f.write("#include <stddef.h>\n\n")
    f.write("extern const char %s[];\nextern const size_t %s_len;\n\n" % (sym, sym))
    f.write("const char %s[] = {\n" % sym)
    for i in range(0, len(data), 16):
        f.write("\t" + ", ".join(str(b) for b in data[i:i + 16]) + ",\n")
    f.write("\t0,\n};\n")
    f.write("const size_t %s_len = %d;\n" % (sym, len(data)))
