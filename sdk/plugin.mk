# plugin.mk - builds a squall plugin from any folder.
#
# In the plugin's folder, a Makefile of two lines:
#     SQUALL ?= /path/to/squall
#     include $(SQUALL)/sdk/plugin.mk
# or, with no Makefile at all:   make -f /path/to/squall/sdk/plugin.mk
#
# Builds $(OUT)/$(NAME).so from $(SRCS). Defaults: NAME = the folder's name, SRCS = *.c,
# OUT = the folder. Plugins link jansson (squall.h uses it); add libraries with LDLIBS.

SQ_SDK   := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
NAME     ?= $(notdir $(CURDIR))
SRCS     ?= $(wildcard *.c)
OUT      ?= .
CC       ?= cc
# -Wno-missing-field-initializers: sq_route and sq_plugin grow by appended fields, and a
# route table written { "GET", "/x", fn } must keep building when they do.
SQ_CFLAGS := -std=gnu11 -O2 -g -fPIC -Wall -Wextra -Werror -Wno-missing-field-initializers \
             -fvisibility=hidden \
             -I$(SQ_SDK) $(shell pkg-config --cflags jansson)
SQ_LDLIBS := $(shell pkg-config --libs jansson)

$(OUT)/$(NAME).so: $(SRCS) $(SQ_SDK)/squall.h
	@mkdir -p $(OUT)
	$(CC) $(SQ_CFLAGS) $(SQ_EXTRA_CFLAGS) $(CFLAGS) -shared -o $@ $(SRCS) $(SQ_LDLIBS) $(LDLIBS)

.PHONY: clean
clean:
	rm -f $(OUT)/$(NAME).so
