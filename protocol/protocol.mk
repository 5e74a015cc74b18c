# The protocol's C code, compiled into every C program (server, client, bench tools):
# generated/ is rendered from protocol.toml by `make render`; c/ is written by hand and uses it.
# A Makefile sets PROTO to this directory, includes this file, and compiles PTS_SRCS with
# PTS_CPPFLAGS.

PTS_SRCS     := $(PROTO)/generated/points_protocol.c $(wildcard $(PROTO)/c/*.c)
PTS_HDRS     := $(PROTO)/generated/points_protocol.h $(wildcard $(PROTO)/c/*.h)
PTS_CPPFLAGS := -I$(PROTO)/generated -I$(PROTO)/c
