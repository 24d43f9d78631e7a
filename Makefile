# visage: build, test, demo, models. `make help` lists the targets.
# Knobs: WERROR=1 (warnings are errors), SAN=1 (ASan+UBSan into build-san/), V=1 (show commands),
# PREFIX=/usr/local.

CC      ?= cc
PREFIX  ?= /usr/local
VERSION := 0.1.0
BUILD   ?= build
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN    := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter -Wno-format-truncation
ifeq ($(WERROR),1)
WARN += -Werror
endif
ifeq ($(SAN),1)
BUILD   := build-san
CFLAGS  := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
CPPFLAGS += -D_GNU_SOURCE -DVISAGE_VERSION='"$(VERSION)"'
# x86-64-v2 (SSE4.2, 2009 on) lets the compiler vectorise the CPU kernels; other machines build
# for their default target
ARCH_FLAGS := $(if $(filter x86_64,$(shell uname -m)),-march=x86-64-v2)
ALL_CFLAGS = -std=c11 -pthread $(ARCH_FLAGS) $(WARN) $(CFLAGS) $(CPPFLAGS)

# ---- dependencies: one ✓/✗ line each (see deps/packages.txt for the Debian packages) ----------
REQUIRED_PC := libavformat libavcodec libavutil libswscale libpng jansson inih openblas
OPTIONAL_PC := ncursesw libsixel
have_pc = $(shell pkg-config --exists $(1) 2>/dev/null && echo 1)
$(foreach p,$(REQUIRED_PC) $(OPTIONAL_PC),$(eval HAVE_$(p) := $(call have_pc,$(p))))
MISSING := $(strip $(foreach p,$(REQUIRED_PC),$(if $(HAVE_$(p)),,$(p))))

NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(CUDA),0)
NVCC :=
endif

ifeq ($(MAKELEVEL),0)
ifneq ($(filter-out deps help clean distclean models,$(or $(MAKECMDGOALS),all)),)
$(info visage $(VERSION) dependencies:)
$(foreach p,$(REQUIRED_PC),$(info $(if $(HAVE_$(p)),  ✓,  ✗) $(p)$(if $(HAVE_$(p)),, (required: make deps))))
$(foreach p,$(OPTIONAL_PC),$(info $(if $(HAVE_$(p)),  ✓,  ✗) $(p) (optional, for the workbench)))
$(info $(if $(NVCC),  ✓ CUDA ($(NVCC)),  ✗ CUDA (optional: CPU backend only)))
endif
endif

# quiet build lines; V=1 shows the commands
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-5s %s\n'
endif

PC_LIBS  := $(REQUIRED_PC)
DEP_CFLAGS := $(if $(MISSING),,$(shell pkg-config --cflags $(PC_LIBS)))
DEP_LIBS   := $(if $(MISSING),,$(shell pkg-config --libs $(PC_LIBS))) -lm -lpthread

# ---- sources ----------------------------------------------------------------------------------
CORE_SRC := $(wildcard core/*.c core/nn/*.c core/arch/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
TUI_SRC  := $(wildcard tui/*.c)
TUI_OBJ  := $(TUI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB      := $(BUILD)/libvisage.a
BIN      := $(BUILD)/visage

.PHONY: all check-deps deps models demo test test-unit test-san help install clean distclean bench
all: check-deps $(BIN) $(TEST_BIN)

check-deps:
	@if [ -n "$(strip $(MISSING))" ]; then \
	  echo "visage: missing libraries: $(MISSING). Run 'make deps' (installs the Debian packages)."; \
	  exit 1; fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(ALL_CFLAGS) $(DEP_CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(CORE_OBJ)
	@rm -f $@
	$(say) AR $@
	$(Q)ar rcs $@ $^

$(BIN): $(TUI_OBJ) $(LIB)
	$(say) LINK $@
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(TUI_OBJ) $(LIB) $(DEP_LIBS)
	@[ "$(SAN)" = 1 ] || ln -sf $(BUILD)/visage visage

$(BUILD)/tests/%: tests/%.c tests/check.h $(LIB)
	@mkdir -p $(dir $@)
	$(say) LINK $@
	$(Q)$(CC) $(ALL_CFLAGS) $(DEP_CFLAGS) -Icore $(LDFLAGS) -o $@ $< $(LIB) $(DEP_LIBS)

-include $(CORE_OBJ:.o=.d) $(TUI_OBJ:.o=.d)

# ---- set-up: packages and models --------------------------------------------------------------
deps:
	@sh deps/install.sh

models:
	@sh deps/models.sh

# ---- test, demo -------------------------------------------------------------------------------
test:
	@sh deps/install.sh
	@sh deps/models.sh
	@$(MAKE) --no-print-directory WERROR=1 all
	@$(MAKE) --no-print-directory WERROR=1 SAN=1 all
	@sh tests/run.sh $(BUILD) build-san

demo:
	@sh deps/install.sh
	@sh deps/models.sh
	@$(MAKE) --no-print-directory all
	@sh deps/demo.sh $(BUILD)

BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(say) LINK $@
	$(Q)$(CC) $(ALL_CFLAGS) $(DEP_CFLAGS) -Icore $(LDFLAGS) -o $@ $< $(LIB) $(DEP_LIBS)

bench: all $(BENCH_BIN)
	@sh bench/extract.sh
	@sh bench/train_cpu.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)$(PREFIX)/share/visage/models
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/visage
	install -m 644 man/visage.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/visage.ini.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 models/*.json models/*.bin models/LICENSE.face-api models/SHA256SUMS $(DESTDIR)$(PREFIX)/share/visage/models/
	install -D -m 644 contrib/visage.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/visage

help:
	@echo "make          build visage ($(BIN)) and the tests"
	@echo "make deps     install the Debian/Ubuntu packages visage needs (apt-get, sudo if not root)"
	@echo "make models   fetch the face-network weights (npm pack @vladmandic/face-api, sha256 checked)"
	@echo "make demo     deps + models + build, then extract the faces of the sample photos"
	@echo "make test     deps + models + build, then every test (also under ASan/UBSan)"
	@echo "make bench    extraction speed benchmark (results go to BENCHMARKS.md by hand)"
	@echo "make install  PREFIX=$(PREFIX)"

clean:
	rm -rf build build-san visage

distclean: clean
	rm -rf models .cache
